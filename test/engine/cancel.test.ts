import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CancelledError } from '../../src/main/engine/execute/execute-plan';
import { runMerge } from '../../src/main/engine/run-merge';
import { tempDir } from '../helpers';

const DEMO = resolve('resources/demo/models');

describe('cancelling a merge', () => {
  it('stops at the next chunk and leaves neither an output nor a partial folder', async () => {
    const dir = await tempDir();
    const controller = new AbortController();
    let tensors = 0;
    const run = runMerge({
      recipeText: 'merge_method: linear\nmodels:\n  - model: alloy-demo-chat\n    parameters: {weight: 1}\n  - model: alloy-demo-code\n    parameters: {weight: 1}\n',
      recipeFile: join(DEMO, 'r.yml'),
      outDir: join(dir, 'out'),
      options: { modelRoots: [DEMO], outShardSize: 100_000 },
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'tensor' && ++tensors === 5) controller.abort();
      },
    });
    await expect(run).rejects.toBeInstanceOf(CancelledError);
    expect(tensors).toBe(5);
    expect(await readdir(dir)).toEqual([]);
  });
});
