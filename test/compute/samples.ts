import { bitsToF32, f32BitsToBf16, f32BitsToF16, f32Bits } from '../../src/main/engine/safetensors/convert';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { toF32 } from '../../src/main/engine/compute/reference';
import type { ComputeBackend, HostArray } from '../../src/main/engine/compute/types';
import type { TensorSource } from '../../src/main/engine/methods/types';

/** mulberry32: a small seeded generator, so every failure reproduces. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * f32 values shaped like model weights: random sign and mantissa, exponents spread over
 * [minExp, maxExp], with ±0 and repeats sprinkled in.
 */
export function weights(n: number, random: () => number, minExp = -30, maxExp = 3): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = random();
    if (r < 0.01) out[i] = r < 0.005 ? 0 : -0;
    else if (r < 0.02 && i > 0) out[i] = out[i - 1]!;
    else {
      const exp = minExp + Math.floor(random() * (maxExp - minExp + 1));
      const mant = Math.floor(random() * 0x800000);
      const sign = random() < 0.5 ? 0x80000000 : 0;
      out[i] = bitsToF32((sign | ((exp + 127) << 23) | mant) >>> 0);
    }
  }
  return out;
}

/** `base` nudged per element: equal, within 1e-6, within a few t, or far; for nearswap. */
export function neighbours(base: Float32Array, random: () => number): Float32Array {
  const out = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const r = random();
    const scale = r < 0.1 ? 0 : r < 0.3 ? 1e-7 : r < 0.7 ? 1e-3 : 1;
    out[i] = base[i]! + (random() - 0.5) * scale;
  }
  return out;
}

/** Every f32 bit pattern class that matters: zeros, subnormals, the extremes of bf16 and f16. */
export function edgeValues(): Float32Array {
  const bits = [0, 0x80000000, 1, 0x80000001, 0x007fffff, 0x00800000, 0x3f800000, 0xbf800000, 0x7f7f0000, 0x477fe000, 0x33800000, 0x38800000, 0x387fc000, 0x00010000, 0x00030000, 0x3f808000, 0x3f818000, 0x3f80ffff, 0x3f801000, 0x3f803000, 0x477ff000, 0x477fefff, 0x33000000, 0x33400000];
  return new Float32Array(new Uint32Array(bits).buffer);
}

/** `values` stored as `dtype` (rounded to nearest even for the 16-bit ones). */
export function asHost(values: Float32Array, dtype: FloatDtype): HostArray {
  if (dtype === 'F32') return { dtype, data: values.slice() };
  const data = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = dtype === 'BF16' ? f32BitsToBf16(f32Bits(values[i]!)) : f32BitsToF16(f32Bits(values[i]!));
  return { dtype, data };
}

/** The index of the first element whose bits differ, or -1. */
export function firstDifference(a: HostArray, b: HostArray): number {
  const x = a.dtype === 'F32' ? new Uint32Array(a.data.buffer, a.data.byteOffset, a.data.length) : a.data;
  const y = b.dtype === 'F32' ? new Uint32Array(b.data.buffer, b.data.byteOffset, b.data.length) : b.data;
  if (x.length !== y.length) return 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

export function describeElement(array: HostArray, i: number): string {
  const v = array.data[i]!;
  if (array.dtype === 'F32') return `${v} (0x${f32Bits(v).toString(16)})`;
  return `0x${v.toString(16)}`;
}

/** `array` copied into `backend`'s own memory when it has some and `pin` is set (as the engine's buffer pool does). */
export function placed(backend: ComputeBackend, pin: boolean, array: HostArray): HostArray {
  if (!pin || !backend.allocateHost) return array;
  const bytes = backend.allocateHost(array.data.byteLength);
  bytes.set(new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength));
  return array.dtype === 'F32' ? { dtype: 'F32', data: new Float32Array(bytes.buffer, bytes.byteOffset, array.data.length) } : { dtype: array.dtype, data: new Uint16Array(bytes.buffer, bytes.byteOffset, array.data.length) };
}

/** A merge method's source over `inputs` in chunks of `chunk`: as stored (`raw`) and widened to f32. */
export function hostChunks(inputs: HostArray[], chunk: number): TensorSource {
  const widened = inputs.map(toF32);
  return {
    async *chunks() {
      for (let start = 0; start < widened[0]!.length; start += chunk) {
        const length = Math.min(chunk, widened[0]!.length - start);
        yield {
          start,
          length,
          inputs: widened.map((x) => x.subarray(start, start + length)),
          raw: inputs.map((h) => (h.dtype === 'F32' ? { dtype: 'F32' as const, data: h.data.subarray(start, start + length) } : { dtype: h.dtype, data: h.data.subarray(start, start + length) })),
        };
      }
    },
  };
}
