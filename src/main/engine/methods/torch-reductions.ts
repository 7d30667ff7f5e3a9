import { CASCADE_ROW, type CascadeState } from '../compute/types';
import { fmaF32 } from './numerics';

/*
 * torch's f32 reductions on the CPU, reproduced order for order, so that methods which reduce whole
 * tensors (slerp's norms and dot) give mergekit's bits. The order is that of ATen's AVX2 kernels
 * (8-lane vectors), on one thread: torch splits a sum of more than 32,768 elements across its threads,
 * so there even two mergekit runs on different machines disagree. Checked against torch 2.15.
 */

const LANES = 8;
const ILP = 4;
const LEVELS = 4;

/**
 * `x.sum()` over a contiguous run of `length` f32 values: ATen's cascade_sum, fed in order. `layout`
 * picks the shape of the loop for a column of an outer reduction (`x.sum(dim=0)`): one lane, with
 * four-row interleaving (`ilp: 4`) or without (`ilp: 1`, the columns ATen reduces 32 at a time).
 */
export class TorchSum {
  private readonly lanes: number;
  private readonly ilp: number;
  private readonly rows: number;
  private readonly levelPower: number;
  private readonly fullBlockRows: number;
  private readonly acc: Float32Array;
  private readonly row: Float32Array;
  private readonly rest: number[] = [];
  private seen = 0;
  private rowsDone = 0;

  constructor(
    private readonly length: number,
    layout?: { lanes: 1; ilp: 1 | 4 },
  ) {
    this.lanes = layout?.lanes ?? (length < LANES ? 1 : LANES);
    this.ilp = layout?.ilp ?? ILP;
    const vectors = Math.floor(length / this.lanes);
    this.rows = Math.floor(vectors / this.ilp);
    this.levelPower = Math.max(4, Math.floor(ceilLog2(this.rows) / LEVELS));
    const step = 2 ** this.levelPower;
    this.fullBlockRows = Math.floor(this.rows / step) * step;
    this.acc = new Float32Array(LEVELS * this.ilp * this.lanes);
    this.row = new Float32Array(this.ilp * this.lanes);
  }

  add(x: number): void {
    const width = this.ilp * this.lanes;
    if (this.rowsDone < this.rows) {
      this.row[this.seen % width] = x;
      this.seen++;
      if (this.seen % width === 0) this.addRow();
    } else {
      this.rest.push(x);
      this.seen++;
    }
  }

  /**
   * Whole rows a backend may add now (`ComputeBackend.dotRows`): the rows left, at a row's start in
   * the 8 × 4 layout; 0 otherwise (then values go through `add`).
   */
  bulkRows(): number {
    if (this.lanes !== LANES || this.ilp !== ILP || this.seen % CASCADE_ROW !== 0) return 0;
    return this.rows - this.rowsDone;
  }

  /** The accumulators as `dotRows` takes them; `rowsAdded` takes them back. */
  cascade(): CascadeState {
    return { acc: this.acc, rowsDone: this.rowsDone, levelPower: this.levelPower, fullBlockRows: this.fullBlockRows };
  }

  /** After a backend added whole rows to `state` (from `cascade()`). */
  rowsAdded(state: CascadeState): void {
    this.seen += (state.rowsDone - this.rowsDone) * CASCADE_ROW;
    this.rowsDone = state.rowsDone;
  }

  result(): number {
    if (this.seen !== this.length) throw new RangeError(`TorchSum: ${this.seen} of ${this.length} values added`);
    const acc = this.acc;
    const width = this.ilp * this.lanes;
    for (let j = 1; j < LEVELS; j++) for (let k = 0; k < width; k++) acc[k] = acc[k]! + acc[j * width + k]!;
    const partial = acc.subarray(0, width);
    const leftoverVectors = Math.floor(this.length / this.lanes) - this.rows * this.ilp;
    for (let v = 0; v < leftoverVectors; v++) {
      for (let l = 0; l < this.lanes; l++) partial[l] = partial[l]! + this.rest[v * this.lanes + l]!;
    }
    for (let k = 1; k < this.ilp; k++) for (let l = 0; l < this.lanes; l++) partial[l] = partial[l]! + partial[k * this.lanes + l]!;
    if (this.lanes === 1) return partial[0]!;
    let total = 0;
    for (let i = leftoverVectors * this.lanes; i < this.rest.length; i++) total = Math.fround(total + this.rest[i]!);
    for (let l = 0; l < this.lanes; l++) total = Math.fround(total + partial[l]!);
    return total;
  }

  private addRow(): void {
    const width = this.ilp * this.lanes;
    const acc = this.acc;
    for (let k = 0; k < width; k++) acc[k] = acc[k]! + this.row[k]!;
    this.rowsDone++;
    const step = 2 ** this.levelPower;
    if (this.rowsDone > this.fullBlockRows || this.rowsDone % step !== 0) return;
    for (let j = 1; j < LEVELS; j++) {
      for (let k = 0; k < width; k++) {
        acc[j * width + k] = acc[j * width + k]! + acc[(j - 1) * width + k]!;
        acc[(j - 1) * width + k] = 0;
      }
      if (Math.floor(this.rowsDone / 2 ** (j * this.levelPower)) % step !== 0) break;
    }
  }
}

/**
 * `torch.linalg.vector_norm(x)` over a contiguous run of `length` f32 values: eight lanes of squares,
 * summed across, then the leftover squares fused in (as the compiled scalar loop does), then sqrt.
 */
export class TorchNorm {
  private readonly lanes = new Float32Array(LANES);
  private readonly vectorPart: number;
  private tail = 0;
  private seen = 0;

  /** `dtype`: a bf16 tensor is loaded 16 elements at a time (two float vectors), so its tail is longer. (f16: `TorchHalfNorm`.) */
  constructor(
    private readonly length: number,
    dtype: 'F32' | 'BF16' = 'F32',
  ) {
    const step = dtype === 'F32' ? LANES : 2 * LANES;
    this.vectorPart = length - (length % step);
  }

  add(x: number): void {
    if (this.seen < this.vectorPart) {
      const l = this.seen % LANES;
      this.lanes[l] = this.lanes[l]! + Math.fround(x * x);
    } else {
      if (this.seen === this.vectorPart) this.tail = this.acrossLanes();
      this.tail = fmaF32(x, x, this.tail);
    }
    this.seen++;
  }

  /** Values a backend may add to the lanes now (`ComputeBackend.normLanes`): whole groups of 8 from lane 0, up to the tail. */
  bulk(): number {
    return this.seen % LANES === 0 ? this.vectorPart - this.seen : 0;
  }

  /** The lanes, for `normLanes` to add to; then `added(n)`. */
  get laneSums(): Float32Array {
    return this.lanes;
  }

  added(count: number): void {
    this.seen += count;
  }

  result(): number {
    if (this.seen !== this.length) throw new RangeError(`TorchNorm: ${this.seen} of ${this.length} values added`);
    return Math.fround(Math.sqrt(this.seen > this.vectorPart ? this.tail : this.acrossLanes()));
  }

  private acrossLanes(): number {
    let b = this.lanes[0]!;
    for (let l = 1; l < LANES; l++) b = Math.fround(b + this.lanes[l]!);
    return b;
  }
}

/**
 * `torch.norm` of an f16 tensor on the CPU: not the vectorized path of f32 and bf16 (ATen leaves Half
 * out of it) but the scalar NormTwoOps, one f32 accumulator acc + x² (x² of an f16 is exact in f32),
 * in order. A single output (a whole tensor) is split as `ParallelTorchSum` splits a sum: `threads`
 * contiguous parts of ⌈length / parts⌉ from 32,768 elements up, their accumulators then added in
 * order; the sqrt in f32. Measured against torch 2.15: 11.5 M elements of 0.02·N(0, 1) give 67.3125
 * on one thread and 67.6875 on two, where the exact norm is 67.94.
 */
export class TorchHalfNorm {
  private readonly bounds: number[] = [];
  private readonly parts: number[] = [];
  private index = 0;
  private seen = 0;

  constructor(
    private readonly length: number,
    threads = 1,
  ) {
    const count = length < GRAIN || threads <= 1 ? 1 : Math.min(threads, Math.ceil(length / GRAIN));
    const size = Math.max(1, Math.ceil(length / count));
    for (let begin = 0; begin < length || this.parts.length === 0; begin += size) {
      this.bounds.push(Math.min(begin + size, length));
      this.parts.push(0);
    }
  }

  add(x: number): void {
    if (this.seen === this.bounds[this.index]) this.index++;
    this.parts[this.index] = Math.fround(this.parts[this.index]! + Math.fround(x * x));
    this.seen++;
  }

  /** `add` of `values[from, to)`, in order. */
  addAll(values: Float32Array, from: number, to: number): void {
    let i = from;
    while (i < to) {
      if (this.seen === this.bounds[this.index]) this.index++;
      const stop = Math.min(to, i + (this.bounds[this.index]! - this.seen));
      let acc = this.parts[this.index]!;
      for (let k = i; k < stop; k++) acc = Math.fround(acc + Math.fround(values[k]! * values[k]!));
      this.parts[this.index] = acc;
      this.seen += stop - i;
      i = stop;
    }
  }

  result(): number {
    if (this.seen !== this.length) throw new RangeError(`TorchHalfNorm: ${this.seen} of ${this.length} values added`);
    let total = 0;
    for (const part of this.parts) total = Math.fround(total + part);
    return Math.fround(Math.sqrt(total));
  }
}

export type NormRun = TorchNorm | TorchHalfNorm;

/** The norm reduction torch runs on a tensor of `dtype` with `length` elements in one output (`threads` for an f16 one). */
export function torchNormOf(length: number, dtype: 'F32' | 'BF16' | 'F16', threads = 1): NormRun {
  return dtype === 'F16' ? new TorchHalfNorm(length, threads) : new TorchNorm(length, dtype);
}

/** The norm of a few values reduced along an outer axis (ATen's scalar NormTwoOps, fused). */
export function normOfParts(parts: number[]): number {
  let acc = 0;
  for (const p of parts) acc = fmaF32(p, p, acc);
  return Math.fround(Math.sqrt(acc));
}

function ceilLog2(x: number): number {
  return x <= 1 ? 0 : Math.ceil(Math.log2(x));
}

/** `torch.sum` of a few f32 values held in an array. */
export function torchSum(values: readonly number[]): number {
  const sum = new TorchSum(values.length);
  for (const v of values) sum.add(v);
  return sum.result();
}

/** ATen's grain: a reduction of fewer elements stays on one thread. */
const GRAIN = 32768;

/**
 * A full `x.sum()` as torch computes it with `threads` intra-op threads: above the grain, the run is
 * cut into one range per thread (at most one per grain), each summed by the cascade, the partial sums
 * then added in thread order. torch keeps the partial sums in the output's dtype: `roundPart` rounds
 * each to it (a bf16 or f16 sum's parts are 16-bit values; measured with torch 2.15, an f16 sum of
 * 11.5 M products on two threads). (A norm's last-dimension kernel never splits.)
 */
export class ParallelTorchSum {
  private readonly parts: TorchSum[];
  private readonly bounds: number[];
  private index = 0;
  private seen = 0;

  constructor(
    length: number,
    threads: number,
    private readonly roundPart: (x: number) => number = Math.fround,
  ) {
    const count = length < GRAIN || threads <= 1 ? 1 : Math.min(threads, Math.ceil(length / GRAIN));
    const size = Math.ceil(length / count);
    this.bounds = [];
    this.parts = [];
    for (let begin = 0; begin < length || this.parts.length === 0; begin += size) {
      const end = Math.min(begin + size, length);
      this.parts.push(new TorchSum(end - begin));
      this.bounds.push(end);
    }
  }

  add(x: number): void {
    if (this.seen === this.bounds[this.index]) this.index++;
    this.parts[this.index]!.add(x);
    this.seen++;
  }

  /** The part the next value goes to, and how many values it takes before the next part. */
  part(): { sum: TorchSum; room: number } {
    if (this.seen === this.bounds[this.index]) this.index++;
    return { sum: this.parts[this.index]!, room: this.bounds[this.index]! - this.seen };
  }

  /** After `count` values went straight to the current part (`part().sum`). */
  skipped(count: number): void {
    this.seen += count;
  }

  result(): number {
    if (this.parts.length === 1) return this.parts[0]!.result();
    let total = this.roundPart(this.parts[0]!.result());
    for (let i = 1; i < this.parts.length; i++) total = Math.fround(total + this.roundPart(this.parts[i]!.result()));
    return total;
  }
}

/** Threads torch uses by default: the machine's physical cores (Linux: from /proc/cpuinfo). */
export function defaultTorchThreads(cpuinfo: string | undefined, logical: number): number {
  if (!cpuinfo) return logical;
  const cores = new Set<string>();
  let physical = '0';
  for (const line of cpuinfo.split('\n')) {
    const [key, value] = line.split(':').map((s) => s.trim());
    if (key === 'physical id') physical = value ?? '0';
    if (key === 'core id') cores.add(`${physical}/${value}`);
  }
  return cores.size || logical;
}
