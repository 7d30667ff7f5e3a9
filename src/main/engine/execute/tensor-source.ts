import { decodeToF32, f32BitsRoundedToF16, f32BitsToBf16 } from '../safetensors/convert';
import { dtypeSize, isFloatDtype, type FloatDtype } from '../safetensors/dtype';
import { DIRECT_SLACK, type TensorReader } from '../safetensors/reader';
import type { HostArray } from '../compute/types';
import type { Chunk, TensorSource } from '../methods/types';
import type { PlannedInput } from '../plan/types';
import type { BufferPool } from './buffer-pool';

interface BufferSet {
  bytes: Uint8Array[];
  /** The f32 decodings, made on first use. */
  values: (Float32Array | undefined)[];
}

/**
 * Reads the inputs of one output tensor in chunks of whole rows, with the next chunk's reads in
 * flight while the current one is computed; each chunk as read (`raw`) and, when a method asks,
 * decoded to f32. A tensor that fits in one chunk is kept, so methods that make several passes read
 * it once. With a pool, its buffers come from the pool (the compute backend's own memory, where it
 * has one) and go back to it on `release`; `prefetch` starts the first read early, while the tensor
 * before it is computed.
 */
export class ChunkedTensorSource implements TensorSource {
  private cached: Chunk | undefined;
  private readonly sets: (BufferSet | undefined)[] = [];
  private first: Promise<Chunk> | undefined;
  /** A read a pass left in flight when it stopped early: the next pass waits for it. */
  private abandoned: Promise<unknown> | undefined;
  bytesRead = 0;

  constructor(
    private readonly readers: TensorReader[],
    private readonly inputs: PlannedInput[],
    private readonly numel: number,
    private readonly chunkElements: number,
    private readonly computeDtype: FloatDtype | undefined,
    private readonly signal?: AbortSignal,
    private readonly pool?: BufferPool,
    /** Read past the page cache where the readers can (the pool's buffers are page-aligned). */
    private readonly direct = false,
  ) {}

  /** Starts reading the first chunk now. */
  prefetch(): void {
    if (this.first || this.cached || this.numel === 0) return;
    this.first = this.readChunk(0, 0);
    this.first.catch(() => undefined);
  }

  async *chunks(): AsyncIterable<Chunk> {
    if (this.cached) {
      yield this.cached;
      return;
    }
    await this.abandoned?.catch(() => undefined);
    this.abandoned = undefined;
    const single = this.numel <= this.chunkElements;
    // Two sets of buffers: one holds the chunk being computed, the other the chunk being read.
    let turn = 0;
    let next: Promise<Chunk> | undefined = this.first ?? this.readChunk(0, 0);
    this.first = undefined;
    try {
      for (let start = 0; next; ) {
        const chunk = await next;
        start += chunk.length;
        turn = single ? 0 : turn ^ 1;
        next = start < this.numel ? this.readChunk(start, turn) : undefined;
        if (single) this.cached = chunk;
        yield chunk;
        this.signal?.throwIfAborted();
      }
    } finally {
      // A pass that stopped early leaves its next read going into a buffer the next pass reuses.
      if (next) this.abandoned = next;
    }
  }

  /** Gives the buffers back to the pool; the source and its chunks are not to be used after. */
  async release(): Promise<void> {
    const pending = [this.first, this.abandoned].filter((p) => p !== undefined);
    await Promise.allSettled(pending);
    this.cached = undefined;
    for (const set of this.sets.splice(0)) {
      if (!set || !this.pool) continue;
      for (const b of set.bytes) this.pool.give(b);
      for (const v of set.values) if (v) this.pool.give(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    }
  }

  private set(k: number): BufferSet {
    const elements = Math.min(this.chunkElements, this.numel);
    const slack = this.direct ? DIRECT_SLACK : 0;
    this.sets[k] ??= {
      bytes: this.inputs.map((i) => (this.pool ? this.pool.take(elements * dtypeSize(i.dtype) + slack) : new Uint8Array(elements * dtypeSize(i.dtype) + slack))),
      values: this.inputs.map(() => undefined),
    };
    return this.sets[k]!;
  }

  private valuesOf(set: BufferSet, i: number): Float32Array {
    const elements = Math.min(this.chunkElements, this.numel);
    if (!set.values[i]) {
      const bytes = this.pool ? this.pool.take(elements * 4) : new Uint8Array(elements * 4);
      set.values[i] = new Float32Array(bytes.buffer, bytes.byteOffset, elements);
    }
    return set.values[i]!;
  }

  /**
   * Reads a chunk into set `k`; its views stay valid until the chunk after next is read. The f32 views
   * are decoded when first asked for: a method that computes on a backend takes `raw` instead.
   */
  private async readChunk(start: number, k: number): Promise<Chunk> {
    const set = this.set(k);
    const length = Math.min(this.chunkElements, this.numel - start);
    const read = await Promise.all(
      this.inputs.map(async (input, i) => {
        if (!isFloatDtype(input.dtype)) throw new Error(`tensor "${input.tensor}" has dtype ${input.dtype}, which cannot be merged`);
        const size = dtypeSize(input.dtype);
        const reader = this.readers[i]!;
        const bytes = this.direct && reader.readDirect
          ? await reader.readDirect(input.tensor, set.bytes[i]!, start * size, length * size)
          : await reader.read(input.tensor, set.bytes[i], start * size, length * size);
        this.bytesRead += bytes.byteLength;
        return { input, dtype: input.dtype, bytes };
      }),
    );
    const decode = (): Float32Array[] =>
      read.map(({ dtype, bytes }, i) => {
        const values = this.valuesOf(set, i).subarray(0, length);
        if (dtype === 'BF16' && this.computeDtype === 'F16') {
          const codes = bytes.byteOffset % 2 === 0 ? new Uint16Array(bytes.buffer, bytes.byteOffset, length) : undefined;
          if (!codes || !this.pool?.bf16AsF16(codes, values)) decodeBf16ToF16(bytes, values);
          return values;
        }
        decodeToF32(bytes, dtype, values);
        if (this.computeDtype && this.computeDtype !== 'F32' && dtype !== this.computeDtype) roundInPlace(values, this.computeDtype);
        return values;
      });
    // As stored is as computed unless an input must first be rounded to a narrower compute dtype.
    const exact = read.every(({ dtype }) => !this.computeDtype || this.computeDtype === 'F32' || dtype === this.computeDtype);
    const raw = exact ? read.map(({ dtype, bytes }) => asHostArray(bytes, dtype, length)) : undefined;
    let inputs: Float32Array[] | undefined;
    return {
      start,
      length,
      get inputs() {
        return (inputs ??= decode());
      },
      ...(raw && raw.every((r) => r !== undefined) ? { raw: raw as HostArray[] } : {}),
    };
  }
}

/** `bytes` as a host array of `length` elements, sharing its memory; undefined when misaligned for its dtype. */
function asHostArray(bytes: Uint8Array, dtype: FloatDtype, length: number): HostArray | undefined {
  const size = dtypeSize(dtype);
  if (bytes.byteOffset % size !== 0 || bytes.byteLength < length * size) return undefined;
  return dtype === 'F32' ? { dtype, data: new Float32Array(bytes.buffer, bytes.byteOffset, length) } : { dtype, data: new Uint16Array(bytes.buffer, bytes.byteOffset, length) };
}

/**
 * bf16 bytes as the f32 values of their f16 rounding, in one pass: a bf16 value in f16's normal range
 * (its 8 significant bits fit f16's 11) is its own f16 value; the rest are rounded.
 */
function decodeBf16ToF16(bytes: Uint8Array, out: Float32Array): void {
  const src = new Uint16Array(bytes.buffer, bytes.byteOffset, out.length);
  const dst = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < out.length; i++) {
    const b = (src[i]! << 16) >>> 0;
    const a = b & 0x7fffffff;
    dst[i] = a >= 0x38800000 && a < 0x477ff000 ? b : f32BitsRoundedToF16(b);
  }
}

/** Rounds f32 values to a narrower float dtype and back, as torch's `.to(dtype)` would. */
export function roundInPlace(values: Float32Array, dtype: 'BF16' | 'F16'): void {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (dtype === 'BF16') {
    for (let i = 0; i < bits.length; i++) bits[i] = f32BitsToBf16(bits[i]!) << 16;
  } else {
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i]!;
      const a = b & 0x7fffffff;
      // A normal f16 rounds on its bits here; the rest (subnormal, overflow, NaN) in the function.
      bits[i] = a >= 0x38800000 && a < 0x477ff000 ? (b + 0xfff + ((b >>> 13) & 1)) & 0xffffe000 : f32BitsRoundedToF16(b);
    }
  }
}

/**
 * Elements per chunk so that every input, its f32 copy and the output fit the budget `sets` times
 * over (two sets: the chunk computed and the one read; three with the next tensor's first read).
 */
export function chunkElementsFor(inputs: PlannedInput[], outBytesPerElement: number, budget: number, rowLength: number, wholeRows = false, sets = 2): number {
  const perElement = inputs.reduce((sum, i) => sum + dtypeSize(i.dtype) + 4, 0) + 4 + outBytesPerElement;
  let elements = Math.max(1, Math.floor(budget / (sets * perElement)));
  if (wholeRows && elements < rowLength) return rowLength;
  if (rowLength > 0 && elements > rowLength) elements -= elements % rowLength;
  return elements;
}
