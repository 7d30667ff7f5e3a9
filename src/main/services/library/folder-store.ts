import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../write-file-atomic';

/** The folders the user added to the library, kept in a small JSON file between runs. */
export async function loadLibraryFolders(file: string | undefined): Promise<string[]> {
  if (!file) return [];
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as { folders?: unknown };
    return Array.isArray(parsed.folders) ? parsed.folders.filter((f): f is string => typeof f === 'string') : [];
  } catch {
    return [];
  }
}

export async function saveLibraryFolders(file: string | undefined, folders: string[]): Promise<void> {
  if (!file) return;
  // One write at a time, in the order asked: the file ends with the last list.
  await writeFileAtomic(file, JSON.stringify({ folders }, null, 2));
}
