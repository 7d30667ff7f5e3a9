import { Worker } from 'node:worker_threads';
import { layoutShard, SafetensorsShardWriter, type PlannedTensor } from '../safetensors/writer';
import type { BufferPool } from './buffer-pool';

/** Writes in flight at once: the disk (and the page cache) work while the next chunks are computed. */
const MAX_IN_FLIGHT = 3;

/**
 * SHA-256 on a worker thread, fed in order: the shard journal's hash, computed while the shard is
 * written instead of by reading the shard back. Plain CommonJS text (`eval: true`), as the CPU
 * backend's workers, so no bundler has to find a worker file. Views of SharedArrayBuffers (the
 * buffer pool's) reach it without a copy.
 */
const HASHER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
let hash = createHash('sha256');
parentPort.on('message', ({ id, bytes }) => {
  if (bytes) { hash.update(bytes); parentPort.postMessage({ id }); return; }
  parentPort.postMessage({ id, digest: hash.digest('hex') });
  hash = createHash('sha256');
});
`;

export class Sha256Worker {
  private worker: Worker | undefined;
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (digest: string | undefined) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  /** Adds `bytes` to the hash; resolves once the worker has read them (the buffer may then be reused). */
  update(bytes: Uint8Array): Promise<unknown> {
    return this.send({ bytes });
  }

  /** The hex digest of everything since the last digest, then starts over. */
  async digest(): Promise<string> {
    return (await this.send({}))!;
  }

  async dispose(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }

  private send(message: { bytes?: Uint8Array }): Promise<string | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    const worker = (this.worker ??= this.start());
    const id = this.next++;
    worker.ref();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, ...message });
    });
  }

  private start(): Worker {
    const worker = new Worker(HASHER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', ({ id, digest }: { id: number; digest?: string }) => {
      this.waiting.get(id)?.resolve(digest);
      this.waiting.delete(id);
      if (this.waiting.size === 0) worker.unref();
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      for (const w of this.waiting.values()) w.reject(error);
      this.waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`hashing worker exited (${code})`)));
    return worker;
  }
}

/**
 * One shard's bytes on their way to disk through SafetensorsShardWriter: each piece copied into a
 * pooled buffer (the caller may reuse its own at once), written with a few writes in flight, and,
 * when the pieces come in file order (the executor computes tensors in the shard's layout order),
 * hashed as they go, so the journal's sha256 needs no read-back.
 */
export class ShardOutput {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
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
    private readonly hasher: Sha256Worker | undefined,
  ) {
    this.offsets = layout.offsets;
    this.headerBytes = layout.header.byteLength;
    this.totalBytes = layout.totalBytes;
    this.hashedTo = layout.header.byteLength;
    this.hashing = hasher !== undefined;
    if (hasher) this.track(hasher.update(layout.header));
  }

  static async create(path: string, tensors: PlannedTensor[], pool: BufferPool, hasher?: Sha256Worker): Promise<ShardOutput> {
    const writer = await SafetensorsShardWriter.create(path, tensors);
    return new ShardOutput(writer, layoutShard(tensors, { format: 'pt' }), pool, hasher);
  }

  /**
   * Queues `fill`'s bytes (`length` of them, put into a pooled buffer by `fill`, at once or by the
   * promise it returns) for tensor
   * `name` at `byteStart`; resolves once fewer than MAX_IN_FLIGHT writes are left in flight.
   */
  async write(name: string, byteStart: number, length: number, fill: (bytes: Uint8Array) => void | Promise<unknown>): Promise<void> {
    if (this.failure) throw this.failure;
    const bytes = this.pool.take(length);
    try {
      await fill(bytes);
    } catch (error) {
      this.pool.give(bytes);
      throw error;
    }
    const at = this.headerBytes + this.offsets.get(name)! + byteStart;
    const hashed = this.hashing && at === this.hashedTo ? this.hasher!.update(bytes) : undefined;
    if (this.hashing) {
      if (hashed) this.hashedTo += length;
      else this.hashing = false;
    }
    const done = Promise.all([this.writer.write(name, bytes, byteStart), hashed]).then(
      () => this.pool.give(bytes),
      (error: unknown) => {
        this.failure ??= error;
        this.pool.give(bytes);
      },
    );
    this.track(done);
    while (this.inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
  }

  /** Waits for every write, flushes and renames the shard; its sha256 when every byte was hashed in order. */
  async commit(): Promise<{ sha256: string | undefined }> {
    await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
    await this.writer.commit();
    const whole = this.hashing && this.hashedTo === this.totalBytes;
    const digest = this.hasher ? await this.hasher.digest() : undefined;
    return { sha256: whole ? digest : undefined };
  }

  async abort(): Promise<void> {
    await Promise.allSettled(this.inFlight);
    // The hash in progress is thrown away, so the next shard's starts clean.
    if (this.hasher) await this.hasher.digest().catch(() => undefined);
    await this.writer.abort();
  }

  private track(work: Promise<unknown>): void {
    const p = work.then(
      () => undefined,
      (error: unknown) => {
        this.failure ??= error;
      },
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }
}
