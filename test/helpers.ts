import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { decodeToF32 } from '../src/main/engine/safetensors/convert';
import { isFloatDtype } from '../src/main/engine/safetensors/dtype';
import { ModelFolder } from '../src/main/engine/model/model-folder';

/** A fresh temporary folder, removed after the file's tests. */
export async function tempDir(prefix = 'alloy-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Every float tensor of a model folder, decoded to f32, by name. */
export async function readModelF32(dir: string): Promise<Map<string, { dtype: string; shape: number[]; values: Float32Array }>> {
  const folder = await ModelFolder.open(dir);
  const out = new Map<string, { dtype: string; shape: number[]; values: Float32Array }>();
  try {
    for (const [name, { reader, entry }] of folder.tensors) {
      if (!isFloatDtype(entry.dtype)) continue;
      const values = new Float32Array(entry.numel);
      decodeToF32(await reader.read(name), entry.dtype, values);
      out.set(name, { dtype: entry.dtype, shape: entry.shape, values });
    }
  } finally {
    await folder.close();
  }
  return out;
}
