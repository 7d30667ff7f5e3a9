import { fmaF32, stepRounding } from '../methods/numerics';
import { uniformAt } from '../methods/random-mask';
import { decodeToF32, encodeFromF32 } from '../safetensors/convert';
import { checkLengths, hostBytes, MAX_TASK_MODELS, type ComputeBackend, type HostArray, type TaskArithmeticParams } from './types';

const f = Math.fround;
/** nearswap's floor on |base − other|, as an f32. */
export const NEARSWAP_MIN_DIFF = f(1e-6);

/** The f32 values of `array` (the array itself when it already holds f32). */
export function toF32(array: HostArray): Float32Array {
  if (array.dtype === 'F32') return array.data;
  const values = new Float32Array(array.data.length);
  decodeToF32(hostBytes(array), array.dtype, values);
  return values;
}

/** Writes f32 `values` into `out` in its dtype, rounding to nearest even. */
export function fromF32(values: Float32Array, out: HostArray): void {
  if (out.dtype === 'F32') {
    if (out.data !== values) out.data.set(values);
    return;
  }
  encodeFromF32(values, out.dtype, hostBytes(out));
}

/** Σw in f32, in order: linear's divisor. */
export function weightSum(weights: readonly number[]): number {
  let divisor = 0;
  for (const w of weights) divisor = f(divisor + f(w));
  return divisor;
}

export function linearF32(inputs: readonly Float32Array[], weights: readonly number[], normalize: boolean, out: Float32Array): void {
  const w = weights.map((x) => f(x));
  const divisor = weightSum(w);
  for (let i = 0; i < out.length; i++) {
    let acc = 0;
    for (let m = 0; m < inputs.length; m++) acc = fmaF32(inputs[m]![i]!, w[m]!, acc);
    out[i] = normalize ? f(acc / divisor) : acc;
  }
}

export function nearswapF32(a: Float32Array, b: Float32Array, t: number, out: Float32Array): void {
  const tf = f(t);
  for (let i = 0; i < out.length; i++) {
    const diff = Math.max(Math.abs(f(a[i]! - b[i]!)), NEARSWAP_MIN_DIFF);
    const w = Math.min(Math.max(f(f(1 / diff) * tf), 0), 1);
    out[i] = f(f(w * b[i]!) + f(f(1 - w) * a[i]!));
  }
}

export function blend2F32(c0: number, a: Float32Array, c1: number, b: Float32Array, out: Float32Array): void {
  const k0 = f(c0);
  const k1 = f(c1);
  for (let i = 0; i < out.length; i++) out[i] = f(f(k0 * a[i]!) + f(k1 * b[i]!));
}

/** Throws unless a taskArithmetic call is well formed. */
export function checkTaskArithmetic(models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray): void {
  const count = models.length;
  if (count > MAX_TASK_MODELS) throw new RangeError(`task arithmetic takes at most ${MAX_TASK_MODELS} models, not ${count}`);
  if (params.weights.length !== count || params.scales.length !== count || params.masks.length !== count) {
    throw new RangeError(`task arithmetic: ${count} models but ${params.weights.length} weights, ${params.scales.length} scales, ${params.masks.length} masks`);
  }
  for (const mask of params.masks) {
    if (mask.kind === 'keep' && mask.keep.length < out.data.length) throw new RangeError(`task arithmetic: a mask of ${mask.keep.length} for ${out.data.length} elements`);
  }
}

/** The task-vector merge's elementwise pass in f32 (see ComputeBackend.taskArithmetic): the same steps as methods/task-arithmetic.ts. */
export function taskArithmeticF32(base: Float32Array, models: readonly Float32Array[], params: TaskArithmeticParams, out: Float32Array): void {
  const round = stepRounding(params.step);
  const count = models.length;
  const { masks, consensus, normalize, start } = params;
  // f32 as every backend receives them (the method's own values are f32 already).
  const weights = params.weights.map(f);
  const scales = params.scales.map(f);
  const lambda = f(params.lambda);
  const keeps = masks.map((mask) => {
    if (mask.kind === 'all') return () => true;
    if (mask.kind === 'keep') return (i: number) => mask.keep[i] !== 0;
    return (i: number) => uniformAt(mask.key, start + i) < mask.density;
  });
  const d = new Float64Array(count);
  for (let i = 0; i < out.length; i++) {
    const b = base[i]!;
    for (let j = 0; j < count; j++) {
      let delta = keeps[j]!(i) ? round(models[j]![i]! - b) : 0;
      if (scales[j] !== 1) delta = round(delta * scales[j]!);
      d[j] = round(delta * weights[j]!);
    }
    let mixed = 0;
    let divisor = f(params.divisor);
    if (consensus) {
      let vote = 0;
      for (let j = 0; j < count; j++) vote = f(vote + d[j]!);
      const majority = vote >= 0 ? 1 : -1;
      divisor = 0;
      for (let j = 0; j < count; j++) {
        const agrees = Math.sign(d[j]!) === majority;
        mixed = f(mixed + (agrees ? d[j]! : 0));
        divisor = f(divisor + (agrees ? weights[j]! : 0));
      }
      divisor = round(divisor);
      if (divisor === 0) divisor = 1;
    } else {
      for (let j = 0; j < count; j++) mixed = f(mixed + d[j]!);
    }
    mixed = round(mixed);
    if (normalize) mixed = round(mixed / divisor);
    if (lambda !== 1) mixed = round(mixed * lambda);
    out[i] = round(b + mixed);
  }
}

/**
 * The definition of every backend's bits: plain TypeScript, f32 semantics by `Math.fround` at every
 * step, the same arithmetic as the methods in `methods/` (linear.ts, nearswap.ts, slerp.ts).
 * Slow (well under 1 G elements/s); used by tests and as the last-resort CPU path.
 */
export class ReferenceBackend implements ComputeBackend {
  readonly kind = 'cpu';
  readonly description = 'CPU: TypeScript reference (single thread)';

  async linear(inputs: readonly HostArray[], weights: readonly number[], normalize: boolean, out: HostArray): Promise<void> {
    checkLengths(inputs, out);
    if (weights.length !== inputs.length) throw new RangeError(`linear: ${weights.length} weights for ${inputs.length} inputs`);
    const result = new Float32Array(out.data.length);
    linearF32(inputs.map(toF32), weights, normalize, result);
    fromF32(result, out);
  }

  async nearswap(base: HostArray, other: HostArray, t: number, out: HostArray): Promise<void> {
    checkLengths([base, other], out);
    const result = new Float32Array(out.data.length);
    nearswapF32(toF32(base), toF32(other), t, result);
    fromF32(result, out);
  }

  async blend2(c0: number, a: HostArray, c1: number, b: HostArray, out: HostArray): Promise<void> {
    checkLengths([a, b], out);
    const result = new Float32Array(out.data.length);
    blend2F32(c0, toF32(a), c1, toF32(b), result);
    fromF32(result, out);
  }

  async taskArithmetic(base: HostArray, models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray): Promise<void> {
    checkLengths([base, ...models], out);
    checkTaskArithmetic(models, params, out);
    const result = new Float32Array(out.data.length);
    taskArithmeticF32(toF32(base), models.map(toF32), params, result);
    fromF32(result, out);
  }

  async dispose(): Promise<void> {}
}
