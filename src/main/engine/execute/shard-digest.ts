import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * A shard's digest, as the journal records it: the file cut into pieces of PIECE_BYTES from its first
 * byte, each piece's SHA-256, and the SHA-256 of those digests (32 bytes each, in file order). One
 * SHA-256 stream runs at 1–2 GB/s on one core, slower than an NVMe disk takes a merge's output; the
 * pieces are hashed on several threads at once, so the hash keeps up with the disk.
 */
export const PIECE_BYTES = 8 << 20;

/** Threads hashing pieces: a few, leaving the cores to the merge's kernels when there are few. */
export function defaultHashThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 2));
}

/**
 * What each hashing thread runs: one SHA-256 per piece it is given (piece k goes to thread k mod n,
 * so a piece's parts reach its thread in order). Plain CommonJS text (`eval: true`), as the CPU
 * backend's workers, so no bundler has to find a worker file. Views of SharedArrayBuffers (the buffer
 * pool's) reach it without a copy.
 */
const HASHER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
let pieces = new Map();
parentPort.on('message', ({ id, piece, bytes, end, reset }) => {
  if (reset) { pieces = new Map(); parentPort.postMessage({ id }); return; }
  let hash = pieces.get(piece);
  if (!hash) pieces.set(piece, (hash = createHash('sha256')));
  if (bytes) hash.update(bytes);
  if (!end) { parentPort.postMessage({ id }); return; }
  pieces.delete(piece);
  parentPort.postMessage({ id, digest: hash.digest() });
});
`;

interface Waiting {
  resolve: (digest: Uint8Array | undefined) => void;
  reject: (error: Error) => void;
}

class HashThread {
  private worker: Worker | undefined;
  private next = 0;
  private readonly waiting = new Map<number, Waiting>();
  private failure: Error | undefined;

  send(message: { piece?: number; bytes?: Uint8Array; end?: boolean; reset?: boolean }): Promise<Uint8Array | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    const worker = (this.worker ??= this.start());
    const id = this.next++;
    worker.ref();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, ...message });
    });
  }

  async dispose(): Promise<void> {
    await this.worker?.terminate();
    this.worker = undefined;
  }

  private start(): Worker {
    const worker = new Worker(HASHER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', ({ id, digest }: { id: number; digest?: Uint8Array }) => {
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

/** A shard's digest (see PIECE_BYTES), fed its bytes in file order, computed on worker threads. */
export class ShardHasher {
  private readonly threads: HashThread[];
  private position = 0;
  private digests: Promise<Uint8Array | undefined>[] = [];

  constructor(threads = defaultHashThreads()) {
    this.threads = Array.from({ length: Math.max(1, threads) }, () => new HashThread());
  }

  /** Adds `bytes` to the digest; resolves once the threads have read them (the buffer may then be reused). */
  update(bytes: Uint8Array): Promise<unknown> {
    const reads: Promise<unknown>[] = [];
    for (let offset = 0; offset < bytes.length; ) {
      const piece = Math.floor(this.position / PIECE_BYTES);
      const room = (piece + 1) * PIECE_BYTES - this.position;
      const take = Math.min(room, bytes.length - offset);
      const read = this.thread(piece).send({ piece, bytes: bytes.subarray(offset, offset + take), end: take === room });
      if (take === room) this.digests[piece] = read;
      reads.push(read);
      this.position += take;
      offset += take;
    }
    return Promise.all(reads);
  }

  /** The hex digest of everything since the last digest, then starts over. */
  async digest(): Promise<string> {
    const piece = Math.floor(this.position / PIECE_BYTES);
    if (this.position % PIECE_BYTES !== 0) this.digests[piece] = this.thread(piece).send({ piece, end: true });
    const digests = this.digests;
    this.digests = [];
    this.position = 0;
    try {
      return combinePieceDigests((await Promise.all(digests)) as Uint8Array[]);
    } catch (error) {
      await Promise.allSettled(this.threads.map((t) => t.send({ reset: true })));
      throw error;
    }
  }

  async dispose(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.dispose()));
  }

  private thread(piece: number): HashThread {
    return this.threads[piece % this.threads.length]!;
  }
}

export function combinePieceDigests(digests: readonly Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const d of digests) hash.update(d);
  return hash.digest('hex');
}

/**
 * The digest of a file on disk, read a piece at a time with a few pieces in flight, hashed on
 * `hasher`'s threads (a hasher of its own when none is given).
 */
export async function shardDigestOfFile(path: string, hasher?: ShardHasher): Promise<string> {
  const own = hasher ?? new ShardHasher();
  const handle = await open(path, 'r');
  const free = Array.from({ length: 3 }, () => new Uint8Array(new SharedArrayBuffer(PIECE_BYTES)));
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  try {
    for (;;) {
      while (free.length === 0 && failure === undefined) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
      const buffer = free.pop()!;
      const { bytesRead } = await handle.read(buffer, 0, PIECE_BYTES, null);
      if (bytesRead === 0) break;
      const hashed: Promise<void> = own.update(buffer.subarray(0, bytesRead)).then(
        () => void free.push(buffer),
        (error: unknown) => void (failure ??= error),
      );
      inFlight.add(hashed);
      void hashed.then(() => inFlight.delete(hashed));
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    return await own.digest();
  } catch (error) {
    if (hasher) await hasher.digest().catch(() => undefined);
    throw error;
  } finally {
    await handle.close();
    if (!hasher) await own.dispose();
  }
}
