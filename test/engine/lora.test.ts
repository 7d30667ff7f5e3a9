import { cp, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveModelPath } from '../../src/main/engine/model/resolve-model';
import { planRecipe, runMerge } from '../../src/main/engine/run-merge';
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

  it('are planned without being built: the plan reads the base, checks the adapter, and says what the merge will build', async () => {
    const cache = await tempDir();
    const dir = await tempDir();
    const recipeFile = join(dir, 'recipe.yml');
    const recipeText = `merge_method: linear\nmodels:\n  - model: ${BASE}+${ADAPTER}\n    parameters: {weight: 0.5}\n  - model: ${BASE}\n    parameters: {weight: 0.5}\ndtype: float32\n`;
    const plan = await planRecipe({ recipeText, recipeFile, options: { loraMergeCache: cache } });
    expect(await readdir(cache)).toEqual([]);
    expect(plan.models.map((m) => m.path)).toEqual([BASE, BASE]);
    expect(plan.warnings.join('\n')).toMatch(/the merge first merges the LoRA adapter into its base \(.* written to .*\)/);
    const events: string[] = [];
    const { plan: ran } = await runMerge({ recipeText, recipeFile, outDir: join(dir, 'out'), options: { loraMergeCache: cache }, onProgress: (e) => events.push(JSON.stringify(e)) });
    const built = (await readdir(cache)).filter((n) => !n.startsWith('.'));
    expect(built).toHaveLength(1);
    expect(ran!.models[0]!.path).toBe(join(cache, built[0]!));
    expect(events.join('\n')).toMatch(/merging LoRA adapters into their bases/);
    // Once built, a plan reads the merged model and has nothing to warn about it.
    const again = await planRecipe({ recipeText, recipeFile, options: { loraMergeCache: cache } });
    expect(again.models[0]!.path).toBe(join(cache, built[0]!));
    expect(again.warnings.join('\n')).not.toMatch(/LoRA/);
  });

  it('refuse at plan time an adapter whose delta does not fit the base, naming the tensor, and build nothing', async () => {
    const cache = await tempDir();
    const dir = await tempDir();
    await cp(ADAPTER, join(dir, 'other'), { recursive: true });
    const weights = join(dir, 'other', 'adapter_model.safetensors');
    const bytes = await readFile(weights);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
    // Layer 0's q_proj pair renamed onto a module the base lacks.
    for (const key of Object.keys(header).filter((k) => k.includes('layers.0.self_attn.q_proj.'))) {
      header[key.replace('q_proj', 'x_proj')] = header[key];
      delete header[key];
    }
    const json = Buffer.from(JSON.stringify(header).padEnd(headerLength, ' '));
    expect(json.length).toBe(headerLength);
    await writeFile(weights, Buffer.concat([bytes.subarray(0, 8), json, bytes.subarray(8 + headerLength)]));
    const recipeText = `merge_method: linear\nmodels:\n  - model: ${BASE}+${join(dir, 'other')}\n    parameters: {weight: 1}\n`;
    await expect(planRecipe({ recipeText, recipeFile: join(dir, 'recipe.yml'), options: { loraMergeCache: cache } })).rejects.toThrow(/adapts model\.layers\.0\.self_attn\.x_proj\.weight, which .* does not have/);
    expect(await readdir(cache)).toEqual([]);
  });

  it('name the merged folder by the reference: a Hub id as org--name (a hub cache snapshot folder is a commit hash)', async () => {
    const hub = await tempDir();
    const commit = 'c'.repeat(40);
    for (const [repo, from] of [['test/llama-base', BASE], ['test/llama-lora', ADAPTER]] as const) {
      const dir = join(hub, `models--${repo.replace('/', '--')}`);
      await cp(from, join(dir, 'snapshots', commit), { recursive: true });
      await mkdir(join(dir, 'refs'), { recursive: true });
      await writeFile(join(dir, 'refs', 'main'), commit);
    }
    const cache = await tempDir();
    const merged = await resolveModelPath(ref('test/llama-base+test/llama-lora'), { loraMergeCache: cache, env: { HF_HUB_CACHE: hub } });
    expect(basename(merged)).toMatch(/^test--llama-base\+test--llama-lora-[0-9a-f]{16}$/);
    const local = await resolveModelPath(ref(`${BASE}+${ADAPTER}`), { loraMergeCache: cache });
    expect(basename(local)).toMatch(/^llama-base\+llama-lora-[0-9a-f]{16}$/);
  });
});
