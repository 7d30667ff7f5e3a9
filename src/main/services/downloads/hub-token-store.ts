import { readFile, unlink } from 'node:fs/promises';
import { writeFileAtomic } from '../write-file-atomic';

/**
 * What encrypts the token at rest: Electron's `safeStorage` (its async calls) in the desktop app.
 * The face passes it in, so the services never import Electron.
 */
export interface TokenCipher {
  /** False where the OS offers no real keychain (on Linux without a secret service Electron falls back to a fixed key). */
  isAvailable(): Promise<boolean>;
  encrypt(plain: string): Promise<Buffer>;
  /** `shouldReEncrypt`: the keychain's key was rotated; the store writes the token again under the new one. */
  decrypt(encrypted: Buffer): Promise<{ result: string; shouldReEncrypt: boolean }>;
}

/** `encrypted`: on disk, encrypted by the OS keychain; `memory`: until the process ends. */
export type TokenStorage = 'encrypted' | 'memory';

/**
 * The Hugging Face token set in the app. Only `get` returns it, for the code that calls the Hub;
 * no channel ever sends it back to a face.
 */
export interface HubTokenStore {
  readonly storage: TokenStorage;
  get(): Promise<string | undefined>;
  set(token: string): Promise<void>;
  clear(): Promise<void>;
}

/** Keeps the token in this process only: the web mode, or a desktop without a keychain. */
export class MemoryTokenStore implements HubTokenStore {
  readonly storage = 'memory';
  private token: string | undefined;

  async get(): Promise<string | undefined> {
    return this.token;
  }

  async set(token: string): Promise<void> {
    this.token = token;
  }

  async clear(): Promise<void> {
    this.token = undefined;
  }
}

/** Keeps the token in one file, encrypted by `cipher` (Electron's safeStorage); the plain text never touches the disk. */
export class EncryptedTokenStore implements HubTokenStore {
  readonly storage = 'encrypted';
  private cached: { token: string | undefined } | undefined;

  constructor(
    private readonly file: string,
    private readonly cipher: TokenCipher,
  ) {}

  async get(): Promise<string | undefined> {
    if (!this.cached) {
      const encrypted = await readFile(this.file).catch(() => undefined);
      let token: string | undefined;
      let reEncrypt = false;
      try {
        if (encrypted?.length) {
          const { result, shouldReEncrypt } = await this.cipher.decrypt(encrypted);
          token = result || undefined;
          reEncrypt = shouldReEncrypt;
        }
      } catch {
        // Encrypted under another keychain (a copied profile, a reset login keyring): as if unset.
        token = undefined;
      }
      this.cached = { token };
      if (token && reEncrypt) await this.set(token);
    }
    return this.cached.token;
  }

  async set(token: string): Promise<void> {
    const encrypted = await this.cipher.encrypt(token);
    await writeFileAtomic(this.file, encrypted, { mode: 0o600 });
    this.cached = { token };
  }

  async clear(): Promise<void> {
    await unlink(this.file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    this.cached = { token: undefined };
  }
}

/** The encrypted store where there is a file and a working cipher, else the memory store. */
export async function createHubTokenStore(params: { file?: string; cipher?: TokenCipher } = {}): Promise<HubTokenStore> {
  const available = params.cipher ? await params.cipher.isAvailable().catch(() => false) : false;
  if (params.file && params.cipher && available) return new EncryptedTokenStore(params.file, params.cipher);
  return new MemoryTokenStore();
}
