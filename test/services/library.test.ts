import { cp, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { uniqueBytes } from '../../src/main/services/library/disk-usage';
import { hubCacheDirs } from '../../src/main/services/library/hub-cache-dirs';
import { LibraryService } from '../../src/main/services/library/library-service';
import { tempDir } from '../helpers';
import { FakeHub } from './fake-hub/fake-hub';
import { addFixtureRepos, TINY_LLAMA, TINY_LLAMA_PARAMETERS, TINY_MISTRAL, TINY_MISTRAL_PARAMETERS, tinyLlamaFiles, tinyLlamaUpdate } from './fake-hub/fixture-repos';

/** A cache folder written by Python's huggingface_hub 2.4 (make-python-fixture.ts). */
const PYTHON_CACHE = 'test/fixtures/hf-cache';
const commits = addFixtureRepos(new FakeHub());
const LLAMA = join(PYTHON_CACHE, 'models--alloy-test--tiny-llama');

async function copyOfPythonCache(): Promise<string> {
  const dir = join(await tempDir(), 'hub');
  await cp(PYTHON_CACHE, dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

describe('the library reads a hub cache Python wrote', () => {
  it('the committed fixture kept its relative symlinks through git', async () => {
    expect(await readlink(join(LLAMA, 'snapshots', commits.llamaMain, 'config.json'))).toMatch(/^\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/);
    expect((await readFile(join(LLAMA, 'refs', 'main'), 'utf8'))).toBe(commits.llamaMain);
  });

  it('lists every revision with its repo, refs, shape, parameters from the headers, dtypes, shards and tokenizer', async () => {
    const library = new LibraryService({ folders: [], hubCaches: [PYTHON_CACHE] });
    const models = await library.list();
    expect(models.map((m) => `${m.name}@${m.revision}`).sort()).toEqual(
      [`${TINY_LLAMA}@${commits.llamaFirst}`, `${TINY_LLAMA}@${commits.llamaMain}`, `${TINY_MISTRAL}@${commits.mistralMain}`].sort(),
    );
    const main = models.find((m) => m.revision === commits.llamaMain)!;
    expect(main).toMatchObject({
      source: 'hf-cache',
      repoId: TINY_LLAMA,
      refs: ['main'],
      reference: TINY_LLAMA,
      architecture: 'LlamaForCausalLM',
      modelType: 'llama',
      layers: 2,
      hiddenSize: 8,
      vocabSize: 32,
      parameters: TINY_LLAMA_PARAMETERS,
      dtypes: ['F32'],
      shards: 2,
      missingShards: [],
      weightFormat: 'safetensors',
      hasTokenizer: true,
      mergeable: true,
      incomplete: { files: 0, bytes: 0 },
    });
    const mainFiles = { ...tinyLlamaFiles(), ...tinyLlamaUpdate() };
    expect(main.bytes).toBe(Object.values(mainFiles).reduce((n, c) => n + Buffer.from(c).length, 0));
    const first = models.find((m) => m.revision === commits.llamaFirst)!;
    expect(first.refs).toEqual([]);
    expect(first.reference).toBe(`${TINY_LLAMA}@${commits.llamaFirst}`);
    const mistral = models.find((m) => m.name === TINY_MISTRAL)!;
    expect(mistral).toMatchObject({ architecture: 'MistralForCausalLM', layers: 1, hiddenSize: 16, vocabSize: 64, parameters: TINY_MISTRAL_PARAMETERS, dtypes: ['BF16'], shards: 1, hasTokenizer: false });
  });

  it('counts a blob shared by two revisions once', async () => {
    const both = await uniqueBytes([join(LLAMA, 'snapshots', commits.llamaFirst), join(LLAMA, 'snapshots', commits.llamaMain)]);
    let blobs = 0;
    for (const b of await readdir(join(LLAMA, 'blobs'))) blobs += (await stat(join(LLAMA, 'blobs', b))).size;
    expect(both).toBe(blobs);
  });

  it('reports partial downloads and shards the index names but the folder lacks', async () => {
    const cache = await copyOfPythonCache();
    const storage = join(cache, 'models--alloy-test--tiny-llama');
    await writeFile(join(storage, 'blobs', `${'a'.repeat(64)}.incomplete`), Buffer.alloc(1234));
    const { rm } = await import('node:fs/promises');
    await rm(join(storage, 'snapshots', commits.llamaFirst, 'model-00002-of-00002.safetensors'));
    const models = await new LibraryService({ folders: [], hubCaches: [cache] }).list();
    const first = models.find((m) => m.revision === commits.llamaFirst)!;
    expect(first.incomplete).toEqual({ files: 1, bytes: 1234 });
    expect(first.missingShards).toEqual(['model-00002-of-00002.safetensors']);
    expect(first.parameters).toBeLessThan(TINY_LLAMA_PARAMETERS);
    // A merge would fail reading it: pickers must not offer it as mergeable.
    expect(first.mergeable).toBe(false);
    expect(first.problem).toContain('model-00002-of-00002.safetensors');
  });

  it('a shard cut short (a copy that stopped) makes the model not mergeable, the problem naming the file and where it ends', async () => {
    const root = await tempDir();
    const model = join(root, 'half-copied');
    await cp(join(LLAMA, 'snapshots', commits.llamaMain), model, { recursive: true, dereference: true });
    const shard = join(model, 'model-00002-of-00002.safetensors');
    const { truncate } = await import('node:fs/promises');
    await truncate(shard, (await stat(shard)).size - 16);
    const [listed] = await new LibraryService({ folders: [{ path: root, source: 'folder' }], hubCaches: [] }).list();
    expect(listed).toMatchObject({ mergeable: false, missingShards: ['model-00002-of-00002.safetensors'] });
    expect(listed!.problem).toMatch(new RegExp(`^${shard.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*past the end of the file`));
    expect(listed).not.toHaveProperty('shardErrors');
  });

  it('a folder with a known config but no weights Alloy reads (GGUF only, none) is listed, not mergeable, saying why', async () => {
    const root = await tempDir();
    const { mkdir } = await import('node:fs/promises');
    for (const name of ['gguf-only', 'config-only']) {
      await mkdir(join(root, name));
      await writeFile(join(root, name, 'config.json'), tinyLlamaFiles()['config.json']!);
    }
    await writeFile(join(root, 'gguf-only', 'model.Q4_K_M.gguf'), Buffer.alloc(64));
    const models = await new LibraryService({ folders: [{ path: root, source: 'folder' }], hubCaches: [] }).list();
    const gguf = models.find((m) => m.name === 'gguf-only')!;
    expect(gguf).toMatchObject({ mergeable: false, weightFormat: 'none', architecture: 'LlamaForCausalLM' });
    expect(gguf.problem).toMatch(/only GGUF weights \(model\.Q4_K_M\.gguf\)/);
    expect(models.find((m) => m.name === 'config-only')).toMatchObject({ mergeable: false, problem: expect.stringMatching(/no \.safetensors/) });
  });

  it('lists a revision whose config.json is not valid JSON, with the problem, and its partial downloads', async () => {
    const cache = await copyOfPythonCache();
    const storage = join(cache, 'models--alloy-test--tiny-llama');
    const config = join(storage, 'snapshots', commits.llamaFirst, 'config.json');
    const { rm } = await import('node:fs/promises');
    // The link replaced by a file of its own: the other revision's config.json is the same blob.
    await rm(config);
    await writeFile(config, '{\n  "architectures": ["LlamaForCausalLM"],\n  "num_hidden_layers": 2,,\n}\n');
    await writeFile(join(storage, 'blobs', `${'b'.repeat(64)}.incomplete`), Buffer.alloc(99));
    const models = await new LibraryService({ folders: [], hubCaches: [cache] }).list();
    expect(models).toHaveLength(3);
    const broken = models.find((m) => m.revision === commits.llamaFirst)!;
    expect(broken).toMatchObject({ name: TINY_LLAMA, mergeable: false, architecture: 'unknown', incomplete: { files: 1, bytes: 99 }, shards: 2 });
    expect(broken.problem).toMatch(new RegExp(`^${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:26: not valid JSON \\(`));
    expect(models.find((m) => m.revision === commits.llamaMain)).toMatchObject({ mergeable: true });
  });

  it('deletes a revision like `hf cache delete`: blobs other revisions link to survive', async () => {
    const cache = await copyOfPythonCache();
    const storage = join(cache, 'models--alloy-test--tiny-llama');
    const library = new LibraryService({ folders: [], hubCaches: [cache] });
    const blobsBefore = await readdir(join(storage, 'blobs'));
    const firstSnapshot = join(storage, 'snapshots', commits.llamaFirst);
    const result = await library.delete(firstSnapshot);
    // Only the first commit's config.json was its own.
    const blobsAfter = await readdir(join(storage, 'blobs'));
    expect(blobsBefore.length - blobsAfter.length).toBe(1);
    expect(result.freedBytes).toBe(Buffer.from(tinyLlamaFiles()['config.json']!).length);
    expect(await stat(firstSnapshot).catch(() => undefined)).toBeUndefined();
    const main = join(storage, 'snapshots', commits.llamaMain);
    for (const file of await readdir(main)) expect((await stat(join(main, file))).isFile() || file === 'onnx').toBe(true);
    expect(await readFile(join(storage, 'refs', 'main'), 'utf8')).toBe(commits.llamaMain);
    // The last revision takes the repo folder with it.
    await library.delete(main);
    expect(await stat(storage).catch(() => undefined)).toBeUndefined();
    expect((await library.list()).map((m) => m.name)).toEqual([TINY_MISTRAL]);
  });

  it('deleting the revision main points at removes refs/main and keeps the other revision whole', async () => {
    const cache = await copyOfPythonCache();
    const storage = join(cache, 'models--alloy-test--tiny-llama');
    const library = new LibraryService({ folders: [], hubCaches: [cache] });
    await library.delete(join(storage, 'snapshots', commits.llamaMain));
    expect(await stat(join(storage, 'refs', 'main')).catch(() => undefined)).toBeUndefined();
    const left = (await library.list()).filter((m) => m.name === TINY_LLAMA);
    expect(left.map((m) => m.revision)).toEqual([commits.llamaFirst]);
    expect(left[0]!.parameters).toBe(TINY_LLAMA_PARAMETERS);
  });

  it('refuses to delete a model outside the hub cache', async () => {
    const library = new LibraryService({ folders: [{ path: 'resources/demo/models', source: 'demo' }], hubCaches: [PYTHON_CACHE] });
    await expect(library.delete('resources/demo/models/alloy-demo-chat')).rejects.toThrow(/only models in the Hugging Face cache/);
  });
});

describe('library folders', () => {
  it('finds model folders in added folders, and forgets removed ones', async () => {
    const root = await tempDir();
    await cp(join(LLAMA, 'snapshots', commits.llamaMain), join(root, 'my-llama'), { recursive: true });
    const library = new LibraryService({ folders: [], hubCaches: [] });
    expect(library.addFolder(root)).toEqual([root]);
    const [model] = await library.list();
    expect(model).toMatchObject({ name: 'my-llama', source: 'folder', reference: join(root, 'my-llama'), parameters: TINY_LLAMA_PARAMETERS, shards: 2 });
    expect(library.removeFolder(root)).toEqual([]);
    expect(await library.list()).toEqual([]);
  });

  it('lists a model folder holding links to itself, counting its files once', async () => {
    const root = await tempDir();
    const model = join(root, 'loopy');
    await cp(join(LLAMA, 'snapshots', commits.llamaMain), model, { recursive: true });
    const { symlink } = await import('node:fs/promises');
    await symlink('.', join(model, 'loop1'));
    await symlink('.', join(model, 'loop2'));
    await symlink('..', join(model, 'sub-loop'));
    const library = new LibraryService({ folders: [{ path: root, source: 'folder' }], hubCaches: [] });
    const listed = await Promise.race([library.list(), new Promise<never>((_, fail) => setTimeout(() => fail(new Error('library.list did not answer in 10 s')), 10_000))]);
    expect(listed.map((m) => m.name)).toEqual(['loopy']);
    const mainFiles = { ...tinyLlamaFiles(), ...tinyLlamaUpdate() };
    expect(listed[0]!.bytes).toBe(Object.values(mainFiles).reduce((n, c) => n + Buffer.from(c).length, 0));
  });

  it('notices a new model in a watched folder', async () => {
    const root = await tempDir();
    let changes = 0;
    const library = new LibraryService({ folders: [{ path: root, source: 'folder' }], hubCaches: [], onChange: () => changes++ });
    library.watch();
    try {
      await cp(join(LLAMA, 'snapshots', commits.llamaMain), join(root, 'new-model'), { recursive: true });
      await expect.poll(() => changes, { timeout: 3000 }).toBeGreaterThan(0);
      expect((await library.list()).map((m) => m.name)).toEqual(['new-model']);
    } finally {
      library.close();
    }
  });

  it('honours HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE and HF_HOME', () => {
    expect(hubCacheDirs({ HF_HUB_CACHE: '/a', HUGGINGFACE_HUB_CACHE: '/b', HF_HOME: '/c', XDG_CACHE_HOME: '/x' })).toEqual(['/a', '/b', '/c/hub', '/x/huggingface/hub']);
  });
});
