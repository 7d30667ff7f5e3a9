import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareOutputs } from '../../bench/compare/compare-outputs';
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
  await writeFile(join(dir, 'config.json'), '{}');
  return dir;
}

describe('compareOutputs (the compare harness, and the bench GPU-against-CPU check)', () => {
  const bf16 = (codes: number[]): Tensor => ({ dtype: 'BF16', shape: [codes.length], codes });
  const f32 = (codes: number[]): Tensor => ({ dtype: 'F32', shape: [codes.length], codes });

  it('finds the same bits the same, with −0 and +0 apart by nothing', async () => {
    const root = await tempDir();
    const a = await writeModel(join(root, 'a'), { w: bf16([0x3f80, 0x0000, 0xbf80]), v: f32([0x3f800000]) });
    const b = await writeModel(join(root, 'b'), { w: bf16([0x3f80, 0x8000, 0xbf80]), v: f32([0x3f800000]) });
    expect(await compareOutputs(a, b, 'exact')).toMatchObject({ tensors: 2, worstUlps: 0, offFraction: 0, within: true });
  });

  it('counts ulps across zero and in f32, and names the worst tensor', async () => {
    const root = await tempDir();
    // 0x0001 and 0x8001 are the smallest bf16 subnormals either side of zero: 2 ulps apart.
    const a = await writeModel(join(root, 'a'), { w: bf16([0x3f80, 0x0001, 0x4000]), v: f32([0x3f800000, 0x40000000]) });
    const b = await writeModel(join(root, 'b'), { w: bf16([0x3f81, 0x8001, 0x4000]), v: f32([0x3f800000, 0x40000003]) });
    const equality = await compareOutputs(a, b, 'exact');
    // Elements more than 1 ulp apart: the 2-ulp bf16 one and the 3-ulp f32 one, of 5.
    expect(equality).toMatchObject({ tensors: 2, worstUlps: 3, worstTensor: 'v', offFraction: 0.4, within: false });
    expect(await compareOutputs(join(root, 'a'), join(root, 'a'), 'bf16-1ulp')).toMatchObject({ within: true });
  });

  it('calls a missing tensor a mismatch, naming it', async () => {
    const root = await tempDir();
    const a = await writeModel(join(root, 'a'), { w: bf16([0x3f80]), gone: bf16([1]) });
    const b = await writeModel(join(root, 'b'), { w: bf16([0x3f80]) });
    expect(await compareOutputs(a, b, 'bf16-1ulp')).toMatchObject({ worstUlps: Infinity, worstTensor: 'gone', within: false, note: 'Alloy has no gone' });
  });
});
