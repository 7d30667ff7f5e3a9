import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

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
  await mkdir(dirname(file), { recursive: true });
  await writeFile(`${file}.partial`, JSON.stringify({ folders }, null, 2));
  await rename(`${file}.partial`, file);
}
