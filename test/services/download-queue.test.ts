import { spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DownloadInfo } from '../../src/shared/library-contract';
import { DownloadManager } from '../../src/main/services/downloads/download-manager';
import type { SavedDownload } from '../../src/main/services/downloads/download-job';
import { tempDir } from '../helpers';
import { FakeHub } from './fake-hub/fake-hub';
import { addFixtureRepos, TINY_LLAMA, TINY_MISTRAL } from './fake-hub/fixture-repos';
import { pseudoRandomBytes } from './fake-hub/tiny-model';

const hub = new FakeHub();
const BIG = 'alloy-test/slow';
const BIG_BYTES = 300_000;

beforeAll(async () => {
  addFixtureRepos(hub);
  hub.addRepo(BIG, { 'config.json': '{}', 'model.safetensors': pseudoRandomBytes(BIG_BYTES, 'slow') });
  await hub.start();
});
afterAll(() => hub.close());

function manager(cacheDir: string, stateFile: string) {
  const events: DownloadInfo[] = [];
  const m = new DownloadManager({
    cacheDir,
    stateFile,
    maxConcurrent: 1,
    retryDelayMs: 5,
    progressIntervalMs: 0,
    hubOptions: async () => ({ hubUrl: hub.url }),
    onProgress: (info) => events.push(info),
  });
  return { m, events };
}

async function savedQueue(stateFile: string): Promise<SavedDownload[]> {
  return (JSON.parse(await readFile(stateFile, 'utf8')) as { downloads: SavedDownload[] }).downloads;
}

/** Bytes of a repo's blobs and partial files in the cache: what a restored download counts as done. */
async function bytesOnDisk(cache: string, repo: string): Promise<{ blobs: number; partial: number }> {
  const dir = join(cache, `models--${repo.replace('/', '--')}`, 'blobs');
  let blobs = 0;
  let partial = 0;
  for (const name of await readdir(dir)) {
    const { size } = await stat(join(dir, name));
    if (name.endsWith('.incomplete')) partial += size;
    else blobs += size;
  }
  return { blobs, partial };
}

describe('the download queue survives a restart of the app', () => {
  it('after a crash (kill -9 of the app mid-download), the queue comes back and goes on from the partial file with a Range', async () => {
    hub.faults.bytesPerSecond = 300_000;
    try {
      const cache = await tempDir();
      const stateFile = join(await tempDir('alloy-state-'), 'downloads.json');
      const app = spawn(process.execPath, ['--import', 'tsx', 'test/services/download-app.ts', cache, stateFile, hub.url, BIG, TINY_MISTRAL], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      await new Promise<void>((done, fail) => {
        app.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const bytes = [...out.matchAll(new RegExp(`bytes ${BIG} (\\d+)`, 'g'))].map((m) => Number(m[1]));
          if (bytes.some((b) => b > 80_000)) done();
        });
        app.on('exit', () => fail(new Error(`the app exited early: ${out}`)));
      });
      app.kill('SIGKILL');
      await new Promise((r) => app.once('exit', r));
      const saved = await savedQueue(stateFile);
      expect(saved.map((d) => [d.request.repo, d.info.state, d.resume])).toEqual([
        [BIG, 'running', true],
        [TINY_MISTRAL, 'queued', true],
      ]);
      const left = await bytesOnDisk(cache, BIG);
      expect(left.partial).toBeGreaterThan(0);
      expect(left.partial).toBeLessThan(BIG_BYTES);

      hub.faults.bytesPerSecond = 0;
      const before = hub.requests.length;
      const { m, events } = manager(cache, stateFile);
      await m.loaded;
      // Back under the same ids, counting what is on disk, and going on by themselves.
      expect(m.list().map((d) => d.id)).toEqual(saved.map((d) => d.info.id));
      expect(events.find((e) => e.repo === BIG)).toMatchObject({ state: 'queued', downloadedBytes: left.blobs + left.partial, totalBytes: BIG_BYTES + 2 });
      await m.idle();
      expect(m.list().map((d) => d.state)).toEqual(['done', 'done']);
      const weights = hub.requests.slice(before).filter((r) => r.path.startsWith('/cdn/'));
      expect(weights[0]?.range).toBe(`bytes=${left.partial}-`);
      expect((await bytesOnDisk(cache, BIG)).partial).toBe(0);
      await expect.poll(() => savedQueue(stateFile)).toEqual([]);
    } finally {
      hub.faults.bytesPerSecond = 0;
    }
  });

  it('after a quit (stopAll), what was running or queued goes on at the next start, and a paused download stays paused', async () => {
    hub.faults.bytesPerSecond = 300_000;
    try {
      const cache = await tempDir();
      const stateFile = join(await tempDir('alloy-state-'), 'quit-downloads.json');
      const first = manager(cache, stateFile);
      const big = first.m.start({ repo: BIG });
      const mistral = first.m.start({ repo: TINY_MISTRAL });
      const llama = first.m.start({ repo: TINY_LLAMA });
      first.m.pause(llama.id);
      await expect.poll(() => first.m.get(big.id).downloadedBytes, { timeout: 5000, interval: 10 }).toBeGreaterThan(30_000);
      await first.m.stopAll();
      expect(first.m.list().map((d) => d.state)).toEqual(['paused', 'paused', 'paused']);
      expect((await savedQueue(stateFile)).map((d) => [d.request.repo, d.resume])).toEqual([
        [BIG, true],
        [TINY_MISTRAL, true],
        [TINY_LLAMA, false],
      ]);
      const kept = (await bytesOnDisk(cache, BIG)).partial;
      expect(kept).toBeGreaterThan(0);

      hub.faults.bytesPerSecond = 0;
      const second = manager(cache, stateFile);
      await second.m.loaded;
      await second.m.idle();
      expect(second.m.list().map((d) => [d.repo, d.state])).toEqual([
        [BIG, 'done'],
        [TINY_MISTRAL, 'done'],
        [TINY_LLAMA, 'paused'],
      ]);
      expect((await savedQueue(stateFile)).map((d) => d.request.repo)).toEqual([TINY_LLAMA]);
      second.m.resume(llama.id);
      await second.m.idle();
      expect(second.m.get(llama.id).state).toBe('done');
      await expect.poll(() => savedQueue(stateFile)).toEqual([]);
    } finally {
      hub.faults.bytesPerSecond = 0;
    }
  });

  it('a failed download comes back failed, with its message, and can be resumed', async () => {
    const cache = await tempDir();
    const stateFile = join(await tempDir('alloy-state-'), 'failed-downloads.json');
    const failing = new DownloadManager({ cacheDir: cache, stateFile, retryDelayMs: 5, hubOptions: async () => ({ hubUrl: hub.url, rateLimit: { maxWaitSeconds: 1 } }) });
    // A 429 whose Retry-After (7 s) is longer than this policy waits: it fails at once.
    hub.faults.rateLimited = 1;
    const failed = failing.start({ repo: TINY_LLAMA });
    await failing.idle();
    expect(failing.get(failed.id)).toMatchObject({ state: 'failed', error: { kind: 'rate-limited' } });
    const again = manager(cache, stateFile);
    await again.m.loaded;
    expect(again.m.list()).toMatchObject([{ id: failed.id, state: 'failed', error: { kind: 'rate-limited' } }]);
    again.m.resume(failed.id);
    await again.m.idle();
    expect(again.m.get(failed.id).state).toBe('done');
  });
});
