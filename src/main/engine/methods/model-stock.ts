import { MAX_TASK_MODELS, sliceHost, type ComputeBackend, type StepDtype } from '../compute/types';
import { HostScratch } from './host-scratch';
import { addDots } from './dot-runs';
import { addNorms } from './norm-lanes';
import { stepOf, stepRounding } from './numerics';
import { ParallelTorchSum, TorchSum, torchNormOf, torchSum, type NormRun } from './torch-reductions';
import { f32Host, OutputBuffer, type MergeMethod, type TensorSink, type TensorSource } from './types';

const f = Math.fround;

/**
 * The norms and dots of the offsets on a backend, r rounding each step to `step` (f32, or bf16 or
 * f16 when mergekit computes in it): the offsets r(x_j − base) by `blend2` with the step
 * (r(r(1·x) + r(−1·base)) is r(x − base), the inputs being rounded to the step already; kept as
 * `HostScratch.stepArray` keeps them), their norms' lanes by `normLanes` (bf16 offsets widened
 * exactly), and the cascade sums of r(δ_a·δ_b) by `dotRows` with n0 = n1 = 1 (f(a / 1) is a) and the
 * same step: the same values added in the same order as the TypeScript loop; only the runs' tails and
 * the elements before a chunk gets back in step go through `add`.
 */
async function reduceOnBackend(
  source: TensorSource,
  backend: ComputeBackend,
  base: number,
  others: number[],
  pairs: [number, number][],
  shape: { rowLength: number; rows: number; numel: number; dtype: 'F32' | 'BF16' | 'F16'; threads: number; step: StepDtype },
  norms: Float32Array,
  dots: Float32Array,
): Promise<void> {
  const { rowLength, rows, dtype, threads, step } = shape;
  const r = stepRounding(step);
  const n = others.length;
  let normRuns: NormRun[] = [];
  let dotRuns: ParallelTorchSum[] = [];
  let normPosition = 0;
  let dotPosition = 0;
  const scratch = new HostScratch(backend);
  try {
    for await (const chunk of source.chunks()) {
      const length = chunk.length;
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      const offs = others.map((_, j) => scratch.stepArray(`offset ${j}`, step, length));
      for (let j = 0; j < n; j++) await backend.blend2(1, inputs[others[j]!]!, -1, inputs[base]!, offs[j]!, step);
      for (let i = 0; i < length; ) {
        if (normPosition % rowLength === 0) normRuns = others.map(() => torchNormOf(rowLength, dtype, rows === 1 ? threads : 1));
        const count = Math.min(length, i + rowLength - (normPosition % rowLength)) - i;
        await addNorms(backend, normRuns, offs.map((o) => sliceHost(o, i, count)), count);
        i += count;
        normPosition += count;
        if (normPosition % rowLength === 0) {
          const row = normPosition / rowLength - 1;
          for (let j = 0; j < n; j++) norms[row * n + j] = r(normRuns[j]!.result());
        }
      }
      for (let i = 0; i < length; ) {
        // One output (the whole tensor) is a sum torch splits across its threads; rows are not.
        if (dotPosition % rowLength === 0) dotRuns = pairs.map(() => new ParallelTorchSum(rowLength, rows === 1 ? threads : 1, r));
        const count = Math.min(length, i + rowLength - (dotPosition % rowLength)) - i;
        await addDots(backend, dotRuns, pairs.map(([a, b]) => [sliceHost(offs[a]!, i, count), sliceHost(offs[b]!, i, count)]), count, step);
        i += count;
        dotPosition += count;
        if (dotPosition % rowLength === 0) {
          const row = dotPosition / rowLength - 1;
          for (let p = 0; p < pairs.length; p++) dots[row * pairs.length + p] = r(dotRuns[p]!.result());
        }
      }
    }
  } finally {
    scratch.release();
  }
}

/**
 * The merge pass on a backend, r rounding each step to `step`: the mean by `linear` with weights 1
 * and `normalize` (fma(x, 1, acc) is f(acc + x), so r(acc + x) from 0 in order, the divisor Σ1 =
 * count, so r(total / count) as the loop computes it; with bf16 steps the mean is a bf16 array, its
 * values already bf16), then r(r(t·mean) + r((1−t)·base)) by `blend2` with c0 = t and c1 = r(1 − t),
 * one call per run of a row (t is per row with filter_wise). The output goes in the sink's dtype
 * where it takes it.
 */
async function mergeOnBackend(
  source: TensorSource,
  backend: ComputeBackend,
  base: number,
  others: number[],
  ts: Float32Array,
  rowLength: number,
  sink: TensorSink,
  step: StepDtype,
): Promise<void> {
  const r = stepRounding(step);
  const ones = others.map(() => 1);
  const output = new OutputBuffer(sink);
  const scratch = new HostScratch(backend);
  try {
    for await (const chunk of source.chunks()) {
      const { start, length } = chunk;
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      const average = scratch.stepArray('mean', step, length);
      await backend.linear(others.map((m) => inputs[m]!), ones, true, average, step);
      const out = output.take(length);
      for (let i = 0; i < length; ) {
        const row = Math.floor((start + i) / rowLength);
        const to = Math.min(length, (row + 1) * rowLength - start);
        const t = ts[row]!;
        const run = to - i === length ? [average, inputs[base]!, out] : [sliceHost(average, i, to - i), sliceHost(inputs[base]!, i, to - i), sliceHost(out, i, to - i)];
        await backend.blend2(t, run[0]!, r(1 - t), run[1]!, run[2]!, step);
        i = to;
      }
      await output.write(start, out);
    }
  } finally {
    scratch.release();
  }
}

/**
 * mergekit's model_stock: the mean cosine between the fine-tunes' offsets from the base sets
 * t = k·cos / (1 + (k−1)·cos), and the result is t·mean(models) + (1−t)·base. The cosines are taken
 * over the whole tensor, or per row with `filter_wise`. Norms and dots are reduced as torch reduces
 * them (`torch-reductions.ts`).
 */
export const modelStock: MergeMethod = {
  name: 'model_stock',
  prettyName: 'Model Stock',
  description: 'Interpolates between the base and the fine-tunes\' average by how aligned their changes are.',
  paper: 'https://arxiv.org/abs/2403.19522',
  base: 'required',
  inputs: { min: 3 },
  parameters: [
    { name: 'filter_wise', scope: 'global', type: 'boolean', required: false, default: false, description: 'Compute the angle per row (filter) instead of per tensor.' },
  ],
  async kernel(source, sink, ctx) {
    const base = ctx.baseIndex!;
    const others = ctx.perModel.map((_, i) => i).filter((i) => i !== base);
    if (others.length < 2) throw new Error('model_stock needs a base model and at least two others');
    const rowLength = ctx.global['filter_wise'] === true && ctx.shape.length > 1 ? ctx.shape[ctx.shape.length - 1]! : ctx.numel;
    const rows = Math.max(1, ctx.numel / Math.max(1, rowLength));
    // Pairs as positions in `others`, so the hot loop indexes plain arrays.
    const pairs: [number, number][] = [];
    others.forEach((_, i) => others.slice(i + 1).forEach((__, k) => pairs.push([i, i + 1 + k])));
    const r = stepRounding(ctx.computeDtype);
    const dtype = ctx.computeDtype ?? 'F32';
    const norms = new Float32Array(rows * others.length);
    const dots = new Float32Array(rows * pairs.length);
    const n = others.length;
    // The steps are rounded to bf16 or f16 where mergekit computes in it, else to f32.
    const step: StepDtype = stepOf(ctx.computeDtype);
    if (ctx.backend) {
      await reduceOnBackend(source, ctx.backend, base, others, pairs, { rowLength, rows, numel: ctx.numel, dtype, threads: ctx.torchThreads ?? 1, step }, norms, dots);
    } else {
      let normRuns: NormRun[] = [];
      let dotRuns: { add(x: number): void; result(): number }[] = [];
      const offs = new Float32Array(others.length);
      for await (const { start, inputs } of source.chunks()) {
        const w0 = inputs[base]!;
        const xs = others.map((m) => inputs[m]!);
        for (let i = 0; i < w0.length; i++) {
          const position = start + i;
          if (position % rowLength === 0) {
            normRuns = others.map(() => torchNormOf(rowLength, dtype, rows === 1 ? (ctx.torchThreads ?? 1) : 1));
            // One output (the whole tensor) is a sum torch splits across its threads; rows are not.
            dotRuns = pairs.map(() => (rows === 1 ? new ParallelTorchSum(rowLength, ctx.torchThreads ?? 1, r) : new TorchSum(rowLength)));
          }
          const b = w0[i]!;
          for (let j = 0; j < n; j++) {
            offs[j] = r(xs[j]![i]! - b);
            normRuns[j]!.add(offs[j]!);
          }
          for (let p = 0; p < pairs.length; p++) dotRuns[p]!.add(r(offs[pairs[p]![0]]! * offs[pairs[p]![1]]!));
          if ((position + 1) % rowLength === 0) {
            const row = Math.floor(position / rowLength);
            for (let j = 0; j < n; j++) norms[row * n + j] = r(normRuns[j]!.result());
            for (let p = 0; p < pairs.length; p++) dots[row * pairs.length + p] = r(dotRuns[p]!.result());
          }
        }
      }
    }
    const count = others.length;
    const ts = new Float32Array(rows);
    for (let row = 0; row < rows; row++) {
      const cosines = pairs.map(([a, b], p) => {
        const na = norms[row * count + a]!;
        const nb = norms[row * count + b]!;
        return Math.min(1, Math.max(-1, r(dots[row * pairs.length + p]! / Math.max(r(na * nb), r(1e-6)))));
      });
      // torch's mean of a 16-bit tensor: the f32 sum divided in f32, rounded once.
      const cos = r(f(torchSum(cosines) / pairs.length));
      const denominator = r(1 + r((count - 1) * cos));
      ts[row] = Math.abs(denominator) < r(1e-6) ? 0 : r(r(count * cos) / denominator);
    }
    if (ctx.backend && others.length <= MAX_TASK_MODELS) {
      await mergeOnBackend(source, ctx.backend, base, others, ts, rowLength, sink, step);
      return;
    }
    let buffer = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      const w0 = inputs[base]!;
      for (let i = 0; i < length; i++) {
        const t = ts[Math.floor((start + i) / rowLength)]!;
        let total = 0;
        for (const m of others) total = r(total + inputs[m]![i]!);
        const average = r(total / count);
        out[i] = r(r(t * average) + r(r(1 - t) * w0[i]!));
      }
      await sink.write(start, out);
    }
  },
};
