import { bitsToF32 } from '../safetensors/convert';
import { HISTOGRAM_BINS, type HalfStep } from '../compute/types';
import { lowPick, pick } from './magnitude-select';
import { roundStepArray, stepOf, stepRounding } from './numerics';
import { type Chunk, type MergeMethod, type TensorMergeContext, type TensorSource } from './types';

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
    const importances = new Importances(ctx, base, other);
    const threshold = await importanceThreshold(source, ctx.numel, importances);
    const round = importances.round;
    let buffer = new Float32Array(0);
    for await (const chunk of source.chunks()) {
      const { start, length, inputs } = chunk;
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      const b = inputs[base]!;
      const x = inputs[other]!;
      const importance = importances.of(chunk);
      for (let i = 0; i < length; i++) out[i] = importance[i]! >= threshold ? f(b[i]! + round(f(x[i]! - b[i]!))) : b[i]!;
      await sink.write(start, out);
    }
  },
};

/**
 * Each element's importance, |x − base| times the KL divergence of its row's softmax(x) from
 * softmax(base), each tensor op rounded to the compute dtype (bf16 where mergekit computes in bf16;
 * softmax and the row sum accumulate and round once at the end). The passes read the chunks in the
 * same order, so each row's divergence is computed once and kept; a tensor read in one chunk keeps
 * its importances too.
 */
class Importances {
  readonly round: (x: number) => number;
  private readonly row: number;
  private readonly divergences: Float64Array;
  private rowsKnown = 0;
  private values = new Float32Array(0);
  private wholeTensorKept = false;

  constructor(
    private readonly ctx: TensorMergeContext,
    private readonly base: number,
    private readonly other: number,
  ) {
    this.round = stepRounding(ctx.computeDtype);
    this.row = ctx.shape.length > 1 ? ctx.shape[ctx.shape.length - 1]! : ctx.numel;
    this.divergences = new Float64Array(Math.ceil(ctx.numel / Math.max(1, this.row)));
  }

  /** The chunk's importances (whole rows), valid until the next call. */
  of({ start, length, inputs }: Chunk): Float32Array {
    const wholeTensor = start === 0 && length === this.ctx.numel;
    if (wholeTensor && this.wholeTensorKept) return this.values.subarray(0, length);
    if (this.values.length < length) this.values = new Float32Array(length);
    const out = this.values.subarray(0, length);
    const x = inputs[this.other]!;
    const b = inputs[this.base]!;
    const firstRow = start / this.row;
    for (let r = 0; r * this.row < length; r++) {
      if (firstRow + r < this.rowsKnown) continue;
      this.divergences[firstRow + r] = rowDivergence(x.subarray(r * this.row, (r + 1) * this.row), b.subarray(r * this.row, (r + 1) * this.row), this.round);
      this.rowsKnown = firstRow + r + 1;
    }
    const step = stepOf(this.ctx.computeDtype);
    if (step === 'F32') importancesF32(x, b, this.row, this.divergences, firstRow, out);
    else importancesHalfSteps(step, x, b, this.row, this.divergences, firstRow, out);
    this.wholeTensorKept = wholeTensor;
    return out;
  }
}

/** out = f(|f(x − b)| · kl of the row), a store into f32 rounding the exact product of two f32. */
function importancesF32(x: Float32Array, b: Float32Array, row: number, divergences: Float64Array, firstRow: number, out: Float32Array): void {
  for (let start = 0, r = firstRow; start < out.length; start += row, r++) {
    const kl = divergences[r]!;
    for (let i = start; i < start + row; i++) out[i] = Math.abs(f(x[i]! - b[i]!)) * kl;
  }
}

/** out = r(|r(x − b)| · kl of the row), r rounding each step to bf16 or f16. */
function importancesHalfSteps(step: HalfStep, x: Float32Array, b: Float32Array, row: number, divergences: Float64Array, firstRow: number, out: Float32Array): void {
  for (let i = 0; i < out.length; i++) out[i] = x[i]! - b[i]!;
  roundStepArray(step, out);
  for (let start = 0, r = firstRow; start < out.length; start += row, r++) {
    const kl = divergences[r]!;
    for (let i = start; i < start + row; i++) out[i] = Math.abs(out[i]!) * kl;
  }
  roundStepArray(step, out);
}

/**
 * median + 1.5·(q3 − q1) of the importances, the quantiles at ⌊q·(n − 1)⌋ of the sorted values: a
 * 16-bit radix histogram of their ordered keys (one for the three ranks, which count the same
 * values), then the low 16 bits inside each chosen bucket.
 */
async function importanceThreshold(source: TensorSource, n: number, importances: Importances): Promise<number> {
  const ranks = [0.25, 0.5, 0.75].map((q) => n - Math.trunc(f(f(q) * (n - 1))));
  const high = new Float64Array(HISTOGRAM_BINS);
  for await (const chunk of source.chunks()) {
    const bits = bitsOf(importances.of(chunk));
    for (let i = 0; i < bits.length; i++) high[orderedKey(bits[i]!) >>> 16]!++;
  }
  const buckets = ranks.map((k) => pick(high, k));
  const low = ranks.map(() => new Float64Array(HISTOGRAM_BINS));
  const [b0, b1, b2] = buckets.map((b) => b.bucket) as [number, number, number];
  for await (const chunk of source.chunks()) {
    const bits = bitsOf(importances.of(chunk));
    for (let i = 0; i < bits.length; i++) {
      const key = orderedKey(bits[i]!);
      const bucket = key >>> 16;
      if (bucket === b0) low[0]![key & 0xffff]!++;
      if (bucket === b1) low[1]![key & 0xffff]!++;
      if (bucket === b2) low[2]![key & 0xffff]!++;
    }
  }
  const [q1, median, q3] = buckets.map((b, j) => fromOrderedKey(lowPick(b, low[j]!).bits)) as [number, number, number];
  const round = importances.round;
  return round(median + round(1.5 * round(q3 - q1)));
}

function bitsOf(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** An unsigned key that orders like the f32 value of `bits`, negatives included. */
function orderedKey(bits: number): number {
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
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

function fromOrderedKey(key: number): number {
  return bitsToF32(key & 0x80000000 ? key & 0x7fffffff : ~key >>> 0);
}
