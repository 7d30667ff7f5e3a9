import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { repoIdFromFolder } from '../downloads/cache-layout';
import { mapLimit } from '../map-limit';

export interface CachedRevision {
  repoId: string;
  /** The repo's folder, `…/models--org--name`. */
  storage: string;
  commit: string;
  snapshotPath: string;
  /** Branches and tags whose ref file names this commit. */
  refs: string[];
}

export interface CachedRepo {
  repoId: string;
  storage: string;
  revisions: CachedRevision[];
  /** Partial downloads: `blobs/*.incomplete`. */
  incomplete: { files: number; bytes: number };
}

/** Every model repo in a hub cache folder with its snapshots and refs, as `hf cache ls` sees them. */
export async function scanHubCache(cacheDir: string): Promise<CachedRepo[]> {
  const folders = (await readdir(cacheDir).catch(() => [] as string[])).filter((f) => f.startsWith('models--')).sort();
  return mapLimit(folders, 16, async (folder): Promise<CachedRepo> => {
    const repoId = repoIdFromFolder(folder)!;
    const storage = join(cacheDir, folder);
    const refs = await readRefs(join(storage, 'refs'));
    const commits = (await readdir(join(storage, 'snapshots')).catch(() => [] as string[])).sort();
    const revisions = commits.map((commit) => ({
      repoId,
      storage,
      commit,
      snapshotPath: join(storage, 'snapshots', commit),
      refs: [...refs].filter(([, c]) => c === commit).map(([name]) => name).sort(),
    }));
    return { repoId, storage, revisions, incomplete: await incompleteBlobs(join(storage, 'blobs')) };
  });
}

/** refs/<name> files (names may contain "/", as refs/pr/1) → commit. */
async function readRefs(dir: string, prefix = ''): Promise<Map<string, string>> {
  const refs = new Map<string, string>();
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) for (const [name, commit] of await readRefs(path, `${prefix}${entry.name}/`)) refs.set(name, commit);
    else if (entry.isFile()) refs.set(prefix + entry.name, (await readFile(path, 'utf8')).trim());
  }
  return refs;
}

async function incompleteBlobs(dir: string): Promise<{ files: number; bytes: number }> {
  const partials = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.incomplete'));
  let bytes = 0;
  for (const p of partials) bytes += (await stat(join(dir, p)).catch(() => undefined))?.size ?? 0;
  return { files: partials.length, bytes };
}
