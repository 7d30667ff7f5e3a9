import { cp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveModelPath } from '../../src/main/engine/model/resolve-model';
import { parseModelReference } from '../../src/main/engine/recipe/parse-recipe';
import { LibraryService } from '../../src/main/services/library/library-service';
import { tempDir } from '../helpers';

/** A PEFT adapter (r 4, alpha 8, q/v/down_proj) trained on llama-base, written by peft 0.21. */
const ADAPTER = resolve('test/fixtures/golden/loras/llama-lora');
const BASE = resolve('test/fixtures/golden/models/llama-base');
const COMMIT = 'c0ffee0000000000000000000000000000000001';

/** Elements in a safetensors file, read from its JSON header by hand (not by the reader under test). */
async function headerParameters(file: string): Promise<number> {
  const bytes = await readFile(file);
  const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8')) as Record<string, { shape?: number[] }>;
  return Object.entries(header)
    .filter(([name]) => name !== '__metadata__')
    .reduce((n, [, t]) => n + (t.shape ?? []).reduce((a, b) => a * b, 1), 0);
}

async function adapterBytes(): Promise<number> {
  let bytes = 0;
  for (const f of ['adapter_config.json', 'adapter_model.safetensors']) bytes += (await stat(join(ADAPTER, f))).size;
  return bytes;
}

/** The adapter as one revision of `org/name` in a hub cache, as huggingface_hub lays it out (refs/main → snapshot). */
async function cacheWithAdapter(repoId: string): Promise<string> {
  const cache = await tempDir();
  const storage = join(cache, `models--${repoId.replace('/', '--')}`);
  await cp(ADAPTER, join(storage, 'snapshots', COMMIT), { recursive: true });
  await mkdir(join(storage, 'refs'), { recursive: true });
  await writeFile(join(storage, 'refs', 'main'), COMMIT);
  return cache;
}

describe('LoRA adapters in the library', () => {
  it('lists an adapter folder as a LoRA adapter for its base model, with rank, alpha, parameters and size; not mergeable on its own', async () => {
    const root = await tempDir();
    await cp(ADAPTER, join(root, 'my-lora'), { recursive: true });
    await cp(BASE, join(root, 'llama-base'), { recursive: true });
    const models = await new LibraryService({ folders: [{ path: root, source: 'folder' }], hubCaches: [] }).list();
    expect(models.map((m) => m.name)).toEqual(['llama-base', 'my-lora']);
    const lora = models.find((m) => m.name === 'my-lora')!;
    expect(lora).toMatchObject({
      source: 'folder',
      reference: join(root, 'my-lora'),
      architecture: 'LoRA adapter',
      parameters: await headerParameters(join(ADAPTER, 'adapter_model.safetensors')),
      dtypes: ['F32'],
      shards: 1,
      weightFormat: 'safetensors',
      bytes: await adapterBytes(),
      mergeable: false,
      adapter: { baseModel: 'test/fixtures/golden/models/llama-base', rank: 4, alpha: 8, targetModules: ['v_proj', 'q_proj', 'down_proj'] },
    });
    expect(lora.adapter?.problem).toBeUndefined();
    expect(lora.problem).toMatch(/^a LoRA adapter for test\/fixtures\/golden\/models\/llama-base: merged applied to a model \(model\+adapter\)/);
    expect(models.find((m) => m.name === 'llama-base')).toMatchObject({ mergeable: true });
    expect(models.find((m) => m.name === 'llama-base')?.adapter).toBeUndefined();
  });

  it('lists a hub cache adapter under its repo id, and the engine takes "model+that reference"', async () => {
    const cache = await cacheWithAdapter('alloy-test/tiny-lora');
    const [lora] = await new LibraryService({ folders: [], hubCaches: [cache] }).list();
    expect(lora).toMatchObject({ name: 'alloy-test/tiny-lora', source: 'hf-cache', reference: 'alloy-test/tiny-lora', revision: COMMIT, refs: ['main'], adapter: { rank: 4 } });
    const reference = parseModelReference(`${BASE}+${lora!.reference}`);
    if (typeof reference === 'string') throw new Error(reference);
    const merged = await resolveModelPath(reference, { env: { HF_HUB_CACHE: cache }, loraMergeCache: await tempDir() });
    expect((await stat(join(merged, 'model.safetensors'))).isFile()).toBe(true);
  });

  it('an adapter repo carrying its base\'s config.json is still an adapter, not a model without weights', async () => {
    const root = await tempDir();
    await cp(ADAPTER, join(root, 'with-config'), { recursive: true });
    await cp(join(BASE, 'config.json'), join(root, 'with-config', 'config.json'));
    const [lora] = await new LibraryService({ folders: [{ path: root, source: 'folder' }], hubCaches: [] }).list();
    expect(lora).toMatchObject({ name: 'with-config', architecture: 'LoRA adapter', adapter: { rank: 4 } });
  });

  it('lists, not drops, an adapter that cannot be applied, saying why: no weights, another PEFT type, a broken config', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'no-weights'));
    await cp(join(ADAPTER, 'adapter_config.json'), join(root, 'no-weights', 'adapter_config.json'));
    await cp(ADAPTER, join(root, 'ia3'), { recursive: true });
    const config = JSON.parse(await readFile(join(ADAPTER, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(root, 'ia3', 'adapter_config.json'), JSON.stringify({ ...config, peft_type: 'IA3' }));
    await cp(ADAPTER, join(root, 'broken'), { recursive: true });
    await writeFile(join(root, 'broken', 'adapter_config.json'), '{"r": 4,\n  "lora_alpha": }');
    const models = await new LibraryService({ folders: [{ path: root, source: 'folder' }], hubCaches: [] }).list();
    const problem = (name: string) => models.find((m) => m.name === name)?.adapter?.problem;
    expect(models.map((m) => m.name)).toEqual(['broken', 'ia3', 'no-weights']);
    expect(problem('no-weights')).toBe(`${join(root, 'no-weights')}: no adapter_model.safetensors or adapter_model.bin`);
    expect(problem('ia3')).toMatch(/adapter_config\.json: a IA3 adapter; only LoRA adapters can be applied/);
    expect(problem('broken')).toMatch(/adapter_config\.json:2:\d+: not valid JSON/);
    expect(models.every((m) => !m.mergeable && m.problem === m.adapter?.problem)).toBe(true);
  });

  it('re-reads an adapter whose files changed', async () => {
    const root = await tempDir();
    await cp(ADAPTER, join(root, 'lora'), { recursive: true });
    const library = new LibraryService({ folders: [{ path: root, source: 'folder' }], hubCaches: [] });
    expect((await library.list())[0]?.adapter?.rank).toBe(4);
    const config = JSON.parse(await readFile(join(ADAPTER, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(root, 'lora', 'adapter_config.json'), JSON.stringify({ ...config, r: 16, lora_alpha: 32 }));
    expect((await library.list())[0]?.adapter).toMatchObject({ rank: 16, alpha: 32 });
  });
});
