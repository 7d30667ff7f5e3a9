import { HostHeap } from '../compute/host-heap';
import type { ComputeBackend } from '../compute/types';

const MIB = 1 << 20;

/**
 * The byte buffers of one run (chunks read, outputs, writes), reused from tensor to tensor. Fresh
 * memory costs a page fault per 4 KiB on first touch, which on a virtual machine costs more than the
 * merge arithmetic; a buffer taken back is already mapped. Where the compute backend has memory of
 * its own (`allocateHost`: the WASM backend's), buffers come from it, so its kernels read and write
 * them where they are; else from a heap of the pool's own (a shared WebAssembly memory). Either way
 * they start on page boundaries, as direct reads and writes need; past the 4 GiB of either heap (a budget
 * that large, or the backend's memory held by other arrays such as sort keys), plain
 * SharedArrayBuffers, which direct I/O turns away to the page cache and the kernels copy from.
 */
export class BufferPool {
  private readonly free: Uint8Array[] = [];
  private freeBytes = 0;
  /** Where buffers come from when the backend has no memory of its own. */
  private heap: HostHeap | undefined;

  constructor(
    private readonly backend?: Pick<ComputeBackend, 'allocateHost' | 'releaseHost' | 'bf16AsF16'>,
    /** Most bytes kept while unused; beyond that, the largest free buffers are let go. */
    private readonly keepBytes = 2 * 2 ** 30,
  ) {}

  /** bf16 values as their f16 rounding by the backend whose memory holds both buffers (`bf16AsF16`); false where it cannot. */
  bf16AsF16(src: Uint16Array, dst: Float32Array): boolean {
    return this.backend?.bf16AsF16?.(src, dst) ?? false;
  }

  /** A buffer of `bytes` (a view at the start of a pooled one). Give it back with `give`. */
  take(bytes: number): Uint8Array {
    // The smallest free buffer that holds it, unless it is more than twice the size asked for.
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const size = this.free[i]!.byteLength;
      if (size >= bytes && size <= 2 * Math.max(bytes, MIB) && (best < 0 || size < this.free[best]!.byteLength)) best = i;
    }
    if (best >= 0) {
      const [buffer] = this.free.splice(best, 1);
      this.freeBytes -= buffer!.byteLength;
      return buffer!.subarray(0, bytes);
    }
    const size = Math.ceil(Math.max(1, bytes) / MIB) * MIB;
    const whole = this.backend?.allocateHost ? this.fromBackend(size) : this.fromHeap(size);
    let places = this.wholes.get(whole.buffer);
    if (!places) this.wholes.set(whole.buffer, (places = new Map()));
    places.set(whole.byteOffset, whole);
    return whole.subarray(0, bytes);
  }

  /** Takes back a buffer from `take` (any view starting where it starts). */
  give(view: Uint8Array): void {
    const whole = this.wholes.get(view.buffer)?.get(view.byteOffset);
    if (!whole) throw new Error('BufferPool.give: not a buffer of this pool');
    this.free.push(whole);
    this.freeBytes += whole.byteLength;
    while (this.freeBytes > this.keepBytes && this.free.length > 0) {
      let largest = 0;
      for (let i = 1; i < this.free.length; i++) if (this.free[i]!.byteLength > this.free[largest]!.byteLength) largest = i;
      const [dropped] = this.free.splice(largest, 1);
      this.freeBytes -= dropped!.byteLength;
      this.release(dropped!);
    }
  }

  /** Lets every free buffer go (the backend's memory back to it). */
  dispose(): void {
    for (const buffer of this.free.splice(0)) this.release(buffer);
    this.freeBytes = 0;
  }

  /** Every buffer this pool made, by its ArrayBuffer and offset: `give` finds the whole from a view. */
  private readonly wholes = new WeakMap<ArrayBufferLike, Map<number, Uint8Array>>();

  /** Buffers made outside any heap, when the one they would come from was full (the garbage collector takes them back). */
  private readonly plain = new WeakSet<ArrayBufferLike>();

  private fromHeap(size: number): Uint8Array {
    try {
      return (this.heap ??= HostHeap.ownMemory()).allocate(size);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      return this.plainBuffer(size);
    }
  }

  /** The backend's memory, or past its 4 GiB (other arrays, such as sort keys, hold some of it) a plain buffer its kernels copy from. */
  private fromBackend(size: number): Uint8Array {
    try {
      return this.backend!.allocateHost!(size);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      return this.plainBuffer(size);
    }
  }

  private plainBuffer(size: number): Uint8Array {
    const buffer = new SharedArrayBuffer(size);
    this.plain.add(buffer);
    return new Uint8Array(buffer);
  }

  private release(whole: Uint8Array): void {
    this.wholes.get(whole.buffer)?.delete(whole.byteOffset);
    if (this.plain.has(whole.buffer)) return;
    if (this.backend?.releaseHost && this.backend.allocateHost) this.backend.releaseHost(whole);
    else this.heap?.release(whole);
  }
}
