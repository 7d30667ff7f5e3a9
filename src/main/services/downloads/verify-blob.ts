import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { RemoteFile } from './list-remote-files';

/**
 * The hash a file's bytes must have: the LFS object's sha256, or for a file stored in git itself,
 * git's blob id (sha1 of "blob <size>\0" and the bytes).
 */
export function startBlobHash(file: RemoteFile): { hash: Hash; expected: string; algorithm: 'sha256' | 'git-sha1' } {
  if (file.lfs) return { hash: createHash('sha256'), expected: file.lfs.sha256, algorithm: 'sha256' };
  const hash = createHash('sha1').update(`blob ${file.size}\0`);
  return { hash, expected: file.oid, algorithm: 'git-sha1' };
}

/** Feeds the bytes already in a partial file into `hash`, so a resumed download is checked whole. */
export async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}
