import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DownloadInfo } from '../../src/shared/library-contract';
import { blobLockPath } from '../../src/main/services/downloads/cache-layout';
import { DownloadManager } from '../../src/main/services/downloads/download-manager';
import { acquireFileLock, type LockProgram } from '../../src/main/services/downloads/hub-file-lock';
import { tempDir } from '../helpers';
import { FakeHub } from './fake-hub/fake-hub';
import { addFixtureRepos, TINY_LLAMA, TINY_MISTRAL } from './fake-hub/fixture-repos';
import { pseudoRandomBytes } from './fake-hub/tiny-model';

const hub = new FakeHub();
const REPO = 'alloy-test/locked';
const WEIGHTS = pseudoRandomBytes(400_000, 'locked');
const WEIGHTS_SHA = createHash('sha256').update(WEIGHTS).digest('hex');

beforeAll(async () => {
  addFixtureRepos(hub);
  hub.addRepo(REPO, { 'config.json': '{}', 'model.safetensors': WEIGHTS });
  await hub.start();
});
afterAll(() => hub.close());

/**
 * Python holding a lock the way huggingface_hub's filelock does (UnixFileLock: open O_RDWR|O_TRUNC|O_CREAT,
 * fcntl.flock LOCK_EX|LOCK_NB, polling; huggingface_hub makes the folder first). It prints "locked" once it holds it, "busy" when another does
 * and `wait` is off; then, holding it, runs each line of stdin as Python (a download's work), until "release".
 */
function python(lock: string, wait = true): { child: ChildProcessWithoutNullStreams; lines: string[]; next: () => Promise<string> } {
  const script = `
import fcntl, os, sys, time
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
flags = os.O_RDWR | os.O_TRUNC | (0 if os.path.exists(sys.argv[1]) else os.O_CREAT)
fd = os.open(sys.argv[1], flags, 0o644)
while True:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except BlockingIOError:
        if sys.argv[2] != "wait":
            print("busy", flush=True)
            sys.exit(0)
        time.sleep(0.05)
print("locked", flush=True)
for line in sys.stdin:
    if line.strip() == "release":
        break
    exec(line)
    print("did", flush=True)
fcntl.flock(fd, fcntl.LOCK_UN)
os.close(fd)
print("released", flush=True)
`;
  const child = spawn('python3', ['-c', script, lock, wait ? 'wait' : 'try'], { stdio: 'pipe' });
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const waiter = waiting.shift();
    if (waiter) waiter(line);
    else lines.push(line);
  });
  child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  child.on('close', (code) => waiting.splice(0).forEach((w) => w(`exited ${code}`)));
  const next = () => (lines.length ? Promise.resolve(lines.shift()!) : new Promise<string>((resolve) => waiting.push(resolve)));
  return { child, lines, next };
}

function manager(cacheDir: string) {
  const events: DownloadInfo[] = [];
  const m = new DownloadManager({ cacheDir, hubOptions: async () => ({ hubUrl: hub.url }), retryDelayMs: 5, progressIntervalMs: 0, onProgress: (info) => events.push(info) });
  return { m, events };
}

describe("huggingface_hub's blob locks", () => {
  it('Alloy waits while Python holds a blob\'s lock, then takes the blob Python committed instead of downloading it', async () => {
    const cache = await tempDir();
    const storage = join(cache, 'models--alloy-test--locked');
    const lock = blobLockPath(cache, REPO, WEIGHTS_SHA);
    expect(relative(cache, lock)).toBe(`.locks/models--alloy-test--locked/${WEIGHTS_SHA}.lock`);
    const py = python(lock);
    expect(await py.next()).toBe('locked');
    const { m, events } = manager(cache);
    const before = hub.requests.length;
    const info = m.start({ repo: REPO });
    await expect.poll(() => m.get(info.id).notice ?? '', { timeout: 10_000 }).toMatch(/^Waiting for another program \(Python's huggingface_hub\?\) that is downloading model\.safetensors into the same cache: it holds .*\.lock\.$/);
    // Alloy wrote nothing of that blob, and asked the Hub nothing for it, while Python held the lock.
    await new Promise((r) => setTimeout(r, 300));
    expect((await readdir(join(storage, 'blobs')).catch(() => [] as string[])).filter((b) => b.startsWith(WEIGHTS_SHA))).toEqual([]);
    expect(hub.requests.slice(before).filter((r) => r.path.includes('model.safetensors') || r.path.includes(WEIGHTS_SHA))).toEqual([]);
    expect(m.get(info.id).state).toBe('running');
    // Python writes the blob as huggingface_hub does (the .incomplete, then a rename), and lets go.
    const blob = join(storage, 'blobs', WEIGHTS_SHA);
    const source = join(cache, 'weights.bin');
    await writeFile(source, WEIGHTS);
    py.child.stdin.write(`import shutil; shutil.copyfile(${JSON.stringify(source)}, ${JSON.stringify(`${blob}.incomplete`)}); os.replace(${JSON.stringify(`${blob}.incomplete`)}, ${JSON.stringify(blob)})\n`);
    expect(await py.next()).toBe('did');
    py.child.stdin.write('release\n');
    expect(await py.next()).toBe('released');
    await m.idle();
    expect(m.get(info.id)).toMatchObject({ state: 'done' });
    expect(m.get(info.id).notice).toBeUndefined();
    expect(hub.requests.slice(before).filter((r) => r.path.includes(WEIGHTS_SHA))).toEqual([]);
    expect(await readFile(join(storage, 'snapshots', m.get(info.id).commit!, 'model.safetensors'))).toEqual(WEIGHTS);
    expect(events.some((e) => e.notice?.startsWith('Waiting for another program'))).toBe(true);
  });

  it('Python finds the lock held while Alloy writes a blob, and takes it once Alloy is done', async () => {
    hub.faults.bytesPerSecond = 200_000;
    try {
      const cache = await tempDir();
      const lock = blobLockPath(cache, REPO, WEIGHTS_SHA);
      const { m } = manager(cache);
      const info = m.start({ repo: REPO });
      await expect.poll(() => m.get(info.id).files.find((f) => f.path === 'model.safetensors')?.downloaded ?? 0, { timeout: 10_000, interval: 10 }).toBeGreaterThan(0);
      const during = python(lock, false);
      expect(await during.next()).toBe('busy');
      await m.idle();
      expect(m.get(info.id).state).toBe('done');
      const after = python(lock, false);
      expect(await after.next()).toBe('locked');
      after.child.stdin.end('release\n');
      expect(await after.next()).toBe('released');
    } finally {
      hub.faults.bytesPerSecond = 0;
    }
  });

  it('a pause while waiting for the lock stops waiting; resumed after Python is done, the download finishes', async () => {
    const cache = await tempDir();
    const py = python(blobLockPath(cache, REPO, WEIGHTS_SHA));
    expect(await py.next()).toBe('locked');
    const { m } = manager(cache);
    const info = m.start({ repo: REPO });
    await expect.poll(() => m.get(info.id).notice ?? '', { timeout: 10_000 }).toMatch(/^Waiting for another program/);
    m.pause(info.id);
    await m.idle();
    expect(m.get(info.id)).toMatchObject({ state: 'paused' });
    py.child.stdin.end('release\n');
    expect(await py.next()).toBe('released');
    m.resume(info.id);
    await m.idle();
    expect(m.get(info.id).state).toBe('done');
  });

  it('the lock files are where Python puts them: the fixture cache Python wrote has the same names', async () => {
    const cache = await tempDir();
    const { m } = manager(cache);
    m.start({ repo: TINY_LLAMA, files: 'all' });
    m.start({ repo: TINY_MISTRAL, files: 'all' });
    await m.idle();
    const locks = async (c: string) => (await readdir(join(c, '.locks'), { recursive: true })).filter((f) => f.endsWith('.lock')).sort();
    const ours = await locks(cache);
    const python = await locks('test/fixtures/hf-cache');
    // Python's snapshot_download ran twice over tiny-llama (two revisions): every lock Alloy took, Python took too.
    expect(ours.length).toBeGreaterThan(0);
    expect(ours.filter((l) => !python.includes(l))).toEqual([]);
  });

  it.each(['perl', 'flock'] satisfies LockProgram[])('the %s helper excludes Python and the other helper', async (program) => {
    const other: LockProgram = program === 'perl' ? 'flock' : 'perl';
    const lock = join(await tempDir(), '.locks', 'models--a--b', 'x.lock');
    const held = await acquireFileLock(lock, { program });
    expect(held.via).toBe(program);
    const py = python(lock, false);
    expect(await py.next()).toBe('busy');
    let busy = 0;
    const waiting = acquireFileLock(lock, { program: other, onBusy: () => busy++ });
    await expect.poll(() => busy).toBe(1);
    await held.release();
    const second = await waiting;
    expect(second.via).toBe(other);
    await second.release();
    expect((await stat(lock)).isFile()).toBe(true);
    // Cancelled while waiting: the helper is stopped and the lock stays free for others.
    const third = await acquireFileLock(lock, { program });
    const controller = new AbortController();
    const cancelled = acquireFileLock(lock, { program: other, signal: controller.signal, onBusy: () => controller.abort() });
    await expect(cancelled).rejects.toThrow();
    await third.release();
    const free = python(lock, false);
    expect(await free.next()).toBe('locked');
    free.child.stdin.end('release\n');
    expect(await free.next()).toBe('released');
  });
});
