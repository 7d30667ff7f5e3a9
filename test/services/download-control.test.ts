import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DownloadInfo } from '../../src/shared/library-contract';
import { DownloadManager, type DownloadManagerOptions } from '../../src/main/services/downloads/download-manager';
import { tempDir } from '../helpers';
import { FakeHub } from './fake-hub/fake-hub';
import { addFixtureRepos, TINY_LLAMA, TINY_MISTRAL } from './fake-hub/fixture-repos';
import { pseudoRandomBytes } from './fake-hub/tiny-model';

const hub = new FakeHub();
let commits: ReturnType<typeof addFixtureRepos>;
const TOKEN = 'hf_alloy_test_token';
const BIG = 'alloy-test/slow';
const BIG_BYTES = 300_000;

beforeAll(async () => {
  commits = addFixtureRepos(hub);
  hub.addRepo(BIG, { 'config.json': '{}', 'model.safetensors': pseudoRandomBytes(BIG_BYTES, 'slow') });
  hub.addRepo('alloy-test/gated', { 'config.json': '{}' }, { gated: 'manual' });
  hub.addRepo('alloy-test/private', { 'config.json': '{}' }, { private: true });
  hub.tokens.add(TOKEN);
  await hub.start();
});
afterAll(() => hub.close());

function manager(cacheDir: string, options: Partial<DownloadManagerOptions> & { token?: string } = {}) {
  const events: DownloadInfo[] = [];
  const { token, ...rest } = options;
  const m = new DownloadManager({
    cacheDir,
    hubOptions: async () => ({ hubUrl: hub.url, ...(token ? { accessToken: token } : {}) }),
    retryDelayMs: 5,
    progressIntervalMs: 0,
    onProgress: (info) => events.push(info),
    ...rest,
  });
  return { m, events };
}

async function failure(repo: string, options: Parameters<typeof manager>[1] = {}) {
  const { m } = manager(await tempDir(), options);
  const info = m.start({ repo });
  await m.idle();
  return m.get(info.id);
}

/** Every snapshot link (path → target) and ref of a cache, to compare layouts. */
async function layout(cache: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(cache, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const rel = relative(cache, path);
    if (entry.isSymbolicLink()) out.push(`${rel} -> ${await readlink(path)}`);
    else if (rel.includes('/refs/') && entry.isFile()) out.push(`${rel} = ${await readFile(path, 'utf8')}`);
  }
  return out.sort();
}

describe('download layout', () => {
  it('is the layout Python huggingface_hub wrote for the same repos (test/fixtures/hf-cache)', async () => {
    const cache = await tempDir();
    const { m } = manager(cache);
    m.start({ repo: TINY_LLAMA, revision: commits.llamaFirst, files: 'all' });
    m.start({ repo: TINY_LLAMA, files: 'all' });
    m.start({ repo: TINY_MISTRAL, files: 'all' });
    await m.idle();
    expect(m.list().map((d) => d.state)).toEqual(['done', 'done', 'done']);
    expect(await layout(cache)).toEqual(await layout('test/fixtures/hf-cache'));
    const blobs = async (c: string) => (await readdir(join(c, 'models--alloy-test--tiny-llama', 'blobs'))).sort();
    expect(await blobs(cache)).toEqual(await blobs('test/fixtures/hf-cache'));
  });

  it('follows the tree listing across pages', async () => {
    hub.treePageSize = 3;
    try {
      const cache = await tempDir();
      const { m } = manager(cache);
      const info = m.start({ repo: TINY_LLAMA, files: 'all' });
      await m.idle();
      expect(m.get(info.id).files.length).toBe(12);
    } finally {
      hub.treePageSize = 1000;
    }
  });
});

describe('Hub errors say what to do', () => {
  it('401 without a token for a gated repo', async () => {
    const info = await failure('alloy-test/gated');
    expect(info.error).toMatchObject({ kind: 'gated' });
    expect(info.error!.message).toMatch(/alloy-test\/gated is gated: it needs a token .* accepted its terms/);
  });

  it('403 for a gated repo the account has not accepted', async () => {
    const info = await failure('alloy-test/gated', { token: TOKEN });
    expect(info.error).toMatchObject({ kind: 'gated' });
    expect(info.error!.message).toMatch(/no access yet: accept its terms at http:\/\/127\.0\.0\.1:\d+\/alloy-test\/gated/);
    expect(info.error!.message).not.toContain(TOKEN);
  });

  it('a granted token downloads the gated repo, and the token never reaches the CDN', async () => {
    hub.grantedTokens.add(TOKEN);
    hub.requests.length = 0;
    try {
      const info = await failure('alloy-test/gated', { token: TOKEN });
      expect(info.state).toBe('done');
      expect(hub.requests.every((r) => r.authorized)).toBe(true);
      const lfs = await failure(TINY_MISTRAL, { token: TOKEN });
      expect(lfs.state).toBe('done');
      const cdn = hub.requestsTo('/cdn/');
      expect(cdn.length).toBeGreaterThan(0);
      expect(cdn.every((r) => !r.authorized)).toBe(true);
    } finally {
      hub.grantedTokens.clear();
    }
  });

  it('a bad token is refused with 401', async () => {
    const info = await failure(TINY_MISTRAL, { token: 'hf_not_a_known_token' });
    expect(info.error).toMatchObject({ kind: 'unauthorized' });
    expect(info.error!.message).toMatch(/refused the token .*HF_TOKEN.*hf auth login/);
    expect(info.error!.message).not.toContain('hf_not_a_known_token');
  });

  it('404 for a repo that does not exist, and for a private one without a token', async () => {
    const missing = await failure('alloy-test/nope', { token: TOKEN });
    expect(missing.error).toMatchObject({ kind: 'not-found' });
    expect(missing.error!.message).toMatch(/alloy-test\/nope was not found on the Hub/);
    const hidden = await failure('alloy-test/private');
    expect(hidden.error!.message).toMatch(/if the repo is private, add a token in Settings, set HF_TOKEN/);
    expect((await failure('alloy-test/private', { token: TOKEN })).state).toBe('done');
  });

  it('a revision that does not exist', async () => {
    const { m } = manager(await tempDir());
    const info = m.start({ repo: TINY_MISTRAL, revision: 'v9' });
    await m.idle();
    expect(m.get(info.id).error).toMatchObject({ kind: 'not-found', message: 'alloy-test/tiny-mistral has no revision "v9".' });
  });

  it('429 asking for a longer wait than Alloy waits out: fails at once, saying when to try again', async () => {
    hub.faults.rateLimited = 1;
    const started = Date.now();
    const info = await failure(TINY_MISTRAL, { hubOptions: async () => ({ hubUrl: hub.url, rateLimit: { maxWaitSeconds: 5 } }) });
    expect(Date.now() - started).toBeLessThan(4000);
    expect(info.error).toMatchObject({ kind: 'rate-limited' });
    expect(info.error!.message).toBe('The Hub is limiting requests from this address (429). Try again in 7 s; a partial download is kept and resumes where it stopped.');
  });

  it('429 is waited out as Retry-After says, with a notice, and the download finishes', async () => {
    hub.faults.rateLimited = 2;
    hub.faults.retryAfter = '1';
    try {
      const cache = await tempDir();
      const { m, events } = manager(cache);
      const before = hub.requests.length;
      const started = Date.now();
      const info = m.start({ repo: TINY_MISTRAL });
      await m.idle();
      expect(m.get(info.id)).toMatchObject({ state: 'done' });
      expect(m.get(info.id).notice).toBeUndefined();
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
      // The same request three times: two 429s, then the answer.
      const first = hub.requests[before]!.path;
      expect(hub.requests.slice(before, before + 3).map((r) => r.path)).toEqual([first, first, first]);
      const notices = events.map((e) => e.notice).filter(Boolean);
      expect(notices).toEqual([
        'The Hub is limiting requests (429): trying again in 1 s (1 of 3).',
        'The Hub is limiting requests (429): trying again in 1 s (2 of 3).',
      ]);
    } finally {
      hub.faults.rateLimited = 0;
      hub.faults.retryAfter = '7';
    }
  });

  it('429 that persists past the retries fails with a clear message (HTTP-date Retry-After too)', async () => {
    hub.faults.rateLimited = 100;
    hub.faults.retryAfter = new Date(Date.now() + 1000).toUTCString();
    try {
      const info = await failure(TINY_MISTRAL, { hubOptions: async () => ({ hubUrl: hub.url, rateLimit: { retries: 1 } }) });
      expect(info.error).toMatchObject({ kind: 'rate-limited' });
      expect(info.error!.message).toMatch(/^The Hub is still limiting requests from this address \(429\) after 2 tries over [0-2] s\. Try again in [0-2] s; a partial download is kept/);
    } finally {
      hub.faults.rateLimited = 0;
      hub.faults.retryAfter = '7';
    }
  });

  it('network loss: says the connection was lost', async () => {
    const cache = await tempDir();
    const closed = new FakeHub();
    const deadUrl = await closed.start();
    await closed.close();
    const { m } = manager(cache, { hubOptions: async () => ({ hubUrl: deadUrl }) });
    const info = m.start({ repo: TINY_MISTRAL });
    await m.idle();
    expect(m.get(info.id).error).toMatchObject({ kind: 'network' });
    expect(m.get(info.id).error!.message).toMatch(/connection to 127\.0\.0\.1:\d+ was lost \(ECONNREFUSED\)/);
  });

  it('a cut connection that keeps failing leaves the partial file for a later resume', async () => {
    const cache = await tempDir();
    const { m } = manager(cache, { retries: 2 });
    hub.faults.cutAfter.set('model.safetensors', 60_000);
    const info = m.start({ repo: BIG });
    // Cut every retry too.
    const recut = setInterval(() => hub.faults.cutAfter.set('model.safetensors', 60_000), 1);
    await m.idle();
    clearInterval(recut);
    hub.faults.cutAfter.clear();
    const failed = m.get(info.id);
    expect(failed.error).toMatchObject({ kind: 'network' });
    const blobs = await readdir(join(cache, 'models--alloy-test--slow', 'blobs'));
    const partial = blobs.find((b) => b.endsWith('.incomplete'))!;
    expect((await stat(join(cache, 'models--alloy-test--slow', 'blobs', partial))).size).toBeGreaterThan(0);
    m.resume(info.id);
    await m.idle();
    expect(m.get(info.id).state).toBe('done');
    expect((await readdir(join(cache, 'models--alloy-test--slow', 'blobs'))).some((b) => b.endsWith('.incomplete'))).toBe(false);
  });

  it('checks free space before starting', async () => {
    const cache = await tempDir();
    const { m } = manager(cache, { freeBytes: async () => 1000 });
    const info = m.start({ repo: BIG });
    await m.idle();
    expect(m.get(info.id).error).toMatchObject({ kind: 'no-space' });
    expect(m.get(info.id).error!.message).toMatch(/Not enough disk space .* needs 300\.0 KB more, and 1\.0 KB is free/);
    expect(await readdir(join(cache, 'models--alloy-test--slow', 'blobs')).catch(() => [])).toEqual([]);
  });

  it('starting a repo again after it failed replaces the failed entry: one line per download in the list', async () => {
    const cache = await tempDir();
    let free = 1000;
    const { m } = manager(cache, { freeBytes: async () => free });
    const failed = m.start({ repo: BIG });
    await m.idle();
    expect(m.get(failed.id).state).toBe('failed');
    free = Infinity;
    const again = m.start({ repo: BIG });
    await m.idle();
    expect(m.list().map((d) => [d.repo, d.state])).toEqual([[BIG, 'done']]);
    expect(m.get(again.id).state).toBe('done');
    expect(() => m.get(failed.id)).toThrow(/no download/);
  });
});

describe('queue, pause, resume, cancel, progress', () => {
  it('pauses mid-file, keeps the partial, and resumes with a Range to a verified blob', async () => {
    hub.faults.bytesPerSecond = 400_000;
    try {
      const cache = await tempDir();
      const { m, events } = manager(cache);
      const info = m.start({ repo: BIG });
      await expect.poll(() => m.get(info.id).downloadedBytes, { timeout: 5000, interval: 10 }).toBeGreaterThan(30_000);
      m.pause(info.id);
      await m.idle();
      const paused = m.get(info.id);
      expect(paused.state).toBe('paused');
      const blobs = join(cache, 'models--alloy-test--slow', 'blobs');
      const partial = (await readdir(blobs)).find((b) => b.endsWith('.incomplete'))!;
      const kept = (await stat(join(blobs, partial))).size;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(BIG_BYTES);
      hub.faults.bytesPerSecond = 0;
      const before = hub.requests.length;
      m.resume(info.id);
      await m.idle();
      expect(m.get(info.id).state).toBe('done');
      expect(hub.requests.slice(before).find((r) => r.path.startsWith('/cdn/'))?.range).toBe(`bytes=${kept}-`);
      // Progress: running reports with a rate and an ETA, then done with everything.
      const running = events.filter((e) => e.state === 'running' && e.bytesPerSecond > 0);
      expect(running.length).toBeGreaterThan(0);
      expect(running.some((e) => e.etaSeconds !== undefined && e.etaSeconds > 0)).toBe(true);
      expect(events.at(-1)).toMatchObject({ state: 'done', downloadedBytes: BIG_BYTES + 2, totalBytes: BIG_BYTES + 2, etaSeconds: 0 });
    } finally {
      hub.faults.bytesPerSecond = 0;
    }
  });

  it('cancel stops and deletes the partial file', async () => {
    hub.faults.bytesPerSecond = 400_000;
    try {
      const cache = await tempDir();
      const { m } = manager(cache);
      const info = m.start({ repo: BIG });
      await expect.poll(() => m.get(info.id).downloadedBytes, { timeout: 5000, interval: 10 }).toBeGreaterThan(10_000);
      const cancelled = await m.cancel(info.id);
      expect(cancelled.state).toBe('cancelled');
      const blobs = await readdir(join(cache, 'models--alloy-test--slow', 'blobs'));
      expect(blobs.filter((b) => b.endsWith('.incomplete'))).toEqual([]);
    } finally {
      hub.faults.bytesPerSecond = 0;
    }
  });

  it('runs at most maxConcurrent downloads at once; the rest wait queued', async () => {
    hub.faults.bytesPerSecond = 2_000_000;
    try {
      const cache = await tempDir();
      let most = 0;
      const { m } = manager(cache, {
        maxConcurrent: 1,
        onProgress: () => (most = Math.max(most, m.list().filter((d) => d.state === 'running').length)),
      });
      const a = m.start({ repo: BIG });
      const b = m.start({ repo: TINY_MISTRAL });
      expect(m.get(b.id).state).toBe('queued');
      expect(m.start({ repo: BIG }).id).toBe(a.id);
      await m.idle();
      expect(most).toBe(1);
      expect(m.list().map((d) => d.state)).toEqual(['done', 'done']);
    } finally {
      hub.faults.bytesPerSecond = 0;
    }
  });
});
