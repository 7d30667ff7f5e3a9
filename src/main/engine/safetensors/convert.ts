import type { FloatDtype } from './dtype';

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('Alloy needs a little-endian machine: safetensors data is little-endian');
}

const scratch = new DataView(new ArrayBuffer(4));

export function f32Bits(value: number): number {
  scratch.setFloat32(0, value, true);
  return scratch.getUint32(0, true);
}

export function bitsToF32(bits: number): number {
  scratch.setUint32(0, bits >>> 0, true);
  return scratch.getFloat32(0, true);
}

/** torch's c10::BFloat16 rounding: round to nearest even; every NaN becomes 0x7FC0. */
export function f32BitsToBf16(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE binary16 from binary32 bits with round to nearest even, subnormals kept; NaN as torch writes it. */
export function f32BitsToF16(bits: number): number {
  const a = bits & 0x7fffffff;
  // The common case, a normal f16 (2^-14 ≤ |x| < 65520): round the mantissa at bit 13 and rebias the exponent.
  if (a >= 0x38800000 && a < 0x477ff000) return ((bits >>> 16) & 0x8000) | (((a + 0xfff + ((a >>> 13) & 1)) >>> 13) - 0x1c000);
  return f32BitsToF16Slow(bits);
}

/**
 * The f32 bits of `bits` rounded to f16 (nearest even, as `f16ToF32Bits(f32BitsToF16(bits))`): in
 * place on the bits where the result is a normal f16.
 */
export function f32BitsRoundedToF16(bits: number): number {
  const a = bits & 0x7fffffff;
  if (a >= 0x38800000 && a < 0x477ff000) return ((bits + 0xfff + ((bits >>> 13) & 1)) & 0xffffe000) >>> 0;
  return f16ToF32Bits(f32BitsToF16Slow(bits));
}

function f32BitsToF16Slow(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | (mant !== 0 ? 0x7e00 : 0x7c00);
  const e = exp - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

export function f16ToF32Bits(half: number): number {
  const sign = (half & 0x8000) << 16;
  const exp = (half >>> 10) & 0x1f;
  let mant = half & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

let f16Table: Float32Array | undefined;

function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    const bits = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) bits[h] = f16ToF32Bits(h);
    f16Table = new Float32Array(bits.buffer);
  }
  return f16Table;
}

function u16View(bytes: Uint8Array): Uint16Array {
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1);
}

/** Decodes little-endian F32/F16/BF16 bytes into `out` (same element count). */
export function decodeToF32(bytes: Uint8Array, dtype: FloatDtype, out: Float32Array): void {
  const n = out.length;
  if (dtype === 'F32') {
    new Uint8Array(out.buffer, out.byteOffset, n * 4).set(bytes.subarray(0, n * 4));
    return;
  }
  const src = u16View(bytes);
  if (dtype === 'BF16') {
    const dst = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
    return;
  }
  const table = f16ToF32Table();
  for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
}

/** Encodes f32 values into little-endian bytes of `dtype`, rounding to nearest even. */
export function encodeFromF32(values: Float32Array, dtype: FloatDtype, out: Uint8Array): void {
  const n = values.length;
  if (dtype === 'F32') {
    out.set(new Uint8Array(values.buffer, values.byteOffset, n * 4));
    return;
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  const dst = u16View(out);
  if (dtype === 'BF16') {
    for (let i = 0; i < n; i++) dst[i] = f32BitsToBf16(bits[i]!);
  } else {
    for (let i = 0; i < n; i++) dst[i] = f32BitsToF16(bits[i]!);
  }
}
