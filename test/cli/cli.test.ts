import { spawnSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ProgressEvent } from '../../src/shared/progress';
import { tempDir } from '../helpers';

const CLI = resolve('out/cli/alloy.mjs');
const DEMO = resolve('resources/demo/models');
const RECIPE = resolve('resources/demo/linear.yml');

function alloy(args: string[], cwd = process.cwd()) {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('alloy CLI', () => {
  it('merges the demo recipe like mergekit-yaml, printing the output folder', async () => {
    const out = join(await tempDir(), 'merged');
    const r = alloy(['merge', RECIPE, out, '--model-root', DEMO, '--out-shard-size', '200K', '--lazy-unpickle', '--progress', 'none']);
    expect(r.stderr).toContain('--lazy-unpickle');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(out);
    const files = await readdir(out);
    expect(files).toEqual(expect.arrayContaining(['config.json', 'model.safetensors.index.json', 'mergekit_config.yml', 'README.md', 'tokenizer.json']));
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config.num_hidden_layers).toBe(4);
  });

  it('plans without writing anything', async () => {
    const dir = await tempDir();
    const r = alloy(['plan', RECIPE, '--model-root', DEMO], dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/method: linear/);
    expect(r.stdout).toMatch(/model\.layers\.0\.self_attn\.q_proj\.weight BF16\[64,64\] merge/);
    expect(await readdir(dir)).toEqual([]);
    const json = alloy(['plan', RECIPE, '--model-root', DEMO, '--json']);
    const plan = JSON.parse(json.stdout);
    expect(plan.tensors).toHaveLength(4 * 9 + 3);
    expect(plan.tensors[0].inputs[0]).toMatchObject({ file: expect.stringContaining('alloy-demo-chat'), dtype: 'BF16' });
  });

  it('runs a job file and reports progress as JSON lines', async () => {
    const dir = await tempDir();
    const job = join(dir, 'job.json');
    const out = join(dir, 'out');
    await writeFile(job, JSON.stringify({ recipeText: await readFile(RECIPE, 'utf8'), recipeFile: RECIPE, outDir: out, options: { modelRoots: [DEMO] } }));
    const r = alloy(['run-job', job, '--progress=jsonl']);
    expect(r.code).toBe(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as ProgressEvent);
    const tensors = events.filter((e) => e.type === 'tensor');
    expect(tensors.length).toBe(39);
    expect(tensors.at(-1)).toMatchObject({ index: 39, total: 39 });
    expect(events.at(-1)).toMatchObject({ type: 'done', outDir: out });
  });

  it('reports a failing job as an error event and exit code 1', async () => {
    const dir = await tempDir();
    const job = join(dir, 'job.json');
    await writeFile(job, JSON.stringify({ recipeText: 'merge_method: linear\nmodels:\n  - model: nowhere/at-all\n    parameters: {weight: 1}\n', recipeFile: join(dir, 'r.yml'), outDir: join(dir, 'out') }));
    const r = alloy(['run-job', job, '--progress=jsonl']);
    expect(r.code).toBe(1);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ProgressEvent;
    expect(last).toMatchObject({ type: 'error', message: expect.stringContaining('model "nowhere/at-all" not found') });
  });

  it('lists every merge option in --help, its description set apart from the flag', () => {
    const r = alloy(['--help']);
    expect(r.code).toBe(0);
    const options = r.stdout.split('Merge options:\n')[1]!.split('\n\n')[0]!.split('\n');
    expect(options.length).toBeGreaterThan(20);
    for (const line of options) expect(line, line).toMatch(/^  --[a-z-]+( VALUE)? {2,}\S/);
    const column = (line: string) => /^ {2}--[a-z-]+(?: VALUE)? +/.exec(line)![0].length;
    expect(new Set(options.map(column)).size, 'the descriptions start in one column').toBe(1);
  });

  it('prints the help for a command given --help, and writes nothing', async () => {
    const dir = await tempDir();
    for (const args of [['demo-models', '--help'], ['merge', '--help'], ['plan', '-h']]) {
      const r = alloy(args, dir);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage:');
    }
    expect(alloy(['demo-models', '--out', 'x'], dir).code).toBe(2);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses unknown flags and bad arguments with exit code 2', () => {
    expect(alloy(['merge', RECIPE, '/tmp/x', '--cpu-only']).code).toBe(2);
    expect(alloy(['merge', RECIPE, '/tmp/x', '--out-shard-size', 'lots']).stderr).toMatch(/not a size/);
    expect(alloy(['merge', RECIPE]).code).toBe(2);
    expect(alloy(['frobnicate']).code).toBe(2);
    expect(alloy(['merge', RECIPE, '/tmp/x', '--devise', 'cpu']).stderr).toMatch(/did you mean --device/);
  });

  it('will not write into a non-empty folder without --overwrite, and keeps what is there', async () => {
    const out = await tempDir();
    await writeFile(join(out, 'precious.txt'), 'keep me');
    const r = alloy(['merge', RECIPE, out, '--model-root', DEMO, '--progress', 'none']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already exists and is not empty/);
    expect(await readFile(join(out, 'precious.txt'), 'utf8')).toBe('keep me');
  });
});
