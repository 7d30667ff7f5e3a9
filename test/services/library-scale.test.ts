import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LibraryService } from '../../src/main/services/library/library-service';
import { tempDir } from '../helpers';
import { writeFakeHubCache } from './fake-hub/fake-cache';

/** 300 repos of a 0.4 B-parameter Llama (32 layers, 291 tensors in 2 shards, 0.8 GB each: 240 GB of sparse weights). */
const MODELS = 300;
const SHAPE = { layers: 32, hidden: 1024, vocab: 32000, shards: 2 };

let cache: string;
let made: Awaited<ReturnType<typeof writeFakeHubCache>>;

/** Bytes this process has read through read(2) and friends so far (/proc/self/io `rchar`). */
function bytesRead(): number {
  return Number(/^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))![1]);
}

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number; read: number }> {
  const read = bytesRead();
  const start = performance.now();
  const result = await work();
  return { result, ms: performance.now() - start, read: bytesRead() - read };
}

beforeAll(async () => {
  cache = join(await tempDir('alloy-library-scale-'), 'hub');
  made = await writeFakeHubCache(cache, { models: MODELS, ...SHAPE });
});

describe('the library on a hub cache of hundreds of models', () => {
  it(`lists ${MODELS} models from their headers only, and relists from its memo`, async () => {
    const library = new LibraryService({ folders: [], hubCaches: [cache] });
    const cold = await timed(() => library.list());
    const warm = await timed(() => library.list());
    console.log(
      `library: ${MODELS} cached models (${(made.weightBytes / 1e9).toFixed(0)} GB of safetensors): first listing ${cold.ms.toFixed(0)} ms reading ${(cold.read / 1e6).toFixed(1)} MB, ` +
        `relisting ${warm.ms.toFixed(0)} ms reading ${(warm.read / 1e6).toFixed(2)} MB`,
    );
    expect(cold.result.length).toBe(MODELS);
    for (const [i, model] of cold.result.entries()) {
      expect(model).toMatchObject({ name: made.models[i]!.repo, source: 'hf-cache', refs: ['main'], architecture: 'LlamaForCausalLM', layers: 32, hiddenSize: 1024, parameters: made.parameters, dtypes: ['BF16'], shards: 2, missingShards: [], hasTokenizer: true, bytes: made.models[i]!.bytes });
    }
    // Headers, configs and index files only: a few MB for 240 GB of weights.
    expect(cold.read).toBeLessThan(made.weightBytes / 10_000);
    expect(warm.result).toEqual(cold.result);
    expect(warm.read).toBeLessThan(cold.read / 10);
  });

  it('notices a model Python adds to the watched cache, and summarises only that one', async () => {
    let changes = 0;
    const library = new LibraryService({ folders: [], hubCaches: [cache], onChange: () => changes++ });
    await library.list();
    const watching = await timed(async () => library.watch());
    try {
      await writeFakeHubCache(cache, { models: 1, ...SHAPE }, MODELS);
      await expect.poll(() => changes, { timeout: 5000 }).toBeGreaterThan(0);
      const after = await timed(() => library.list());
      console.log(`library: watching ${MODELS} models took ${watching.ms.toFixed(0)} ms to set up; relisting with one new model ${after.ms.toFixed(0)} ms reading ${(after.read / 1e3).toFixed(0)} KB`);
      expect(after.result.length).toBe(MODELS + 1);
      // One model's config, index and headers (~60 KB) read, not the 300 others'.
      expect(after.read).toBeLessThan(500_000);
      expect(after.result.at(-1)).toMatchObject({ name: `bench/model-${String(MODELS).padStart(4, '0')}`, parameters: made.parameters });
    } finally {
      library.close();
    }
  });

  it('watches a hub cache that does not exist yet, and lists its first model once it appears', async () => {
    const home = await tempDir('alloy-library-later-');
    const later = join(home, '.cache', 'huggingface', 'hub');
    let changes = 0;
    const library = new LibraryService({ folders: [], hubCaches: [later], onChange: () => changes++ });
    library.watch();
    try {
      expect(await library.list()).toEqual([]);
      await mkdir(join(home, '.cache', 'huggingface'), { recursive: true });
      await new Promise((r) => setTimeout(r, 100));
      await writeFakeHubCache(later, { models: 1, ...SHAPE });
      await expect.poll(() => changes, { timeout: 5000 }).toBeGreaterThan(0);
      expect((await library.list()).map((m) => m.name)).toEqual(['bench/model-0000']);
      // Now watched itself: a second model is noticed too.
      const seen = changes;
      await writeFakeHubCache(later, { models: 1, ...SHAPE }, 1);
      await expect.poll(() => changes, { timeout: 5000 }).toBeGreaterThan(seen);
      expect((await library.list()).map((m) => m.name)).toEqual(['bench/model-0000', 'bench/model-0001']);
    } finally {
      library.close();
    }
  });
});
