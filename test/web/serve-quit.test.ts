import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AnalysisInfo } from '../../src/shared/analysis';
import type { JobInfo } from '../../src/shared/contract';
import { writeSparseLlamaModel } from '../engine/sparse-model';
import { tempDir } from '../helpers';
import { enginePid, killAfterShards } from '../services/engine-child';

let root: string;

/** `alloy serve` in its own process, as a user runs it; resolves with its address once it listens. */
async function serve(): Promise<{ server: ChildProcess; address: string; output: () => string }> {
  mkdirSync(join(root, 'tmp'), { recursive: true });
  const server = spawn(
    process.execPath,
    ['bin/alloy.mjs', 'serve', '--port', '0', '--output-root', join(root, 'out'), '--settings-file', join(root, 'config', 'settings.json'), '--model-folder', join(root, 'models')],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HF_HOME: join(root, 'hf'), TMPDIR: join(root, 'tmp') } },
  );
  let output = '';
  server.stdout!.on('data', (chunk) => (output += chunk));
  server.stderr!.on('data', (chunk) => (output += chunk));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server printed no address: ${output}`)), 30_000);
    server.stdout!.on('data', () => {
      const match = /running at (http:\/\/\S+?)\/?\s/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    server.once('exit', (code) => reject(new Error(`the server exited with ${code}: ${output}`)));
  });
  return { server, address, output: () => output };
}

async function call<T>(address: string, channel: string, body: unknown): Promise<T> {
  const answer = (await (await fetch(`${address}/api/invoke/${channel}`, { method: 'POST', body: JSON.stringify(body) })).json()) as { result?: T; error?: string };
  if (answer.error !== undefined) throw new Error(`${channel}: ${answer.error}`);
  return answer.result as T;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  root = await tempDir('alloy-serve-quit-');
  // Zero-filled (sparse) models: a merge of about 60 MB in 1 MiB shards, an analysis of many seconds (far longer than the quit may take).
  const small = { hidden: 512, intermediate: 1536, layers: 8, vocab: 4096, layersPerFile: 4 };
  await writeSparseLlamaModel(join(root, 'models', 'small-a'), small);
  await writeSparseLlamaModel(join(root, 'models', 'small-b'), small);
  const large = { hidden: 1024, intermediate: 4096, layers: 48, vocab: 32000, layersPerFile: 8 };
  await writeSparseLlamaModel(join(root, 'models', 'large-a'), large);
  await writeSparseLlamaModel(join(root, 'models', 'large-b'), large);
});

describe('stopping alloy serve (SIGTERM) while a merge and an analysis run', () => {
  it('keeps the merge resumable, stops the analysis, and exits; after a restart the merge resumes', async () => {
    const first = await serve();
    await call(first.address, 'settings.set', { outShardSize: 1 << 20, device: 'cpu' });
    const analysis = await call<AnalysisInfo>(first.address, 'analysis.start', { base: join(root, 'models', 'large-a'), models: [join(root, 'models', 'large-b'), join(root, 'models', 'large-a')] });
    const analysisPid = await enginePid(analysis.id, first.server.pid);
    const recipe = 'merge_method: linear\nmodels:\n  - model: small-a\n    parameters: {weight: 0.5}\n  - model: small-b\n    parameters: {weight: 0.5}\ndtype: float32\nout_dtype: bfloat16\n';
    const job = await call<JobInfo>(first.address, 'job.start', { recipe, outputName: 'merged' });
    const mergePid = await enginePid(job.id, first.server.pid);
    const exited = new Promise<number | null>((resolve) => first.server.once('exit', resolve));
    const stoppedAt = Date.now();
    // Once a shard is journaled the server is told to stop while its engine is held still; the engine
    // goes on only after the server has had time to signal it, so the merge cannot finish meanwhile.
    await killAfterShards(mergePid, [join(root, 'out', '.merged.alloy-partial')], 1, () => process.kill(first.server.pid!, 'SIGTERM'));
    await new Promise((r) => setTimeout(r, 300));
    // SIGHUP ends even a stopped process (a fatal signal); SIGCONT matters only if it is still there.
    if (alive(mergePid)) process.kill(mergePid, 'SIGCONT');
    expect(await exited, first.output()).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    expect(alive(mergePid)).toBe(false);
    expect(alive(analysisPid)).toBe(false);
    // Its job files' folder goes with it.
    expect(readdirSync(join(root, 'tmp')).filter((name) => name.startsWith('alloy-jobs-'))).toEqual([]);

    // What the merge wrote is kept: its hidden folder and journal, no output folder.
    expect(readdirSync(join(root, 'out'))).toEqual(['.merged.alloy-partial']);
    const saved = JSON.parse(await readFile(join(root, 'config', 'jobs.json'), 'utf8')) as { jobs: { info: JobInfo }[] };
    expect(saved.jobs[0]!.info).toMatchObject({ id: job.id, state: 'failed', error: 'Alloy stopped while this merge was running', resumable: { finishedShards: expect.any(Number) } });
    const analyses = JSON.parse(await readFile(join(root, 'config', 'analyses.json'), 'utf8')) as { analyses: AnalysisInfo[] };
    expect(analyses.analyses[0]).toMatchObject({ id: analysis.id, state: 'failed', error: 'Alloy stopped while this analysis was running' });

    const second = await serve();
    try {
      const [listed] = await call<JobInfo[]>(second.address, 'job.list', {});
      expect(listed).toMatchObject({ id: job.id, state: 'failed', resumable: { finishedShards: saved.jobs[0]!.info.resumable!.finishedShards } });
      await call<JobInfo>(second.address, 'job.resume', { id: job.id });
      let state: JobInfo | undefined;
      for (const start = Date.now(); Date.now() - start < 60_000; await new Promise((r) => setTimeout(r, 200))) {
        state = (await call<JobInfo[]>(second.address, 'job.list', {})).find((j) => j.id === job.id);
        if (state?.state !== 'running') break;
      }
      expect(state?.state, state?.log.join('\n')).toBe('done');
      expect(state!.log.some((l) => /^resuming: [1-9]/.test(l))).toBe(true);
      expect(existsSync(join(root, 'out', 'merged', 'model.safetensors.index.json'))).toBe(true);
    } finally {
      const gone = new Promise((resolve) => second.server.once('exit', resolve));
      second.server.kill('SIGTERM');
      await gone;
    }
  });
});
