// @vitest-environment happy-dom
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { validateRequest, type AlloyApi } from '../../src/shared/contract';
import { createServices } from '../../src/main/services';
import { createHubTokenStore, type TokenCipher } from '../../src/main/services/downloads/hub-token-store';
import { resolveAppPaths } from '../../src/main/services/paths';
import { useLibraryStore } from '../../src/renderer/src/stores/library';
import SettingsView from '../../src/renderer/src/views/SettingsView.vue';
import { tempDir } from '../helpers';
import { FakeHub } from '../services/fake-hub/fake-hub';
import { tinyLlamaFiles } from '../services/fake-hub/fixture-repos';
import { mountView, until } from './real-api';
import { servedApi, type ServedApi } from './served-api';

const TOKEN = 'hf_settingsViewSecret0123456789';
const hub = new FakeHub();
let home: string;
const servers: ServedApi[] = [];

beforeAll(async () => {
  hub.addRepo('alloy-test/private-llama', tinyLlamaFiles(), { private: true });
  hub.tokens.add(TOKEN);
  await hub.start();
  home = await tempDir('alloy-settings-view-');
});
afterAll(() => hub.close());
afterEach(async () => {
  document.body.innerHTML = '';
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(name: string, setup: (hfHome: string) => void = () => undefined): Promise<ServedApi> {
  const hfHome = join(home, name, 'hf');
  mkdirSync(hfHome, { recursive: true });
  setup(hfHome);
  const served = await servedApi({ hubUrl: hub.url, hfHome, configDir: join(home, name, 'config') });
  servers.push(served);
  return served;
}

type Wrapper = Awaited<ReturnType<typeof mountView>>['wrapper'];
const status = (wrapper: Wrapper) => wrapper.get('[data-testid=token-status]');

describe('the Hugging Face token in settings', () => {
  it('web mode: sets a token held in memory only, says so, never shows or logs it, and downloads use it', async () => {
    const served = await serve('memory');
    const { wrapper } = await mountView(SettingsView, served.api);
    await until(() => wrapper.find('[data-testid=token-status]').exists());
    expect(status(wrapper).attributes('data-source')).toBe('none');
    expect(status(wrapper).text()).toBe('No token: only public repos can be downloaded.');
    expect(wrapper.get('[data-testid=token-storage]').text()).toMatch(/kept in memory only, for as long as this Alloy server runs: it is never written to disk, and it is forgotten when the server stops/);
    await expect(served.api.invoke('download.peek', { repo: 'alloy-test/private-llama' })).rejects.toThrow(/not found on the Hub/);

    const input = wrapper.get('[data-testid=token-input]');
    expect(input.attributes('type')).toBe('password');
    await input.setValue('hf not a token');
    expect(wrapper.text()).toContain('A token is printable ASCII without spaces.');
    expect(wrapper.get('[data-testid=token-save]').attributes('disabled')).toBeDefined();
    await input.setValue(`  ${TOKEN}\n`);
    await wrapper.get('form[autocomplete=off]').trigger('submit');
    await until(() => status(wrapper).attributes('data-source') === 'settings');
    expect(status(wrapper).text()).toBe('A token is set in Alloy. It is kept in memory until the server stops.');
    expect(wrapper.get('[data-testid=token-saved]').text()).toBe('Token set for this session.');
    expect((input.element as HTMLInputElement).value).toBe('');
    expect(document.body.innerHTML).not.toContain(TOKEN);
    expect(JSON.stringify(await served.api.invoke('hub.status', {}))).not.toContain(TOKEN);

    // Downloads use it: the private repo is found now, with the token sent to the Hub.
    hub.requests.length = 0;
    const peek = await served.api.invoke('download.peek', { repo: 'alloy-test/private-llama' });
    expect(peek.architecture).toBe('LlamaForCausalLM');
    expect(hub.requestsTo('private-llama').every((r) => r.authorized)).toBe(true);
    // Nothing on disk holds it, and the server never printed it.
    for (const file of readdirSync(join(home, 'memory'), { recursive: true, withFileTypes: true })) {
      if (file.isFile()) expect(readFileSync(join(file.parentPath, file.name), 'utf8'), file.name).not.toContain(TOKEN);
    }
    expect(served.output()).not.toContain(TOKEN);

    await wrapper.get('[data-testid=token-remove]').trigger('click');
    await until(() => status(wrapper).attributes('data-source') === 'none');
    expect(wrapper.get('[data-testid=token-saved]').text()).toBe('Token removed.');
    await expect(served.api.invoke('download.peek', { repo: 'alloy-test/private-llama' })).rejects.toThrow();
  });

  it('a Hub status read before the token was saved, and answered after, does not put the old status back', async () => {
    const served = await serve('late-status');
    // The real server, with the answers to status requests held back while `holding`.
    let holding = false;
    const held: (() => void)[] = [];
    const api: AlloyApi = {
      invoke: (async (channel: Parameters<AlloyApi['invoke']>[0], request: never) => {
        const answer = await served.api.invoke(channel, request);
        if (channel === 'hub.status' && holding) await new Promise<void>((go) => held.push(go));
        return answer;
      }) as AlloyApi['invoke'],
      on: (event, listener) => served.api.on(event, listener),
    };
    const { wrapper } = await mountView(SettingsView, api);
    await until(() => wrapper.find('[data-testid=token-status]').exists());
    holding = true;
    const refreshed = useLibraryStore().refresh();
    await until(() => held.length > 0);
    await wrapper.get('[data-testid=token-input]').setValue(TOKEN);
    await wrapper.get('form[autocomplete=off]').trigger('submit');
    await until(() => status(wrapper).attributes('data-source') === 'settings');
    // The refreshes' statuses were read before the token was set ('none'); they arrive now.
    holding = false;
    held.splice(0).forEach((go) => go());
    await refreshed;
    await until(() => !useLibraryStore().loading);
    expect(status(wrapper).attributes('data-source')).toBe('settings');
  });

  it('names the token file `hf auth login` writes when that is where the token comes from', async () => {
    const served = await serve('file', (hfHome) => writeFileSync(join(hfHome, 'token'), `${TOKEN}\n`));
    const { wrapper } = await mountView(SettingsView, served.api);
    await until(() => wrapper.find('[data-testid=token-status]').exists());
    expect(status(wrapper).attributes('data-source')).toBe('file');
    expect(status(wrapper).text()).toBe('Using the token file that `hf auth login` writes.');
    expect(wrapper.find('[data-testid=token-remove]').exists()).toBe(false);
    expect(document.body.innerHTML).not.toContain(TOKEN);
  });

  it('desktop: with a keychain the token is stored encrypted, and the view says so', async () => {
    // A keychain for the test (AES-GCM under a key in memory), in the role of Electron's safeStorage.
    const key = randomBytes(32);
    const keychain: TokenCipher = {
      isAvailable: async () => true,
      encrypt: async (plain) => {
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', key, iv);
        const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
        return Buffer.concat([iv, cipher.getAuthTag(), body]);
      },
      decrypt: async (data) => {
        const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
        decipher.setAuthTag(data.subarray(12, 28));
        return { result: Buffer.concat([decipher.update(data.subarray(28)), decipher.final()]).toString('utf8'), shouldReEncrypt: false };
      },
    };
    const config = join(home, 'desktop', 'config');
    const services = createServices({
      paths: resolveAppPaths(fileURLToPath(import.meta.url)),
      nodeBinary: process.execPath,
      outputRoot: join(home, 'desktop', 'merges'),
      settingsFile: join(config, 'settings.json'),
      env: { HF_HOME: join(home, 'desktop', 'hf') },
      tokenStore: await createHubTokenStore({ file: join(config, 'hub-token.enc'), cipher: keychain }),
    });
    const api: AlloyApi = {
      invoke: (channel, request) => (services.handlers[channel] as (r: unknown) => Promise<never>)(validateRequest(channel, request)),
      on: (event, listener) => services.events.on(event, listener),
    };
    const { wrapper } = await mountView(SettingsView, api);
    await until(() => wrapper.find('[data-testid=token-storage]').exists());
    expect(wrapper.get('[data-testid=token-storage]').text()).toBe('A token saved here is encrypted with the system keychain before it is written to disk.');
    await wrapper.get('[data-testid=token-input]').setValue(TOKEN);
    await wrapper.get('form[autocomplete=off]').trigger('submit');
    await until(() => status(wrapper).attributes('data-source') === 'settings');
    expect(status(wrapper).text()).toBe('A token is set in Alloy. It is stored encrypted.');
    expect(wrapper.get('[data-testid=token-saved]').text()).toBe('Token saved, encrypted.');
    expect(readFileSync(join(config, 'hub-token.enc')).includes(Buffer.from(TOKEN))).toBe(false);
    services.library.close();
  });
});

describe('library folders in settings', () => {
  it('adds a folder whose models then appear in the library, and removes it', async () => {
    const served = await serve('folders');
    const folder = join(home, 'folders', 'my-models');
    cpSync('resources/demo/models/alloy-demo-chat', join(folder, 'my-chat-model'), { recursive: true });
    const { wrapper } = await mountView(SettingsView, served.api);
    await until(() => wrapper.find('[data-testid=folders-empty]').exists());
    // A browser cannot browse the server's folders: no Choose… here, and a mistyped path is refused.
    expect(wrapper.find('[data-testid=folder-pick]').exists()).toBe(false);
    await wrapper.get('[data-testid=folder-input]').setValue(`${folder}-typo`);
    await wrapper.get('[data-testid=folder-settings] form').trigger('submit');
    await until(() => wrapper.find('[data-testid=folder-error]').exists());
    expect(wrapper.get('[data-testid=folder-error]').text()).toBe(`${folder}-typo does not exist`);
    await wrapper.get('[data-testid=folder-input]').setValue(folder);
    await wrapper.get('[data-testid=folder-settings] form').trigger('submit');
    await until(() => wrapper.findAll('[data-testid=folder-item]').length === 1);
    expect(wrapper.get('[data-testid=folder-item]').text()).toContain(folder);
    expect((await served.api.invoke('library.list', {})).some((m) => m.name === 'my-chat-model' && m.source === 'folder')).toBe(true);
    await wrapper.get('[data-testid=folder-remove]').trigger('click');
    await until(() => wrapper.find('[data-testid=folders-empty]').exists());
    expect((await served.api.invoke('library.list', {})).some((m) => m.name === 'my-chat-model')).toBe(false);
  });
});
