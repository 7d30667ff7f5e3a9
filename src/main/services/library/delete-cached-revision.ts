import { readdir, realpath, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { LibraryDeleteResult } from '../../../shared/library-contract';
import { uniqueBytes } from './disk-usage';
import { scanHubCache } from './scan-hub-cache';

/**
 * Deletes one revision the way `hf cache delete` does: its snapshot folder, the refs pointing at
 * it, and the blobs no other revision of the repo links to. Deleting a repo's last revision deletes
 * the whole repo folder. With `dryRun` nothing is removed: the result says what would be, and the
 * bytes that would be freed.
 */
export async function deleteCachedRevision(cacheDir: string, snapshotPath: string, options: { dryRun?: boolean } = {}): Promise<LibraryDeleteResult> {
  const dryRun = options.dryRun ?? false;
  const repo = (await scanHubCache(cacheDir)).find((r) => r.revisions.some((v) => v.snapshotPath === snapshotPath));
  const revision = repo?.revisions.find((v) => v.snapshotPath === snapshotPath);
  if (!repo || !revision) throw new Error(`${snapshotPath} is not a revision in the hub cache ${cacheDir}`);
  if (repo.revisions.length === 1) {
    const freedBytes = await uniqueBytes([join(repo.storage, 'blobs')]);
    if (!dryRun) await rm(repo.storage, { recursive: true, force: true });
    return { deleted: [repo.storage], freedBytes };
  }
  const kept = new Set<string>();
  for (const other of repo.revisions) if (other !== revision) for (const blob of await linkedBlobs(other.snapshotPath)) kept.add(blob);
  const deleted: string[] = [];
  let freedBytes = 0;
  for (const blob of await linkedBlobs(revision.snapshotPath)) {
    if (kept.has(blob)) continue;
    freedBytes += (await stat(blob).catch(() => undefined))?.size ?? 0;
    if (!dryRun) await unlink(blob).catch(() => undefined);
    deleted.push(blob);
  }
  for (const ref of revision.refs) {
    const path = join(repo.storage, 'refs', ...ref.split('/'));
    if (!dryRun) await unlink(path);
    deleted.push(path);
  }
  if (!dryRun) await rm(revision.snapshotPath, { recursive: true, force: true });
  deleted.push(revision.snapshotPath);
  return { deleted, freedBytes };
}

/** The blob files a snapshot's links point at (real paths). */
async function linkedBlobs(dir: string): Promise<Set<string>> {
  const blobs = new Set<string>();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isSymbolicLink() && !entry.isFile()) continue;
    const target = await realpath(join(entry.parentPath, entry.name)).catch(() => undefined);
    if (target) blobs.add(target);
  }
  return blobs;
}
