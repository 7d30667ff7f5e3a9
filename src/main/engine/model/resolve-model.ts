import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { EngineError } from '../errors';
import { checkLoraAdapter, loraMergeTarget, mergeLora } from '../lora/merge-lora';
import type { ModelReference } from '../recipe/types';

export interface ModelSearch {
  /** Folder of the recipe file: relative references resolve here first. */
  recipeDir?: string;
  /** Extra folders that hold models by name (the app's library folders, the demo folder). */
  modelRoots?: string[];
  /** Earlier stages' outputs by name, for multi-stage recipes. */
  stageOutputs?: ReadonlyMap<string, string>;
  /** Where base+LoRA references are merged (mergekit's --lora-merge-cache). */
  loraMergeCache?: string;
  env?: NodeJS.ProcessEnv;
}

/** The Hugging Face hub cache folder, as huggingface_hub finds it. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['HF_HUB_CACHE']) return env['HF_HUB_CACHE'];
  if (env['HUGGINGFACE_HUB_CACHE']) return env['HUGGINGFACE_HUB_CACHE'];
  const home = env['HF_HOME'] ?? join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'huggingface');
  return join(home, 'hub');
}

async function isModelDir(dir: string, marker = 'config.json'): Promise<boolean> {
  return (await stat(join(dir, marker)).catch(() => undefined))?.isFile() ?? false;
}

/** A snapshot folder of `org/name` in the hub cache, at `revision` (a branch, tag or commit). */
export async function hubSnapshotDir(repoId: string, revision: string | undefined, env?: NodeJS.ProcessEnv, marker = 'config.json'): Promise<string | undefined> {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repoId)) return undefined;
  const repoDir = join(hubCacheDir(env), `models--${repoId.replace('/', '--')}`);
  const rev = revision ?? 'main';
  let commit = rev;
  if (!/^[0-9a-f]{40}$/.test(rev)) {
    commit = (await readFile(join(repoDir, 'refs', rev), 'utf8').catch(() => '')).trim();
    if (!commit) return undefined;
  }
  const dir = join(repoDir, 'snapshots', commit);
  return (await isModelDir(dir, marker)) ? dir : undefined;
}

/**
 * Finds the folder a recipe's model reference names, or fails listing where it looked. A `base+lora`
 * reference resolves to the base with the adapter merged in (made once, kept in the LoRA merge cache).
 */
export async function resolveModelPath(ref: ModelReference, search: ModelSearch = {}): Promise<string> {
  const stage = search.stageOutputs?.get(ref.path);
  const model = stage ?? (await findFolder(ref.raw, ref.path, ref.revision, search, 'config.json'));
  if (!ref.lora) return model;
  const adapter = await findFolder(ref.raw, ref.lora.path, ref.lora.revision, search, 'adapter_config.json');
  return mergeLora({ model, adapter, cacheDir: search.loraMergeCache ?? defaultLoraCache(search.env), reference: ref.raw });
}

/** What `previewModelPath` found: the folder to plan against, and for a base+LoRA reference not yet merged, what merging it will take. */
export interface PreviewedModel {
  path: string;
  pendingLora?: { cacheDir: string; bytes: number };
}

/**
 * As `resolveModelPath`, but builds nothing: a base+LoRA reference whose merged model is not in the
 * LoRA merge cache yet resolves to its base, once the adapter is checked against it (the merged model
 * has the base's tensors, shapes and dtypes). For plans, which read headers only.
 */
export async function previewModelPath(ref: ModelReference, search: ModelSearch = {}): Promise<PreviewedModel> {
  const stage = search.stageOutputs?.get(ref.path);
  const model = stage ?? (await findFolder(ref.raw, ref.path, ref.revision, search, 'config.json'));
  if (!ref.lora) return { path: model };
  const adapter = await findFolder(ref.raw, ref.lora.path, ref.lora.revision, search, 'adapter_config.json');
  const params = { model, adapter, cacheDir: search.loraMergeCache ?? defaultLoraCache(search.env), reference: ref.raw };
  const target = await loraMergeTarget(params);
  if (await isModelDir(target)) return { path: target };
  return { path: model, pendingLora: { cacheDir: params.cacheDir, bytes: await checkLoraAdapter(params) } };
}

async function findFolder(raw: string, path: string, revision: string | undefined, search: ModelSearch, marker: string): Promise<string> {
  const tried: string[] = [];
  const candidates: string[] = [];
  if (isAbsolute(path)) candidates.push(path);
  else {
    if (search.recipeDir) candidates.push(resolve(search.recipeDir, path));
    candidates.push(resolve(path));
    for (const root of search.modelRoots ?? []) {
      candidates.push(join(root, path));
      const last = path.split('/').pop();
      if (last) candidates.push(join(root, last));
    }
  }
  for (const dir of candidates) {
    tried.push(dir);
    if (await isModelDir(dir, marker)) return dir;
  }
  const snapshot = await hubSnapshotDir(path, revision, search.env, marker);
  if (snapshot) return snapshot;
  tried.push(`${hubCacheDir(search.env)} (Hugging Face cache)`);
  const what = marker === 'config.json' ? 'model' : 'LoRA adapter';
  const named = raw === path ? `"${path}"` : `"${path}" (in "${raw}")`;
  throw new EngineError(`${what} ${named} not found; looked for ${marker} in:\n  ${[...new Set(tried)].join('\n  ')}`, { key: 'model' });
}

/** Where merged base+LoRA models are kept between runs: $XDG_CACHE_HOME/alloy/lora-merges. */
function defaultLoraCache(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'alloy', 'lora-merges');
}
