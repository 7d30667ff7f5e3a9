import { execFileSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { startEngine, writeTwoModelFixture } from './engine-process';
import { writeSparseLlamaModel } from './sparse-model';
import { tempDir } from '../helpers';

let root: string;
let fixture: { recipe: string; modelRoot: string };

/** Whether this process may mount a tmpfs (root in a container that allows it): tried once, for real. */
function canMountTmpfs(): boolean {
  const probe = join(tmpdir(), `alloy-tmpfs-probe-${process.pid}`);
  mkdirSync(probe, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmdirSync(probe);
  }
}

const TMPFS = canMountTmpfs();

async function withTmpfs<T>(size: string, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = join(root, `tmpfs-${size}`);
  await mkdir(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
  try {
    return await body(dir);
  } finally {
    execFileSync('umount', [dir]);
  }
}

/** Writes zeros into `file` until the file system says it is full. */
async function fillDisk(file: string): Promise<void> {
  const handle = await open(file, 'w');
  const block = new Uint8Array(256 << 10);
  try {
    for (;;) await handle.write(block);
  } catch (error) {
    expect((error as NodeJS.ErrnoException).code).toBe('ENOSPC');
  } finally {
    await handle.close();
  }
}

function mergeArgs(outDir: string): string[] {
  return ['merge', fixture.recipe, outDir, '--model-root', fixture.modelRoot, '--out-shard-size', '200K', '--device', 'cpu', '--progress', 'jsonl'];
}

/** ENOSPC for real: a tmpfs with room for the merge, filled by another writer while the engine is stopped (SIGSTOP) after its free-space check. */
async function enospcOnTmpfs() {
  return withTmpfs('24m', async (dir) => {
    const engine = startEngine(mergeArgs(join(dir, 'merged')));
    await engine.waitFor((e) => e.type === 'stage' && e.stage === 'merge');
    engine.child.kill('SIGSTOP');
    await fillDisk(join(dir, 'other-program.bin'));
    engine.child.kill('SIGCONT');
    const exit = await engine.exited;
    return { exit, left: await readdir(dir), dir, expectedLeft: ['other-program.bin'] };
  });
}

/** Without a tmpfs: the engine under a file size limit (RLIMIT_FSIZE, `ulimit -f`), which makes its writes fail with EFBIG. */
async function efbigUnderFileSizeLimit() {
  const dir = join(root, 'fsize');
  await mkdir(dir);
  const engine = startEngine(mergeArgs(join(dir, 'merged')), ['sh', '-c', 'ulimit -f 100 && exec "$@"', 'sh']);
  const exit = await engine.exited;
  return { exit, left: await readdir(dir), dir, expectedLeft: [] as string[] };
}

describe('a full disk', () => {
  beforeAll(async () => {
    root = await tempDir('alloy-disk-');
    fixture = await writeTwoModelFixture(root);
  });

  it(TMPFS ? 'ENOSPC mid-merge (a 24 MiB tmpfs filled by another writer): a clear message, no output, no hidden folder' : 'ENOSPC mid-merge, simulated by EFBIG (no tmpfs mount here: RLIMIT_FSIZE): a clear message, no output, no hidden folder', async () => {
    const { exit, left, dir, expectedLeft } = TMPFS ? await enospcOnTmpfs() : await efbigUnderFileSizeLimit();
    expect(exit.code).toBe(1);
    const code = TMPFS ? 'the disk is full \\(ENOSPC\\)' : 'the file size limit was reached \\(EFBIG\\)';
    expect(exit.stderr).toMatch(new RegExp(`^alloy: ${code} while writing model-\\d{5}-of-\\d{5}\\.safetensors in ${dir}: the merge writes 3\\.\\d MB; the partial output was removed`));
    expect(exit.stderr).not.toMatch(/internal error|at .*\.mjs/);
    expect(left).toEqual(expectedLeft);
  });

  it('EFBIG under a file size limit (RLIMIT_FSIZE via ulimit -f): a clear message, nothing left behind', async () => {
    const { exit, left } = await efbigUnderFileSizeLimit();
    expect(exit.code).toBe(1);
    expect(exit.stderr).toMatch(/^alloy: the file size limit was reached \(EFBIG\) while writing model-00001-of-\d{5}\.safetensors/);
    expect(left).toEqual([]);
  });

  it(`free-space check: refuses a 5 TB merge (sparse inputs)${TMPFS ? ' and a 3.4 MB one on a 2 MiB tmpfs' : ''} before writing anything`, async () => {
    await expectHugeMergeRefused();
    if (TMPFS) await expectRefusedOnSmallTmpfs();
  });
});

async function expectHugeMergeRefused(): Promise<void> {
  const big = { hidden: 32768, intermediate: 131072, layers: 160, vocab: 32000, layersPerFile: 8 };
  const models = join(root, 'huge');
  await writeSparseLlamaModel(join(models, 'a'), big);
  await writeSparseLlamaModel(join(models, 'b'), big);
  const out = join(root, 'huge-out');
  await mkdir(out);
  const exit = await startEngine(['merge', fixture.recipe, join(out, 'merged'), '--model-root', models, '--progress', 'none']).exited;
  expect(exit.code).toBe(1);
  expect(exit.stderr).toMatch(new RegExp(`^alloy: not enough free space in ${out}: the merge writes 5\\.0 TB but [\\d.]+ [KMGT]?B is free\\n$`));
  expect(await readdir(out)).toEqual([]);
  await rm(models, { recursive: true });
}

async function expectRefusedOnSmallTmpfs(): Promise<void> {
  await withTmpfs('2m', async (dir) => {
    const exit = await startEngine(mergeArgs(join(dir, 'merged'))).exited;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toMatch(/not enough free space in .*: the merge writes 3\.\d MB but 2\.\d MB is free/);
    expect(await readdir(dir)).toEqual([]);
  });
}
