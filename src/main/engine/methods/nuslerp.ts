import type { ComputeBackend, HostArray, StepDtype } from '../compute/types';
import { HostScratch } from './host-scratch';
import { addDots } from './dot-runs';
import { addNorms } from './norm-lanes';
import { roundF16, roundStepArray, stepOf, stepRounding } from './numerics';
import { ParallelTorchSum, TorchHalfNorm } from './torch-reductions';
import { f32Host, OutputBuffer, type Chunk, type MergeMethod, type TensorSink, type TensorSource } from './types';

const f = Math.fround;

/**
 * The vectors nuslerp interpolates, as groups of a tensor's elements (row-major): the whole tensor when
 * flattened; else vectors along the last axis, or along the first (`nuslerp_row_wise`, mergekit's
 * transpose of axes 0 and −1), for any number of axes. A 1-D tensor is one vector either way (its
 * transpose is itself), as is a 0-D one.
 */
export function nuslerpGroups(shape: readonly number[], numel: number, flatten: boolean, rowWise: boolean): { groups: number; group: (i: number) => number } {
  if (flatten || shape.length < 2) return { groups: 1, group: () => 0 };
  if (numel === 0) return { groups: 0, group: () => 0 };
  if (rowWise) {
    // Element (i₀, rest) belongs to the vector along axis 0 at position `rest`.
    const span = numel / shape[0]!;
    return { groups: span, group: (i) => i % span };
  }
  const last = shape[shape.length - 1]!;
  return { groups: numel / last, group: (i) => Math.floor(i / last) };
}

/**
 * mergekit's nuslerp: spherical interpolation of two models (or of their task vectors when a base is
 * given) at t = w₂ / (w₁ + w₂), over the whole tensor (`nuslerp_flatten`, the default), per row, or
 * per column (`nuslerp_row_wise`). Norms and dots are summed in f64 (the dot of the f32 unit vectors'
 * exact products); see docs/architecture.md. The flattened case runs on the compute backend.
 */
export const nuslerp: MergeMethod = {
  name: 'nuslerp',
  prettyName: 'NuSLERP',
  description: 'Spherical interpolation of two models, or of their task vectors when a base is given, weighted by their weights.',
  base: 'optional',
  inputs: { minOthers: 2, maxOthers: 2 },
  parameters: [
    { name: 'weight', scope: 'model', type: 'number', required: true, description: 'Relative weight; t is the second model\'s share.' },
    { name: 'nuslerp_flatten', scope: 'global', type: 'boolean', required: false, default: true, description: 'Treat the whole tensor as one vector.' },
    { name: 'nuslerp_row_wise', scope: 'global', type: 'boolean', required: false, default: false, description: 'Interpolate column vectors instead of row vectors (when not flattened).' },
  ],
  async kernel(source, sink, ctx) {
    const base = ctx.baseIndex;
    const pair = ctx.perModel.map((_, i) => i).filter((i) => i !== base);
    if (pair.length === 1) {
      for await (const chunk of source.chunks()) await sink.write(chunk.start, chunk.inputs[pair[0]!]!);
      return;
    }
    if (pair.length !== 2) throw new Error('nuslerp merges exactly two models besides the base');
    const [a, b] = pair as [number, number];
    const weights = pair.map((i) => ctx.perModel[i]!['weight'] as number);
    const total = 0 + weights[0]! + weights[1]!;
    const t = Math.abs(total) < 1e-6 ? 0.5 : weights[1]! / total;
    const { groups, group } = nuslerpGroups(ctx.shape, ctx.numel, ctx.global['nuslerp_flatten'] !== false, ctx.global['nuslerp_row_wise'] === true);
    // In bf16 or f16, each tensor op rounds to it: the backend's steps, or the loops below, do it.
    const step = stepOf(ctx.computeDtype);
    const r = stepRounding(step);
    const threads = ctx.torchThreads ?? 1;
    if (ctx.backend && ctx.global['nuslerp_flatten'] !== false) {
      await nuslerpOnBackend(source, sink, ctx.backend, { base, a, b, t, numel: ctx.numel, step, threads });
      return;
    }
    const value = (inputs: Float32Array[], m: number, i: number) => (base === undefined ? inputs[m]![i]! : r(f(inputs[m]![i]! - inputs[base]![i]!)));
    // One f16 vector: torch's own reductions (`halfWholeReductions`); otherwise f64 sums in index order.
    const whole = step === 'F16' && groups === 1 ? halfWholeReductions(ctx.numel, threads) : undefined;
    const sq0 = new Float64Array(groups);
    const sq1 = new Float64Array(groups);
    for await (const { start, inputs } of source.chunks()) {
      for (let i = 0; i < inputs[a]!.length; i++) {
        const [x, y] = [value(inputs, a, i), value(inputs, b, i)];
        if (whole) {
          whole.norms[0].add(x);
          whole.norms[1].add(y);
          continue;
        }
        const g = group(start + i);
        sq0[g] = sq0[g]! + x ** 2;
        sq1[g] = sq1[g]! + y ** 2;
      }
    }
    const n0 = whole ? [Math.max(r(whole.norms[0].result()), r(1e-7))] : sq0.map((s) => Math.max(r(f(Math.sqrt(s))), r(1e-7)));
    const n1 = whole ? [Math.max(r(whole.norms[1].result()), r(1e-7))] : sq1.map((s) => Math.max(r(f(Math.sqrt(s))), r(1e-7)));
    const dot = new Float64Array(groups);
    for await (const { start, inputs } of source.chunks()) {
      for (let i = 0; i < inputs[a]!.length; i++) {
        const g = group(start + i);
        const product = r(value(inputs, a, i) / n0[g]!) * r(value(inputs, b, i) / n1[g]!);
        if (whole) whole.dot.add(r(product));
        else dot[g] = dot[g]! + (step === 'F32' ? product : r(product));
      }
    }
    if (whole) dot[0] = r(whole.dot.result());
    const oneMinusT = f(1 - t);
    const tf = f(t);
    const coefficients = [...dot].map((d) => slerpCoefficients(d, t, r));
    let buffer = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      for (let i = 0; i < length; i++) {
        const { colinear, c0, c1, sinTheta } = coefficients[group(start + i)]!;
        const x = value(inputs, a, i);
        const y = value(inputs, b, i);
        const mixed = colinear ? r(r(oneMinusT * x) + r(tf * y)) : r(r(r(c0 * x) + r(c1 * y)) / sinTheta);
        out[i] = base === undefined ? mixed : r(inputs[base]![i]! + mixed);
      }
      await sink.write(start, out);
    }
  },
};

/**
 * torch's reductions of one f16 vector (a flattened nuslerp): `torch.norm`'s scalar f32 accumulator per
 * thread's range, and the dot's cascade sum with each thread's part rounded to f16.
 */
function halfWholeReductions(numel: number, threads: number): { norms: [TorchHalfNorm, TorchHalfNorm]; dot: ParallelTorchSum } {
  return { norms: [new TorchHalfNorm(numel, threads), new TorchHalfNorm(numel, threads)], dot: new ParallelTorchSum(numel, threads, roundF16) };
}

interface SlerpCoefficients {
  colinear: boolean;
  c0: number;
  c1: number;
  sinTheta: number;
}

/** θ's coefficients from the dot of the unit vectors, each step rounded by `r` (f32, or the 16-bit compute dtype). */
function slerpCoefficients(dot: number, t: number, r: (x: number) => number = f): SlerpCoefficients {
  const cos = Math.min(1, Math.max(-1, r(dot)));
  const colinear = r(1 - r(cos * cos)) <= r(1e-16);
  const theta = r(Math.acos(colinear ? 0 : cos));
  return { colinear, c0: r(Math.sin(r(f(1 - t) * theta))), c1: r(Math.sin(r(f(t) * theta))), sinTheta: r(Math.sin(theta)) };
}

/**
 * The flattened nuslerp on a backend, the same values in the same order as the loops above: the task
 * vectors f(x − base) by `blend2(1, x, −1, base)`, Σv² and then Σ u_a·u_b (u = f(v / norm), by
 * `unitSum` with weight 1) by `gramSums` (exact f64 products added in f64 in index order), the
 * interpolation by `blend2`, its division by sin θ by `unitSum`, and the base added back by `blend2`.
 * In 16-bit steps `blend2` rounds each step to 16 bits, the units and the quotient are rounded after
 * `unitSum`, and the dot adds each product rounded to 16 bits (in f64, in index order, as the loop does);
 * in f16 the norms and the dot are torch's own f16 reductions instead (`halfWholeReductions`: the norms
 * on the host, the dot's cascade rows by `dotRows` through `addDots`), as the loop's are.
 */
async function nuslerpOnBackend(
  source: TensorSource,
  sink: TensorSink,
  backend: ComputeBackend,
  { base, a, b, t, numel, step, threads }: { base: number | undefined; a: number; b: number; t: number; numel: number; step: StepDtype; threads: number },
): Promise<void> {
  const r = stepRounding(step);
  // In the backend's own memory, so its kernels read and write them where they are.
  const arrays = new HostScratch(backend);
  const scratch = (k: number, length: number) => f32Host(arrays.f32(String(k), length));
  // A tensor read in one chunk has its task vectors computed once for the three passes.
  let wholeTensorDone = false;
  const vectors = async (chunk: Chunk): Promise<[HostArray, HostArray]> => {
    const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
    if (base === undefined) return [inputs[a]!, inputs[b]!];
    const [va, vb] = [scratch(0, chunk.length), scratch(1, chunk.length)];
    const wholeTensor = chunk.start === 0 && chunk.length === numel;
    if (!(wholeTensor && wholeTensorDone)) {
      await backend.blend2(1, inputs[a]!, -1, inputs[base]!, va, step);
      await backend.blend2(1, inputs[b]!, -1, inputs[base]!, vb, step);
      wholeTensorDone = wholeTensor;
    }
    return [va, vb];
  };
  try {
    const whole = step === 'F16' ? halfWholeReductions(numel, threads) : undefined;
    const squares = new Float64Array(4);
    for await (const chunk of source.chunks()) {
      const pair = await vectors(chunk);
      if (whole) await addNorms(backend, whole.norms, pair, chunk.length);
      else await backend.gramSums(pair, squares);
    }
    const n0 = Math.max(r(whole ? whole.norms[0].result() : f(Math.sqrt(squares[0]!))), r(1e-7));
    const n1 = Math.max(r(whole ? whole.norms[1].result() : f(Math.sqrt(squares[3]!))), r(1e-7));
    const dots = new Float64Array(4);
    for await (const chunk of source.chunks()) {
      const [va, vb] = await vectors(chunk);
      const [ua, ub] = [scratch(2, chunk.length), scratch(3, chunk.length)];
      // f16: the units rounded by unitSum's step, their products by dotRows'.
      const units = whole ? { step } : undefined;
      await backend.unitSum([va], [n0], [1], ua, units);
      await backend.unitSum([vb], [n1], [1], ub, units);
      if (whole) await addDots(backend, [whole.dot], [[ua, ub]], chunk.length, step);
      else if (step !== 'F32') dots[1] = dots[1]! + halfStepProductSum(step, ua.data, ub.data, chunk.length);
      else await backend.gramSums([ua, ub], dots);
    }
    if (whole) dots[1] = r(whole.dot.result());
    const { colinear, c0, c1, sinTheta } = slerpCoefficients(dots[1]!, t, r);
    const output = new OutputBuffer(sink);
    for await (const chunk of source.chunks()) {
      const [va, vb] = await vectors(chunk);
      if (colinear && base === undefined) {
        const out = output.take(chunk.length);
        await backend.blend2(f(1 - t), va, f(t), vb, out, step);
        await output.write(chunk.start, out);
        continue;
      }
      const mixed = scratch(2, chunk.length);
      if (colinear) await backend.blend2(f(1 - t), va, f(t), vb, mixed, step);
      else {
        const blended = scratch(3, chunk.length);
        await backend.blend2(c0, va, c1, vb, blended, step);
        // From −0: a quotient that is −0 stays −0, as torch's division leaves it.
        await backend.unitSum([blended], [sinTheta], [1], mixed, { signedZeros: true });
        roundStepArray(step, mixed.data, chunk.length);
      }
      if (base === undefined) {
        await sink.write(chunk.start, mixed.data);
        continue;
      }
      const out = output.take(chunk.length);
      await backend.blend2(1, mixed, 1, (chunk.raw ?? chunk.inputs.map(f32Host))[base]!, out, step);
      await output.write(chunk.start, out);
    }
  } finally {
    arrays.release();
  }
}

/** Σ r(a_i·b_i) in f64, in index order: the dot of two 16-bit unit vectors as nuslerp's 16-bit steps take it. */
function halfStepProductSum(step: StepDtype, a: Float32Array, b: Float32Array, length: number): number {
  roundStepArray(step, a, length);
  roundStepArray(step, b, length);
  const products = new Float32Array(length);
  for (let i = 0; i < length; i++) products[i] = a[i]! * b[i]!;
  roundStepArray(step, products, length);
  let sum = 0;
  for (let i = 0; i < length; i++) sum += products[i]!;
  return sum;
}
