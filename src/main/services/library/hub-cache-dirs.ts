import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Every hub cache folder the environment names: `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`,
 * `$HF_HOME/hub`, and the default (`$XDG_CACHE_HOME/huggingface/hub`, `~/.cache/huggingface/hub`).
 * huggingface_hub writes to the first; the library shows models from all of them.
 */
export function hubCacheDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = [
    env['HF_HUB_CACHE'],
    env['HUGGINGFACE_HUB_CACHE'],
    env['HF_HOME'] ? join(env['HF_HOME'], 'hub') : undefined,
    join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'huggingface', 'hub'),
  ];
  return [...new Set(dirs.filter((d): d is string => !!d))];
}
