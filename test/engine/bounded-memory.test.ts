import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeLlamaModel, type LlamaShape } from '../../src/main/engine/demo/make-demo-models';
import type { ProgressEvent } from '../../src/shared/progress';
import { tempDir } from '../helpers';

const CLI = resolve('out/cli/alloy.mjs');
const MiB = 1 << 20;

async function mergePeakRss(shape: LlamaShape, budget: string): Promise<{ peak: number; inputBytes: number }> {
  const dir = await tempDir('alloy-mem-');
  await writeLlamaModel(join(dir, 'a'), { name: 'a', seed: 11 }, shape);
  await writeLlamaModel(join(dir, 'b'), { name: 'b', seed: 12, baseSeed: 11 }, shape);
  const recipe = join(dir, 'recipe.yml');
  await writeFile(recipe, 'merge_method: linear\nmodels:\n  - model: ./a\n    parameters: {weight: 1}\n  - model: ./b\n    parameters: {weight: 1}\n');
  const run = spawnSync(process.execPath, [CLI, 'merge', recipe, join(dir, 'out'), '--memory-budget', budget, '--progress', 'jsonl', '--device', 'cpu'], { encoding: 'utf8', timeout: 120_000 });
  expect(run.status, run.stderr).toBe(0);
  const done = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as ProgressEvent).find((e) => e.type === 'done');
  const inputBytes = 2 * 2 * shape.vocab * shape.hidden * 2;
  return { peak: done!.type === 'done' ? done!.peakRssBytes : 0, inputBytes };
}

describe('the executor holds memory to its budget', () => {
  // On the CPU backend: a GPU driver's own buffers (llvmpipe keeps them in this process) are not the executor's.
  it('merges a model many times larger than the budget without its peak memory growing with the model', async () => {
    const small = await mergePeakRss({ hidden: 256, intermediate: 512, layers: 2, heads: 4, kvHeads: 2, vocab: 4096 }, '4M');
    const large = await mergePeakRss({ hidden: 512, intermediate: 1024, layers: 2, heads: 4, kvHeads: 2, vocab: 65536 }, '4M');
    // The large model's two embedding matrices alone are 256 MiB of bf16 (1 GiB as f32 for both models):
    // a whole-tensor merge would need several hundred MiB more than the small one.
    expect(large.inputBytes).toBeGreaterThan(30 * small.inputBytes);
    console.log(`peak RSS: small ${small.peak / MiB} MiB, large ${large.peak / MiB} MiB`);
    // Allocator and worker noise move the peak by tens of MiB between runs; holding the large model's
    // embeddings whole would add over 512 MiB.
    expect(large.peak - small.peak).toBeLessThan(96 * MiB);
    // Node, the compute backend's worker and the budget come to well under the model's own bytes, while
    // holding its embeddings whole (as f32, for two models) would take twice them.
    expect(large.peak).toBeLessThan(large.inputBytes);
  });
});
