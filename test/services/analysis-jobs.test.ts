import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { AnalysisInfo } from '../../src/shared/analysis';
import { ContractError, validateRequest, type Channel, type RequestOf, type ResponseOf } from '../../src/shared/contract';
import { analyzeModels } from '../../src/main/engine/analysis/analyze-models';
import { createServices } from '../../src/main/services';
import { resolveAppPaths } from '../../src/main/services/paths';
import { writeSparseLlamaModel } from '../engine/sparse-model';
import { tempDir } from '../helpers';

const DEMO = resolve('resources/demo/models');

function services(settingsFile?: string) {
  const workDir = mkdtempSync(join(tmpdir(), 'alloy-analysis-work-'));
  const s = createServices({
    paths: resolveAppPaths(fileURLToPath(import.meta.url)),
    nodeBinary: process.execPath,
    outputRoot: mkdtempSync(join(tmpdir(), 'alloy-analysis-')),
    workDir,
    ...(settingsFile ? { settingsFile } : {}),
  });
  const invoke = <C extends Channel>(channel: C, request: RequestOf<C>): Promise<ResponseOf<C>> =>
    (s.handlers[channel] as (r: unknown) => Promise<ResponseOf<C>>)(validateRequest(channel, request));
  const settled = (id: string) =>
    new Promise<AnalysisInfo>((done) => {
      const off = s.events.on('analysis.state', (info) => {
        if (info.id === id && info.state !== 'running') {
          off();
          done(info);
        }
      });
    });
  return { s, invoke, settled, workDir };
}

describe('analyses as engine jobs', () => {
  it('runs the engine in a child process, relays its events and keeps every result for a window that comes back', async () => {
    const { s, invoke, settled, workDir } = services();
    const progress: string[] = [];
    s.events.on('analysis.progress', ({ event }) => progress.push(event.type));
    const started = await invoke('analysis.start', { base: join(DEMO, 'alloy-demo-base'), models: [join(DEMO, 'alloy-demo-chat'), join(DEMO, 'alloy-demo-code')], t: [0.001] });
    expect(started).toMatchObject({ state: 'running', t: [0.001], layers: [] });
    const done = await settled(started.id);
    expect(done.state, done.error).toBe('done');
    expect(readdirSync(workDir), 'the job file outlives its engine').toEqual([]);
    expect(progress[0]).toBe('start');
    expect(progress.filter((t) => t === 'layer')).toHaveLength(6);
    expect(progress.at(-1)).toBe('done');
    const inProcess = await analyzeModels({ base: join(DEMO, 'alloy-demo-base'), models: [join(DEMO, 'alloy-demo-chat'), join(DEMO, 'alloy-demo-code')], t: [0.001] });
    expect(done.groups).toEqual(inProcess.groups);
    expect(done.layers).toEqual(inProcess.layers);
    expect(done.totals).toEqual(inProcess.totals);
    expect(done.computeDtype).toBe('BF16');
    const [listed] = await invoke('analysis.list', {});
    expect(listed).toEqual(done);
  });

  it('keeps finished analyses for the next run of the app', async () => {
    const settingsFile = join(await tempDir(), 'settings.json');
    const first = services(settingsFile);
    const started = await first.invoke('analysis.start', { base: join(DEMO, 'alloy-demo-base'), models: [join(DEMO, 'alloy-demo-chat')] });
    const done = await first.settled(started.id);
    expect(done.state, done.error).toBe('done');
    for (const start = Date.now(); !existsSync(join(dirname(settingsFile), 'analyses.json')); await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() - start > 5_000) throw new Error('analyses.json was not written');
    }
    const next = services(settingsFile);
    expect(await next.invoke('analysis.list', {})).toEqual([done]);
  });

  it('fails with the engine\'s message, and cancels a running analysis', async () => {
    const { invoke, settled } = services();
    const missing = await invoke('analysis.start', { base: join(DEMO, 'alloy-demo-base'), models: ['nowhere/at-all'] });
    const failed = await settled(missing.id);
    expect(failed.state).toBe('failed');
    expect(failed.error).toMatch(/model "nowhere\/at-all" not found/);

    const dir = await tempDir();
    const shape = { hidden: 1024, intermediate: 4096, layers: 16, vocab: 32000, layersPerFile: 4 };
    await writeSparseLlamaModel(join(dir, 'a'), shape);
    await writeSparseLlamaModel(join(dir, 'b'), shape);
    const { s, invoke: invoke2, settled: settled2 } = services();
    const firstLayer = new Promise<void>((done) => s.events.on('analysis.progress', ({ event }) => event.type === 'layer' && done()));
    const running = await invoke2('analysis.start', { base: join(dir, 'a'), models: [join(dir, 'b')], t: [0.001] });
    await firstLayer;
    await invoke2('analysis.cancel', { id: running.id });
    const cancelled = await settled2(running.id);
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.error).toBeUndefined();
    expect(cancelled.layers.length).toBeGreaterThan(0);
    expect(cancelled.layers.length).toBeLessThan(18);
  });

  it('an analysis cancelled right after its start is cancelled, even before its engine listens for the signal', async () => {
    const { invoke, settled } = services();
    for (let i = 0; i < 3; i++) {
      const started = await invoke('analysis.start', { base: join(DEMO, 'alloy-demo-base'), models: [join(DEMO, 'alloy-demo-chat')] });
      await invoke('analysis.cancel', { id: started.id });
      const info = await settled(started.id);
      expect(info.state, info.error).toBe('cancelled');
      expect(info.error).toBeUndefined();
    }
  });

  it('checks requests against the contract', () => {
    expect(() => validateRequest('analysis.start', { base: 'a', models: [] })).toThrow(ContractError);
    expect(() => validateRequest('analysis.start', { base: 'a', models: ['b'], t: [-1] })).toThrow(/t\.0: NearSwap t must be at least 0/);
    expect(() => validateRequest('analysis.start', { base: 'a', models: ['b'], dtype: 'int8' })).toThrow(ContractError);
    expect(validateRequest('analysis.start', { base: ' a ', models: ['b'], t: [0.0001], dtype: 'bfloat16' })).toEqual({ base: 'a', models: ['b'], t: [0.0001], dtype: 'bfloat16' });
  });
});
