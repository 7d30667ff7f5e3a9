import { existsSync, watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import type { ModelSummary } from '../../../shared/contract';
import type { LibraryDeleteResult } from '../../../shared/library-contract';
import { mapLimit } from '../map-limit';
import { deleteCachedRevision } from './delete-cached-revision';
import { uniqueBytes } from './disk-usage';
import { scanHubCache, type CachedRepo, type CachedRevision } from './scan-hub-cache';
import { isAdapterFolder, summarizeAdapter } from './summarize-adapter';
import { summarizeModel, type ModelFacts } from './summarize-model';

/** Models summarised at once. */
const PARALLEL_READS = 16;

export interface LibraryFolder {
  path: string;
  source: 'demo' | 'folder';
  /** Added by the user (listed by `userFolders`, removable), not one of the app's own. */
  user?: boolean;
}

export interface LibraryOptions {
  /** Folders holding model folders (demo models, merge outputs, folders the user added). */
  folders: LibraryFolder[];
  /** Hub cache folders (`hubCacheDirs()`). */
  hubCaches: string[];
  /** Called (debounced) when files under a watched folder change. */
  onChange?: () => void;
}

/**
 * Every model on disk: model folders under the library's folders, and every revision in the hub
 * caches; LoRA adapter folders among them are listed as adapters (`ModelSummary.adapter`). Summaries come from config.json and safetensors headers and are kept until a folder's
 * files change, so listing hundreds of models reads only what changed.
 */
export class LibraryService {
  private folders: LibraryFolder[];
  private readonly summaries = new Map<string, { signature: string; facts: ModelFacts }>();
  private watchers: FSWatcher[] = [];
  private watching = false;
  private debounce: NodeJS.Timeout | undefined;

  constructor(private readonly options: LibraryOptions) {
    this.folders = options.folders.map((f) => ({ ...f, path: resolve(f.path) }));
  }

  async list(): Promise<ModelSummary[]> {
    const models: ModelSummary[] = [];
    for (const folder of this.folders) models.push(...(await this.listFolder(folder)));
    for (const cache of this.options.hubCaches) {
      const revisions = (await scanHubCache(cache)).flatMap((repo) => repo.revisions.map((revision) => ({ repo, revision })));
      // Many small reads (links, headers): several in flight keep the disk and the thread pool busy.
      const described = await mapLimit(revisions, PARALLEL_READS, ({ repo, revision }) => this.describeRevision(repo, revision));
      models.push(...described.filter((m): m is ModelSummary => m !== undefined));
    }
    return models;
  }

  userFolders(): string[] {
    return this.folders.filter((f) => f.user).map((f) => f.path);
  }

  addFolder(path: string): string[] {
    const absolute = resolve(path);
    if (!this.folders.some((f) => f.path === absolute)) this.folders.push({ path: absolute, source: 'folder', user: true });
    this.rewatch();
    return this.userFolders();
  }

  removeFolder(path: string): string[] {
    const absolute = resolve(path);
    this.folders = this.folders.filter((f) => !f.user || f.path !== absolute);
    this.rewatch();
    return this.userFolders();
  }

  /** Deletes a hub cache revision (`hf cache delete`); other folders are the user's to remove. `dryRun`: only says what it would remove. */
  async delete(id: string, options: { dryRun?: boolean } = {}): Promise<LibraryDeleteResult> {
    const cache = this.options.hubCaches.find((c) => id.startsWith(join(c, 'models--')));
    if (!cache) throw new Error(`${id}: Alloy deletes only models in the Hugging Face cache; remove other folders yourself.`);
    const result = await deleteCachedRevision(cache, id, options);
    if (!options.dryRun) this.summaries.delete(id);
    return result;
  }

  /**
   * Watches the folders and caches; `onChange` fires half a second after the last change. A folder
   * that does not exist yet (a hub cache before the first download) is watched for from its nearest
   * existing parent, and watched itself once it appears.
   */
  watch(): void {
    this.watching = true;
    this.rewatch();
  }

  close(): void {
    this.watching = false;
    this.closeWatchers();
    clearTimeout(this.debounce);
  }

  private closeWatchers(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  private rewatch(): void {
    if (!this.watching) return;
    this.closeWatchers();
    for (const dir of new Set([...this.folders.map((f) => f.path), ...this.options.hubCaches])) this.watchRoot(dir);
  }

  private watchRoot(dir: string): void {
    try {
      const watcher = watch(dir, { recursive: true }, () => this.changed());
      watcher.unref();
      watcher.on('error', () => watcher.close());
      this.watchers.push(watcher);
    } catch {
      this.watchUntilCreated(dir);
    }
  }

  /** Watches the nearest existing parent of `dir` until the next folder down to it appears. */
  private watchUntilCreated(dir: string): void {
    let parent = dirname(dir);
    while (!existsSync(parent) && dirname(parent) !== parent) parent = dirname(parent);
    const next = join(parent, relative(parent, dir).split(sep)[0]!);
    try {
      const watcher = watch(parent, () => {
        if (!existsSync(next) || !this.watchers.includes(watcher)) return;
        watcher.close();
        this.watchers = this.watchers.filter((w) => w !== watcher);
        if (existsSync(dir)) {
          this.watchRoot(dir);
          this.changed();
        } else this.watchUntilCreated(dir);
      });
      watcher.unref();
      watcher.on('error', () => watcher.close());
      this.watchers.push(watcher);
      // It may have appeared between the check and the watch.
      if (existsSync(next)) watcher.emit('change', 'rename', basename(next));
    } catch {
      // Nothing above it can be watched either.
    }
  }

  private changed(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.options.onChange?.(), 500);
  }

  /** The model folders in `folder`; `folder` itself when it is one (a model folder added by mistake for its parent). */
  private async listFolder(folder: LibraryFolder): Promise<ModelSummary[]> {
    const itself = folder.user ? await this.describeFolder(folder.path, folder) : undefined;
    if (itself) return [itself];
    const names = (await readdir(folder.path).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
    const models = await mapLimit(names, PARALLEL_READS, (name) => this.describeFolder(join(folder.path, name), folder));
    return models.filter((m): m is ModelSummary => m !== undefined);
  }

  private async describeFolder(dir: string, folder: LibraryFolder): Promise<ModelSummary | undefined> {
    const facts = await this.facts(dir);
    if (!facts) return undefined;
    const bytes = await uniqueBytes([dir]);
    return { id: dir, name: basename(dir), path: dir, source: folder.source, reference: dir, ...facts, bytes, incomplete: { files: 0, bytes: 0 } };
  }

  private async describeRevision(repo: CachedRepo, revision: CachedRevision): Promise<ModelSummary | undefined> {
    const facts = await this.facts(revision.snapshotPath);
    if (!facts) return undefined;
    return {
      id: revision.snapshotPath,
      name: repo.repoId,
      path: revision.snapshotPath,
      source: 'hf-cache',
      reference: revision.refs.includes('main') ? repo.repoId : `${repo.repoId}@${revision.commit}`,
      repoId: repo.repoId,
      revision: revision.commit,
      refs: revision.refs,
      ...facts,
      bytes: await uniqueBytes([revision.snapshotPath]),
      incomplete: repo.incomplete,
    };
  }

  /** The folder's summary, from the memo while its files' names, sizes and times are unchanged. */
  private async facts(dir: string): Promise<ModelFacts | undefined> {
    const signature = await folderSignature(dir);
    if (signature === undefined) return undefined;
    const known = this.summaries.get(dir);
    if (known?.signature === signature.text) return known.facts;
    const facts = await (signature.adapter ? summarizeAdapter : summarizeModel)(dir).catch(() => undefined);
    if (facts) this.summaries.set(dir, { signature: signature.text, facts });
    return facts;
  }
}

/**
 * Names, sizes and modification times of a model folder's files, and whether it is a LoRA adapter;
 * undefined without config.json or adapter_config.json.
 */
async function folderSignature(dir: string): Promise<{ text: string; adapter: boolean } | undefined> {
  const names = await readdir(dir).catch(() => undefined);
  if (!names) return undefined;
  const adapter = isAdapterFolder(names);
  if (!adapter && !names.includes('config.json')) return undefined;
  const parts: string[] = [];
  for (const name of names.sort()) {
    const info = await stat(join(dir, name)).catch(() => undefined);
    parts.push(`${name}:${info?.size ?? -1}:${info?.mtimeMs ?? -1}`);
  }
  return { text: parts.join('|'), adapter };
}
