import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateRequest, type EventTypes } from '../../src/shared/contract';
import { createServices, type Services } from '../../src/main/services';
import { readHubToken } from '../../src/main/services/downloads/read-hub-token';
import { resolveAppPaths } from '../../src/main/services/paths';
import { tempDir } from '../helpers';
import { FakeHub } from './fake-hub/fake-hub';
import { addFixtureRepos, TINY_LLAMA, TINY_LLAMA_PARAMETERS, tinyLlamaFiles } from './fake-hub/fixture-repos';

const DEMO = resolve('resources/demo/models');
const hub = new FakeHub();
const TOKEN = 'hf_from_the_token_file';
let services: Services;
let home: string;
const events: { name: keyof EventTypes; payload: unknown }[] = [];

beforeAll(async () => {
  addFixtureRepos(hub);
  hub.addRepo('alloy-test/private-llama', tinyLlamaFiles(), { private: true });
  hub.tokens.add(TOKEN);
  await hub.start();
  home = await tempDir();
  await mkdir(join(home, 'hf'), { recursive: true });
  await writeFile(join(home, 'hf', 'token'), `${TOKEN}\n`);
  services = createServices({
    paths: resolveAppPaths(fileURLToPath(import.meta.url)),
    nodeBinary: process.execPath,
    outputRoot: join(home, 'merges'),
    settingsFile: join(home, 'config', 'settings.json'),
    env: { HF_HOME: join(home, 'hf'), HF_ENDPOINT: hub.url, XDG_CACHE_HOME: join(home, 'xdg') },
  });
  for (const name of ['download.progress', 'library.changed'] as const) services.events.on(name, (payload) => events.push({ name, payload }));
});
afterAll(async () => {
  services.library.close();
  await services.downloads.stopAll();
  await hub.close();
});

describe('the library and download channels', () => {
  it('hub.status names where the token comes from, never the token', async () => {
    const status = await services.handlers['hub.status']({});
    expect(status).toMatchObject({ hubUrl: hub.url, tokenSource: 'file', cacheDir: join(home, 'hf', 'hub') });
    expect(status.freeBytes).toBeGreaterThan(0);
    expect(JSON.stringify(status)).not.toContain(TOKEN);
  });

  it('download.peek reads architecture, parameters and dtypes from safetensors headers by range requests', async () => {
    hub.requests.length = 0;
    const peek = await services.handlers['download.peek']({ repo: TINY_LLAMA });
    expect(peek).toMatchObject({
      repo: TINY_LLAMA,
      architecture: 'LlamaForCausalLM',
      layers: 2,
      hiddenSize: 8,
      vocabSize: 32,
      parameters: TINY_LLAMA_PARAMETERS,
      dtypes: ['F32'],
      shards: 2,
      weightFormat: 'safetensors',
      hasTokenizer: true,
      mergeable: true,
      gated: false,
    });
    const selected = peek.files.filter((f) => f.selected).map((f) => f.path);
    expect(selected).not.toContain('pytorch_model.bin');
    expect(selected).not.toContain('README.md');
    expect(selected).toContain('model-00002-of-00002.safetensors');
    expect(peek.downloadBytes).toBe(peek.files.filter((f) => f.selected).reduce((n, f) => n + f.size, 0));
    const shardReads = hub.requestsTo('/cdn/');
    expect(shardReads.length).toBe(2);
    expect(shardReads.every((r) => r.range?.startsWith('bytes=0-'))).toBe(true);
  });

  it('download.start with the token file reaches a private repo; progress events, then the library lists it', async () => {
    const started = await services.handlers['download.start']({ repo: 'alloy-test/private-llama' });
    expect(['queued', 'running']).toContain(started.state);
    await services.downloads.idle();
    const [done] = await services.handlers['download.list']({});
    expect(done).toMatchObject({ state: 'done', repo: 'alloy-test/private-llama' });
    const progress = events.filter((e) => e.name === 'download.progress');
    expect(progress.length).toBeGreaterThan(1);
    expect(events.some((e) => e.name === 'library.changed' && (e.payload as { reason: string }).reason === 'download')).toBe(true);
    const models = await services.handlers['library.list']({});
    const model = models.find((m) => m.repoId === 'alloy-test/private-llama');
    expect(model).toMatchObject({ source: 'hf-cache', reference: 'alloy-test/private-llama', parameters: TINY_LLAMA_PARAMETERS, refs: ['main'] });
    const deleted = await services.handlers['library.delete']({ id: model!.id });
    expect(deleted.freedBytes).toBe(done!.totalBytes);
    expect((await services.handlers['library.list']({})).some((m) => m.repoId === 'alloy-test/private-llama')).toBe(false);
  });

  it('library.delete refuses a repo while it downloads, saying what to do; after a cancel it deletes', async () => {
    hub.addRepo('alloy-test/slow-llama', tinyLlamaFiles());
    hub.faults.bytesPerSecond = 4000;
    try {
      const started = await services.handlers['download.start']({ repo: 'alloy-test/slow-llama' });
      let model;
      for (let i = 0; i < 100 && !model; i++) {
        model = (await services.handlers['library.list']({})).find((m) => m.repoId === 'alloy-test/slow-llama');
        if (!model) await new Promise((r) => setTimeout(r, 50));
      }
      expect(model).toBeDefined();
      for (const dryRun of [true, false]) {
        await expect(services.handlers['library.delete']({ id: model!.id, dryRun })).rejects.toThrow('alloy-test/slow-llama is downloading: cancel its download in the Downloads list first');
      }
      await services.handlers['download.cancel']({ id: started.id });
      hub.faults.bytesPerSecond = 0;
      const left = (await services.handlers['library.list']({})).find((m) => m.repoId === 'alloy-test/slow-llama');
      if (left) await services.handlers['library.delete']({ id: left.id });
    } finally {
      hub.faults.bytesPerSecond = 0;
    }
  });

  it('library.addFolder is kept between runs; a folder that is not there is refused', async () => {
    const folder = join(home, 'my-models');
    await expect(services.handlers['library.addFolder']({ path: folder })).rejects.toThrow(`${folder} does not exist`);
    await writeFile(folder, 'not a folder');
    await expect(services.handlers['library.addFolder']({ path: folder })).rejects.toThrow(`${folder} is a file, not a folder`);
    await rm(folder);
    await mkdir(folder);
    expect(await services.handlers['library.addFolder']({ path: folder })).toEqual([folder]);
    expect(JSON.parse(await readFile(join(home, 'config', 'library-folders.json'), 'utf8'))).toEqual({ folders: [folder] });
    expect(await services.handlers['library.removeFolder']({ path: folder })).toEqual([]);
  });

  it('library.addFolder reads ~ as the home folder, as a shell does, and refuses a relative path', async () => {
    const missing = `alloy-no-such-folder-${process.pid}`;
    await expect(services.handlers['library.addFolder']({ path: `~/${missing}` })).rejects.toThrow(`${join(homedir(), missing)} does not exist`);
    await expect(services.handlers['library.addFolder']({ path: 'models' })).rejects.toThrow(/^models: give the folder's whole path/);
  });

  it('a model folder added itself, not its parent, is listed as the model it is', async () => {
    const model = join(home, 'one-model', 'my-chat');
    await cp(join(DEMO, 'alloy-demo-chat'), model, { recursive: true });
    await services.handlers['library.addFolder']({ path: model });
    try {
      const listed = (await services.handlers['library.list']({})).filter((m) => m.path === model);
      expect(listed).toMatchObject([{ name: 'my-chat', source: 'folder', reference: model, architecture: 'LlamaForCausalLM', mergeable: true }]);
    } finally {
      await services.handlers['library.removeFolder']({ path: model });
    }
  });

  it('a model in a folder added while the app runs, and a finished merge, are found by name by the plan and the gradient', async () => {
    const folder = join(home, 'added-models');
    await mkdir(folder, { recursive: true });
    await cp(join(DEMO, 'alloy-demo-chat'), join(folder, 'added-chat'), { recursive: true });
    await mkdir(join(home, 'merges'), { recursive: true });
    await cp(join(DEMO, 'alloy-demo-code'), join(home, 'merges', 'earlier-merge'), { recursive: true });
    const recipe = 'merge_method: linear\nmodels:\n  - model: added-chat\n    parameters: {weight: 0.5}\n  - model: earlier-merge\n    parameters: {weight: 0.5}\n';
    const before = await services.handlers['recipe.plan']({ recipe });
    expect(before.ok).toBe(false);
    await services.handlers['library.addFolder']({ path: folder });
    try {
      const plan = await services.handlers['recipe.plan']({ recipe });
      expect(plan.ok, JSON.stringify(plan)).toBe(true);
      const gradient = await services.handlers['recipe.gradient']({ recipe });
      expect(JSON.stringify(gradient)).not.toMatch(/not found/);
    } finally {
      await services.handlers['library.removeFolder']({ path: folder });
    }
  });

  it('library.addFolder and removeFolder at once: none fails, and the kept list is the one in memory', async () => {
    const folders = await Promise.all('abcdefgh'.split('').map(async (c) => {
      const path = join(home, 'many', c);
      await mkdir(path, { recursive: true });
      return path;
    }));
    const file = join(home, 'config', 'library-folders.json');
    for (let round = 0; round < 5; round++) {
      const removed = await Promise.allSettled(folders.map((path) => services.handlers['library.removeFolder']({ path })));
      const added = await Promise.allSettled(folders.map((path) => services.handlers['library.addFolder']({ path })));
      expect([...removed, ...added].filter((a) => a.status === 'rejected')).toEqual([]);
      expect((JSON.parse(await readFile(file, 'utf8')) as { folders: string[] }).folders).toEqual(await services.handlers['library.folders']({}));
    }
    await Promise.all(folders.map((path) => services.handlers['library.removeFolder']({ path })));
  });

  it('requests are validated: a repo id is "org/name", files is merge, all or a list', () => {
    expect(() => validateRequest('download.start', { repo: '../etc' })).toThrow(/download.start: repo: a Hub repo id/);
    expect(() => validateRequest('download.start', { repo: 'a/b', files: 'some' })).toThrow(/files/);
    expect(validateRequest('download.start', { repo: 'a/b', files: ['config.json'] })).toEqual({ repo: 'a/b', files: ['config.json'] });
  });
});

describe('the Hub token', () => {
  it('comes from HF_TOKEN first, then the token file huggingface_hub writes', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), 'hf_file\n');
    expect(await readHubToken({ HF_HOME: dir, HF_TOKEN: 'hf_env' })).toMatchObject({ token: 'hf_env', source: 'env' });
    expect(await readHubToken({ HF_HOME: dir })).toMatchObject({ token: 'hf_file', source: 'file', tokenFile: join(dir, 'token') });
    expect(await readHubToken({ HF_HOME: join(dir, 'none') })).toMatchObject({ source: 'none' });
    expect((await readHubToken({ HF_HOME: join(dir, 'none') })).token).toBeUndefined();
  });
});
