import { bitsToF32, f32Bits } from '../safetensors/convert';
import { kthLargestBits } from './magnitude-select';
import { stepRounding } from './numerics';
import { type MergeMethod, type TensorMergeContext, type TensorSource } from './types';

const f = Math.fround;

/**
 * mergekit's arcee_fusion: each entry's importance is |x − base| times the row's KL divergence between
 * softmax(x) and softmax(base); entries at or above median + 1.5·IQR of the importances take the
 * model's value, the rest keep the base's. Quantiles are exact over the whole tensor (mergekit samples
 * a million values with replacement on larger tensors, so there it is approximate and random).
 */
export const arceeFusion: MergeMethod = {
  name: 'arcee_fusion',
  prettyName: 'Arcee Fusion',
  description: 'Takes the model\'s value only where its change from the base is unusually important.',
  paper: 'https://arcee.ai',
  base: 'required',
  inputs: { min: 2, max: 2 },
  parameters: [],
  chunking: 'rows',
  // The fusion mask is `.float()`: mergekit's result is f32 from bf16 or f16 inputs.
  resultDtype: () => 'F32',
  async kernel(source, sink, ctx) {
    const base = ctx.baseIndex!;
    const other = ctx.perModel.findIndex((_, i) => i !== base);
    if (ctx.perModel.length !== 2 || other < 0) throw new Error('arcee_fusion merges exactly one model into the base');
    // Each tensor op rounds to the compute dtype (bf16 where mergekit computes in bf16); the last step is f32.
    const round = stepRounding(ctx.computeDtype);
    const threshold = await importanceThreshold(source, ctx, base, other, round);
    let buffer = new Float32Array(0);
    let importance = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) [buffer, importance] = [new Float32Array(length), new Float32Array(length)];
      const out = buffer.subarray(0, length);
      const b = inputs[base]!;
      const x = inputs[other]!;
      importances(x, b, rowLength(ctx), importance, round);
      for (let i = 0; i < length; i++) out[i] = importance[i]! >= threshold ? f(b[i]! + round(f(x[i]! - b[i]!))) : b[i]!;
      await sink.write(start, out);
    }
  },
};

function rowLength(ctx: TensorMergeContext): number {
  return ctx.shape.length > 1 ? ctx.shape[ctx.shape.length - 1]! : ctx.numel;
}

/** median + 1.5·(q3 − q1) of the importances, the quantiles at ⌊q·(n − 1)⌋ of the sorted values. */
async function importanceThreshold(source: TensorSource, ctx: TensorMergeContext, base: number, other: number, round: (x: number) => number): Promise<number> {
  const n = ctx.numel;
  const ranks = [0.25, 0.5, 0.75].map((q) => n - Math.trunc(f(f(q) * (n - 1))));
  let importance = new Float32Array(0);
  const found = await kthLargestBits(async (visit) => {
    for await (const { inputs } of source.chunks()) {
      if (importance.length < inputs[base]!.length) importance = new Float32Array(inputs[base]!.length);
      const values = importance.subarray(0, inputs[base]!.length);
      importances(inputs[other]!, inputs[base]!, rowLength(ctx), values, round);
      for (const v of values) {
        const key = orderedKey(v);
        for (let j = 0; j < ranks.length; j++) visit(j, key);
      }
    }
  }, ranks);
  const [q1, median, q3] = found.map((t) => fromOrderedKey(t.bits)) as [number, number, number];
  return round(median + round(1.5 * round(q3 - q1)));
}

/**
 * |x − base| times the KL divergence of the row's softmax(x) from softmax(base), per element, each
 * tensor op rounded by `round` (softmax and the row sum accumulate in f32 and round once at the end).
 */
function importances(x: Float32Array, b: Float32Array, row: number, out: Float32Array, round: (x: number) => number): void {
  for (let start = 0; start < x.length; start += row) {
    const kl = rowDivergence(x.subarray(start, start + row), b.subarray(start, start + row), round);
    for (let i = start; i < start + row; i++) out[i] = round(Math.abs(round(x[i]! - b[i]!)) * kl);
  }
}

function rowDivergence(x: Float32Array, b: Float32Array, round: (x: number) => number): number {
  const p = softmax(x, round);
  const q = softmax(b, round);
  let kl = 0;
  for (let i = 0; i < x.length; i++) {
    const pi = round(p[i]! + 1e-8);
    const qi = round(q[i]! + 1e-8);
    kl += round(pi * round(Math.log(round(pi / qi))));
  }
  return round(kl);
}

function softmax(x: Float32Array, round: (x: number) => number): Float64Array {
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v);
  const out = new Float64Array(x.length);
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += out[i] = f(Math.exp(f(x[i]! - max)));
  for (let i = 0; i < x.length; i++) out[i] = round(out[i]! / sum);
  return out;
}

/** An unsigned key that orders like the f32 value, negatives included. */
function orderedKey(value: number): number {
  const bits = f32Bits(value);
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
}

function fromOrderedKey(key: number): number {
  return bitsToF32(key & 0x80000000 ? key & 0x7fffffff : ~key >>> 0);
}
