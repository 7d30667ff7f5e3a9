import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { seededRandom, startEngine } from './engine-process';
import { writeSparseLlamaModel } from './sparse-model';
import { tempDir } from '../helpers';

/** 2 × 1.1 GB of bf16 weights (sparse files): the first tensor alone, 131 M elements, takes seconds to merge here. */
const SHAPE = { hidden: 4096, intermediate: 11008, layers: 2, vocab: 32000, layersPerFile: 1 };
const TRIALS = 3;
const SEED = 7;

let root: string;

async function cancelOnce(trial: number, delayMs: number) {
  const parent = join(root, `run-${trial}`);
  const args = ['merge', join(root, 'recipe.yml'), join(parent, 'merged'), '--model-root', join(root, 'models'), '--device', 'cpu', '--progress', 'jsonl'];
  const engine = startEngine(args);
  await engine.waitFor((e) => e.type === 'stage' && e.stage === 'merge');
  await new Promise((r) => setTimeout(r, delayMs));
  const tensorsBefore = engine.events.filter((e) => e.type === 'tensor').length;
  const signalled = performance.now();
  engine.child.kill('SIGTERM');
  const exit = await engine.exited;
  return { exit, stopMs: performance.now() - signalled, tensorsBefore, left: await readdir(parent).catch(() => []) };
}

describe('cancel', () => {
  beforeAll(async () => {
    root = await tempDir('alloy-cancel-');
    await writeSparseLlamaModel(join(root, 'models', 'a'), SHAPE);
    await writeSparseLlamaModel(join(root, 'models', 'b'), SHAPE);
    await writeFile(join(root, 'recipe.yml'), 'merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 0.5}\n  - model: b\n    parameters: {weight: 0.5}\n');
  });

  it(`SIGTERM stops a large merge within a second, mid-tensor (default 1 GB chunks), and removes its folder (${TRIALS} random moments)`, async () => {
    const random = seededRandom(SEED);
    for (let trial = 0; trial < TRIALS; trial++) {
      const { exit, stopMs, tensorsBefore, left } = await cancelOnce(trial, 100 + random() * 900);
      console.log(`cancel ${trial}: after ${tensorsBefore} tensors, stopped in ${stopMs.toFixed(0)} ms`);
      expect(exit.code, exit.stderr).toBe(130);
      expect(exit.stderr).toBe('alloy: cancelled\n');
      expect(stopMs).toBeLessThan(1000);
      expect(left).toEqual([]);
    }
  });
});
