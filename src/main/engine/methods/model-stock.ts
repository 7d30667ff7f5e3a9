import { TorchNorm, TorchSum } from './torch-reductions';
import type { MergeMethod } from './types';

const f = Math.fround;

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
    const pairs: [number, number][] = [];
    others.forEach((a, i) => others.slice(i + 1).forEach((b) => pairs.push([a, b])));
    const norms = new Float32Array(rows * others.length);
    const dots = new Float32Array(rows * pairs.length);
    let normRuns: TorchNorm[] = [];
    let dotRuns: TorchSum[] = [];
    const offs = new Float32Array(others.length);
    for await (const { start, inputs } of source.chunks()) {
      const w0 = inputs[base]!;
      for (let i = 0; i < w0.length; i++) {
        const position = start + i;
        const row = Math.floor(position / rowLength);
        if (position % rowLength === 0) {
          normRuns = others.map(() => new TorchNorm(rowLength));
          dotRuns = pairs.map(() => new TorchSum(rowLength));
        }
        others.forEach((m, j) => {
          offs[j] = inputs[m]![i]! - w0[i]!;
          normRuns[j]!.add(offs[j]!);
        });
        pairs.forEach(([a, b], p) => dotRuns[p]!.add(f(offs[others.indexOf(a)]! * offs[others.indexOf(b)]!)));
        if ((position + 1) % rowLength === 0) {
          normRuns.forEach((n, j) => (norms[row * others.length + j] = n.result()));
          dotRuns.forEach((d, p) => (dots[row * pairs.length + p] = d.result()));
        }
      }
    }
    const count = others.length;
    const ts = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      pairs.forEach(([a, b], p) => {
        const na = norms[r * count + others.indexOf(a)]!;
        const nb = norms[r * count + others.indexOf(b)]!;
        const cos = Math.min(1, Math.max(-1, f(dots[r * pairs.length + p]! / Math.max(f(na * nb), f(1e-6)))));
        sum = f(sum + cos);
      });
      const cos = f(sum / pairs.length);
      const denominator = f(1 + f((count - 1) * cos));
      ts[r] = Math.abs(denominator) < 1e-6 ? 0 : f(f(count * cos) / denominator);
    }
    let buffer = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      const w0 = inputs[base]!;
      for (let i = 0; i < length; i++) {
        const t = ts[Math.floor((start + i) / rowLength)]!;
        let total = 0;
        for (const m of others) total = f(total + inputs[m]![i]!);
        const average = f(total / count);
        out[i] = f(f(t * average) + f(f(1 - t) * w0[i]!));
      }
      await sink.write(start, out);
    }
  },
};
