import { absBits, HISTOGRAM_BINS, type ComputeBackend, type HostArray, type MagnitudeCut, type StepDtype } from '../compute/types';
import { roundStepArray } from './numerics';
import { keptTies, SortKeys } from './torch-sort-ties';
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

/** The most bytes of sort keys held in a backend's memory at once: it holds 4 GiB in all, the engine's buffers (1 GiB by default) and scratch too. */
const BACKEND_KEYS_BYTES = 2 ** 30;

/** Which of model `model`'s elements tied at `tied` (|δ| bits, one or two) torch's sort of |δ| places in [from, to). */
export interface TieRequest {
  model: number;
  order: { descending: boolean; from: number; to: number };
  tied: number[];
}

/**
 * For each request, the elements whose |δ| bits are one of `tied` that torch's sort of the model's
 * |δ| places in [from, to), as a bitset over the tensor: the whole tensor's sort keys (4 bytes an
 * element) from one pass over the tensor (`setDeltaKeys`), then followed through the sort
 * (`keptTies`). Where the backend sorts (`sortKeys`), the models' keys lie in its memory, as many at
 * once as BACKEND_KEYS_BYTES holds, built and sorted on its threads, the models side by side; else
 * one model at a time, here.
 */
export async function torchTiesWithin(
  source: TensorSource,
  inputs: { base: number; step: StepDtype; backend?: ComputeBackend | undefined; keysBytes?: number },
  requests: readonly TieRequest[],
  numel: number,
): Promise<Uint8Array[]> {
  const memory = sortKeysMemory(inputs.backend, numel, requests.length, inputs.keysBytes);
  try {
    const kept: Uint8Array[] = [];
    for (let g = 0; g < requests.length; g += memory.arrays.length) {
      const group = requests.slice(g, g + memory.arrays.length);
      const keys = group.map((r, i) => new SortKeys(numel, r.order.descending, r.tied, memory.arrays[i]));
      await setDeltaKeys(source, { ...inputs, keysOn: memory.sorter }, group.map((r) => r.model), keys);
      const sorts = keys.map((k, i) => ({ keys: k, steps: { sort: [group[i]!.order.from, group[i]!.order.to] as const } }));
      kept.push(...(await keptTies(sorts, memory.sorter)));
    }
    return kept;
  } finally {
    memory.release();
  }
}

/**
 * Arrays for the sort keys of `count` models: in the memory of the backend's key sorter where it has
 * one (`keySorter`), as many as `keysBytes` holds (BACKEND_KEYS_BYTES; where that is not even one,
 * or the memory has no room, none), else one of our own.
 */
export function sortKeysMemory(computeBackend: ComputeBackend | undefined, numel: number, count: number, keysBytes = BACKEND_KEYS_BYTES): { arrays: Int32Array[]; sorter?: ComputeBackend; release: () => void } {
  const own = () => ({ arrays: [new Int32Array(numel)], release: () => undefined });
  const backend = computeBackend?.keySorter?.();
  if (!backend?.sortKeys || !backend.allocateHost || !backend.releaseHost) return own();
  const blocks: Uint8Array[] = [];
  const release = () => blocks.forEach((b) => backend.releaseHost!(b));
  try {
    const wanted = Math.min(count, Math.floor(keysBytes / (4 * numel)));
    while (blocks.length < wanted) blocks.push(backend.allocateHost(4 * numel));
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
  }
  if (blocks.length === 0) return own();
  return { arrays: blocks.map((b) => new Int32Array(b.buffer, b.byteOffset, numel)), sorter: backend, release };
}

/**
 * One pass over the tensor that sets each model's sort keys from its δ = r(x − base): by the
 * backend's `deltaKeys` where the keys lie in its memory (`keysOn`), else by its `linear` with
 * weights 1 and −1 (or here, without a backend) and `setDeltas`.
 */
async function setDeltaKeys(
  source: TensorSource,
  inputs: { base: number; step: StepDtype; backend?: ComputeBackend | undefined; keysOn?: ComputeBackend | undefined },
  models: number[],
  keys: SortKeys[],
): Promise<void> {
  const { base, step, backend, keysOn } = inputs;
  let delta = new Float32Array(0);
  for await (const chunk of source.chunks()) {
    const { start, length } = chunk;
    const raw = chunkInputs(chunk);
    for (const [i, model] of models.entries()) {
      const k = keys[i]!;
      if (keysOn?.deltaKeys) {
        await keysOn.deltaKeys(raw[base]!, raw[model]!, { tied: k.tied, descending: k.descending, start, step }, k.keys.subarray(start, start + length));
        continue;
      }
      if (delta.length < length) delta = new Float32Array(length);
      const d = delta.subarray(0, length);
      if (backend) await backend.linear([raw[model]!, raw[base]!], [1, -1], false, f32Host(d), step);
      else {
        const x = chunk.inputs[model]!;
        const b = chunk.inputs[base]!;
        for (let e = 0; e < length; e++) d[e] = x[e]! - b[e]!;
        roundStepArray(step, d);
      }
      k.setDeltas(start, new Int32Array(d.buffer, d.byteOffset, length));
    }
  }
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
