import { readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runMerge } from '../../src/main/engine/run-merge';
import { readModelF32, tempDir } from '../helpers';

const DEMO = resolve('resources/demo/models');

describe('a linear merge of the demo models, end to end', () => {
  it('equals (w_a·A + w_b·B)/(w_a+w_b) on every tensor, written as sharded safetensors with an index', async () => {
    const out = join(await tempDir(), 'merged');
    const recipe = [
      'merge_method: linear',
      'models:',
      '  - model: alloy-demo-chat',
      '    parameters: { weight: 0.7 }',
      '  - model: alloy-demo-code',
      '    parameters: { weight: 0.2 }',
      'dtype: float32',
      '',
    ].join('\n');
    const events: string[] = [];
    await runMerge({
      recipeText: recipe,
      recipeFile: join(DEMO, 'inline.yml'),
      outDir: out,
      options: { outShardSize: 100_000, modelRoots: [DEMO] },
      onProgress: (e) => events.push(e.type),
    });
    const files = (await readdir(out)).sort();
    expect(files).toContain('model.safetensors.index.json');
    expect(files).toContain('config.json');
    expect(files).toContain('mergekit_config.yml');
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThanOrEqual(2);
    expect(files.some((f) => f.includes('partial'))).toBe(false);

    const index = JSON.parse(await readFile(join(out, 'model.safetensors.index.json'), 'utf8'));
    const a = await readModelF32(join(DEMO, 'alloy-demo-chat'));
    const b = await readModelF32(join(DEMO, 'alloy-demo-code'));
    const merged = await readModelF32(out);
    expect(Object.keys(index.weight_map).sort()).toEqual([...a.keys()].sort());
    expect([...merged.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [name, m] of merged) {
      expect(m.dtype).toBe('F32');
      const av = a.get(name)!.values;
      const bv = b.get(name)!.values;
      for (let i = 0; i < av.length; i++) {
        const expected = (0.7 * av[i]! + 0.2 * bv[i]!) / 0.9;
        expect(Math.abs(m.values[i]! - expected)).toBeLessThanOrEqual(Math.abs(expected) * 1e-6 + 1e-7);
      }
    }
    expect(events[0]).toBe('stage');
    expect(events.filter((e) => e === 'tensor').length).toBe(merged.size);
    expect(events.at(-1)).toBe('done');
  });
});
