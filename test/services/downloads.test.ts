import { lstat, readFile, readdir, readlink, stat, writeFile, mkdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DownloadInfo } from '../../src/shared/library-contract';
import { DownloadManager, type DownloadManagerOptions } from '../../src/main/services/downloads/download-manager';
import { tempDir } from '../helpers';
import { FakeHub } from './fake-hub/fake-hub';
import { addFixtureRepos, TINY_LLAMA, TINY_MISTRAL, tinyLlamaFiles, tinyMistralFiles } from './fake-hub/fixture-repos';
import { pseudoRandomBytes } from './fake-hub/tiny-model';

const hub = new FakeHub();
let commits: ReturnType<typeof addFixtureRepos>;
const TOKEN = 'hf_alloy_test_token';

beforeAll(async () => {
  commits = addFixtureRepos(hub);
  hub.addRepo('alloy-test/big', { 'config.json': '{"architectures":["LlamaForCausalLM"]}', 'model.safetensors': pseudoRandomBytes(400_000, 'big') });
  hub.addRepo('alloy-test/gated', { 'config.json': '{}' }, { gated: 'manual' });
  hub.addRepo('alloy-test/private', { 'config.json': '{}' }, { private: true });
  hub.tokens.add(TOKEN);
  await hub.start();
});
afterAll(() => hub.close());

function manager(cacheDir: string, options: Partial<DownloadManagerOptions> = {}) {
  const events: DownloadInfo[] = [];
  const m = new DownloadManager({
    cacheDir,
    hubOptions: async () => ({ hubUrl: hub.url }),
    retryDelayMs: 5,
    progressIntervalMs: 0,
    onProgress: (info) => events.push(info),
    ...options,
  });
  return { m, events };
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('downloads into the hub cache', () => {
  it('writes the layout huggingface_hub writes: blobs by etag, relative snapshot links, refs/main', async () => {
    const cache = await tempDir();
    const { m, events } = manager(cache);
    const info = m.start({ repo: TINY_LLAMA });
    await m.idle();
    const done = m.get(info.id);
    expect(done.state).toBe('done');
    expect(done.commit).toBe(commits.llamaMain);
    const storage = join(cache, 'models--alloy-test--tiny-llama');
    expect((await readFile(join(storage, 'refs', 'main'), 'utf8'))).toBe(commits.llamaMain);
    const snapshot = join(storage, 'snapshots', commits.llamaMain);
    const files = (await readdir(snapshot)).sort();
    // Only what a merge needs: no README, no .bin beside safetensors, no onnx/.
    expect(files).toEqual([
      'config.json',
      'generation_config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'special_tokens_map.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const source = tinyLlamaFiles();
    const shard = join(snapshot, 'model-00001-of-00002.safetensors');
    expect((await lstat(shard)).isSymbolicLink()).toBe(true);
    const shardSha = sha256(source['model-00001-of-00002.safetensors'] as Buffer);
    expect(await readlink(shard)).toBe(`../../blobs/${shardSha}`);
    expect(sha256(await readFile(shard))).toBe(shardSha);
    // A file stored in git itself is named by its git blob id, as the Hub's ETag says.
    const config = join(snapshot, 'config.json');
    expect(await readlink(config)).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/);
    expect((await readdir(join(storage, 'blobs'))).some((b) => b.endsWith('.incomplete'))).toBe(false);
    expect(done.downloadedBytes).toBe(done.totalBytes);
    expect(events.map((e) => e.state)).toContain('running');
    expect(events.at(-1)?.state).toBe('done');
    // The token-free CDN hop: the Hub redirected LFS files, and Range was not needed.
    expect(hub.requestsTo('/cdn/').length).toBeGreaterThan(0);
  });

  it('takes everything with files: "all", and nested files get ../../../ links', async () => {
    const cache = await tempDir();
    const { m } = manager(cache);
    const info = m.start({ repo: TINY_LLAMA, revision: commits.llamaFirst, files: 'all' });
    await m.idle();
    expect(m.get(info.id).state).toBe('done');
    const storage = join(cache, 'models--alloy-test--tiny-llama');
    const onnx = join(storage, 'snapshots', commits.llamaFirst, 'onnx', 'model.onnx');
    expect(await readlink(onnx)).toMatch(/^\.\.\/\.\.\/\.\.\/blobs\//);
    expect(await readFile(onnx)).toEqual(tinyLlamaFiles()['onnx/model.onnx']);
    // A commit asked for by hash writes no ref, as huggingface_hub does.
    expect(await stat(join(storage, 'refs')).catch(() => undefined)).toBeUndefined();
  });

  it('resumes a cut transfer from the partial file with an HTTP Range, and the blob is whole', async () => {
    const cache = await tempDir();
    const { m } = manager(cache);
    hub.faults.cutAfter.set('model.safetensors', 150_000);
    const before = hub.requests.length;
    const info = m.start({ repo: 'alloy-test/big' });
    await m.idle();
    expect(m.get(info.id).state).toBe('done');
    const ranges = hub.requests.slice(before).filter((r) => r.path.startsWith('/cdn/') && r.range);
    expect(ranges.length).toBe(1);
    expect(Number(/bytes=(\d+)-/.exec(ranges[0]!.range!)![1])).toBeGreaterThanOrEqual(100_000);
    const blob = await readFile(join(cache, 'models--alloy-test--big', 'snapshots', m.get(info.id).commit!, 'model.safetensors'));
    expect(blob.equals(pseudoRandomBytes(400_000, 'big'))).toBe(true);
  });

  it('resumes from a .incomplete left by a crash', async () => {
    const cache = await tempDir();
    const content = tinyMistralFiles()['model.safetensors'] as Buffer;
    const blobs = join(cache, 'models--alloy-test--tiny-mistral', 'blobs');
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${sha256(content)}.incomplete`), content.subarray(0, 1000));
    const before = hub.requests.length;
    const { m } = manager(cache);
    const info = m.start({ repo: TINY_MISTRAL });
    await m.idle();
    expect(m.get(info.id).state).toBe('done');
    expect(hub.requests.slice(before).find((r) => r.path.startsWith('/cdn/'))?.range).toBe('bytes=1000-');
    expect((await readFile(join(blobs, sha256(content)))).equals(content)).toBe(true);
  });

  it('never commits wrong bytes: the checksum fails, the partial is deleted, nothing is linked', async () => {
    const cache = await tempDir();
    const { m } = manager(cache);
    hub.faults.wrongBytes.add('model.safetensors');
    try {
      const info = m.start({ repo: TINY_MISTRAL });
      await m.idle();
      const failed = m.get(info.id);
      expect(failed.state).toBe('failed');
      expect(failed.error?.kind).toBe('checksum');
      expect(failed.error?.message).toMatch(/do not match the Hub's sha256/);
      const blobs = await readdir(join(cache, 'models--alloy-test--tiny-mistral', 'blobs'));
      expect(blobs.filter((b) => b.length === 64 || b.endsWith('.incomplete'))).toEqual([]);
      const snapshot = join(cache, 'models--alloy-test--tiny-mistral', 'snapshots', failed.commit!);
      expect(await readdir(snapshot).catch(() => [])).not.toContain('model.safetensors');
    } finally {
      hub.faults.wrongBytes.clear();
    }
  });
});

describe('paths from the Hub and from requests stay inside the cache', () => {
  it('refuses file and ref names that climb out of their folder', async () => {
    const { linkSnapshotFile, writeRef } = await import('../../src/main/services/downloads/cache-layout');
    const storage = await tempDir();
    await expect(linkSnapshotFile(storage, 'a'.repeat(40), '../../../evil', 'b')).rejects.toThrow(/unsafe path/);
    await expect(writeRef(storage, '../../x', 'a'.repeat(40))).rejects.toThrow(/unsafe path/);
    const { validateRequest } = await import('../../src/shared/contract');
    expect(() => validateRequest('download.start', { repo: 'a/b', revision: '../../x' })).toThrow(/revision/);
    expect(validateRequest('download.start', { repo: 'a/b', revision: 'refs/pr/1' }).revision).toBe('refs/pr/1');
  });
});
