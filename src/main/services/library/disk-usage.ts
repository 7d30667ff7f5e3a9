import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Bytes on disk of every file under `dirs` (links followed), each underlying file counted once. Each
 * folder is walked once too (by device and inode), so a link to the folder itself or to a parent
 * (`ln -s . loop`) ends the walk instead of looping for ever.
 */
export async function uniqueBytes(dirs: string[], seen = new Set<string>()): Promise<number> {
  const walked = new Set<string>();
  let bytes = 0;
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const path = join(dir, entry.name);
      const info = await stat(path).catch(() => undefined);
      if (!info) continue;
      const key = `${info.dev}:${info.ino}`;
      if (info.isDirectory()) {
        if (walked.has(key)) continue;
        walked.add(key);
        await walk(path);
      } else if (!seen.has(key)) {
        seen.add(key);
        bytes += info.size;
      }
    }
  };
  for (const dir of dirs) {
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory() || walked.has(`${info.dev}:${info.ino}`)) continue;
    walked.add(`${info.dev}:${info.ino}`);
    await walk(dir);
  }
  return bytes;
}
