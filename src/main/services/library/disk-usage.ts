import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Bytes on disk of every file under `dirs` (links followed), each underlying file counted once. */
export async function uniqueBytes(dirs: string[], seen = new Set<string>()): Promise<number> {
  let bytes = 0;
  for (const dir of dirs) {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(dir, entry.name);
      const info = await stat(path).catch(() => undefined);
      if (!info) continue;
      if (info.isDirectory()) bytes += await uniqueBytes([path], seen);
      else if (!seen.has(`${info.dev}:${info.ino}`)) {
        seen.add(`${info.dev}:${info.ino}`);
        bytes += info.size;
      }
    }
  }
  return bytes;
}
