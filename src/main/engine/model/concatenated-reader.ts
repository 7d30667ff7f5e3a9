import { EngineError } from '../errors';
import type { TensorReader } from '../safetensors/reader';

/** One tensor of a checkpoint that is a piece of a converted tensor. */
export interface TensorPart {
  reader: TensorReader;
  /** Its name in its file. */
  tensor: string;
  byteLength: number;
}

/**
 * A tensor that is several checkpoint tensors' bytes one after another (experts stacked and gate and
 * up joined, as transformers converts a per-expert checkpoint on load), read by byte range like a
 * stored one: a read that spans parts reads each piece into its place, and nothing is held between reads.
 */
export class ConcatenatedReader implements TensorReader {
  readonly byteLength: number;

  constructor(
    readonly name: string,
    private readonly parts: readonly TensorPart[],
  ) {
    if (parts.length === 0) throw new Error(`"${name}" has no parts`);
    this.byteLength = parts.reduce((sum, p) => sum + p.byteLength, 0);
  }

  get path(): string {
    return this.parts[0]!.reader.path;
  }

  async read(name: string, into?: Uint8Array, start = 0, length?: number): Promise<Uint8Array> {
    if (name !== this.name) throw new EngineError(`${this.path}: no tensor named "${name}"`, { file: this.path, tensor: name });
    const count = length ?? this.byteLength - start;
    if (start < 0 || count < 0 || start + count > this.byteLength) {
      throw new EngineError(`${this.path}: read of bytes ${start}..${start + count} is outside tensor "${name}"`, { file: this.path, tensor: name });
    }
    const target = into ? into.subarray(0, count) : new Uint8Array(count);
    if (target.byteLength < count) throw new RangeError(`buffer of ${into?.byteLength} bytes cannot hold ${count}`);
    const reads: Promise<Uint8Array>[] = [];
    let partStart = 0;
    for (const part of this.parts) {
      const from = Math.max(start, partStart);
      const to = Math.min(start + count, partStart + part.byteLength);
      if (from < to) reads.push(part.reader.read(part.tensor, target.subarray(from - start, to - start), from - partStart, to - from));
      partStart += part.byteLength;
      if (partStart >= start + count) break;
    }
    await Promise.all(reads);
    return target;
  }
}
