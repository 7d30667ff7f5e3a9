import type { ComputeBackend } from '../compute/types';

/**
 * f32 arrays reused from chunk to chunk, in the backend's own memory where it has some (so its
 * kernels read and write them where they are); `release` gives that memory back.
 */
export class HostScratch {
  private readonly blocks = new Map<string, Uint8Array>();

  constructor(private readonly backend: ComputeBackend) {}

  f32(name: string, length: number): Float32Array {
    let bytes = this.blocks.get(name);
    if (!bytes || bytes.byteLength < 4 * length) {
      if (bytes) this.backend.releaseHost?.(bytes);
      bytes = this.backend.allocateHost ? this.backend.allocateHost(4 * length) : new Uint8Array(4 * length);
      // Zeroed once: only `zeros` relies on it, and nothing writes that one.
      bytes.fill(0);
      this.blocks.set(name, bytes);
    }
    return new Float32Array(bytes.buffer, bytes.byteOffset, length);
  }

  zeros(length: number): Float32Array {
    return this.f32('zeros', length);
  }

  release(): void {
    for (const bytes of this.blocks.values()) this.backend.releaseHost?.(bytes);
    this.blocks.clear();
  }
}
