import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  bitsToF32,
  decodeToF32,
  encodeFromF32,
  f16ToF32Bits,
  f32Bits,
  f32BitsToBf16,
  f32BitsRoundedToF16,
  f32BitsToF16,
} from '../../src/main/engine/safetensors/convert';
import { roundF16, roundF16Array } from '../../src/main/engine/methods/numerics';

const vectors = JSON.parse(readFileSync('test/fixtures/conversions.json', 'utf8')) as { f32: number[]; bf16: number[]; f16: number[] };

describe('float conversions', () => {
  it('rounds f32 to bf16 exactly as torch does on every vector', () => {
    const got = vectors.f32.map(f32BitsToBf16);
    expect(got).toEqual(vectors.bf16);
  });

  it('rounds f32 to f16 exactly as torch does on every vector', () => {
    const got = vectors.f32.map(f32BitsToF16);
    expect(got).toEqual(vectors.f16);
  });

  it('rounds to f16 in place on the bits (f32BitsRoundedToF16) as through the f16 code, over a sweep of every exponent and the normal range\'s edges', () => {
    const edges = [0x387fffff, 0x38800000, 0x38801000, 0x477fefff, 0x477ff000, 0x477fffff, 0x7f800000, 0x7f800001, 0x7fc00000, 0x33000000, 0x33000001];
    const sweep = [...edges, ...Array.from({ length: 1 << 20 }, (_, i) => (i * 4099 + 7) >>> 0)];
    const differ = sweep.flatMap((a) => [a, (a | 0x80000000) >>> 0]).filter((b) => f32BitsRoundedToF16(b) !== f16ToF32Bits(f32BitsToF16(b)));
    expect(differ.map((b) => b.toString(16))).toEqual([]);
  });

  it('rounds f16 steps (roundF16, roundF16Array) to torch\'s f16 values on every vector, NaN as 0x7fc00000', () => {
    const want = vectors.f16.map((h) => ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0 ? 0x7fc00000 : f16ToF32Bits(h)));
    expect(vectors.f32.map((bits) => f32Bits(roundF16(bitsToF32(bits))))).toEqual(want);
    const array = new Float32Array(new Uint32Array(vectors.f32).buffer);
    roundF16Array(array);
    expect([...new Uint32Array(array.buffer)]).toEqual(want);
  });

  it('round-trips every finite f16 value through f32', () => {
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) continue;
      expect(f32BitsToF16(f16ToF32Bits(h))).toBe(h);
    }
  });

  it('keeps subnormal f16 values exact', () => {
    expect(bitsToF32(f16ToF32Bits(0x0001))).toBe(2 ** -24);
    expect(bitsToF32(f16ToF32Bits(0x03ff))).toBe(1023 * 2 ** -24);
    expect(bitsToF32(f16ToF32Bits(0x8001))).toBe(-(2 ** -24));
  });

  it('breaks bf16 ties to even and keeps NaN a NaN', () => {
    expect(f32BitsToBf16(0x3f808000)).toBe(0x3f80);
    expect(f32BitsToBf16(0x3f818000)).toBe(0x3f82);
    expect(Number.isNaN(bitsToF32(f32BitsToBf16(0x7fc00001) << 16))).toBe(true);
    expect(Number.isNaN(bitsToF32(f16ToF32Bits(f32BitsToF16(f32Bits(NaN)))))).toBe(true);
  });

  it('decodes and encodes arrays in each dtype', () => {
    const values = new Float32Array([1.5, -2.25, 0, 3.140625, 65504]);
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const bytes = new Uint8Array(values.length * (dtype === 'F32' ? 4 : 2));
      encodeFromF32(values, dtype, bytes);
      const back = new Float32Array(values.length);
      decodeToF32(bytes, dtype, back);
      expect([...back]).toEqual(dtype === 'BF16' ? [1.5, -2.25, 0, 3.140625, 65536] : [...values]);
    }
  });
});
