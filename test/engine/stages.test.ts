import { readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeStages, runMerge } from '../../src/main/engine/run-merge';
import { readModelF32, tempDir } from '../helpers';

const GOLDEN = resolve('test/fixtures/golden');
const RECIPE = join(GOLDEN, 'recipes', 'quartet-sequential.yml');

describe('multi-stage recipes', () => {
  it('orders the Lamarck stages by what they read and marks the output', async () => {
    const { lines } = describeStages(await readFile('test/fixtures/recipes/lamarck.yml', 'utf8'), 'lamarck.yml');
    expect(lines).toEqual([
      '1. lamarck-14b-reason-della (della)',
      '2. lamarck-14b-prose-della (della)',
      '3. lamarck-14b-converge-della (della) ← lamarck-14b-reason-della, lamarck-14b-prose-della',
      '4. lamarck-14b-converge (slerp) ← lamarck-14b-converge-della',
      '5. lamarck-14b-finalize (ties) ← lamarck-14b-converge  [output]',
    ]);
  });

  it('takes a reference ending in /name for that stage, but never an explicit local path', () => {
    const doc = (name: string, model: string) => `name: ${name}\nmerge_method: linear\nmodels:\n  - model: ${model}\n    parameters: {weight: 1}\n`;
    const final = (model: string) => `merge_method: linear\nmodels:\n  - model: ${model}\n    parameters: {weight: 1}\n`;
    const stages = (model: string) => describeStages(`${doc('chat', 'x')}---\n${final(model)}`, 'r.yml').lines;
    expect(stages('merges/chat')).toEqual(['1. chat (linear)', '2. (final) (linear) ← chat  [output]']);
    expect(stages('chat')).toEqual(['1. chat (linear)', '2. (final) (linear) ← chat  [output]']);
    for (const local of ['/models/chat', './chat', '../models/chat', 'C:\\models\\chat']) expect(stages(local), local).toEqual(['1. chat (linear)', '2. (final) (linear)  [output]']);
  });

  it('refuses cycles and two unnamed documents, naming the documents; one unnamed document anywhere is the output', () => {
    const doc = (name: string, model: string) => `name: ${name}\nmerge_method: linear\nmodels:\n  - model: ${model}\n    parameters: {weight: 1}\n`;
    const unnamed = (model: string) => `merge_method: linear\nmodels:\n  - model: ${model}\n`;
    expect(() => describeStages(`${doc('a', 'b')}---\n${doc('b', 'a')}`, 'r.yml')).toThrow(/cycle: a → b → a/);
    expect(() => describeStages(`${unnamed('x')}---\n${doc('b', 'x')}---\n${unnamed('y')}`, 'r.yml')).toThrow(/documents 1, 3 have no "name:"; one document at most may be unnamed/);
    expect(describeStages(`${unnamed('b')}---\n${doc('b', 'x')}---\n${doc('c', 'x')}`, 'r.yml').lines).toEqual(['1. b (linear)', '2. c (linear)', '3. (final) (linear) ← b  [output]']);
  });

  it('runs a sequential NearSwap in one command and equals mergekit run three times, then skips unchanged stages', async () => {
    const dir = await tempDir();
    const out = join(dir, 'quartet');
    const messages: string[] = [];
    const params = {
      recipeText: await readFile(RECIPE, 'utf8'),
      recipeFile: RECIPE,
      outDir: out,
      options: { outShardSize: 20_000 },
      onProgress: (e: { type: string; message?: string }) => e.type === 'stage' && e.message && messages.push(e.message),
    };
    await runMerge(params);
    const expected = await readModelF32(join(GOLDEN, 'outputs', 'nearswap-seq-3'));
    const actual = await readModelF32(out);
    expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [name, want] of expected) expect(Buffer.from(actual.get(name)!.values.buffer).equals(Buffer.from(want.values.buffer)), name).toBe(true);
    expect(messages.filter((m) => m.startsWith('stage '))).toEqual(['stage 1/3: step-1 (nearswap)', 'stage 2/3: step-2 (nearswap)', 'stage 3/3: (final) (nearswap)']);
    expect((await readdir(join(dir, '.quartet.stages'))).sort()).toEqual(['(final).stamp', 'step-1', 'step-1.stamp', 'step-2', 'step-2.stamp']);

    messages.length = 0;
    await runMerge({ ...params, options: { ...params.options, overwrite: true } });
    expect(messages.filter((m) => m.startsWith('stage '))).toEqual([
      'stage 1/3: step-1 (nearswap) is up to date',
      'stage 2/3: step-2 (nearswap) is up to date',
      'stage 3/3: (final) (nearswap) is up to date',
    ]);
  });
});
