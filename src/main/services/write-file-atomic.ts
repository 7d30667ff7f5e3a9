import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The last write asked for each file; the next one starts after it. */
const queues = new Map<string, Promise<void>>();

/**
 * Writes `data` beside `file` and renames it into place: a reader sees the old file or the new one,
 * never half. Writes to one file run one at a time in the order asked, so the last one asked is the
 * one left; each goes through its own temporary name, so no write renames another's file away
 * (several at once under one fixed `.partial` name failed with ENOENT). `mode`: the file's
 * permissions (0o600 for a secret), set before it is renamed into place.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<void> {
  const previous = queues.get(file) ?? Promise.resolve();
  const write = previous.then(() => writeNow(file, data, options.mode));
  const queued = write.catch(() => undefined);
  queues.set(file, queued);
  void queued.then(() => {
    if (queues.get(file) === queued) queues.delete(file);
  });
  return write;
}

async function writeNow(file: string, data: string | Uint8Array, mode: number | undefined): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}-${randomBytes(6).toString('hex')}.partial`;
  try {
    await writeFile(temporary, data, mode === undefined ? {} : { mode });
    if (mode !== undefined) await chmod(temporary, mode);
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
