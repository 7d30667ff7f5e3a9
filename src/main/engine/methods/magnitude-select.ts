import { absBits, HISTOGRAM_BINS, type ComputeBackend, type HostArray, type MagnitudeCut, type StepDtype } from '../compute/types';
import { roundStepArray } from './numerics';
import { SortKeys } from './torch-sort-ties';
import { f32Host, type TensorSource } from './types';

export interface MagnitudeThreshold {
  /** Elements whose |delta| bits are above this are kept. */
  bits: number;
  /** How many elements exactly at `bits` are kept too, first in index order. */
  ties: number;
  /** How many elements are exactly at `bits`. */
  count: number;
}

/** One pass over a tensor that reports, for each of several selections, the bits of each value. */
export type BitsPass = (visit: (selection: number, bits: number) => void) => Promise<void>;

/**
 * The k-th largest value of each selection, found exactly in two passes (a 16-bit radix histogram of
 * the f32 bit pattern, then the low 16 bits inside the chosen bucket), so no whole tensor is ever
 * sorted or held. Non-negative floats order like their bit patterns.
 */
export async function kthLargestBits(pass: BitsPass, keep: number[]): Promise<MagnitudeThreshold[]> {
  const high = keep.map(() => new Float64Array(65536));
  await pass((j, bits) => high[j]![bits >>> 16]!++);
  const buckets = keep.map((k, j) => pick(high[j]!, k));
  const low = keep.map(() => new Float64Array(65536));
  await pass((j, bits) => {
    if (bits >>> 16 === buckets[j]!.bucket) low[j]![bits & 0xffff]!++;
  });
  return keep.map((_, j) => lowPick(buckets[j]!, low[j]!));
}

/** The threshold in the bucket `pick` chose, from that bucket's histogram of the low 16 bits. */
export function lowPick({ bucket, remaining }: { bucket: number; remaining: number }, low: Float64Array): MagnitudeThreshold {
  const { bucket: lowBits, remaining: ties } = pick(low, remaining);
  return { bits: ((bucket << 16) | lowBits) >>> 0, ties, count: low[lowBits]! };
}

/** The k-th largest |input − base| of each listed input (`round` is the compute dtype's rounding). */
export function magnitudeThresholds(source: TensorSource, baseIndex: number, others: number[], keep: number[], round: (x: number) => number = Math.fround): Promise<MagnitudeThreshold[]> {
  return kthLargestBits(async (visit) => {
    for await (const { inputs } of source.chunks()) {
      const base = inputs[baseIndex]!;
      others.forEach((m, j) => {
        const x = inputs[m]!;
        for (let i = 0; i < x.length; i++) visit(j, absBits(round(x[i]! - base[i]!)));
      });
    }
  }, keep);
}

/** The k-th largest |input − base| of each listed input on a compute backend: two histogram passes (`deltaHistogram`). */
export async function magnitudeThresholdsOnBackend(source: TensorSource, backend: ComputeBackend, baseIndex: number, others: number[], keep: number[], step: StepDtype): Promise<MagnitudeThreshold[]> {
  const pass = async (prefixes: (number | undefined)[]): Promise<Float64Array[]> => {
    const counts = others.map(() => new Float64Array(HISTOGRAM_BINS));
    for await (const chunk of source.chunks()) {
      const inputs = chunkInputs(chunk);
      await backend.deltaHistogram(inputs[baseIndex]!, others.map((m) => inputs[m]!), { step, prefixes }, counts);
    }
    return counts;
  };
  const high = await pass(others.map(() => undefined));
  const buckets = keep.map((k, j) => pick(high[j]!, k));
  const low = await pass(buckets.map((b) => b.bucket));
  return keep.map((_, j) => lowPick(buckets[j]!, low[j]!));
}

/**
 * Thresholds as elementwise tests (MagnitudeCut) with their ties taken in index order: the tensor
 * index from which the elements tied at each are no longer among the k, found on the backend
 * (`deltaFind`) by a pass that stops once every one is found.
 */
export async function indexOrderCuts(source: TensorSource, backend: ComputeBackend, baseIndex: number, others: number[], thresholds: MagnitudeThreshold[], step: StepDtype): Promise<MagnitudeCut[]> {
  // All ties kept: no index needed. Else the tie ranked `ties` (from 0) is the first one dropped.
  const cuts: MagnitudeCut[] = thresholds.map((t) => ({ bits: t.bits, before: t.ties >= t.count ? Infinity : t.ties <= 0 ? 0 : NaN }));
  const open = () => cuts.flatMap((c, j) => (Number.isNaN(c.before) ? [j] : []));
  const seen = cuts.map(() => 0);
  for await (const chunk of source.chunks()) {
    const wanted = open();
    if (wanted.length === 0) break;
    const inputs = chunkInputs(chunk);
    const found = await backend.deltaFind(
      inputs[baseIndex]!,
      wanted.map((j) => inputs[others[j]!]!),
      { step, bits: wanted.map((j) => cuts[j]!.bits), ranks: wanted.map((j) => thresholds[j]!.ties - seen[j]!) },
    );
    found.forEach(({ count, index }, w) => {
      const j = wanted[w]!;
      if (index >= 0) cuts[j]!.before = chunk.start + index;
      else seen[j]! += count;
    });
  }
  // Not found (cannot happen when the histograms counted right): every tie is kept.
  for (const j of open()) cuts[j]!.before = Infinity;
  return cuts;
}

function chunkInputs(chunk: { raw?: HostArray[]; inputs: Float32Array[] }): HostArray[] {
  return chunk.raw ?? chunk.inputs.map(f32Host);
}

/**
 * Which elements whose |δ| bits are one of `tied` torch's sort of model `model`'s |δ| (descending or
 * ascending) places in [from, to): the whole tensor's sort keys, built in one pass (4 bytes an
 * element; δ = r(x − base) by the backend's `linear` with weights 1 and −1 where there is one), then
 * followed through the sort (`SortKeys.tiesWithin`). A bitset over the tensor.
 */
export async function torchTiesWithin(
  source: TensorSource,
  inputs: { base: number; model: number; step: StepDtype; backend?: ComputeBackend | undefined; memory?: Int32Array },
  order: { descending: boolean; from: number; to: number },
  tied: number[],
  numel: number,
): Promise<Uint8Array> {
  const { base, model, step, backend, memory } = inputs;
  const keys = new SortKeys(numel, order.descending, tied, memory);
  let delta = new Float32Array(0);
  for await (const chunk of source.chunks()) {
    const { start, length } = chunk;
    if (delta.length < length) delta = new Float32Array(length);
    const d = delta.subarray(0, length);
    if (backend) {
      const raw = chunkInputs(chunk);
      await backend.linear([raw[model]!, raw[base]!], [1, -1], false, f32Host(d), step);
    } else {
      const x = chunk.inputs[model]!;
      const b = chunk.inputs[base]!;
      for (let i = 0; i < length; i++) d[i] = x[i]! - b[i]!;
      roundStepArray(step, d);
    }
    keys.setDeltas(start, new Int32Array(d.buffer, d.byteOffset, length));
  }
  return keys.tiesWithin(order.from, order.to);
}

/** The highest bucket at which the count from the top reaches `k`, and how many are needed from it. */
export function pick(histogram: Float64Array, k: number): { bucket: number; remaining: number } {
  let above = 0;
  for (let b = histogram.length - 1; b >= 0; b--) {
    const count = histogram[b]!;
    if (above + count >= k) return { bucket: b, remaining: k - above };
    above += count;
  }
  return { bucket: 0, remaining: 0 };
}

/**
 * Keeps the elements ranked (from the largest |delta|) after `skipTop` and up to `keepUpTo`; ties at
 * a threshold are taken in index order. TIES is skipTop = 0; breadcrumbs also skips the outliers.
 * Call `reset` before each pass over the tensor.
 */
export class MagnitudeMask {
  private aboveTies = 0;
  private upToTies = 0;

  constructor(
    private readonly skipTop: Omit<MagnitudeThreshold, 'count'> | undefined,
    private readonly keepUpTo: Omit<MagnitudeThreshold, 'count'>,
  ) {
    this.reset();
  }

  reset(): void {
    this.aboveTies = this.skipTop?.ties ?? 0;
    this.upToTies = this.keepUpTo.ties;
  }

  keeps(absDelta: number): boolean {
    const bits = absBits(absDelta);
    return this.within(bits) && !this.skipped(bits);
  }

  private within(bits: number): boolean {
    if (bits !== this.keepUpTo.bits) return bits > this.keepUpTo.bits;
    return this.upToTies-- > 0;
  }

  private skipped(bits: number): boolean {
    if (!this.skipTop) return false;
    if (bits !== this.skipTop.bits) return bits > this.skipTop.bits;
    return this.aboveTies-- > 0;
  }
}
