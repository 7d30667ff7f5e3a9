// @vitest-environment happy-dom
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cp, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServices } from '../../src/main/services';
import { resolveAppPaths } from '../../src/main/services/paths';
import { validateRequest, type AlloyApi } from '../../src/shared/contract';
import { formatBytes } from '../../src/shared/format';
import LibraryView from '../../src/renderer/src/views/LibraryView.vue';
import { tempDir } from '../helpers';
import { FakeHub } from '../services/fake-hub/fake-hub';
import { addFixtureRepos, TINY_LLAMA, TINY_MISTRAL, tinyLlamaFiles } from '../services/fake-hub/fixture-repos';
import { mountView, until } from './real-api';
import { servedApi, type ServedApi } from './served-api';

const hub = new FakeHub();
let home: string;
let commits: ReturnType<typeof addFixtureRepos>;

beforeAll(async () => {
  commits = addFixtureRepos(hub);
  hub.addRepo('alloy-test/private-llama', tinyLlamaFiles(), { private: true });
  hub.addRepo('alloy-test/gguf-only', { 'README.md': '# GGUF', 'model.Q4_K_M.gguf': Buffer.alloc(2048) });
  await hub.start();
  home = await tempDir('alloy-library-view-');
});
afterAll(() => hub.close());
const servers: ServedApi[] = [];
afterEach(async () => {
  document.body.innerHTML = '';
  hub.faults.bytesPerSecond = 0;
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** The web mode's services in their own process, with an empty Hugging Face home, talking to the fake Hub. */
async function hubApi(name: string): Promise<AlloyApi> {
  const hfHome = join(home, name, 'hf');
  await mkdir(hfHome, { recursive: true });
  const served = await servedApi({ hubUrl: hub.url, hfHome, configDir: join(home, name, 'config') });
  servers.push(served);
  return served.api;
}

type Wrapper = Awaited<ReturnType<typeof mountView>>['wrapper'];
const rows = (wrapper: Wrapper) => wrapper.findAll('[data-testid=library-row]');
const rowOf = (wrapper: Wrapper, name: string) => rows(wrapper).find((r) => r.attributes('data-model') === name);
const names = (wrapper: Wrapper) => rows(wrapper).map((r) => r.attributes('data-model'));

/** Looks `repo` up, starts its download and waits for it to finish (an item per repo and revision may already be listed). */
async function download(wrapper: Wrapper, repo: string, revision = ''): Promise<void> {
  const before = wrapper.findAll(`[data-testid=download-item][data-repo="${repo}"]`).length;
  await wrapper.get('[data-testid=download-repo]').setValue(repo);
  await wrapper.get('[data-testid=download-revision]').setValue(revision);
  await wrapper.get('[data-testid=download-peek]').trigger('submit');
  await until(() => wrapper.find('[data-testid=download-start]').exists() || wrapper.find('[data-testid=download-error]').exists());
  await wrapper.get('[data-testid=download-start]').trigger('click');
  const item = () => wrapper.findAll(`[data-testid=download-item][data-repo="${repo}"]`)[0];
  await until(() => wrapper.findAll(`[data-testid=download-item][data-repo="${repo}"]`).length > before);
  await until(() => ['done', 'failed'].includes(item()?.attributes('data-state') ?? ''), 20_000);
  expect(item()!.attributes('data-state'), item()!.text()).toBe('done');
}

/** The newest download of `repo` (the list shows the newest first). */
function downloadItem(wrapper: Wrapper, repo: string) {
  return wrapper.find(`[data-testid=download-item][data-repo="${repo}"]`);
}

describe('the library view', () => {
  it('lists every model with architecture, layers, dtype and size; filters and sorts', async () => {
    const api = await hubApi('list');
    const { wrapper } = await mountView(LibraryView, api);
    await until(() => rows(wrapper).length >= 3);
    const chat = rowOf(wrapper, 'alloy-demo-chat')!;
    const cells = chat.findAll('td').map((c) => c.text());
    const listed = (await api.invoke('library.list', {})).find((m) => m.name === 'alloy-demo-chat')!;
    expect(cells[1]).toBe('LlamaForCausalLM');
    expect(cells[2]).toBe(String(listed.layers));
    expect(cells[3]).toBe(String(listed.hiddenSize));
    expect(cells[5]).toBe(listed.dtypes.join(', '));
    expect(cells[7]).toBe(formatBytes(listed.bytes));
    expect(wrapper.get('[data-testid=disk-free]').text()).toMatch(/^\d+(\.\d)? [KMGT]?B free on the cache's disk$/);

    await download(wrapper, TINY_MISTRAL);
    await until(() => names(wrapper).includes(TINY_MISTRAL));
    await wrapper.get('[data-testid=library-sort]').setValue('parameters');
    // Sizes read largest first: the 4-layer demo models, then tiny-mistral.
    expect(names(wrapper).at(-1)).toBe(TINY_MISTRAL);
    await wrapper.get('[data-testid=library-sort-direction]').trigger('click');
    expect(names(wrapper)[0]).toBe(TINY_MISTRAL);
    await wrapper.get('[data-testid=library-filter]').setValue('mistral');
    expect(names(wrapper)).toEqual([TINY_MISTRAL]);
    await wrapper.get('[data-testid=library-filter]').setValue('');
    await wrapper.get('[data-testid=library-source]').setValue('demo');
    expect(names(wrapper).sort()).toEqual(['alloy-demo-base', 'alloy-demo-chat', 'alloy-demo-code']);
    await wrapper.get('[data-testid=library-filter]').setValue('no such model');
    expect(wrapper.text()).toContain('No model matches.');
  });

  it('looks a repo up first, then downloads it with live progress, pauses, resumes and finds it in the library', async () => {
    const api = await hubApi('download');
    const { wrapper } = await mountView(LibraryView, api);
    await wrapper.get('[data-testid=download-repo]').setValue(TINY_LLAMA);
    expect(wrapper.find('[data-testid=download-start]').exists()).toBe(false);
    await wrapper.get('[data-testid=download-peek]').trigger('submit');
    await until(() => wrapper.find('[data-testid=download-summary]').exists());
    const peek = await api.invoke('download.peek', { repo: TINY_LLAMA });
    expect(wrapper.get('[data-testid=peek-architecture]').text()).toContain('LlamaForCausalLM');
    expect(wrapper.get('[data-testid=peek-dtypes]').text()).toBe('F32');
    expect(wrapper.get('[data-testid=peek-size]').text()).toBe(`${formatBytes(peek.weightBytes)} in 2 safetensors files`);
    const selected = peek.files.filter((f) => f.selected).length;
    expect(wrapper.get('[data-testid=download-start]').text()).toBe(`Download ${selected} files (${formatBytes(peek.downloadBytes)})`);

    // Slow enough to watch: about 2 KB a second.
    hub.faults.bytesPerSecond = 2000;
    await wrapper.get('[data-testid=download-start]').trigger('click');
    const item = () => downloadItem(wrapper, TINY_LLAMA);
    await until(() => item().exists());
    await until(() => item().attributes('data-state') === 'running' && item().find('[data-testid=download-rate]').exists() && /KB\/s$/.test(item().get('[data-testid=download-rate]').text()), 15_000);
    await until(() => /left$/.test(item().get('[data-testid=download-eta]').text()), 15_000);
    expect(item().get('[data-testid=download-bytes]').text()).toMatch(new RegExp(`of ${formatBytes(peek.downloadBytes).replace('.', '\\.')}`));
    expect(item().findAll('[data-testid=download-file]')).toHaveLength(selected);

    // Pause in the middle of a shard: its partial file stays in the cache for the resume.
    const shardUnderWay = () =>
      item()
        .findAll('[data-testid=download-file][data-state=downloading]')
        .some((f) => f.text().includes('.safetensors') && !f.get('.num').text().startsWith('0 B'));
    await until(shardUnderWay, 15_000);
    await item().get('[data-testid=download-pause]').trigger('click');
    await until(() => item().attributes('data-state') === 'paused');
    const [paused] = await api.invoke('download.list', {});
    expect(paused!.state).toBe('paused');
    expect(paused!.downloadedBytes).toBeLessThan(peek.downloadBytes);
    const blobs = join(home, 'download', 'hf', 'hub', 'models--alloy-test--tiny-llama', 'blobs');
    expect(readdirSync(blobs).filter((f) => f.endsWith('.incomplete'))).toHaveLength(1);
    // Its config is in: the library lists the snapshot, as downloading (not "not mergeable"), and not to be deleted under the download.
    await wrapper.get('[data-testid=library-filter]').setValue('');
    await until(() => rowOf(wrapper, TINY_LLAMA) !== undefined, 10_000);
    const partial = rowOf(wrapper, TINY_LLAMA)!;
    expect(partial.find('[data-testid=downloading-tag]').exists()).toBe(true);
    expect(partial.text()).not.toContain('not mergeable');
    expect(partial.get('[data-testid=delete-model]').attributes('disabled')).toBeDefined();

    hub.faults.bytesPerSecond = 0;
    await item().get('[data-testid=download-resume]').trigger('click');
    await until(() => item().attributes('data-state') === 'done', 20_000);
    expect(item().get('[data-testid=download-bytes]').text()).toBe(`${formatBytes(peek.downloadBytes)} of ${formatBytes(peek.downloadBytes)}`);
    // The download's library.changed event brings the model in whole, refs/main written last.
    await until(() => rowOf(wrapper, TINY_LLAMA)?.text().includes('main') ?? false, 10_000);
    const row = rowOf(wrapper, TINY_LLAMA)!;
    expect(row.find('[data-testid=downloading-tag]').exists()).toBe(false);
    expect(row.get('[data-testid=delete-model]').attributes('disabled')).toBeUndefined();
    expect(row.text()).toContain('hf-cache');
    expect(row.text()).toContain('main');
    // Resumed with a Range request from the partial file, not from the start.
    expect(hub.requestsTo('/cdn/').some((r) => r.range && !r.range.startsWith('bytes=0-'))).toBe(true);
  });

  it('cancelling a download removes its partial files', async () => {
    const api = await hubApi('cancel');
    const { wrapper } = await mountView(LibraryView, api);
    hub.faults.bytesPerSecond = 2000;
    await wrapper.get('[data-testid=download-repo]').setValue(TINY_LLAMA);
    await wrapper.get('[data-testid=download-peek]').trigger('submit');
    await until(() => wrapper.find('[data-testid=download-start]').exists());
    await wrapper.get('[data-testid=download-start]').trigger('click');
    const item = () => downloadItem(wrapper, TINY_LLAMA);
    await until(() => item().exists());
    await until(() => item().attributes('data-state') === 'running' && !item().get('[data-testid=download-bytes]').text().startsWith('0 B'), 15_000);
    await item().get('[data-testid=download-cancel]').trigger('click');
    await until(() => item().attributes('data-state') === 'cancelled');
    const blobs = join(home, 'cancel', 'hf', 'hub', 'models--alloy-test--tiny-llama', 'blobs');
    const partials = () => (existsSync(blobs) ? readdirSync(blobs).filter((f) => f.endsWith('.incomplete')) : []);
    // The state changes at once; the partial files go as the transfer stops.
    await until(() => partials().length === 0, 5_000);
    await wrapper.get('[data-testid=downloads-clear]').trigger('click');
    expect(wrapper.find('[data-testid=download-list]').exists()).toBe(false);
    // Cleared in the services too: the view opened again (a reload, another window) does not list it.
    let left = (await api.invoke('download.list', {})).length;
    for (let i = 0; i < 100 && left > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      left = (await api.invoke('download.list', {})).length;
    }
    expect(left).toBe(0);
    wrapper.unmount();
    const again = await mountView(LibraryView, api);
    await until(() => rows(again.wrapper).length > 0);
    expect(again.wrapper.find('[data-testid=download-list]').exists()).toBe(false);
  });

  it('marks models that fit a chosen base: architecture, hidden size and layers', async () => {
    const api = await hubApi('compat');
    const { wrapper } = await mountView(LibraryView, api);
    await download(wrapper, TINY_LLAMA);
    await download(wrapper, TINY_LLAMA, commits.llamaFirst);
    await download(wrapper, TINY_MISTRAL);
    await until(() => rows(wrapper).length === 6);
    const models = await api.invoke('library.list', {});
    const main = models.find((m) => m.repoId === TINY_LLAMA && m.revision === commits.llamaMain)!;
    await wrapper.get('[data-testid=library-base]').setValue(main.id);
    expect(wrapper.get('[data-testid=library-base-shape]').text()).toBe('LlamaForCausalLM, hidden size 8, 2 layers');
    const first = rows(wrapper).filter((r) => r.attributes('data-model') === TINY_LLAMA).find((r) => r.attributes('data-compatible') !== undefined)!;
    expect(first.get('[data-testid=compat-tag]').text()).toBe('fits the base');
    expect(first.attributes('data-compatible')).toBe('true');
    const mistral = rowOf(wrapper, TINY_MISTRAL)!;
    expect(mistral.attributes('data-compatible')).toBe('false');
    expect(mistral.get('[data-testid=compat-tag]').text()).toBe(
      'differs: MistralForCausalLM, the base is LlamaForCausalLM; hidden size 16, the base has 8; 1 layers, the base has 2',
    );
    expect(rowOf(wrapper, 'alloy-demo-chat')!.get('[data-testid=compat-tag]').text()).toMatch(/^differs: hidden size 64, the base has 8; 4 layers, the base has 2$/);
    expect(rows(wrapper).filter((r) => r.find('[data-testid=base-tag]').exists())).toHaveLength(1);

    await wrapper.get('[data-testid=library-only-compatible]').setValue(true);
    expect(names(wrapper)).toEqual([TINY_LLAMA, TINY_LLAMA]);

    // A repo looked up on the Hub is compared with the same base.
    await wrapper.get('[data-testid=download-repo]').setValue(TINY_MISTRAL);
    await wrapper.get('[data-testid=download-peek]').trigger('submit');
    await until(() => wrapper.find('[data-testid=peek-compat]').exists());
    expect(wrapper.get('[data-testid=peek-compat]').text()).toMatch(/^Differs from the base, alloy-test\/tiny-llama: MistralForCausalLM/);
  });

  it('a model of the base\'s shape that cannot be merged (a shard missing) does not fit it', async () => {
    const api = await hubApi('compat-broken');
    const { wrapper } = await mountView(LibraryView, api);
    await download(wrapper, TINY_LLAMA);
    const main = (await api.invoke('library.list', {})).find((m) => m.repoId === TINY_LLAMA)!;
    const folder = join(home, 'compat-broken', 'models');
    await cp(main.path, join(folder, 'llama-copy'), { recursive: true, dereference: true });
    await rm(join(folder, 'llama-copy', 'model-00002-of-00002.safetensors'));
    await api.invoke('library.addFolder', { path: folder });
    await until(() => rowOf(wrapper, 'llama-copy') !== undefined, 10_000);
    await wrapper.get('[data-testid=library-base]').setValue(main.id);
    const copy = rowOf(wrapper, 'llama-copy')!;
    expect(copy.text()).toContain('not mergeable');
    expect(copy.find('[data-testid=compat-tag]').exists()).toBe(false);
    await wrapper.get('[data-testid=library-only-compatible]').setValue(true);
    expect(names(wrapper)).toEqual([TINY_LLAMA]);
  });

  it('deletes a revision after a dialog that states the bytes it frees; cancel and Escape keep it', async () => {
    const api = await hubApi('delete');
    const { wrapper } = await mountView(LibraryView, api);
    await download(wrapper, TINY_LLAMA, commits.llamaFirst);
    await download(wrapper, TINY_LLAMA);
    await until(() => rows(wrapper).filter((r) => r.attributes('data-model') === TINY_LLAMA).length === 2);
    const main = (await api.invoke('library.list', {})).find((m) => m.repoId === TINY_LLAMA && m.revision === commits.llamaMain)!;
    const mainRow = () => rows(wrapper).find((r) => r.attributes('data-model') === TINY_LLAMA && r.text().includes('main'))!;
    expect(rowOf(wrapper, 'alloy-demo-chat')!.find('[data-testid=delete-model]').exists()).toBe(false);

    await mainRow().get('[data-testid=delete-model]').trigger('click');
    await until(() => wrapper.find('[data-testid=delete-frees]').exists());
    const dialog = wrapper.get('[data-testid=delete-dialog]');
    expect(dialog.attributes('role')).toBe('alertdialog');
    expect(document.activeElement).toBe(wrapper.get('[data-testid=delete-cancel]').element);
    await dialog.trigger('keydown', { key: 'Escape' });
    expect(wrapper.find('[data-testid=delete-dialog]').exists()).toBe(false);
    expect(existsSync(main.path)).toBe(true);

    await mainRow().get('[data-testid=delete-model]').trigger('click');
    await until(() => wrapper.find('[data-testid=delete-frees]').exists());
    // Only its config.json is its own: the shards are shared with the other revision and stay.
    const configBytes = readFileSync(join(main.path, 'config.json')).length;
    expect(wrapper.get('[data-testid=delete-frees]').text()).toContain(`This frees ${formatBytes(configBytes)}`);
    expect(wrapper.get('[data-testid=delete-dialog]').text()).toContain('shared with another revision and stay');
    expect(wrapper.get('[data-testid=delete-confirm]').text()).toBe(`Delete and free ${formatBytes(configBytes)}`);
    await wrapper.get('[data-testid=delete-cancel]').trigger('click');
    expect(existsSync(main.path)).toBe(true);

    await mainRow().get('[data-testid=delete-model]').trigger('click');
    await until(() => wrapper.find('[data-testid=delete-confirm]:not([disabled])').exists());
    await wrapper.get('[data-testid=delete-confirm]').trigger('click');
    await until(() => wrapper.find('[data-testid=delete-result]').exists());
    expect(wrapper.get('[data-testid=delete-result]').text()).toBe(`Deleted ${TINY_LLAMA}: ${formatBytes(configBytes)} freed.`);
    expect(existsSync(main.path)).toBe(false);
    await until(() => rows(wrapper).filter((r) => r.attributes('data-model') === TINY_LLAMA).length === 1);
    expect(existsSync(join(home, 'delete', 'hf', 'hub', 'models--alloy-test--tiny-llama', 'snapshots', commits.llamaFirst, 'config.json'))).toBe(true);
    expect(mainRow()).toBeUndefined();

    // The last revision takes the repo's folder, and every byte of it.
    const last = (await api.invoke('library.list', {})).find((m) => m.repoId === TINY_LLAMA)!;
    await rowOf(wrapper, TINY_LLAMA)!.get('[data-testid=delete-model]').trigger('click');
    await until(() => wrapper.find('[data-testid=delete-frees]').exists());
    expect(wrapper.get('[data-testid=delete-frees]').text()).toBe(
      `This frees ${formatBytes(last.bytes)}: it is the repo's last revision in the Hugging Face cache, so the repo's whole folder goes.`,
    );
    await wrapper.get('[data-testid=delete-cancel]').trigger('click');
  });

  it('takes a repo page\'s address pasted whole: the repo id, and the revision it names', async () => {
    const api = await hubApi('address');
    const { wrapper } = await mountView(LibraryView, api);
    await wrapper.get('[data-testid=download-repo]').setValue(`https://huggingface.co/${TINY_LLAMA}/tree/${commits.llamaFirst}`);
    expect(wrapper.text()).not.toContain('A Hub repo id is');
    await wrapper.get('[data-testid=download-peek]').trigger('submit');
    await until(() => wrapper.find('[data-testid=download-summary]').exists() || wrapper.find('[data-testid=download-error]').exists());
    expect((wrapper.get('[data-testid=download-repo]').element as HTMLInputElement).value).toBe(TINY_LLAMA);
    expect((wrapper.get('[data-testid=download-revision]').element as HTMLInputElement).value).toBe(commits.llamaFirst);
    expect(wrapper.get('[data-testid=download-summary]').text()).toContain(commits.llamaFirst.slice(0, 12));
    await wrapper.get('[data-testid=download-repo]').setValue('https://huggingface.co/datasets/org/name');
    expect(wrapper.text()).toContain('A Hub repo id is');
  });

  it('says why a private repo cannot be looked up without a token', async () => {
    const api = await hubApi('private');
    const { wrapper } = await mountView(LibraryView, api);
    await wrapper.get('[data-testid=download-repo]').setValue('not a repo');
    expect(wrapper.text()).toContain('A Hub repo id is "org/name".');
    expect(wrapper.get('[data-testid=download-peek]').attributes('disabled')).toBeDefined();
    await wrapper.get('[data-testid=download-repo]').setValue('alloy-test/private-llama');
    await wrapper.get('[data-testid=download-peek]').trigger('submit');
    await until(() => wrapper.find('[data-testid=download-error]').exists());
    expect(wrapper.get('[data-testid=download-error]').text()).toMatch(/alloy-test\/private-llama was not found on the Hub.*private.*HF_TOKEN/);
    expect(wrapper.find('[data-testid=download-start]').exists()).toBe(false);
  });

  it('a repo with nothing a merge needs (GGUF only) says so, and downloads nothing until every file is asked for', async () => {
    const api = await hubApi('gguf');
    const { wrapper } = await mountView(LibraryView, api);
    await wrapper.get('[data-testid=download-repo]').setValue('alloy-test/gguf-only');
    await wrapper.get('[data-testid=download-peek]').trigger('submit');
    await until(() => wrapper.find('[data-testid=download-start]').exists());
    expect(wrapper.get('[data-testid=peek-size]').text()).toBe('no safetensors or PyTorch weights');
    expect(wrapper.get('[data-testid=download-start]').attributes('disabled')).toBeDefined();
    expect(wrapper.get('[data-testid=download-nothing]').text()).toMatch(/take every file/);
    await wrapper.get('[data-testid=download-all]').setValue(true);
    expect(wrapper.get('[data-testid=download-start]').attributes('disabled')).toBeUndefined();
    expect(wrapper.get('[data-testid=download-start]').text()).toMatch(/^Download 2 files/);
  });

  it('shows where a model is: its folder opened where the face can open folders, its path otherwise', async () => {
    const opened: string[] = [];
    const services = createServices({
      paths: resolveAppPaths(fileURLToPath(import.meta.url)),
      nodeBinary: process.execPath,
      outputRoot: await tempDir('alloy-reveal-'),
      openFolder: async (path) => (opened.push(path), ''),
    });
    const desktop: AlloyApi = {
      invoke: (channel, request) => (services.handlers[channel] as (r: unknown) => Promise<never>)(validateRequest(channel, request)),
      on: (event, listener) => services.events.on(event, listener),
    };
    const chat = (await desktop.invoke('library.list', {})).find((m) => m.name === 'alloy-demo-chat')!;
    const { wrapper } = await mountView(LibraryView, desktop);
    await until(() => rowOf(wrapper, 'alloy-demo-chat')?.find('[data-testid=reveal-model]').text() === 'Open folder');
    await rowOf(wrapper, 'alloy-demo-chat')!.get('[data-testid=reveal-model]').trigger('click');
    await until(() => wrapper.find('[data-testid=delete-result]').exists());
    expect(opened).toEqual([chat.path]);
    expect(wrapper.get('[data-testid=delete-result]').text()).toBe(`Opened ${chat.path} in the file manager.`);
    wrapper.unmount();
    services.library.close();

    // Web mode: the browser may be on another machine; the path is what it can give.
    const web = await mountView(LibraryView, await hubApi('reveal'));
    await until(() => rowOf(web.wrapper, 'alloy-demo-chat') !== undefined);
    const button = rowOf(web.wrapper, 'alloy-demo-chat')!.get('[data-testid=reveal-model]');
    expect(button.text()).toBe('Copy path');
    await button.trigger('click');
    await until(() => web.wrapper.find('[data-testid=delete-result]').exists());
    expect(web.wrapper.get('[data-testid=delete-result]').text()).toContain(chat.path);
    await expect(desktop.invoke('library.openFolder', { id: '/etc' })).rejects.toThrow(/not in the library/);
  });

  it('a download started again after it failed takes the failed one\'s place in the list', async () => {
    const api = await hubApi('again');
    const { wrapper } = await mountView(LibraryView, api);
    const items = () => wrapper.findAll(`[data-testid=download-item][data-repo="${TINY_MISTRAL}"]`);
    await wrapper.get('[data-testid=download-repo]').setValue(TINY_MISTRAL);
    await wrapper.get('[data-testid=download-peek]').trigger('submit');
    await until(() => wrapper.find('[data-testid=download-start]').exists());
    // The Hub asks for an hour's wait: the download fails at once.
    hub.faults.retryAfter = '3600';
    hub.faults.rateLimited = 1000;
    try {
      await wrapper.get('[data-testid=download-start]').trigger('click');
      await until(() => items()[0]?.attributes('data-state') === 'failed', 10_000);
    } finally {
      hub.faults.rateLimited = 0;
      hub.faults.retryAfter = '7';
    }
    await wrapper.get('[data-testid=download-repo]').setValue(TINY_MISTRAL);
    await wrapper.get('[data-testid=download-peek]').trigger('submit');
    await until(() => wrapper.find('[data-testid=download-start]').exists());
    await wrapper.get('[data-testid=download-start]').trigger('click');
    await until(() => items()[0]?.attributes('data-state') === 'done', 20_000);
    expect(items().map((i) => i.attributes('data-state'))).toEqual(['done']);
    expect((await api.invoke('download.list', {})).filter((d) => d.repo === TINY_MISTRAL).map((d) => d.state)).toEqual(['done']);
  });
});
