import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateRequest } from '../../src/shared/contract';
import { createServices, type Services } from '../../src/main/services';
import { createHubTokenStore, EncryptedTokenStore, MemoryTokenStore, type HubTokenStore, type TokenCipher } from '../../src/main/services/downloads/hub-token-store';
import { resolveAppPaths } from '../../src/main/services/paths';
import { tempDir } from '../helpers';
import { FakeHub } from './fake-hub/fake-hub';
import { addFixtureRepos, TINY_LLAMA, tinyLlamaFiles } from './fake-hub/fixture-repos';

/**
 * A keychain for the test: AES-256-GCM under a key held in memory, the way safeStorage holds its
 * key in the OS keychain. Each instance is one keychain.
 */
function testKeychain(options: { available?: boolean; rotated?: boolean } = {}): TokenCipher & { encryptions: number } {
  const key = randomBytes(32);
  const keychain = {
    encryptions: 0,
    isAvailable: async () => options.available ?? true,
    encrypt: async (plain: string) => {
      keychain.encryptions++;
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), body]);
    },
    decrypt: async (data: Buffer) => {
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
      decipher.setAuthTag(data.subarray(12, 28));
      const result = Buffer.concat([decipher.update(data.subarray(28)), decipher.final()]).toString('utf8');
      return { result, shouldReEncrypt: options.rotated ?? false };
    },
  };
  return keychain;
}

const TOKEN = 'hf_e2eSecretTokenValue1234567890';

describe('the token store', () => {
  it('writes the token encrypted, never in plain text, readable only with the same keychain', async () => {
    const dir = await tempDir();
    const file = join(dir, 'config', 'hub-token.enc');
    const keychain = testKeychain();
    const store = new EncryptedTokenStore(file, keychain);
    expect(await store.get()).toBeUndefined();
    await store.set(TOKEN);
    const bytes = await readFile(file);
    expect(bytes.includes(Buffer.from(TOKEN))).toBe(false);
    expect(bytes.includes(Buffer.from(TOKEN.slice(3, 15)))).toBe(false);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, 'config'))).toEqual(['hub-token.enc']);
    // The app restarted: a new store reads the file through the keychain.
    expect(await new EncryptedTokenStore(file, keychain).get()).toBe(TOKEN);
    // Another keychain (a copied profile) cannot read it: as if no token were set.
    expect(await new EncryptedTokenStore(file, testKeychain()).get()).toBeUndefined();
    await store.clear();
    expect(existsSync(file)).toBe(false);
    expect(await store.get()).toBeUndefined();
    await store.clear();
  });

  it('re-encrypts when the keychain rotated its key', async () => {
    const dir = await tempDir();
    const file = join(dir, 'hub-token.enc');
    const keychain = testKeychain({ rotated: true });
    await new EncryptedTokenStore(file, keychain).set(TOKEN);
    const before = await readFile(file);
    expect(await new EncryptedTokenStore(file, keychain).get()).toBe(TOKEN);
    expect(keychain.encryptions).toBe(2);
    expect((await readFile(file)).equals(before)).toBe(false);
  });

  it('is kept in memory where there is no keychain or no file', async () => {
    const dir = await tempDir();
    const file = join(dir, 'hub-token.enc');
    expect((await createHubTokenStore({ file, cipher: testKeychain() })).storage).toBe('encrypted');
    expect((await createHubTokenStore({ file, cipher: testKeychain({ available: false }) })).storage).toBe('memory');
    expect((await createHubTokenStore({ file })).storage).toBe('memory');
    expect((await createHubTokenStore({ cipher: testKeychain() })).storage).toBe('memory');
    const memory = new MemoryTokenStore();
    await memory.set(TOKEN);
    expect(await memory.get()).toBe(TOKEN);
    expect(existsSync(file)).toBe(false);
  });

  it('hub.setToken refuses a malformed token without repeating it', () => {
    for (const token of ['hf_with a space', 'hf_ünicode', '', 'x'.repeat(1001)]) {
      let message = '';
      try {
        validateRequest('hub.setToken', { token });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/^hub\.setToken: token: /);
      if (token) expect(message).not.toContain(token.slice(0, 8));
    }
    expect(validateRequest('hub.setToken', { token: TOKEN })).toEqual({ token: TOKEN });
  });
});

describe('the token and delete channels', () => {
  const hub = new FakeHub();
  let home: string;
  let commits: ReturnType<typeof addFixtureRepos>;
  const made: Services[] = [];
  const servicesWith = async (tokenStore: HubTokenStore = new MemoryTokenStore()) => {
    const services = createServices({
      paths: resolveAppPaths(fileURLToPath(import.meta.url)),
      nodeBinary: process.execPath,
      outputRoot: join(home, 'merges'),
      settingsFile: join(home, 'config', 'settings.json'),
      env: { HF_HOME: join(home, 'hf'), HF_ENDPOINT: hub.url, XDG_CACHE_HOME: join(home, 'xdg') },
      tokenStore,
    });
    made.push(services);
    return services;
  };

  beforeAll(async () => {
    commits = addFixtureRepos(hub);
    hub.addRepo('alloy-test/private-llama', tinyLlamaFiles(), { private: true });
    hub.tokens.add(TOKEN);
    await hub.start();
    home = await tempDir();
  });
  afterAll(async () => {
    for (const s of made) {
      s.library.close();
      await s.downloads.stopAll();
    }
    await hub.close();
  });

  it('a token set in the app reaches private repos; the services answer only where it comes from', async () => {
    const services = await servicesWith();
    expect(await services.handlers['hub.status']({})).toMatchObject({ tokenSource: 'none', tokenStorage: 'memory' });
    await expect(services.handlers['download.peek']({ repo: 'alloy-test/private-llama' })).rejects.toThrow(/not found|token/i);
    const status = await services.handlers['hub.setToken']({ token: TOKEN });
    expect(status).toMatchObject({ tokenSource: 'settings', tokenStorage: 'memory' });
    expect(JSON.stringify(status)).not.toContain(TOKEN);
    hub.requests.length = 0;
    const peek = await services.handlers['download.peek']({ repo: 'alloy-test/private-llama' });
    expect(peek.architecture).toBe('LlamaForCausalLM');
    expect(hub.requests.some((r) => r.authorized)).toBe(true);
    expect(await services.handlers['hub.clearToken']({})).toMatchObject({ tokenSource: 'none' });
    await expect(services.handlers['download.peek']({ repo: 'alloy-test/private-llama' })).rejects.toThrow();
  });

  it('an encrypted token outlives the services (the app restarted) and is nowhere on disk in plain text', async () => {
    const keychain = testKeychain();
    const file = join(home, 'config', 'hub-token.enc');
    const first = await servicesWith(await createHubTokenStore({ file, cipher: keychain }));
    expect(await first.handlers['hub.setToken']({ token: TOKEN })).toMatchObject({ tokenSource: 'settings', tokenStorage: 'encrypted' });
    const second = await servicesWith(await createHubTokenStore({ file, cipher: keychain }));
    expect(await second.handlers['hub.status']({})).toMatchObject({ tokenSource: 'settings', tokenStorage: 'encrypted' });
    expect((await second.handlers['download.peek']({ repo: 'alloy-test/private-llama' })).layers).toBe(2);
    for (const name of readdirSync(join(home, 'config'))) {
      expect((await readFile(join(home, 'config', name))).includes(Buffer.from(TOKEN)), name).toBe(false);
    }
    await second.handlers['hub.clearToken']({});
    expect(existsSync(file)).toBe(false);
  });

  it('library.delete with dryRun says what a delete would remove and free, and removes nothing', async () => {
    const services = await servicesWith();
    await services.handlers['download.start']({ repo: TINY_LLAMA, revision: commits.llamaFirst });
    await services.handlers['download.start']({ repo: TINY_LLAMA });
    await services.downloads.idle();
    const main = (await services.handlers['library.list']({})).find((m) => m.repoId === TINY_LLAMA && m.revision === commits.llamaMain)!;
    const storage = join(home, 'hf', 'hub', 'models--alloy-test--tiny-llama');
    const filesBefore = readdirSync(storage, { recursive: true }).sort();
    const preview = await services.handlers['library.delete']({ id: main.id, dryRun: true });
    expect(readdirSync(storage, { recursive: true }).sort()).toEqual(filesBefore);
    // Only config.json differs between the two revisions: its blob, the ref and the snapshot go.
    const config = await readFile(join(main.path, 'config.json'));
    expect(preview.freedBytes).toBe(config.length);
    expect(preview.deleted).toEqual(expect.arrayContaining([main.path, join(storage, 'refs', 'main')]));
    expect(preview.deleted).toHaveLength(3);
    const done = await services.handlers['library.delete']({ id: main.id });
    expect(done).toEqual(preview);
    expect(existsSync(main.path)).toBe(false);
    // The last revision takes the whole repo folder: every blob is freed.
    const first = (await services.handlers['library.list']({})).find((m) => m.repoId === TINY_LLAMA)!;
    const last = await services.handlers['library.delete']({ id: first.id, dryRun: true });
    expect(last).toEqual({ deleted: [storage], freedBytes: first.bytes });
    expect(existsSync(storage)).toBe(true);
  });
});
