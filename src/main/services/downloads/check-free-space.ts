import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatBytes } from '../../../shared/format';
import { HubError } from './hub-error';

/** Bytes free to this user on the disk holding `path` (or its nearest existing parent). */
export async function freeBytes(path: string): Promise<number> {
  for (let dir = path; ; dir = dirname(dir)) {
    const stats = await statfs(dir).catch(() => undefined);
    if (stats) return stats.bavail * stats.bsize;
    if (dirname(dir) === dir) return Infinity;
  }
}

/** Throws a `no-space` HubError when `needed` bytes do not fit on the disk holding `path`. */
export async function ensureFreeSpace(path: string, needed: number, free?: number): Promise<void> {
  const available = free ?? (await freeBytes(path));
  if (needed <= available) return;
  throw new HubError(
    'no-space',
    `Not enough disk space in ${path}: the download needs ${formatBytes(needed)} more, and ${formatBytes(available)} is free. Free some space (or delete models from the library), then resume.`,
  );
}
