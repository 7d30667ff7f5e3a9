import { mkdir, readFile, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';

/**
 * The hub cache layout Python's huggingface_hub writes and reads:
 *   models--org--name/blobs/<etag>                 file contents, named by sha256 (LFS) or git blob id
 *   models--org--name/blobs/<etag>.incomplete      a download in progress
 *   models--org--name/snapshots/<commit>/<path>    relative symlinks to ../../blobs/<etag>
 *   models--org--name/refs/<branch>                the commit the branch pointed at, no newline
 *   .locks/models--org--name/<etag>.lock           flock'ed by whoever writes the blob (Python's filelock, Alloy)
 */
export function repoFolderName(repo: string): string {
  return `models--${repo.split('/').join('--')}`;
}

/** `org/name` from `models--org--name`, or undefined for other folders. */
export function repoIdFromFolder(folder: string): string | undefined {
  const match = /^models--(.+)$/.exec(folder);
  return match ? match[1]!.split('--').join('/') : undefined;
}

export function repoDir(cacheDir: string, repo: string): string {
  return join(cacheDir, repoFolderName(repo));
}

export function blobPath(storage: string, etag: string): string {
  return join(storage, 'blobs', etag);
}

export function snapshotDir(storage: string, commit: string): string {
  return join(storage, 'snapshots', commit);
}

/** The lock huggingface_hub holds while it writes a blob: `<cache>/.locks/models--org--name/<etag>.lock`. */
export function blobLockPath(cacheDir: string, repo: string, etag: string): string {
  return join(cacheDir, '.locks', repoFolderName(repo), `${etag}.lock`);
}

/** The name a file's blob gets: what the Hub sends as X-Linked-Etag / ETag. */
export function blobName(file: { oid: string; lfs?: { sha256: string } }): string {
  return file.lfs?.sha256 ?? file.oid;
}

/** Path segments of a repo file or ref name, refusing any that would leave its folder. */
export function safeSegments(path: string): string[] {
  const segments = path.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\'))) throw new Error(`unsafe path from the Hub: "${path}"`);
  return segments;
}

/** Points `snapshots/<commit>/<path>` at its blob with a relative link, as huggingface_hub does. */
export async function linkSnapshotFile(storage: string, commit: string, path: string, etag: string): Promise<string> {
  const link = join(snapshotDir(storage, safeSegments(commit)[0]!), ...safeSegments(path));
  await mkdir(dirname(link), { recursive: true });
  await unlink(link).catch(() => undefined);
  await symlink(relative(dirname(link), blobPath(storage, etag)), link);
  return link;
}

/** Records that `revision` (a branch or tag) points at `commit`; nothing for a commit itself. */
export async function writeRef(storage: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const ref = join(storage, 'refs', ...safeSegments(revision));
  if ((await readFile(ref, 'utf8').catch(() => '')) === commit) return;
  await mkdir(dirname(ref), { recursive: true });
  await writeFile(`${ref}.tmp`, commit);
  await rename(`${ref}.tmp`, ref);
}
