import { stepRounding } from './numerics';
import { ParallelTorchSum, TorchNorm, TorchSum, torchSum } from './torch-reductions';
import type { MergeMethod } from './types';

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
    let normRuns: TorchNorm[] = [];
    let dotRuns: { add(x: number): void; result(): number }[] = [];
    const offs = new Float32Array(others.length);
    const n = others.length;
    for await (const { start, inputs } of source.chunks()) {
      const w0 = inputs[base]!;
      const xs = others.map((m) => inputs[m]!);
      for (let i = 0; i < w0.length; i++) {
        const position = start + i;
        if (position % rowLength === 0) {
          normRuns = others.map(() => new TorchNorm(rowLength, dtype));
          // One output (the whole tensor) is a sum torch splits across its threads; rows are not.
          dotRuns = pairs.map(() => (rows === 1 ? new ParallelTorchSum(rowLength, ctx.torchThreads ?? 1) : new TorchSum(rowLength)));
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
    const count = others.length;
    const ts = new Float32Array(rows);
    for (let row = 0; row < rows; row++) {
      const cosines = pairs.map(([a, b], p) => {
        const na = norms[row * count + a]!;
        const nb = norms[row * count + b]!;
        return Math.min(1, Math.max(-1, r(dots[row * pairs.length + p]! / Math.max(r(na * nb), r(1e-6)))));
      });
      const cos = r(r(torchSum(cosines)) / pairs.length);
      const denominator = r(1 + r((count - 1) * cos));
      ts[row] = Math.abs(denominator) < 1e-6 ? 0 : r(r(count * cos) / denominator);
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
