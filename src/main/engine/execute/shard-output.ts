import { layoutShard, SafetensorsShardWriter, type PlannedTensor } from '../safetensors/writer';
import type { BufferPool } from './buffer-pool';
import { WritesInFlight } from '../safetensors/writes-in-flight';
import type { ShardHasher } from './shard-digest';

/** Writes in flight at once: the disk (and the page cache) work while the next chunks are computed. */
const MAX_IN_FLIGHT = 3;

/**
 * One shard's bytes on their way to disk through SafetensorsShardWriter: each piece copied into a
 * pooled buffer (the caller may reuse its own at once), written with a few writes in flight, and,
 * when the pieces come in file order (the executor computes tensors in the shard's layout order),
 * hashed as they go, so the journal's digest needs no read-back.
 */
export class ShardOutput {
  private readonly writes = new WritesInFlight(MAX_IN_FLIGHT);
  /** The file offset the hash has reached; pieces out of order turn hashing off (then: a read-back). */
  private hashedTo: number;
  private hashing: boolean;
  private readonly offsets: Map<string, number>;
  private readonly headerBytes: number;
  private readonly totalBytes: number;

  private constructor(
    private readonly writer: SafetensorsShardWriter,
    layout: ReturnType<typeof layoutShard>,
    private readonly pool: BufferPool,
    private readonly hasher: ShardHasher | undefined,
  ) {
    this.offsets = layout.offsets;
    this.headerBytes = layout.header.byteLength;
    this.totalBytes = layout.totalBytes;
    this.hashedTo = layout.header.byteLength;
    this.hashing = hasher !== undefined;
    hasher?.update(layout.header);
  }

  /** With `direct`, the shard is written past the page cache, staged in the pool's (page-aligned) buffers. */
  static async create(path: string, tensors: PlannedTensor[], pool: BufferPool, hasher?: ShardHasher, direct = false): Promise<ShardOutput> {
    const writer = await SafetensorsShardWriter.create(path, tensors, { format: 'pt' }, direct ? pool : undefined);
    return new ShardOutput(writer, layoutShard(tensors, { format: 'pt' }), pool, hasher);
  }

  /**
   * Queues `fill`'s bytes (`length` of them, put into a pooled buffer by `fill`, at once or by the
   * promise it returns) for tensor `name` at `byteStart`; resolves once fewer than MAX_IN_FLIGHT
   * writes are left in flight.
   */
  async write(name: string, byteStart: number, length: number, fill: (bytes: Uint8Array) => void | Promise<unknown>): Promise<void> {
    this.writes.check();
    const bytes = this.pool.take(length);
    try {
      await fill(bytes);
    } catch (error) {
      this.pool.give(bytes);
      throw error;
    }
    return this.writeTaken(name, byteStart, bytes);
  }

  /**
   * As `write`, for `bytes` that are already a buffer of the pool (a kernel's output where it was
   * computed): the output takes it over, with no copy, and gives it back to the pool once written.
   */
  async writeTaken(name: string, byteStart: number, bytes: Uint8Array): Promise<void> {
    try {
      this.writes.check();
    } catch (error) {
      this.pool.give(bytes);
      throw error;
    }
    const at = this.headerBytes + this.offsets.get(name)! + byteStart;
    if (this.hashing && at === this.hashedTo) {
      this.hasher!.update(bytes);
      this.hashedTo += bytes.byteLength;
    } else this.hashing = false;
    await this.writes.add(this.writer.write(name, bytes, byteStart).finally(() => this.pool.give(bytes)));
  }

  /**
   * Ends the shard once every byte is queued: its digest at once (each piece was hashed as it was
   * queued; undefined when they came out of order), so the hasher is free for the next shard, and
   * `flushed`, which settles once every write is done and the shard is flushed and renamed. The
   * caller may start the next shard meanwhile.
   */
  finish(): { digest: string | undefined; flushed: Promise<void> } {
    const whole = this.hashing && this.hashedTo === this.totalBytes;
    const digest = this.hasher?.digest();
    return { digest: whole ? digest : undefined, flushed: this.flush() };
  }

  private async flush(): Promise<void> {
    try {
      await this.writes.drain();
      await this.writer.commit();
    } catch (error) {
      await this.writer.abort();
      throw error;
    }
  }

  async abort(): Promise<void> {
    await this.writes.settle();
    // The hash in progress is thrown away, so the next shard's starts clean.
    this.hasher?.digest();
    await this.writer.abort();
  }
}
