import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareOutputs, describeComparison } from '../../bench/compare-outputs';
import { tempDir } from '../helpers';

type Tensor = { dtype: 'BF16' | 'F32'; shape: number[]; codes: number[] };

/** A safetensors file of the given tensors, their elements given as raw codes (bf16 or f32 bits). */
async function writeModel(dir: string, tensors: Record<string, Tensor>): Promise<string> {
  await mkdir(dir, { recursive: true });
  const header: Record<string, unknown> = {};
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, { dtype, shape, codes }] of Object.entries(tensors)) {
    const data = dtype === 'BF16' ? Buffer.from(new Uint16Array(codes).buffer) : Buffer.from(new Uint32Array(codes).buffer);
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.length] };
    parts.push(data);
    offset += data.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  await writeFile(join(dir, 'model.safetensors'), Buffer.concat([size, json, ...parts]));
  return dir;
}

describe('compareOutputs (the bench GPU-vs-CPU check)', () => {
  const bf16 = (codes: number[]): Tensor => ({ dtype: 'BF16', shape: [codes.length], codes });
  const f32 = (codes: number[]): Tensor => ({ dtype: 'F32', shape: [codes.length], codes });

  it('finds the same bits the same, with −0 and +0 apart by nothing', async () => {
    const root = await tempDir();
    const a = await writeModel(join(root, 'a'), { w: bf16([0x3f80, 0x0000, 0xbf80]), v: f32([0x3f800000]) });
    const b = await writeModel(join(root, 'b'), { w: bf16([0x3f80, 0x8000, 0xbf80]), v: f32([0x3f800000]) });
    const result = await compareOutputs(a, b);
    expect(result).toMatchObject({ tensors: 2, differing: 0, elementsApart: 0, elements: 4, worstUlps: 0 });
    expect(describeComparison(result)).toBe('same bits');
  });

  it('counts ulps across zero and in f32, and names the tensor', async () => {
    const root = await tempDir();
    // 0x0001 and 0x8001 are the smallest bf16 subnormals either side of zero: 2 ulps apart.
    const a = await writeModel(join(root, 'a'), { w: bf16([0x3f80, 0x0001, 0x4000]), v: f32([0x3f800000, 0x40000000]) });
    const b = await writeModel(join(root, 'b'), { w: bf16([0x3f81, 0x8001, 0x4000]), v: f32([0x3f800000, 0x40000003]) });
    const result = await compareOutputs(a, b);
    expect(result).toMatchObject({ tensors: 2, differing: 2, elementsApart: 3, elements: 5, worstUlps: 3 });
    expect(result.notes).toContain('w: 2 of 3 elements apart, at most 2 ulp');
    expect(describeComparison(result)).toBe('≤ 3 ulp (60 % of elements)');
  });

  it('calls a NaN against a number, a missing tensor and another shape mismatches', async () => {
    const root = await tempDir();
    const a = await writeModel(join(root, 'a'), { w: bf16([0x7fc0]), gone: bf16([1]), s: bf16([1, 2]) });
    const b = await writeModel(join(root, 'b'), { w: bf16([0x3f80]), s: { dtype: 'BF16', shape: [2, 1], codes: [1, 2] } });
    const result = await compareOutputs(a, b);
    expect(result.worstUlps).toBe(Infinity);
    expect(result.differing).toBe(3);
    expect(result.notes.join('\n')).toMatch(/gone: missing/);
    expect(result.notes.join('\n')).toMatch(/s: BF16 \[2\] against BF16 \[2,1\]/);
    expect(describeComparison(result)).toMatch(/^MISMATCH/);
  });
});
