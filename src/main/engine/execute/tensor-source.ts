import { decodeToF32, f32BitsToBf16, f32BitsToF16, f16ToF32Bits } from '../safetensors/convert';
import { dtypeSize, isFloatDtype, type FloatDtype } from '../safetensors/dtype';
import type { SafetensorsReader } from '../safetensors/reader';
import type { HostArray } from '../compute/types';
import type { Chunk, TensorSource } from '../methods/types';
import type { PlannedInput } from '../plan/types';

/**
 * Reads the inputs of one output tensor in chunks of whole rows, decoding each to f32, with the
 * next chunk's reads in flight while the current one is computed. A tensor that fits in one chunk
 * is kept, so methods that make several passes read it once.
 */
export class ChunkedTensorSource implements TensorSource {
  private cached: Chunk | undefined;
  bytesRead = 0;

  constructor(
    private readonly readers: SafetensorsReader[],
    private readonly inputs: PlannedInput[],
    private readonly numel: number,
    private readonly chunkElements: number,
    private readonly computeDtype: FloatDtype | undefined,
    private readonly signal?: AbortSignal,
  ) {}

  async *chunks(): AsyncIterable<Chunk> {
    if (this.cached) {
      yield this.cached;
      return;
    }
    const single = this.numel <= this.chunkElements;
    // Two sets of buffers: one holds the chunk being computed, the other the chunk being read.
    const sets = single ? [this.allocate(this.numel)] : [this.allocate(this.chunkElements), this.allocate(this.chunkElements)];
    let turn = 0;
    let next: Promise<Chunk> | undefined = this.readChunk(0, sets[0]!);
    for (let start = 0; next; ) {
      const chunk = await next;
      start += chunk.length;
      turn ^= sets.length - 1;
      next = start < this.numel ? this.readChunk(start, sets[turn]!) : undefined;
      if (single) this.cached = chunk;
      yield chunk;
      this.signal?.throwIfAborted();
    }
  }

  private allocate(elements: number): { bytes: Uint8Array[]; values: Float32Array[] } {
    return {
      bytes: this.inputs.map((i) => new Uint8Array(elements * dtypeSize(i.dtype))),
      values: this.inputs.map(() => new Float32Array(elements)),
    };
  }

  /**
   * Reads a chunk into `set`; its views stay valid until the chunk after next is read. The f32 views
   * are decoded when first asked for: a method that computes on a backend takes `raw` instead.
   */
  private async readChunk(start: number, set: { bytes: Uint8Array[]; values: Float32Array[] }): Promise<Chunk> {
    const length = Math.min(this.chunkElements, this.numel - start);
    const read = await Promise.all(
      this.inputs.map(async (input, i) => {
        if (!isFloatDtype(input.dtype)) throw new Error(`tensor "${input.tensor}" has dtype ${input.dtype}, which cannot be merged`);
        const size = dtypeSize(input.dtype);
        const bytes = await this.readers[i]!.read(input.tensor, set.bytes[i], start * size, length * size);
        this.bytesRead += bytes.byteLength;
        return { input, dtype: input.dtype, bytes };
      }),
    );
    const decode = (): Float32Array[] =>
      read.map(({ dtype, bytes }, i) => {
        const values = set.values[i]!.subarray(0, length);
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

/** Rounds f32 values to a narrower float dtype and back, as torch's `.to(dtype)` would. */
export function roundInPlace(values: Float32Array, dtype: 'BF16' | 'F16'): void {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (dtype === 'BF16') {
    for (let i = 0; i < bits.length; i++) bits[i] = f32BitsToBf16(bits[i]!) << 16;
  } else {
    for (let i = 0; i < bits.length; i++) bits[i] = f16ToF32Bits(f32BitsToF16(bits[i]!));
  }
}

/** Elements per chunk so that every input, its f32 copy and the output fit the budget twice over. */
export function chunkElementsFor(inputs: PlannedInput[], outBytesPerElement: number, budget: number, rowLength: number, wholeRows = false): number {
  const perElement = inputs.reduce((sum, i) => sum + dtypeSize(i.dtype) + 4, 0) + 4 + outBytesPerElement;
  let elements = Math.max(1, Math.floor(budget / (2 * perElement)));
  if (wholeRows && elements < rowLength) return rowLength;
  if (rowLength > 0 && elements > rowLength) elements -= elements % rowLength;
  return elements;
}
