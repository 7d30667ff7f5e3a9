import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runMerge } from '../../src/main/engine/run-merge';
import { readModelF32, tempDir } from '../helpers';

const MODELS = resolve('test/fixtures/golden/models');
const recipe = `merge_method: linear
models:
  - model: ${join(MODELS, 'llama-base')}
    parameters: {weight: 0.5}
  - model: ${join(MODELS, 'qwen-base')}
    parameters: {weight: 0.5}
dtype: float32
`;

describe('--allow-crimes', () => {
  it('without it, mixing a llama and a qwen2 model is refused, naming both and the flag', async () => {
    const dir = await tempDir();
    await expect(runMerge({ recipeText: recipe, recipeFile: join(dir, 'r.yml'), outDir: join(dir, 'out'), options: {} })).rejects.toThrow(/qwen2 model but the merge is llama.*--allow-crimes/);
  });

  it('with it, the merge runs on the first model\'s architecture, tensor by tensor', async () => {
    const dir = await tempDir();
    await runMerge({ recipeText: recipe, recipeFile: join(dir, 'r.yml'), outDir: join(dir, 'out'), options: { allowCrimes: true } });
    const out = await readModelF32(join(dir, 'out'));
    const llama = await readModelF32(join(MODELS, 'llama-base'));
    const qwen = await readModelF32(join(MODELS, 'qwen-base'));
    expect([...out.keys()].sort()).toEqual([...llama.keys()].sort());
    const name = 'model.layers.0.mlp.up_proj.weight';
    const expected = llama.get(name)!.values.map((x, i) => Math.fround(Math.fround(x * 0.5) + Math.fround(qwen.get(name)!.values[i]! * 0.5)));
    expect(out.get(name)!.values[5]).toBeCloseTo(expected[5]!, 6);
  });
});
