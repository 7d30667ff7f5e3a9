import { spawn, spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import type { AnalysisEvent } from '../../src/shared/analysis';
import { analyzeModels } from '../../src/main/engine/analysis/analyze-models';
import { writeSparseLlamaModel } from '../engine/sparse-model';
import { tempDir } from '../helpers';

const CLI = resolve('out/cli/alloy.mjs');
const DEMO = resolve('resources/demo/models');

function alloy(args: string[]) {
  const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const lines = (text: string) => text.trim().split('\n').map((l) => JSON.parse(l) as AnalysisEvent);

describe('alloy analyze', () => {
  it('prints each layer of each model against the base, then the whole model', async () => {
    const r = alloy(['analyze', '--base', 'alloy-demo-base', 'alloy-demo-chat', 'alloy-demo-code', '--model-root', DEMO, '--t', '0.0001,0.001', '--progress', 'none']);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^group\s+model\s+rel\. L2\s+cosine\s+swap@t=0\.0001\s+swap@t=0\.001$/);
    expect(rows.slice(1).map((row) => row.split(/\s+/).slice(0, 2).join(' '))).toEqual(
      ['embed', '0', '1', '2', '3', 'head', 'all'].flatMap((g) => [`${g} alloy-demo-chat`, `${g} alloy-demo-code`]),
    );
    // The numbers are the engine's, as computed in this process.
    const result = await analyzeModels({ base: 'alloy-demo-base', models: ['alloy-demo-chat', 'alloy-demo-code'], t: [0.0001, 0.001], search: { modelRoots: [DEMO] } });
    const layer2 = result.layers.find((l) => l.group.label === '2')!.metrics[1]!;
    const cells = rows.find((row) => row.startsWith('2 ') && row.includes('alloy-demo-code'))!.split(/\s{2,}/);
    expect(Number(cells[2])).toBeCloseTo(layer2.relativeL2!, 5);
    expect(Number(cells[3])).toBeCloseTo(layer2.cosine!, 7);
    expect(cells[5]).toBe(`${(100 * layer2.swapFractions[1]!).toFixed(3)} %`);
  });

  it('streams JSON lines with --progress jsonl and prints the whole result with --json', () => {
    const r = alloy(['analyze', '--base', 'alloy-demo-base', 'alloy-demo-chat', '--model-root', DEMO, '--t', '0.001', '--progress', 'jsonl']);
    expect(r.code, r.stderr).toBe(0);
    const events = lines(r.stdout);
    expect(events[0]).toMatchObject({ type: 'start', base: 'alloy-demo-base', models: ['alloy-demo-chat'], t: [0.001], tensors: 39 });
    expect(events.filter((e) => e.type === 'tensor')).toHaveLength(39);
    expect(events.filter((e) => e.type === 'layer').map((e) => e.type === 'layer' && e.result.group.label)).toEqual(['embed', '0', '1', '2', '3', 'head']);
    const done = events.at(-1)!;
    expect(done).toMatchObject({ type: 'done', totals: [{ model: 'alloy-demo-chat', elements: 180_800 }] });
    const json = alloy(['analyze', '--base', 'alloy-demo-base', 'alloy-demo-chat', '--model-root', DEMO, '--t', '0.001', '--json', '--progress', 'none']);
    expect(json.code, json.stderr).toBe(0);
    const whole = JSON.parse(json.stdout);
    expect(whole.layers).toHaveLength(6);
    expect(done.type === 'done' && whole.totals).toEqual(done.type === 'done' && done.totals);
  });

  it('refuses a bad command line with exit code 2 and a missing model with 1', () => {
    expect(alloy(['analyze', 'alloy-demo-chat']).code).toBe(2);
    const t = alloy(['analyze', '--base', 'alloy-demo-base', 'alloy-demo-chat', '--t', '0.1,lots']);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/--t takes numbers/);
    expect(alloy(['analyze', '--base', 'alloy-demo-base', 'alloy-demo-chat', '--dtype', 'int8']).stderr).toMatch(/--dtype must be/);
    const missing = alloy(['analyze', '--base', 'alloy-demo-base', 'not-a-model', '--model-root', DEMO]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/model "not-a-model" not found/);
  });

  it('runs an analysis job file (kind "analysis") as the app does, and reports a failing one as an error event', async () => {
    const dir = await tempDir();
    const job = join(dir, 'job.json');
    await writeFile(job, JSON.stringify({ kind: 'analysis', base: 'alloy-demo-base', models: ['alloy-demo-code'], t: [0.01], options: { modelRoots: [DEMO] } }));
    const r = alloy(['run-job', job, '--progress=jsonl']);
    expect(r.code, r.stderr).toBe(0);
    const events = lines(r.stdout);
    expect(events.filter((e) => e.type === 'layer')).toHaveLength(6);
    expect(events.at(-1)).toMatchObject({ type: 'done' });
    await writeFile(job, JSON.stringify({ kind: 'analysis', base: 'alloy-demo-base', models: ['alloy-demo-code', 'nowhere/at-all'], options: { modelRoots: [DEMO] } }));
    const failed = alloy(['run-job', job, '--progress=jsonl']);
    expect(failed.code).toBe(1);
    expect(lines(failed.stdout).at(-1)).toMatchObject({ type: 'error', code: 'failed', message: expect.stringContaining('model "nowhere/at-all" not found') });
    await writeFile(job, JSON.stringify({ kind: 'analysis', base: 'alloy-demo-base', models: [] }));
    const invalid = alloy(['run-job', job, '--progress=jsonl']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/job\.json: models: pick at least one model/);
  });

  it('stops on SIGTERM with exit code 130', async () => {
    const dir = await tempDir();
    const shape = { hidden: 1024, intermediate: 4096, layers: 8, vocab: 32000, layersPerFile: 4 };
    await writeSparseLlamaModel(join(dir, 'a'), shape);
    await writeSparseLlamaModel(join(dir, 'b'), shape);
    const child = spawn(process.execPath, [CLI, 'analyze', '--base', join(dir, 'a'), join(dir, 'b'), '--t', '0.001', '--progress', 'jsonl'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const events: AnalysisEvent[] = [];
    const firstLayer = new Promise<void>((done) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        events.push(JSON.parse(line) as AnalysisEvent);
        if (events.at(-1)!.type === 'layer') done();
      });
    });
    const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    await firstLayer;
    const killedAt = performance.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(130);
    expect(performance.now() - killedAt).toBeLessThan(2000);
    expect(events.some((e) => e.type === 'done')).toBe(false);
  });
});
