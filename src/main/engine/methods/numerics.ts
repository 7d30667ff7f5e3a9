import type { StepDtype } from '../compute/types';
import { bitsToF32, f32Bits, f32BitsRoundedToF16 } from '../safetensors/convert';

const f = Math.fround;

function nextF32(x: number, up: boolean): number {
  if (x === 0) return up ? 2 ** -149 : -(2 ** -149);
  const bits = f32Bits(x);
  return bitsToF32(x > 0 === up ? bits + 1 : bits - 1);
}

/**
 * Single-rounding f32 fused multiply-add, as torch's vectorized `addcmul_` computes on CPU.
 * a·b is exact in f64; the sum's rounding error is recovered (TwoSum) to settle ties exactly.
 */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = f(s);
  if (r === s || !Number.isFinite(s)) return r;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  if (err === 0) return r;
  const other = nextF32(r, s > r);
  if (Math.abs(other - s) !== Math.abs(s - r)) return r;
  const trueAbove = err > 0;
  return trueAbove === other > r ? other : r;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Rounds an f32 value to bf16 and back, as torch's `.to(torch.bfloat16)` does (NaN stays NaN). */
export function roundBf16(x: number): number {
  scratchF32[0] = x;
  const bits = scratchU32[0]!;
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return NaN;
  scratchU32[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
  return scratchF32[0]!;
}

/**
 * `roundBf16` over the first `length` elements of `values`, in place, on their bits: a whole array of
 * f32 results of one step becomes that step's bf16 results (NaN stays a NaN).
 */
export function roundBf16Array(values: Float32Array, length = values.length): void {
  const bits = new Uint32Array(values.buffer, values.byteOffset, length);
  for (let i = 0; i < length; i++) {
    const b = bits[i]!;
    bits[i] = (b & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : ((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
}

/** Rounds an f32 value to f16 and back, as torch's `.to(torch.float16)` does (NaN stays NaN). */
export function roundF16(x: number): number {
  return Number.isNaN(x) ? NaN : bitsToF32(f32BitsRoundedToF16(f32Bits(x)));
}

/** `roundF16` over the first `length` elements of `values`, in place; every NaN becomes 0x7fc00000, as in bf16 steps. */
export function roundF16Array(values: Float32Array, length = values.length): void {
  const bits = new Uint32Array(values.buffer, values.byteOffset, length);
  for (let i = 0; i < length; i++) {
    const b = bits[i]!;
    bits[i] = (b & 0x7fffffff) > 0x7f800000 ? 0x7fc00000 : f32BitsRoundedToF16(b);
  }
}

/** Each of the first `length` elements of `values` rounded to `step`, in place (f32 values are already). */
export function roundStepArray(step: StepDtype, values: Float32Array, length = values.length): void {
  if (step === 'BF16') roundBf16Array(values, length);
  else if (step === 'F16') roundF16Array(values, length);
}

/**
 * The rounding of each arithmetic step in mergekit's compute dtype: torch computes a bf16 or f16
 * tensor op in f32 and rounds the result to the tensor's dtype, so emulating it means rounding after
 * every step.
 */
export function stepRounding(computeDtype: 'F32' | 'BF16' | 'F16' | undefined): (x: number) => number {
  return computeDtype === 'BF16' ? roundBf16 : computeDtype === 'F16' ? roundF16 : f;
}

/** The dtype a method's steps round to when mergekit computes in `computeDtype` (none: f32). */
export function stepOf(computeDtype: 'F32' | 'BF16' | 'F16' | undefined): StepDtype {
  return computeDtype ?? 'F32';
}
