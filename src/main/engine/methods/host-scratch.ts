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
    return this.f32('zeros', length);
  }

  private bytes(name: string, size: number): Uint8Array {
    let bytes = this.blocks.get(name);
    if (!bytes || bytes.byteLength < size) {
      if (bytes) this.backend.releaseHost?.(bytes);
      bytes = this.backend.allocateHost ? this.backend.allocateHost(size) : new Uint8Array(size);
      // Zeroed once: only `zeros` relies on it, and nothing writes that one.
      bytes.fill(0);
      this.blocks.set(name, bytes);
    }
    return bytes;
  }

  release(): void {
    for (const bytes of this.blocks.values()) this.backend.releaseHost?.(bytes);
    this.blocks.clear();
  }
}
