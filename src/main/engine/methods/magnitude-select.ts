import { f32Bits } from '../safetensors/convert';
import type { TensorSource } from './types';

export interface MagnitudeThreshold {
  /** Elements whose |delta| bits are above this are kept. */
  bits: number;
  /** How many elements exactly at `bits` are kept too, first in index order. */
  ties: number;
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
  return keep.map((_, j) => {
    const { bucket, remaining } = buckets[j]!;
    const { bucket: lowBits, remaining: ties } = pick(low[j]!, remaining);
    return { bits: ((bucket << 16) | lowBits) >>> 0, ties };
  });
}

/** The k-th largest |input − base| of each listed input (`round` is the compute dtype's rounding). */
export function magnitudeThresholds(source: TensorSource, baseIndex: number, others: number[], keep: number[], round: (x: number) => number = Math.fround): Promise<MagnitudeThreshold[]> {
  return kthLargestBits(async (visit) => {
    for await (const { inputs } of source.chunks()) {
      const base = inputs[baseIndex]!;
      others.forEach((m, j) => {
        const x = inputs[m]!;
        for (let i = 0; i < x.length; i++) visit(j, f32Bits(Math.abs(round(x[i]! - base[i]!))));
      });
    }
  }, keep);
}

/** The highest bucket at which the count from the top reaches `k`, and how many are needed from it. */
function pick(histogram: Float64Array, k: number): { bucket: number; remaining: number } {
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
    private readonly skipTop: MagnitudeThreshold | undefined,
    private readonly keepUpTo: MagnitudeThreshold,
  ) {
    this.reset();
  }

  reset(): void {
    this.aboveTies = this.skipTop?.ties ?? 0;
    this.upToTies = this.keepUpTo.ties;
  }

  keeps(absDelta: number): boolean {
    const bits = f32Bits(absDelta);
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
