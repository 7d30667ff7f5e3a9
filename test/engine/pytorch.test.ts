import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/main/engine/errors';
import { openPytorchCheckpoint } from '../../src/main/engine/pytorch/pytorch-reader';
import { runMerge } from '../../src/main/engine/run-merge';
import { decodeToF32 } from '../../src/main/engine/safetensors/convert';
import { readModelF32, tempDir } from '../helpers';

const FIXTURES = resolve('test/fixtures/pytorch');
const GOLDEN_MODELS = resolve('test/fixtures/golden/models');

async function readAll(file: string) {
  const reader = await openPytorchCheckpoint(file);
  try {
    const out = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>();
    for (const [name, entry] of reader.tensors) out.set(name, { dtype: entry.dtype, shape: entry.shape, bytes: await reader.read(name) });
    return out;
  } finally {
    await reader.close();
  }
}

describe('PyTorch .bin checkpoints, read without Python', () => {
  it('a sharded pytorch_model.bin model reads as the same tensors as its safetensors twin', async () => {
    const fromBin = await readModelF32(join(FIXTURES, 'llama-base-bin'));
    const fromSafetensors = await readModelF32(join(GOLDEN_MODELS, 'llama-base'));
    expect([...fromBin.keys()].sort()).toEqual([...fromSafetensors.keys()].sort());
    for (const [name, t] of fromSafetensors) {
      expect(fromBin.get(name)!.shape, name).toEqual(t.shape);
      expect(Buffer.from(fromBin.get(name)!.values.buffer).equals(Buffer.from(t.values.buffer)), name).toBe(true);
    }
  });

  it('merges a .bin model to the same bits as the same model in safetensors', async () => {
    const dir = await tempDir();
    const recipe = (base: string) => `merge_method: linear\nmodels:\n  - model: ${base}\n    parameters: {weight: 0.7}\n  - model: ${join(GOLDEN_MODELS, 'llama-ft1')}\n    parameters: {weight: 0.3}\ndtype: float32\n`;
    await runMerge({ recipeText: recipe(join(FIXTURES, 'llama-base-bin')), recipeFile: join(dir, 'a.yml'), outDir: join(dir, 'bin'), options: {} });
    await runMerge({ recipeText: recipe(join(GOLDEN_MODELS, 'llama-base')), recipeFile: join(dir, 'b.yml'), outDir: join(dir, 'st'), options: {} });
    const a = await readModelF32(join(dir, 'bin'));
    const b = await readModelF32(join(dir, 'st'));
    for (const [name, t] of b) expect(Buffer.from(a.get(name)!.values.buffer).equals(Buffer.from(t.values.buffer)), name).toBe(true);
  });

  it('reads shared storages, storage offsets, bf16 and integer tensors', async () => {
    const t = await readAll(join(FIXTURES, 'shared.bin'));
    const f32 = (bytes: Uint8Array, dtype: 'F32' | 'BF16') => {
      const out = new Float32Array(bytes.byteLength / (dtype === 'F32' ? 4 : 2));
      decodeToF32(bytes, dtype, out);
      return out;
    };
    const embed = f32(t.get('embed')!.bytes, 'F32');
    expect(embed[17]).toBeCloseTo(0.17, 6);
    expect(t.get('tied')!.bytes).toEqual(t.get('embed')!.bytes);
    expect(t.get('row')!.shape).toEqual([16]);
    expect([...f32(t.get('row')!.bytes, 'F32')]).toEqual([...embed.subarray(48, 64)]);
    expect(t.get('bf16')!.dtype).toBe('BF16');
    expect(f32(t.get('bf16')!.bytes, 'BF16')[100]).toBeCloseTo(1, 2);
    expect(t.get('steps')!.dtype).toBe('I64');
    expect([...new BigInt64Array(t.get('steps')!.bytes.slice().buffer)]).toEqual([0n, 1n, 2n, 3n, 4n]);
  });

  it('refuses a strided view by name', async () => {
    await expect(openPytorchCheckpoint(join(FIXTURES, 'strided.bin'))).rejects.toThrow(/tensor "t" is a strided view/);
  });

  it('refuses a pickle that would call os.system, and runs nothing', async () => {
    await rm('/tmp/alloy-pwned', { force: true });
    await expect(openPytorchCheckpoint(join(FIXTURES, 'hostile.bin'))).rejects.toThrow(/refuses the global posix\.system/);
    expect(existsSync('/tmp/alloy-pwned')).toBe(false);
  });

  it('gives an EngineError, never a crash or a hang, on 500 corrupted checkpoints', async () => {
    const original = await readFile(join(FIXTURES, 'shared.bin'));
    const dir = await tempDir();
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(original.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(original.length), async (edits, cut) => {
        const bytes = Buffer.from(original.subarray(0, Math.max(cut, original.length - 64)));
        for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
        const file = join(dir, 'c.bin');
        await writeFile(file, bytes);
        try {
          const tensors = await readAll(file);
          for (const t of tensors.values()) expect(t.bytes.byteLength).toBeLessThanOrEqual(bytes.length);
        } catch (error) {
          expect(error).toBeInstanceOf(EngineError);
          refused++;
        }
      }),
      { numRuns: 500, seed: 7 },
    );
    expect(refused).toBeGreaterThan(0);
  });
});
