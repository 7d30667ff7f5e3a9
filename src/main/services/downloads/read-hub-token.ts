import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type TokenSource = 'env' | 'file' | 'settings' | 'none';

export interface HubToken {
  token?: string;
  source: TokenSource;
  /** The token file looked at, for messages ("log in with `hf auth login`, which writes …"). */
  tokenFile: string;
}

/** The token file Python's huggingface_hub writes: `HF_TOKEN_PATH`, else `$HF_HOME/token`. */
export function hubTokenFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env['HF_TOKEN_PATH']) return env['HF_TOKEN_PATH'];
  const home = env['HF_HOME'] || join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'huggingface');
  return join(home, 'token');
}

/** The token huggingface_hub would use: `HF_TOKEN` (or the older `HUGGING_FACE_HUB_TOKEN`), then the token file. */
export async function readHubToken(env: NodeJS.ProcessEnv = process.env): Promise<HubToken> {
  const tokenFile = hubTokenFile(env);
  const fromEnv = (env['HF_TOKEN'] || env['HUGGING_FACE_HUB_TOKEN'] || '').trim();
  if (fromEnv) return { token: fromEnv, source: 'env', tokenFile };
  const fromFile = (await readFile(tokenFile, 'utf8').catch(() => '')).trim();
  if (fromFile) return { token: fromFile, source: 'file', tokenFile };
  return { source: 'none', tokenFile };
}
