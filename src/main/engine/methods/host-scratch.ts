import { bytesPerElement, type ComputeBackend, type HostArray, type StepDtype } from '../compute/types';
import type { FloatDtype } from '../safetensors/dtype';

/**
 * Each backend's block of zeros, kept from tensor to tensor: nothing writes it, so it is zeroed only
 * when it grows (zeroing it for every tensor had cost sce 5 % of its CPU).
 */
const zeroBlocks = new WeakMap<ComputeBackend, Uint8Array>();

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
  host(name: string, dtype: FloatDtype, length: number): HostArray {
    if (dtype === 'F32') return { dtype, data: this.f32(name, length) };
    const bytes = this.bytes(name, bytesPerElement(dtype) * length);
    return { dtype, data: new Uint16Array(bytes.buffer, bytes.byteOffset, length) };
  }

  /**
   * An array for the results of steps rounded to `step`: bf16 ones as bf16 (the kernels read it as
   * stored), f16 ones as f32 holding f16 values (the kernels would convert an f16 array on every call;
   * every op that writes it must round to the step itself).
   */
  stepArray(name: string, step: StepDtype, length: number): HostArray {
    return this.host(name, step === 'BF16' ? 'BF16' : 'F32', length);
  }

  /** `length` zeros, which the caller must not write. */
  zeros(length: number): Float32Array {
    let bytes = zeroBlocks.get(this.backend);
    if (!bytes || bytes.byteLength < 4 * length) {
      if (bytes) this.backend.releaseHost?.(bytes);
      bytes = this.allocate(4 * length).fill(0);
      zeroBlocks.set(this.backend, bytes);
    }
    return new Float32Array(bytes.buffer, bytes.byteOffset, length);
  }

  /**
   * The block `name`, at least `size` bytes (made anew when it is smaller), holding whatever was last
   * in that memory (zeroing blocks on every tensor had cost sce 5 % of its CPU).
   */
  private bytes(name: string, size: number): Uint8Array {
    let bytes = this.blocks.get(name);
    if (!bytes || bytes.byteLength < size) {
      if (bytes) this.backend.releaseHost?.(bytes);
      bytes = this.allocate(size);
      this.blocks.set(name, bytes);
    }
    return bytes;
  }

  private allocate(size: number): Uint8Array {
    return this.backend.allocateHost ? this.backend.allocateHost(size) : new Uint8Array(size);
  }

  release(): void {
    for (const bytes of this.blocks.values()) this.backend.releaseHost?.(bytes);
    this.blocks.clear();
  }
}
