import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { JobInfo } from '../../src/shared/contract';
import { EventBus } from '../../src/main/services/events';
import { JobService } from '../../src/main/services/job-service';
import { differingFiles, writeTwoModelFixture } from '../engine/engine-process';
import { tempDir } from '../helpers';
import { enginePid, enginePids, killAfterShards } from './engine-child';

const ENGINE = resolve('out/cli/alloy.mjs');
const SHARD = 200_000;

let root: string;
let recipe: string;
let modelRoot: string;
let reference: string;

function service(outputRoot: string, jobsFile?: string) {
  const events = new EventBus();
  const jobs = new JobService({
    nodeBinary: process.execPath,
    engineEntry: ENGINE,
    workDir: join(root, 'work'),
    outputRoot,
    modelRoots: () => [modelRoot],
    events,
    ...(jobsFile ? { jobsFile } : {}),
  });
  return { jobs, events };
}

/** Resolves with the job's state once it is `state` (from the service's own events). */
function settled(s: ReturnType<typeof service>, id: string, state: JobInfo['state'] = 'done'): Promise<JobInfo> {
  return new Promise((done, fail) => {
    const check = (info: JobInfo | undefined) => {
      if (info?.id !== id || info.state === 'running') return;
      off();
      if (info.state === state) done(info);
      else fail(new Error(`the job ended ${info.state}: ${info.error ?? ''}\n${info.log.join('\n')}`));
    };
    const off = s.events.on('job.state', check);
    check(s.jobs.get(id));
  });
}

function resumedShards(info: JobInfo): number {
  const line = info.log.find((l) => l.startsWith('resuming: '));
  return Number(/^resuming: (\d+)/.exec(line ?? '')?.[1] ?? -1);
}

beforeAll(async () => {
  root = await tempDir('alloy-job-resume-');
  ({ recipe, modelRoot } = await writeTwoModelFixture(root));
  recipe = await readFile(recipe, 'utf8');
  const s = service(join(root, 'reference'));
  const started = await s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' });
  await settled(s, started.id);
  expect(readdirSync(join(root, 'work')), 'the job and recipe files outlive their engine').toEqual([]);
  reference = join(root, 'reference', 'merged');
  expect(readdirSync(reference).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThanOrEqual(12);
});

describe('the job service resumes an interrupted merge', () => {
  it('after its engine is killed mid-run (kill -9), Resume finishes it from the journal with the uninterrupted bits', async () => {
    const outputRoot = join(root, 'killed');
    const s = service(outputRoot);
    const job = await s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' });
    const killedAt = await killAfterShards(await enginePid(job.id), [join(outputRoot, '.merged.alloy-partial')], 3);
    const failed = await settled(s, job.id, 'failed');
    expect(failed.error).toBe('the engine was stopped by SIGKILL before the merge finished');
    const finished = failed.resumable?.finishedShards ?? 0;
    expect(finished).toBe(killedAt);
    expect(readdirSync(outputRoot)).toEqual(['.merged.alloy-partial']);

    const resumed = await s.jobs.resume(job.id);
    expect(resumed).toMatchObject({ id: job.id, state: 'running' });
    expect(resumed.resumable).toBeUndefined();
    const done = await settled(s, job.id);
    // The engine verified and kept the shards the killed run had journaled.
    expect(resumedShards(done)).toBe(finished);
    expect(done.log).toContain(`resuming from ${finished} finished shards`);
    expect(await differingFiles(reference, join(outputRoot, 'merged'))).toEqual([]);
    expect(readdirSync(outputRoot)).toEqual(['merged']);
    expect(s.jobs.get(job.id)?.resumable).toBeUndefined();
  });

  it('two resumes at once run one engine: the second is refused', async () => {
    const outputRoot = join(root, 'double-resume');
    const s = service(outputRoot);
    const job = await s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' });
    await killAfterShards(await enginePid(job.id), [join(outputRoot, '.merged.alloy-partial')], 2);
    await settled(s, job.id, 'failed');
    const answers = await Promise.allSettled([s.jobs.resume(job.id), s.jobs.resume(job.id)]);
    expect(answers.map((a) => a.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(answers.find((a) => a.status === 'rejected')).toMatchObject({ reason: expect.objectContaining({ message: 'merged is still running' }) });
    expect(enginePids(job.id)).toHaveLength(1);
    const done = await settled(s, job.id);
    expect(done.log.filter((l) => l.startsWith('resuming from '))).toHaveLength(1);
    expect(await differingFiles(reference, join(outputRoot, 'merged'))).toEqual([]);
  });

  it('a multi-stage merge killed in its first stage resumes from that stage\'s journal, to the uninterrupted bits', async () => {
    const stages = `name: blend\n${recipe}---\nname: final\nmerge_method: linear\nmodels:\n  - model: blend\n    parameters: {weight: 0.5}\n  - model: a\n    parameters: {weight: 0.5}\ndtype: float32\n`;
    const whole = service(join(root, 'stages-reference'));
    const uninterrupted = await whole.jobs.start({ recipe: stages, outputName: 'merged', outShardSize: SHARD, device: 'cpu' });
    await settled(whole, uninterrupted.id);
    const outputRoot = join(root, 'stages-killed');
    const s = service(outputRoot);
    const job = await s.jobs.start({ recipe: stages, outputName: 'merged', outShardSize: SHARD, device: 'cpu' });
    const killedAt = await killAfterShards(await enginePid(job.id), [join(outputRoot, '.merged.stages', '.blend.alloy-partial')], 3);
    const failed = await settled(s, job.id, 'failed');
    const finished = failed.resumable?.finishedShards ?? 0;
    expect(finished).toBe(killedAt);
    expect(readdirSync(join(outputRoot, '.merged.stages'))).toContain('.blend.alloy-partial');
    await s.jobs.resume(job.id);
    const done = await settled(s, job.id);
    expect(resumedShards(done)).toBe(finished);
    expect(await differingFiles(join(root, 'stages-reference', 'merged'), join(outputRoot, 'merged'))).toEqual([]);
  });

  it('a cancelled merge cleans up and has nothing to resume; resume says so', async () => {
    const s = service(join(root, 'cancelled'));
    const job = await s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' });
    // Cancelled (SIGTERM) while stopped after its first shard, then let go to handle it.
    const pid = await enginePid(job.id);
    await killAfterShards(pid, [join(root, 'cancelled', '.merged.alloy-partial')], 1, () => {
      s.jobs.cancel(job.id);
      process.kill(pid, 'SIGCONT');
    });
    const cancelled = await settled(s, job.id, 'cancelled');
    expect(cancelled.resumable).toBeUndefined();
    await expect(s.jobs.resume(job.id)).rejects.toThrow(/left nothing to resume from \(no journal of finished shards beside .*merged\); run the merge again/);
  });

  it('a merge the app was running when it crashed comes back after a restart as interrupted, and resumes to the same bits', async () => {
    const outputRoot = join(root, 'crashed');
    await mkdir(outputRoot);
    const jobsFile = join(root, 'crashed-app', 'jobs.json');
    // The "app": a Node process holding a JobService, killed with its engine (one process group) mid-merge.
    const app = spawn(process.execPath, ['--import', 'tsx', 'test/services/job-app.ts', ENGINE, root, outputRoot, modelRoot, jobsFile, String(SHARD)], {
      detached: true,
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    app.stdin.end(recipe);
    const exited = new Promise((r) => app.once('exit', r));
    // Its engine, stepped until three shards are journaled; then the app and the engine die together.
    await killAfterShards(await enginePid('', app.pid), [join(outputRoot, '.merged.alloy-partial')], 3, () => process.kill(-app.pid!, 'SIGKILL'));
    await exited;
    const saved = JSON.parse(await readFile(jobsFile, 'utf8')) as { jobs: { info: JobInfo }[] };
    expect(saved.jobs.map((j) => j.info.state)).toEqual(['running']);

    const s = service(outputRoot, jobsFile);
    await s.jobs.loaded;
    const [interrupted] = s.jobs.list();
    expect(interrupted).toMatchObject({ state: 'failed', error: 'Alloy stopped while this merge was running', outputName: 'merged' });
    const finished = interrupted!.resumable?.finishedShards ?? 0;
    expect(finished).toBeGreaterThan(0);
    await s.jobs.resume(interrupted!.id);
    const done = await settled(s, interrupted!.id);
    expect(resumedShards(done)).toBe(finished);
    expect(await differingFiles(reference, join(outputRoot, 'merged'))).toEqual([]);
    // The next start of the app lists it done, with nothing to resume.
    await expect.poll(async () => (JSON.parse(await readFile(jobsFile, 'utf8')) as { jobs: { info: JobInfo }[] }).jobs[0]!.info.state).toBe('done');
    const again = service(outputRoot, jobsFile);
    await again.jobs.loaded;
    expect(again.jobs.list().map((j) => [j.state, j.resumable])).toEqual([['done', undefined]]);
  });
});
