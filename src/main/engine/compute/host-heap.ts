/** 64 KiB, a WebAssembly page: every block starts on one. */
const BLOCK_ALIGNMENT = 65536;
const MAX_PAGES = 65536;

interface SharedWasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
const Wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number; maximum: number; shared: true }) => SharedWasmMemory } }).WebAssembly;

/**
 * Blocks of a shared WebAssembly memory handed out and taken back: first fit, neighbours merged, a
 * free block at the top given back to the bump pointer. Each starts on a 64 KiB boundary of the
 * memory, and so on a page boundary in the address space too (a WebAssembly memory starts on one),
 * as direct I/O needs. The WASM backend's heap lies after its kernels' own areas; the buffer pool
 * has one of its own (`HostHeap.ownMemory`) where the backend has none.
 */
export class HostHeap {
  private top: number;
  /** Blocks in use (address → bytes) and free (sorted by address). */
  private readonly inUse = new Map<number, number>();
  private free: { at: number; bytes: number }[] = [];
  /** The buffer objects blocks were handed out on (a grown memory shows a new one). */
  private readonly buffers = new WeakSet<ArrayBufferLike>();

  /** `ensure(end)` makes the memory at least `end` bytes long; `buffer()` is its buffer now. */
  constructor(
    base: number,
    private readonly ensure: (end: number) => void,
    private readonly buffer: () => SharedArrayBuffer,
  ) {
    this.top = base;
  }

  /** A heap over a shared WebAssembly memory of its own, grown as blocks are taken (up to 4 GiB). */
  static ownMemory(): HostHeap {
    const memory = new Wasm.Memory({ initial: 0, maximum: MAX_PAGES, shared: true });
    const ensure = (end: number) => {
      const pages = Math.ceil(end / BLOCK_ALIGNMENT);
      const have = memory.buffer.byteLength / BLOCK_ALIGNMENT;
      if (pages > MAX_PAGES) throw new RangeError(`a heap of ${end} bytes is over the 4 GiB a WebAssembly memory holds`);
      if (pages > have) memory.grow(pages - have);
    };
    return new HostHeap(0, ensure, () => memory.buffer);
  }

  /** A block of `bytes`, as a view starting where the block starts. */
  allocate(bytes: number): Uint8Array {
    const size = Math.ceil(Math.max(1, bytes) / BLOCK_ALIGNMENT) * BLOCK_ALIGNMENT;
    const fit = this.free.findIndex((b) => b.bytes >= size);
    let at: number;
    if (fit >= 0) {
      const block = this.free[fit]!;
      at = block.at;
      if (block.bytes === size) this.free.splice(fit, 1);
      else this.free[fit] = { at: block.at + size, bytes: block.bytes - size };
    } else {
      at = this.top;
      this.ensure(at + size);
      this.top = at + size;
    }
    this.inUse.set(at, size);
    const buffer = this.buffer();
    this.buffers.add(buffer);
    return new Uint8Array(buffer, at, bytes);
  }

  /** Takes back the block `bytes` starts; false when it is not a view of a block of this heap. */
  release(bytes: Uint8Array): boolean {
    const size = this.buffers.has(bytes.buffer) ? this.inUse.get(bytes.byteOffset) : undefined;
    if (size === undefined) return false;
    this.inUse.delete(bytes.byteOffset);
    this.free.push({ at: bytes.byteOffset, bytes: size });
    this.free.sort((a, b) => a.at - b.at);
    const merged: { at: number; bytes: number }[] = [];
    for (const b of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.at + last.bytes === b.at) last.bytes += b.bytes;
      else merged.push({ ...b });
    }
    const top = merged[merged.length - 1];
    if (top && top.at + top.bytes === this.top) {
      this.top = top.at;
      merged.pop();
    }
    this.free = merged;
    return true;
  }
}
