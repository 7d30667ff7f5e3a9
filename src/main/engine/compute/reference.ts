import { fmaF32, stepRounding } from '../methods/numerics';
import { uniformAt } from '../methods/random-mask';
import { checkDella, DellaSparsifier } from '../methods/sparsify';
import { decodeToF32, encodeFromF32 } from '../safetensors/convert';
import {
  absBits,
  checkLengths,
  HISTOGRAM_BINS,
  hostBytes,
  magnitudeKeeps,
  magnitudeMaskKeeps,
  MAX_TASK_MODELS,
  type ComputeBackend,
  type DeltaFindParams,
  type DeltaFound,
  type DeltaHistogramParams,
  type DeltaSumsParams,
  type HostArray,
  MAX_DELLA_ROW,
  type RowRankParams,
  type TaskArithmeticParams,
  type UnitTangentParams,
  type UnitSumOptions,
  type TaskVectorMask,
  type CascadeState,
  type SceDeltaParams,
  type SceMergeParams,
  type SceSelect,
  type RamParams,
  type StepDtype,
  CASCADE_ROW,
} from './types';

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

export function linearF32(inputs: readonly Float32Array[], weights: readonly number[], normalize: boolean, out: Float32Array, step: StepDtype = 'F32'): void {
  const w = weights.map((x) => f(x));
  const divisor = weightSum(w);
  if (step !== 'F32') {
    // Each fma (one f32 rounding) and the quotient rounded to the step; the weights and Σw stay f32.
    const r = stepRounding(step);
    for (let i = 0; i < out.length; i++) {
      let acc = 0;
      for (let m = 0; m < inputs.length; m++) acc = r(fmaF32(inputs[m]![i]!, w[m]!, acc));
      out[i] = normalize ? r(acc / divisor) : acc;
    }
    return;
  }
  for (let i = 0; i < out.length; i++) {
    let acc = 0;
    for (let m = 0; m < inputs.length; m++) acc = fmaF32(inputs[m]![i]!, w[m]!, acc);
    out[i] = normalize ? f(acc / divisor) : acc;
  }
}

/** nearswap, each step rounded to `step` (methods/nearswap.ts; t is taken as f32). */
export function nearswapF32(a: Float32Array, b: Float32Array, t: number, out: Float32Array, step: StepDtype = 'F32'): void {
  const r = stepRounding(step);
  const tf = f(t);
  const minDiff = r(NEARSWAP_MIN_DIFF);
  for (let i = 0; i < out.length; i++) {
    const diff = Math.max(Math.abs(r(a[i]! - b[i]!)), minDiff);
    const w = Math.min(Math.max(r(r(1 / diff) * tf), 0), 1);
    out[i] = r(r(w * b[i]!) + r(r(1 - w) * a[i]!));
  }
}

export function blend2F32(c0: number, a: Float32Array, c1: number, b: Float32Array, out: Float32Array, step: StepDtype = 'F32'): void {
  const r = stepRounding(step);
  const k0 = f(c0);
  const k1 = f(c1);
  for (let i = 0; i < out.length; i++) out[i] = r(r(k0 * a[i]!) + r(k1 * b[i]!));
}

/** Throws unless a unitSum call is well formed. */
export function checkUnitSum(inputs: readonly HostArray[], divisors: readonly number[], weights: readonly number[]): void {
  if (inputs.length > MAX_TASK_MODELS || divisors.length !== inputs.length || weights.length !== inputs.length) {
    throw new RangeError(`unitSum: ${inputs.length} inputs (at most ${MAX_TASK_MODELS}), ${divisors.length} divisors, ${weights.length} weights`);
  }
}

/** Throws unless a taskArithmetic call is well formed. */
export function checkTaskArithmetic(models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray): void {
  const count = models.length;
  if (count > MAX_TASK_MODELS) throw new RangeError(`task arithmetic takes at most ${MAX_TASK_MODELS} models, not ${count}`);
  if (params.weights.length !== count || params.scales.length !== count || params.masks.length !== count) {
    throw new RangeError(`task arithmetic: ${count} models but ${params.weights.length} weights, ${params.scales.length} scales, ${params.masks.length} masks`);
  }
  for (const mask of params.masks) {
    const bytes = mask.kind === 'keep' ? mask.keep : mask.kind === 'magnitude' ? mask.ties : undefined;
    if (bytes && bytes.length < out.data.length) throw new RangeError(`task arithmetic: a mask of ${bytes.length} for ${out.data.length} elements`);
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
  const keeps = masks.map((mask) => keepTest(mask, start));
  const d = new Float64Array(count);
  for (let i = 0; i < out.length; i++) {
    const b = base[i]!;
    for (let j = 0; j < count; j++) {
      let delta = round(models[j]![i]! - b);
      if (!keeps[j]!(i, delta)) delta = 0;
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

/** Whether `mask` keeps element i of a call that starts at tensor index `start`, whose δ is `delta`. */
export function keepTest(mask: TaskVectorMask, start: number): (i: number, delta: number) => boolean {
  switch (mask.kind) {
    case 'all':
      return () => true;
    case 'keep':
      return (i) => mask.keep[i] !== 0;
    case 'random':
      return (i) => uniformAt(mask.key, start + i) < mask.density;
    case 'magnitude':
      return (i, delta) => magnitudeMaskKeeps(mask, absBits(delta), start, i);
  }
}

/** ComputeBackend.deltaHistogram on f32 arrays. */
export function deltaHistogramF32(base: Float32Array, selections: readonly Float32Array[], params: DeltaHistogramParams, counts: readonly Float64Array[]): void {
  const round = stepRounding(params.step);
  selections.forEach((x, j) => {
    const prefix = params.prefixes[j];
    const bins = counts[j]!;
    if (bins.length < HISTOGRAM_BINS) throw new RangeError(`deltaHistogram: ${bins.length} bins, not ${HISTOGRAM_BINS}`);
    for (let i = 0; i < x.length; i++) {
      const bits = absBits(round(x[i]! - base[i]!));
      if (prefix === undefined) bins[bits >>> 16]!++;
      else if (bits >>> 16 === prefix) bins[bits & 0xffff]!++;
    }
  });
}

/** ComputeBackend.deltaFind on f32 arrays. */
export function deltaFindF32(base: Float32Array, selections: readonly Float32Array[], params: DeltaFindParams): DeltaFound[] {
  const round = stepRounding(params.step);
  return selections.map((x, j) => {
    let count = 0;
    let index = -1;
    for (let i = 0; i < x.length; i++) {
      if (absBits(round(x[i]! - base[i]!)) !== params.bits[j]) continue;
      count++;
      if (count > params.ranks[j]!) {
        index = i;
        break;
      }
    }
    return { count, index };
  });
}

/** ComputeBackend.deltaSums on f32 arrays. */
export function deltaSumsF32(base: Float32Array, models: readonly Float32Array[], params: DeltaSumsParams, sums: Float64Array): void {
  const round = stepRounding(params.step);
  models.forEach((x, j) => {
    const keeps = keepTest(params.masks[j]!, params.start);
    let all = sums[2 * j]!;
    let kept = sums[2 * j + 1]!;
    for (let i = 0; i < x.length; i++) {
      const delta = round(x[i]! - base[i]!);
      all += Math.abs(delta);
      kept += Math.abs(keeps(i, delta) ? delta : 0);
    }
    sums[2 * j] = all;
    sums[2 * j + 1] = kept;
  });
}

/** Throws unless a rowRankMasks call is well formed (whole rows, no longer than MAX_DELLA_ROW, a mask per model). */
export function checkRowRanks(base: HostArray, models: readonly HostArray[], params: RowRankParams, keeps: readonly Uint8Array[]): void {
  checkLengths(models, base);
  const length = base.data.length;
  const count = models.length;
  const n = params.rowLength;
  if (count > MAX_TASK_MODELS || params.keys.length !== count || params.densities.length !== count || params.epsilons.length !== count || keeps.length !== count) {
    throw new RangeError(`rowRankMasks: ${count} models (at most ${MAX_TASK_MODELS}), ${params.keys.length} keys, ${params.densities.length} densities, ${params.epsilons.length} epsilons, ${keeps.length} masks`);
  }
  if (!Number.isInteger(n) || n < 1 || n > MAX_DELLA_ROW) throw new RangeError(`della: rows of ${n} elements are longer than Alloy ranks (4,194,304)`);
  if (length % n !== 0) throw new RangeError(`della: a chunk of ${length} elements is not whole rows of ${n}`);
  for (const keep of keeps) if (keep.length < length) throw new RangeError(`rowRankMasks: a mask of ${keep.length} for ${length} elements`);
  models.forEach((_, j) => checkDella(params.densities[j]!, params.epsilons[j]!));
}

/** ComputeBackend.rowRankMasks on f32 arrays: δ rounded to the step, then DellaSparsifier's own ranks. */
export function rowRankMasksF32(base: Float32Array, models: readonly Float32Array[], params: RowRankParams, keeps: readonly Uint8Array[]): void {
  const round = stepRounding(params.step);
  const delta = new Float32Array(base.length);
  models.forEach((x, j) => {
    for (let i = 0; i < x.length; i++) delta[i] = round(x[i]! - base[i]!);
    new DellaSparsifier(params.keys[j]!, params.densities[j]!, params.epsilons[j]!, params.rowLength).mask(params.start, delta, keeps[j]!);
  });
}

/** ComputeBackend.normLanes on f32 arrays. */
export function normLanesF32(inputs: readonly Float32Array[], lanes: Float32Array): void {
  inputs.forEach((x, j) => {
    if (x.length % 8 !== 0) throw new RangeError(`normLanes: ${x.length} elements, not whole groups of 8`);
    for (let i = 0; i < x.length; i++) lanes[8 * j + (i % 8)] = lanes[8 * j + (i % 8)]! + f(x[i]! * x[i]!);
  });
}

/** ComputeBackend.dotRows on f32 arrays: TorchSum.addRow's steps, row by row. */
export function dotRowsF32(a: Float32Array, b: Float32Array, n0: number, n1: number, state: CascadeState, valueStep: StepDtype = 'F32'): void {
  if (a.length % CASCADE_ROW !== 0) throw new RangeError(`dotRows: ${a.length} elements, not whole rows of ${CASCADE_ROW}`);
  const { acc, levelPower, fullBlockRows } = state;
  const step = 2 ** levelPower;
  const r = stepRounding(valueStep);
  const k0 = f(n0);
  const k1 = f(n1);
  for (let row = 0; row < a.length; row += CASCADE_ROW) {
    for (let k = 0; k < CASCADE_ROW; k++) acc[k] = acc[k]! + r(f(a[row + k]! / k0) * f(b[row + k]! / k1));
    state.rowsDone++;
    if (state.rowsDone > fullBlockRows || state.rowsDone % step !== 0) continue;
    for (let level = 1; level < 4; level++) {
      for (let k = 0; k < CASCADE_ROW; k++) {
        acc[level * CASCADE_ROW + k] = acc[level * CASCADE_ROW + k]! + acc[(level - 1) * CASCADE_ROW + k]!;
        acc[(level - 1) * CASCADE_ROW + k] = 0;
      }
      if (Math.floor(state.rowsDone / 2 ** (level * levelPower)) % step !== 0) break;
    }
  }
}

/** ComputeBackend.unitSum on f32 arrays. */
export function unitSumF32(inputs: readonly Float32Array[], divisors: readonly number[], weights: readonly number[], out: Float32Array, options?: UnitSumOptions): void {
  const r = stepRounding(options?.step ?? 'F32');
  const d = divisors.map((x) => f(x));
  const w = weights.map((x) => f(x));
  const zero = options?.signedZeros ? -0 : 0;
  for (let i = 0; i < out.length; i++) {
    let sum = zero;
    for (let j = 0; j < inputs.length; j++) sum = f(sum + r(r(inputs[j]![i]! / d[j]!) * w[j]!));
    out[i] = r(sum);
  }
}

/** ComputeBackend.unitTangent on f32 arrays. */
export function unitTangentF32(values: readonly Float32Array[], mean: Float32Array, base: Float32Array | undefined, params: UnitTangentParams, out: Float32Array): void {
  const d = params.divisors.map((x) => f(x));
  const w = params.weights.map((x) => f(x));
  const dots = params.dots.map((x) => f(x));
  const meanNorm = f(params.meanNorm);
  const averageNorm = f(params.averageNorm);
  const cos = f(params.cos ?? 1);
  const sinc = f(params.sinc ?? 1);
  for (let i = 0; i < out.length; i++) {
    const direction = f(mean[i]! / meanNorm);
    let tangent = 0;
    for (let j = 0; j < values.length; j++) tangent = f(tangent + f(f(f(values[j]![i]! / d[j]!) - f(dots[j]! * direction)) * w[j]!));
    const r = f(f(f(direction * cos) + f(tangent * sinc)) * averageNorm);
    out[i] = base === undefined ? r : f(r + base[i]!);
  }
}

/** Throws unless a unitTangent call is well formed. */
export function checkUnitTangent(values: readonly HostArray[], params: UnitTangentParams): void {
  const n = values.length;
  if (n > MAX_TASK_MODELS || params.divisors.length !== n || params.weights.length !== n || params.dots.length !== n) {
    throw new RangeError(`unitTangent: ${n} values (at most ${MAX_TASK_MODELS}), ${params.divisors.length} divisors, ${params.weights.length} weights, ${params.dots.length} dots`);
  }
}

/** ComputeBackend.unitMix on f32 arrays. */
export function unitMixF32(inputs: readonly Float32Array[], divisors: readonly number[], coefficients: readonly number[], scale: number, out: Float32Array): void {
  const d = divisors.map((x) => f(x));
  for (let i = 0; i < out.length; i++) {
    let mean = 0;
    for (let j = 0; j < inputs.length; j++) mean += coefficients[j]! * f(inputs[j]![i]! / d[j]!);
    out[i] = f(scale * mean);
  }
}

/** Throws unless a unitMix call is well formed. */
export function checkUnitMix(inputs: readonly HostArray[], divisors: readonly number[], coefficients: readonly number[]): void {
  if (inputs.length > MAX_TASK_MODELS || divisors.length !== inputs.length || coefficients.length !== inputs.length) {
    throw new RangeError(`unitMix: ${inputs.length} inputs (at most ${MAX_TASK_MODELS}), ${divisors.length} divisors, ${coefficients.length} coefficients`);
  }
}

/** ComputeBackend.deltaVariance on f32 arrays. */
export function deltaVarianceF32(base: Float32Array, models: readonly Float32Array[], out: Float32Array, step: StepDtype = 'F32'): void {
  const r = stepRounding(step);
  const n = models.length;
  for (let i = 0; i < out.length; i++) {
    const b = base[i]!;
    let mean = 0;
    let m2 = 0;
    for (let j = 0; j < n; j++) {
      const delta = r(models[j]![i]! - b);
      const d = delta - mean;
      mean += d / (j + 1);
      m2 += d * (delta - mean);
    }
    out[i] = r(m2 / n);
  }
}

/** Throws unless a deltaVariance call is well formed. */
export function checkDeltaVariance(models: readonly HostArray[]): void {
  if (models.length < 1 || models.length > MAX_TASK_MODELS) throw new RangeError(`deltaVariance: ${models.length} models (1 to ${MAX_TASK_MODELS})`);
}

/** sce's floor on the total weight, as an f32. */
export const SCE_MIN_TOTAL = f(1e-6);

/** ComputeBackend.sceMerge on f32 arrays: the steps of methods/sce.ts's merge loop. */
export function sceMergeF32(base: Float32Array, models: readonly Float32Array[], params: SceMergeParams, out: Float32Array): void {
  const count = models.length;
  const r = stepRounding(params.step ?? 'F32');
  const weights = params.weights.map(f);
  const floor = r(SCE_MIN_TOTAL);
  const keeps = sceKeeps(params);
  const tv = new Float64Array(count);
  for (let i = 0; i < out.length; i++) {
    const b = base[i]!;
    const keep = keeps(i);
    let vote = 0;
    for (let j = 0; j < count; j++) {
      tv[j] = keep ? r(models[j]![i]! - b) : 0;
      vote = f(vote + tv[j]!);
    }
    const majority = r(vote) >= 0 ? 1 : -1;
    let merged = 0;
    let total = 0;
    for (let j = 0; j < count; j++) {
      const w = Math.sign(tv[j]!) === majority ? weights[j]! : 0;
      merged = f(merged + r(tv[j]! * w));
      total = f(total + w);
    }
    // Every NaN as 0x7fc00000: which of two NaNs a sum returns is up to the hardware and the JIT.
    const result = r(b + r(r(merged) / Math.max(r(total), floor)));
    out[i] = Number.isNaN(result) ? NaN : result;
  }
}

/** ComputeBackend.sceDelta on f32 arrays. */
export function sceDeltaF32(base: Float32Array, model: Float32Array, params: SceDeltaParams, out: Float32Array): void {
  const keeps = sceKeeps(params);
  const r = stepRounding(params.step ?? 'F32');
  for (let i = 0; i < out.length; i++) out[i] = keeps(i) ? r(f(model[i]! - base[i]!)) : 0;
}

/** Whether sce keeps the call's element i: its variance's bits pass the cut (every element without one). */
function sceKeeps({ select, start }: SceDeltaParams): (i: number) => boolean {
  if (!select) return () => true;
  const variances = toF32(select.variances);
  return (i) => magnitudeKeeps({ keep: select.cut }, absBits(variances[i]!), start + i);
}

/** Throws unless sce's selection is one F32 variance per element of the call. */
function checkSceSelect(name: string, select: SceSelect | undefined, length: number): void {
  if (select && (select.variances.dtype !== 'F32' || select.variances.data.length !== length)) {
    throw new RangeError(`${name}: ${select.variances.data.length} ${select.variances.dtype} variances for ${length} elements (one F32 each)`);
  }
}

/** Throws unless a sceDelta call is well formed. */
export function checkSceDelta(base: HostArray, params: SceDeltaParams): void {
  checkSceSelect('sceDelta', params.select, base.data.length);
}

/** Throws unless a sceMerge call is well formed. */
export function checkSceMerge(base: HostArray, models: readonly HostArray[], params: SceMergeParams): void {
  if (models.length < 1 || models.length > MAX_TASK_MODELS || params.weights.length !== models.length) {
    throw new RangeError(`sceMerge: ${models.length} models (1 to ${MAX_TASK_MODELS}), ${params.weights.length} weights`);
  }
  checkSceSelect('sceMerge', params.select, base.data.length);
}

/** The rounding of ram's steps and its threshold on |δ| (RamParams.step). */
export function ramSteps(params: RamParams): { r: (x: number) => number; threshold: number } {
  const r = stepRounding(params.step ?? 'F32');
  return { r, threshold: r(params.epsilon) };
}

/** ComputeBackend.ramCounts on f32 arrays: the steps of methods/ram.ts's countChanges. */
export function ramCountsF32(base: Float32Array, models: readonly Float32Array[], params: RamParams, counts: Float64Array): void {
  const n = models.length;
  const { r, threshold } = ramSteps(params);
  const changed = new Uint8Array(n);
  for (let i = 0; i < base.length; i++) {
    const b = base[i]!;
    let count = 0;
    for (let j = 0; j < n; j++) {
      changed[j] = Math.abs(r(models[j]![i]! - b)) > threshold ? 1 : 0;
      count += changed[j]!;
    }
    for (let j = 0; j < n; j++) if (changed[j]) counts[count > 1 ? 2 * j : 2 * j + 1]!++;
  }
}

/** ComputeBackend.ramMerge on f32 arrays: the steps of methods/ram.ts's merge loop. */
export function ramMergeF32(base: Float32Array, models: readonly Float32Array[], params: RamParams, out: Float32Array): void {
  const n = models.length;
  const { r, threshold } = ramSteps(params);
  const boosts = params.boosts?.map(f);
  const rSum = boosts ? f : r;
  const delta = new Float64Array(n);
  for (let i = 0; i < out.length; i++) {
    const b = base[i]!;
    let count = 0;
    for (let j = 0; j < n; j++) {
      const d = r(models[j]![i]! - b);
      delta[j] = Math.abs(d) > threshold ? d : 0;
      if (delta[j] !== 0) count++;
    }
    let merged = 0;
    for (let j = 0; j < n; j++) {
      const d = delta[j]!;
      const term = count === 1 ? (boosts ? f(d * boosts[j]!) : d) : count > 1 ? r(d / count) : 0;
      merged = f(merged + term);
    }
    // Every NaN as 0x7fc00000: which of two NaNs a sum returns is up to the hardware and the JIT.
    const result = rSum(b + rSum(merged));
    out[i] = Number.isNaN(result) ? NaN : result;
  }
}

/** Throws unless a ramCounts or ramMerge call is well formed. */
export function checkRam(models: readonly HostArray[], params: RamParams, counts?: Float64Array): void {
  if (models.length < 1 || models.length > MAX_TASK_MODELS || (params.boosts && params.boosts.length !== models.length) || (counts && counts.length < 2 * models.length)) {
    throw new RangeError(`ram: ${models.length} models (1 to ${MAX_TASK_MODELS}), ${params.boosts?.length ?? 'no'} boosts, ${counts?.length ?? 'no'} counts`);
  }
}

/** ComputeBackend.gramSums on f32 arrays. */
export function gramSumsF32(inputs: readonly Float32Array[], sums: Float64Array): void {
  const n = inputs.length;
  for (let j = 0; j < n; j++) {
    for (let k = j; k < n; k++) {
      const a = inputs[j]!;
      const b = inputs[k]!;
      let s = sums[j * n + k]!;
      for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
      sums[j * n + k] = s;
    }
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

  async linear(inputs: readonly HostArray[], weights: readonly number[], normalize: boolean, out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    checkLengths(inputs, out);
    if (weights.length !== inputs.length) throw new RangeError(`linear: ${weights.length} weights for ${inputs.length} inputs`);
    const result = new Float32Array(out.data.length);
    linearF32(inputs.map(toF32), weights, normalize, result, step);
    fromF32(result, out);
  }

  async nearswap(base: HostArray, other: HostArray, t: number, out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    checkLengths([base, other], out);
    const result = new Float32Array(out.data.length);
    nearswapF32(toF32(base), toF32(other), t, result, step);
    fromF32(result, out);
  }

  async blend2(c0: number, a: HostArray, c1: number, b: HostArray, out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    checkLengths([a, b], out);
    const result = new Float32Array(out.data.length);
    blend2F32(c0, toF32(a), c1, toF32(b), result, step);
    fromF32(result, out);
  }

  async taskArithmetic(base: HostArray, models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray): Promise<void> {
    checkLengths([base, ...models], out);
    checkTaskArithmetic(models, params, out);
    const result = new Float32Array(out.data.length);
    taskArithmeticF32(toF32(base), models.map(toF32), params, result);
    fromF32(result, out);
  }

  async deltaHistogram(base: HostArray, selections: readonly HostArray[], params: DeltaHistogramParams, counts: readonly Float64Array[]): Promise<void> {
    checkLengths(selections, base);
    deltaHistogramF32(toF32(base), selections.map(toF32), params, counts);
  }

  async deltaFind(base: HostArray, selections: readonly HostArray[], params: DeltaFindParams): Promise<DeltaFound[]> {
    checkLengths(selections, base);
    return deltaFindF32(toF32(base), selections.map(toF32), params);
  }

  async deltaSums(base: HostArray, models: readonly HostArray[], params: DeltaSumsParams, sums: Float64Array): Promise<void> {
    checkLengths(models, base);
    deltaSumsF32(toF32(base), models.map(toF32), params, sums);
  }

  async rowRankMasks(base: HostArray, models: readonly HostArray[], params: RowRankParams, keeps: readonly Uint8Array[]): Promise<void> {
    checkRowRanks(base, models, params, keeps);
    rowRankMasksF32(toF32(base), models.map(toF32), params, keeps);
  }

  async normLanes(inputs: readonly HostArray[], lanes: Float32Array): Promise<void> {
    checkLengths(inputs, inputs[0]!);
    normLanesF32(inputs.map(toF32), lanes);
  }

  async dotRows(a: HostArray, b: HostArray, n0: number, n1: number, state: CascadeState, step: StepDtype = 'F32'): Promise<void> {
    checkLengths([b], a);
    dotRowsF32(toF32(a), toF32(b), n0, n1, state, step);
  }

  async unitSum(inputs: readonly HostArray[], divisors: readonly number[], weights: readonly number[], out: HostArray, options?: UnitSumOptions): Promise<void> {
    checkLengths(inputs, out);
    checkUnitSum(inputs, divisors, weights);
    const result = new Float32Array(out.data.length);
    unitSumF32(inputs.map(toF32), divisors, weights, result, options);
    fromF32(result, out);
  }

  async unitTangent(values: readonly HostArray[], mean: HostArray, base: HostArray | undefined, params: UnitTangentParams, out: HostArray): Promise<void> {
    checkLengths([...values, mean, ...(base ? [base] : [])], out);
    checkUnitTangent(values, params);
    const result = new Float32Array(out.data.length);
    unitTangentF32(values.map(toF32), toF32(mean), base && toF32(base), params, result);
    fromF32(result, out);
  }

  async unitMix(inputs: readonly HostArray[], divisors: readonly number[], coefficients: readonly number[], scale: number, out: HostArray): Promise<void> {
    checkLengths(inputs, out);
    checkUnitMix(inputs, divisors, coefficients);
    const result = new Float32Array(out.data.length);
    unitMixF32(inputs.map(toF32), divisors, coefficients, scale, result);
    fromF32(result, out);
  }

  async deltaVariance(base: HostArray, models: readonly HostArray[], out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    checkLengths([base, ...models], out);
    checkDeltaVariance(models);
    const result = new Float32Array(out.data.length);
    deltaVarianceF32(toF32(base), models.map(toF32), result, step);
    fromF32(result, out);
  }

  async sceMerge(base: HostArray, models: readonly HostArray[], params: SceMergeParams, out: HostArray): Promise<void> {
    checkLengths([base, ...models], out);
    checkSceMerge(base, models, params);
    const result = new Float32Array(out.data.length);
    sceMergeF32(toF32(base), models.map(toF32), params, result);
    fromF32(result, out);
  }

  async sceDelta(base: HostArray, model: HostArray, params: SceDeltaParams, out: HostArray): Promise<void> {
    checkLengths([base, model], out);
    checkSceDelta(base, params);
    const result = new Float32Array(out.data.length);
    sceDeltaF32(toF32(base), toF32(model), params, result);
    fromF32(result, out);
  }

  async ramCounts(base: HostArray, models: readonly HostArray[], params: RamParams, counts: Float64Array): Promise<void> {
    checkLengths(models, base);
    checkRam(models, params, counts);
    ramCountsF32(toF32(base), models.map(toF32), params, counts);
  }

  async ramMerge(base: HostArray, models: readonly HostArray[], params: RamParams, out: HostArray): Promise<void> {
    checkLengths([base, ...models], out);
    checkRam(models, params);
    const result = new Float32Array(out.data.length);
    ramMergeF32(toF32(base), models.map(toF32), params, result);
    fromF32(result, out);
  }

  async gramSums(inputs: readonly HostArray[], sums: Float64Array): Promise<void> {
    checkLengths(inputs, inputs[0]!);
    if (sums.length < inputs.length * inputs.length) throw new RangeError(`gramSums: ${sums.length} sums for ${inputs.length} inputs`);
    gramSumsF32(inputs.map(toF32), sums);
  }

  async dispose(): Promise<void> {}
}
