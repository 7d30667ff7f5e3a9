import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { DIRECT_ALIGNMENT } from './reader';
import { writeFully } from './write-fully';
import { WritesInFlight } from './writes-in-flight';

/** Bytes staged before a direct write: the disk sees large aligned writes. */
const STAGE_BYTES = 8 << 20;
/** Direct writes in flight at once. */
const MAX_IN_FLIGHT = 3;

/** Where staging buffers come from: page-aligned memory (the engine's BufferPool). */
export interface AlignedBuffers {
  take(bytes: number): Uint8Array;
  give(bytes: Uint8Array): void;
}

/**
 * A file written front to back past the page cache (Linux's O_DIRECT): bytes that arrive in order
 * are copied into page-aligned staging buffers, each written whole when full; the last, partial page
 * goes through `buffered` (the file's ordinary descriptor) at the end. Bytes out of order, or a file
 * system that refuses direct writes (EINVAL), turn the rest of the file to `buffered`, with the same
 * bytes on disk. The caller fsyncs and closes `buffered` after `finish`.
 */
export class DirectFileSink {
  private stage: Uint8Array | undefined;
  /** The file offset of the stage's first byte (page-aligned), and the bytes in it. */
  private stageStart = 0;
  private filled = 0;
  /** The offset the next byte in order goes to. */
  private cursor = 0;
  private viaCache = false;
  private readonly writes = new WritesInFlight(MAX_IN_FLIGHT);
  /** Writes are taken one after another (a write may wait for room in the middle of its bytes). */
  private queue: Promise<unknown> = Promise.resolve();
  /** Bytes that reached the disk by direct writes. */
  bytesWrittenDirect = 0;

  private constructor(
    private readonly direct: FileHandle,
    private readonly buffered: FileHandle,
    private readonly buffers: AlignedBuffers,
  ) {}

  /** A sink over `path` (already opened as `buffered`), or undefined where it cannot be opened for direct writes. */
  static async open(path: string, buffered: FileHandle, buffers: AlignedBuffers): Promise<DirectFileSink | undefined> {
    if (constants.O_DIRECT === undefined) return undefined;
    const direct = await open(path, constants.O_WRONLY | constants.O_DIRECT).catch(() => undefined);
    return direct && new DirectFileSink(direct, buffered, buffers);
  }

  /** Takes `bytes` for `position`; the buffer may be reused once this resolves. */
  write(bytes: Uint8Array, position: number): Promise<void> {
    const done = this.queue.then(() => this.take(bytes, position));
    this.queue = done.catch(() => undefined);
    return done;
  }

  private async take(bytes: Uint8Array, position: number): Promise<void> {
    this.writes.check();
    if (!this.viaCache && position !== this.cursor) await this.turnToCache();
    if (this.viaCache) return writeFully(this.buffered, bytes, position);
    for (let done = 0; done < bytes.byteLength; ) {
      this.stage ??= this.buffers.take(STAGE_BYTES);
      const n = Math.min(STAGE_BYTES - this.filled, bytes.byteLength - done);
      this.stage.set(bytes.subarray(done, done + n), this.filled);
      this.filled += n;
      this.cursor += n;
      done += n;
      if (this.filled === STAGE_BYTES) await this.emitStage();
    }
  }

  /** Writes what is staged (its whole pages directly, the last partial page through the cache) and waits for every write. */
  async finish(): Promise<void> {
    await this.queue;
    const stage = this.stage;
    this.stage = undefined;
    try {
      if (stage) {
        const whole = this.filled - (this.filled % DIRECT_ALIGNMENT);
        // Both settle before the stage goes back; the first failure is thrown.
        const done = await Promise.allSettled([this.writeStage(stage.subarray(0, whole), this.stageStart), writeFully(this.buffered, stage.subarray(whole, this.filled), this.stageStart + whole)]);
        for (const d of done) if (d.status === 'rejected') throw d.reason;
      }
      await this.writes.drain();
    } finally {
      if (stage) this.buffers.give(stage);
    }
  }

  async close(): Promise<void> {
    await this.queue;
    await this.writes.settle();
    if (this.stage) this.buffers.give(this.stage);
    this.stage = undefined;
    await this.direct.close().catch(() => undefined);
  }

  /** Issues the full stage's direct write; waits while too many are in flight. */
  private async emitStage(): Promise<void> {
    const stage = this.stage!;
    const at = this.stageStart;
    this.stage = undefined;
    this.stageStart += STAGE_BYTES;
    this.filled = 0;
    await this.writes.add(this.writeStage(stage, at).finally(() => this.buffers.give(stage)));
  }

  /** A direct write of whole pages; where the file system refuses it, the same bytes through the cache, and the cache from then on. */
  private async writeStage(bytes: Uint8Array, position: number): Promise<void> {
    if (bytes.byteLength === 0) return;
    if (!this.viaCache) {
      try {
        await writeFully(this.direct, bytes, position);
        this.bytesWrittenDirect += bytes.byteLength;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
        this.viaCache = true;
      }
    }
    await writeFully(this.buffered, bytes, position);
  }

  /** From here on every byte goes through the cache; what is staged is written that way now. */
  private async turnToCache(): Promise<void> {
    this.viaCache = true;
    if (this.stage) {
      const stage = this.stage;
      this.stage = undefined;
      try {
        await writeFully(this.buffered, stage.subarray(0, this.filled), this.stageStart);
      } finally {
        this.buffers.give(stage);
      }
    }
  }
}
