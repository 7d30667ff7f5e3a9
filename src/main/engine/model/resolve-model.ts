import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { EngineError } from '../errors';
import type { ModelReference } from '../recipe/types';

export interface ModelSearch {
  /** Folder of the recipe file: relative references resolve here first. */
  recipeDir?: string;
  /** Extra folders that hold models by name (the app's library folders, the demo folder). */
  modelRoots?: string[];
  /** Earlier stages' outputs by name, for multi-stage recipes. */
  stageOutputs?: ReadonlyMap<string, string>;
  env?: NodeJS.ProcessEnv;
}

/** The Hugging Face hub cache folder, as huggingface_hub finds it. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['HF_HUB_CACHE']) return env['HF_HUB_CACHE'];
  if (env['HUGGINGFACE_HUB_CACHE']) return env['HUGGINGFACE_HUB_CACHE'];
  const home = env['HF_HOME'] ?? join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'huggingface');
  return join(home, 'hub');
}

async function isModelDir(dir: string): Promise<boolean> {
  return (await stat(join(dir, 'config.json')).catch(() => undefined))?.isFile() ?? false;
}

/** A snapshot folder of `org/name` in the hub cache, at `revision` (a branch, tag or commit). */
export async function hubSnapshotDir(repoId: string, revision: string | undefined, env?: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repoId)) return undefined;
  const repoDir = join(hubCacheDir(env), `models--${repoId.replace('/', '--')}`);
  const rev = revision ?? 'main';
  let commit = rev;
  if (!/^[0-9a-f]{40}$/.test(rev)) {
    commit = (await readFile(join(repoDir, 'refs', rev), 'utf8').catch(() => '')).trim();
    if (!commit) return undefined;
  }
  const dir = join(repoDir, 'snapshots', commit);
  return (await isModelDir(dir)) ? dir : undefined;
}

/** Finds the folder a recipe's model reference names, or fails listing where it looked. */
export async function resolveModelPath(ref: ModelReference, search: ModelSearch = {}): Promise<string> {
  if (ref.lora) {
    throw new EngineError(`${ref.raw}: LoRA references (base+adapter) are not supported yet`, { key: 'model' });
  }
  const stage = search.stageOutputs?.get(ref.path);
  if (stage) return stage;
  const tried: string[] = [];
  const candidates: string[] = [];
  if (isAbsolute(ref.path)) candidates.push(ref.path);
  else {
    if (search.recipeDir) candidates.push(resolve(search.recipeDir, ref.path));
    candidates.push(resolve(ref.path));
    for (const root of search.modelRoots ?? []) {
      candidates.push(join(root, ref.path));
      const last = ref.path.split('/').pop();
      if (last) candidates.push(join(root, last));
    }
  }
  for (const dir of candidates) {
    tried.push(dir);
    if (await isModelDir(dir)) return dir;
  }
  const snapshot = await hubSnapshotDir(ref.path, ref.revision, search.env);
  if (snapshot) return snapshot;
  tried.push(`${hubCacheDir(search.env)} (Hugging Face cache)`);
  throw new EngineError(`model "${ref.raw}" not found; looked in:\n  ${[...new Set(tried)].join('\n  ')}`, { key: 'model' });
}
