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

function l2(values: Float32Array, base: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (values[i]! - base[i]!) ** 2;
  return Math.sqrt(sum);
}

describe('DARE: random masks from a counter-based hash', () => {
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

  it('matches mergekit statistically: the size of the merged task vector per tensor, and how much of it survives', async () => {
    const ours = await merge('dare-ties-f32.yml', { seed: 42 });
    const theirs = await readModelF32(join(GOLDEN, 'outputs', 'dare-ties-f32'));
    const base = await readModelF32(join(GOLDEN, 'models', 'llama-base'));
    for (const [name, t] of theirs) {
      if (t.values.length < 256) continue;
      const b = base.get(name)!.values;
      const ratio = l2(ours.get(name)!.values, b) / l2(t.values, b);
      expect(ratio, name).toBeGreaterThan(0.85);
      expect(ratio, name).toBeLessThan(1.15);
      const changed = (v: Float32Array) => v.reduce((n, x, i) => n + (x !== b[i] ? 1 : 0), 0) / v.length;
      expect(Math.abs(changed(ours.get(name)!.values) - changed(t.values)), name).toBeLessThan(0.06);
    }
  });
});
