import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runMerge } from '../../src/main/engine/run-merge';
import { readModelF32, tempDir } from '../helpers';

const GOLDEN = resolve('test/fixtures/golden');

async function merge(recipeName: string, options: { seed?: number; memoryBudget?: number }) {
  const recipeFile = join(GOLDEN, 'recipes', recipeName);
  const out = join(await tempDir(), 'out');
  await runMerge({ recipeText: await readFile(recipeFile, 'utf8'), recipeFile, outDir: out, options });
  return readModelF32(out);
}

describe('DARE and DELLA: random masks from a counter-based hash', () => {
  it('gives the same output for the same seed, whatever the chunking, and another for another seed', async () => {
    const a = await merge('dare-ties-f32.yml', { seed: 42 });
    const chunked = await merge('dare-ties-f32.yml', { seed: 42, memoryBudget: 2048 });
    const other = await merge('dare-ties-f32.yml', { seed: 7 });
    let differs = false;
    for (const [name, t] of a) {
      expect(Buffer.from(chunked.get(name)!.values.buffer).equals(Buffer.from(t.values.buffer)), name).toBe(true);
      differs ||= !Buffer.from(other.get(name)!.values.buffer).equals(Buffer.from(t.values.buffer));
    }
    expect(differs).toBe(true);
  });
});

describe('DELLA', () => {
  it('keeps the same elements whatever the chunking, since chunks hold whole rows', async () => {
    const a = await merge('della-f32.yml', { seed: 42 });
    const chunked = await merge('della-f32.yml', { seed: 42, memoryBudget: 512 });
    for (const [name, t] of a) expect(Buffer.from(chunked.get(name)!.values.buffer).equals(Buffer.from(t.values.buffer)), name).toBe(true);
  });

  it('keeps larger task-vector entries more often than smaller ones', async () => {
    const merged = await merge('della-linear-f32.yml', { seed: 1 });
    const base = await readModelF32(join(GOLDEN, 'models', 'llama-base'));
    const ft = await readModelF32(join(GOLDEN, 'models', 'llama-ft1'));
    const kept = { small: [0, 0] as [number, number], large: [0, 0] as [number, number] };
    for (const [name, t] of merged) {
      const b = base.get(name)!.values;
      const x = ft.get(name)!.values;
      const magnitudes = x.map((v, i) => Math.abs(v - b[i]!));
      const median = [...magnitudes].sort((p, q) => p - q)[magnitudes.length >> 1]!;
      magnitudes.forEach((m, i) => {
        const bucket = m > median ? kept.large : kept.small;
        bucket[1]++;
        if (t.values[i] !== b[i]) bucket[0]++;
      });
    }
    expect(kept.large[0]! / kept.large[1]!).toBeGreaterThan(kept.small[0]! / kept.small[1]!);
  });
});
