import { bytesPerElement, type ComputeBackend, type HostArray } from '../compute/types';

/**
 * f32 arrays reused from chunk to chunk, in the backend's own memory where it has some (so its
 * kernels read and write them where they are); `release` gives that memory back.
 */
export class HostScratch {
  private readonly blocks = new Map<string, Uint8Array>();

  constructor(private readonly backend: ComputeBackend) {}

  f32(name: string, length: number): Float32Array {
    const bytes = this.bytes(name, 4 * length);
    return new Float32Array(bytes.buffer, bytes.byteOffset, length);
  }

  /** `length` elements of `dtype` under `name`, as `f32` keeps them. */
  host(name: string, dtype: 'F32' | 'BF16', length: number): HostArray {
    if (dtype === 'F32') return { dtype, data: this.f32(name, length) };
    const bytes = this.bytes(name, bytesPerElement(dtype) * length);
    return { dtype, data: new Uint16Array(bytes.buffer, bytes.byteOffset, length) };
  }

  zeros(length: number): Float32Array {
    const bytes = this.bytes('zeros', 4 * length, true);
    return new Float32Array(bytes.buffer, bytes.byteOffset, length);
  }

  /**
   * The block `name`, at least `size` bytes (made anew when it is smaller). Only `zeros` is zeroed,
   * once, when it is made (nothing writes it); the others hold whatever was last in that memory, and
   * zeroing them on every tensor had cost sce 5 % of its CPU.
   */
  private bytes(name: string, size: number, zeroed = false): Uint8Array {
    let bytes = this.blocks.get(name);
    if (!bytes || bytes.byteLength < size) {
      if (bytes) this.backend.releaseHost?.(bytes);
      bytes = this.backend.allocateHost ? this.backend.allocateHost(size) : new Uint8Array(size);
      if (zeroed) bytes.fill(0);
      this.blocks.set(name, bytes);
    }
    return bytes;
  }

  release(): void {
    for (const bytes of this.blocks.values()) this.backend.releaseHost?.(bytes);
    this.blocks.clear();
  }
}
