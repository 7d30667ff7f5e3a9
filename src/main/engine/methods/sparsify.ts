import { absBits, magnitudeMaskKeeps, MAX_DELLA_ROW, type MagnitudeCut, type MagnitudeTrimMask } from '../compute/types';
import { MagnitudeMask } from './magnitude-select';
import { uniformAt } from './random-mask';

/**
 * Which entries of one model's task vector survive, chunk by chunk (mergekit's sparsify.py). Chunks
 * come in tensor order; `reset` starts a new pass, so the same elements are kept on every pass.
 */
export interface Sparsifier {
  reset(): void;
  /** Sets keep[i] to 1 for each kept element of this chunk's `delta`, 0 otherwise. */
  mask(start: number, delta: Float32Array, keep: Uint8Array): void;
}

export const keepEverything: Sparsifier = {
  reset() {},
  mask(_start, delta, keep) {
    keep.fill(1, 0, delta.length);
  },
};

/** mergekit's `magnitude` and `magnitude_outliers`: ranks of |delta| over the whole tensor. */
export class MagnitudeSparsifier implements Sparsifier {
  constructor(private readonly threshold: MagnitudeMask) {}

  reset(): void {
    this.threshold.reset();
  }

  mask(_start: number, delta: Float32Array, keep: Uint8Array): void {
    for (let i = 0; i < delta.length; i++) keep[i] = this.threshold.keeps(Math.abs(delta[i]!)) ? 1 : 0;
  }
}

/**
 * The same ranks as MagnitudeSparsifier, as elementwise tests (`ComputeBackend` magnitude masks):
 * each threshold with the tensor index from which its ties are no longer kept, so no element depends
 * on the ones before it and any backend, window or thread keeps the same ones.
 */
export class CutSparsifier implements Sparsifier {
  constructor(
    readonly cuts: { keep: MagnitudeCut; skip?: MagnitudeCut },
    /** The elements tied at the cuts' bits that torch's sort keeps; without, ties go in index order. */
    readonly ties?: TieBytes,
  ) {}

  reset(): void {}

  mask(start: number, delta: Float32Array, keep: Uint8Array): void {
    const mask = this.backendMask(start, delta.length);
    for (let i = 0; i < delta.length; i++) keep[i] = magnitudeMaskKeeps(mask, absBits(delta[i]!), start, i) ? 1 : 0;
  }

  /** The backend's mask over [start, start + length) (`TaskVectorMask` magnitude). */
  backendMask(start: number, length: number): MagnitudeTrimMask {
    return { kind: 'magnitude', ...this.cuts, ...(this.ties ? { ties: this.ties.over(start, length) } : {}) };
  }
}

/** A bitset over a tensor's elements as one byte per element of a run of it (1 = in the set). */
export class TieBytes {
  private bytes = new Uint8Array(0);

  /** `bits`: bit i & 7 of byte i >> 3 is element i's. */
  constructor(readonly bits: Uint8Array) {}

  /** The bytes of [start, start + length); the array is reused by the next call. */
  over(start: number, length: number): Uint8Array {
    if (this.bytes.length < length) this.bytes = new Uint8Array(Math.ceil(length / 8) * 8);
    const bytes = this.bytes.subarray(0, length);
    const bits = this.bits;
    let i = 0;
    if ((start & 7) === 0 && LITTLE_ENDIAN) {
      // Eight elements a bitset byte, as two u32 of bytes from a table; ties are few, so most bytes are 0.
      const words = new Uint32Array(this.bytes.buffer, 0, this.bytes.length >> 2);
      const first = start >> 3;
      words.fill(0, 0, 2 * (length >> 3));
      for (let q = 0; q < length >> 3; q++) {
        const byte = bits[first + q]!;
        if (byte === 0) continue;
        words[2 * q] = SPREAD_LOW[byte]!;
        words[2 * q + 1] = SPREAD_LOW[byte >> 4]!;
      }
      i = length & ~7;
    }
    for (; i < length; i++) {
      const index = start + i;
      bytes[i] = (bits[index >> 3]! >> (index & 7)) & 1;
    }
    return bytes;
  }
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** For each nibble (and byte, of which the low nibble counts), its four bits as four bytes of a little-endian u32. */
const SPREAD_LOW = Uint32Array.from({ length: 256 }, (_, b) => (b & 1) | ((b >> 1) & 1) << 8 | ((b >> 2) & 1) << 16 | (((b >> 3) & 1) << 24));

/** mergekit's `random` (DARE): each entry kept with probability `density`, drawn from the counter hash. */
export class RandomSparsifier implements Sparsifier {
  constructor(
    readonly key: number,
    readonly density: number,
  ) {}

  reset(): void {}

  mask(start: number, delta: Float32Array, keep: Uint8Array): void {
    for (let i = 0; i < delta.length; i++) keep[i] = uniformAt(this.key, start + i) < this.density ? 1 : 0;
  }
}

/**
 * mergekit's `della_magprune`: within each row, the entry ranked r-th by |delta| (1 = smallest) is kept
 * with probability density − ε + 2ε·(r − 1)/(n − 1). Rows are the last axis; a 1-D tensor is one row,
 * so chunks must hold whole rows (`chunking: 'rows'`). Ties in |delta| rank in index order, every NaN
 * ranks as 0x7fc00000 (absBits). A backend computes the same masks (`ComputeBackend.rowRankMasks`).
 */
export class DellaSparsifier implements Sparsifier {
  private keys = new Float64Array(0);

  constructor(
    readonly key: number,
    readonly density: number,
    readonly epsilon: number,
    readonly rowLength: number,
  ) {
    checkDella(density, epsilon);
  }

  reset(): void {}

  mask(start: number, delta: Float32Array, keep: Uint8Array): void {
    const n = this.rowLength;
    if (delta.length % n !== 0) throw new RangeError(`della: a chunk of ${delta.length} elements is not whole rows of ${n}`);
    if (this.keys.length < n) this.keys = new Float64Array(n);
    const { low, span } = dellaProbabilities(this.density, this.epsilon);
    for (let row = 0; row < delta.length; row += n) {
      const keys = this.rankOrder(delta, row, n);
      for (let rank = 0; rank < n; rank++) {
        const i = row + (keys[rank]! % 4194304);
        const rankNorm = n > 1 ? Math.fround(rank / (n - 1)) : 0;
        const probability = Math.fround(low + Math.fround(rankNorm * span));
        keep[i] = uniformAt(this.key, start + i) < probability ? 1 : 0;
      }
    }
  }

  /** The row's positions sorted by |delta| then position: absBits(delta) · 2²² + position, sorted. */
  private rankOrder(delta: Float32Array, row: number, n: number): Float64Array {
    if (n > MAX_DELLA_ROW) throw new RangeError(`della: rows of ${n} elements are longer than Alloy ranks (4,194,304)`);
    const keys = this.keys.subarray(0, n);
    const bits = new Uint32Array(delta.buffer, delta.byteOffset + row * 4, n);
    for (let j = 0; j < n; j++) {
      const magnitude = bits[j]! & 0x7fffffff;
      keys[j] = (magnitude > 0x7f800000 ? 0x7fc00000 : magnitude) * 4194304 + j;
    }
    return keys.sort();
  }
}

/** Throws unless DELLA's keep probabilities, density ± epsilon, lie inside (0, 1). */
export function checkDella(density: number, epsilon: number): void {
  if (density + epsilon >= 1 || density - epsilon <= 0) {
    throw new RangeError(`della needs density ± epsilon inside (0, 1); got density ${density}, epsilon ${epsilon}`);
  }
}

/** DELLA's keep probability of rank k in a row of n is f(low + f(f(k / (n − 1))·span)), with these f32. */
export function dellaProbabilities(density: number, epsilon: number): { low: number; span: number } {
  return { low: Math.fround(density - epsilon), span: Math.fround(2 * epsilon) };
}
