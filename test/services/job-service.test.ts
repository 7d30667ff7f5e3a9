import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { JobInfo } from '../../src/shared/contract';
import { EventBus } from '../../src/main/services/events';
import { isGpuLibraryNotice } from '../../src/main/services/gpu-library-notice';
import { JobService } from '../../src/main/services/job-service';
import { writeTwoModelFixture } from '../engine/engine-process';
import { tempDir } from '../helpers';

const ENGINE = resolve('out/cli/alloy.mjs');
const SHARD = 200_000;

let root: string;
let recipe: string;
let modelRoot: string;

function service(outputRoot: string, workDir = join(root, 'work')) {
  const events = new EventBus();
  const jobs = new JobService({ nodeBinary: process.execPath, engineEntry: ENGINE, workDir, outputRoot, modelRoots: () => [modelRoot], events });
  return { jobs, events };
}

/** The job once it has stopped running, from the service's own events. */
function ended(s: ReturnType<typeof service>, id: string): Promise<JobInfo> {
  return new Promise((done) => {
    const check = (info: JobInfo | undefined) => {
      if (info?.id !== id || info.state === 'running') return;
      off();
      done(info);
    };
    const off = s.events.on('job.state', check);
    check(s.jobs.get(id));
  });
}

beforeAll(async () => {
  root = await tempDir('alloy-job-service-');
  ({ recipe, modelRoot } = await writeTwoModelFixture(root));
  recipe = await readFile(recipe, 'utf8');
});

describe('the job service', () => {
  it('refuses to start a merge into a folder another running merge is writing', async () => {
    const s = service(join(root, 'same-name'));
    const first = await s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' });
    await expect(s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' })).rejects.toThrow(
      `another merge is writing ${join(root, 'same-name', 'merged')}; wait for it or cancel it first`,
    );
    expect(s.jobs.list().map((j) => j.id)).toEqual([first.id]);
    // Another name is free to run beside it.
    const other = await s.jobs.start({ recipe, outputName: 'other', outShardSize: SHARD, device: 'cpu' });
    const [a, b] = await Promise.all([ended(s, first.id), ended(s, other.id)]);
    expect([a.state, b.state], `${a.error} ${b.error}`).toEqual(['done', 'done']);
  });

  it('refuses a merge into a folder that holds an earlier merge, before making a job, unless told to replace it', async () => {
    const outputRoot = join(root, 'taken');
    const s = service(outputRoot);
    const first = await s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' });
    expect((await ended(s, first.id)).state).toBe('done');
    await expect(s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' })).rejects.toThrow(
      `the output folder merged already exists (${join(outputRoot, 'merged')}); choose another name, or replace it`,
    );
    expect(s.jobs.list().map((j) => j.id)).toEqual([first.id]);
    const replaced = await s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu', overwrite: true });
    const info = await ended(s, replaced.id);
    expect(info.state, info.error).toBe('done');
  });

  it('settles a merge whose engine cannot be launched as failed, with the reason, instead of running for ever', async () => {
    // The work folder cannot be made: a file stands where its parent should be.
    const blocker = join(root, 'not-a-folder');
    await writeFile(blocker, 'a file');
    const s = service(join(root, 'unlaunchable'), join(blocker, 'work'));
    const states: string[] = [];
    s.events.on('job.state', (info) => states.push(info.state));
    await expect(s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' })).rejects.toThrow(/^could not start the merge: ENOTDIR/);
    const [job] = s.jobs.list();
    expect(job).toMatchObject({ state: 'failed', error: expect.stringMatching(/^could not start the merge: ENOTDIR: not a directory/) });
    expect(job!.finishedAt).toBeGreaterThan(0);
    expect(states).toEqual(['failed']);
    expect(s.jobs.cancel(job!.id).state).toBe('failed');
    // The output folder is free for the next try.
    await expect(s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'cpu' })).rejects.toThrow(/could not start the merge/);
  });

  it("keeps the GPU library's own diagnostics out of a merge's log: the engine's device line says what it chose", async () => {
    const s = service(join(root, 'auto-device'));
    const job = await s.jobs.start({ recipe, outputName: 'merged', outShardSize: SHARD, device: 'auto' });
    const info = await ended(s, job.id);
    expect(info.state, info.error).toBe('done');
    expect(info.log.some((line) => line.startsWith('computing on') || line.includes('; computing on'))).toBe(true);
    expect(info.log.filter(isGpuLibraryNotice)).toEqual([]);
  });

  it('tells Dawn\'s stderr lines from the engine\'s', () => {
    const dawn = [
      "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory",
      '    at operator() (/home/runner/work/node-webgpu/node-webgpu/third_party/dawn/src/dawn/native/vulkan/BackendVk.cpp:368)',
      '',
      'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 90 to 16 to fit dynamic offset allocation limit.',
    ];
    expect(dawn.filter((line) => !isGpuLibraryNotice(line))).toEqual([]);
    const engine = ['alloy: /m/recipe.yml:3:5: unknown merge_method "tie"', '    at planMerge (file:///app/out/cli/alloy.mjs:120:11)', '(node:12) Warning: something from Node'];
    expect(engine.filter(isGpuLibraryNotice)).toEqual([]);
  });

  it('a merge cancelled right after its start is cancelled, even before its engine listens for the signal', async () => {
    const outputRoot = join(root, 'cancelled-at-once');
    const s = service(outputRoot);
    for (let i = 0; i < 3; i++) {
      const job = await s.jobs.start({ recipe, outputName: `merged-${i}`, outShardSize: SHARD, device: 'cpu' });
      s.jobs.cancel(job.id);
      const info = await ended(s, job.id);
      expect(info.state, info.error).toBe('cancelled');
      expect(info.error).toBeUndefined();
      expect(info.resumable).toBeUndefined();
    }
  });
});
