import { cp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveModelPath } from '../../src/main/engine/model/resolve-model';
import { parseModelReference } from '../../src/main/engine/recipe/parse-recipe';
import type { ModelReference } from '../../src/main/engine/recipe/types';
import { readModelF32, tempDir } from '../helpers';

const GOLDEN = resolve('test/fixtures/golden');
const BASE = join(GOLDEN, 'models', 'llama-base');
const ADAPTER = join(GOLDEN, 'loras', 'llama-lora');

function ref(raw: string): ModelReference {
  const parsed = parseModelReference(raw);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

describe('base+LoRA references', () => {
  it('merge the adapter into the base once, into the cache, and reuse it', async () => {
    const cache = await tempDir();
    const merged = await resolveModelPath(ref(`${BASE}+${ADAPTER}`), { loraMergeCache: cache });
    expect(merged.startsWith(cache)).toBe(true);
    expect((await readdir(merged)).sort()).toEqual(['config.json', 'model.safetensors']);
    const built = (await stat(join(merged, 'model.safetensors'))).mtimeMs;
    expect(await resolveModelPath(ref(`${BASE}+${ADAPTER}`), { loraMergeCache: cache })).toBe(merged);
    expect((await stat(join(merged, 'model.safetensors'))).mtimeMs).toBe(built);
    expect((await readdir(cache)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('change only the adapted tensors', async () => {
    const merged = await readModelF32(await resolveModelPath(ref(`${BASE}+${ADAPTER}`), { loraMergeCache: await tempDir() }));
    const base = await readModelF32(BASE);
    const changed = [...base].filter(([name, t]) => !Buffer.from(merged.get(name)!.values.buffer).equals(Buffer.from(t.values.buffer))).map(([name]) => name.replace(/\d+/, 'N'));
    expect(new Set(changed)).toEqual(new Set(['model.layers.N.self_attn.q_proj.weight', 'model.layers.N.self_attn.v_proj.weight', 'model.layers.N.mlp.down_proj.weight']));
  });

  it('refuse a DoRA adapter by its config file', async () => {
    const dir = await tempDir();
    await cp(ADAPTER, join(dir, 'dora'), { recursive: true });
    const config = JSON.parse(await readFile(join(dir, 'dora', 'adapter_config.json'), 'utf8'));
    await writeFile(join(dir, 'dora', 'adapter_config.json'), JSON.stringify({ ...config, use_dora: true }));
    await expect(resolveModelPath(ref(`${BASE}+${join(dir, 'dora')}`), { loraMergeCache: dir })).rejects.toThrow(/adapter_config\.json: a DoRA adapter/);
  });

  it('name a missing adapter and where it was looked for', async () => {
    await expect(resolveModelPath(ref(`${BASE}+/nowhere/adapter`), { loraMergeCache: await tempDir() })).rejects.toThrow(/LoRA adapter "\/nowhere\/adapter".*adapter_config\.json/s);
  });
});
