import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { blobName, blobPath } from './cache-layout';
import { HubError } from './hub-error';
import { networkError } from './hub-fetch';
import type { HubOptions } from './hub-options';
import type { RemoteFile } from './list-remote-files';
import { fetchResolvedFile, resolveUrl } from './resolve-file';
import { hashFile, startBlobHash } from './verify-blob';

export interface BlobDownload {
  hub: HubOptions;
  repo: string;
  commit: string;
  file: RemoteFile;
  /** The repo's folder in the cache (`models--org--name`). */
  storage: string;
  signal?: AbortSignal;
  /** Bytes added to the blob: those already in a partial file first, then each chunk received. */
  onBytes?: (bytes: number) => void;
}

/**
 * Downloads one file into `blobs/<etag>`: appends to `<etag>.incomplete` from where a previous
 * attempt stopped (HTTP Range), checks the whole file's hash against the LFS oid (or git blob id),
 * and only then renames it into place. A wrong file is deleted, never committed.
 */
export async function downloadBlob(params: BlobDownload): Promise<string> {
  const { file, onBytes } = params;
  const blob = blobPath(params.storage, blobName(file));
  if (await stat(blob).catch(() => undefined)) {
    onBytes?.(file.size);
    return blob;
  }
  const partial = `${blob}.incomplete`;
  await mkdir(dirname(blob), { recursive: true });
  let start = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (start > file.size) await unlink(partial);
  if (start > file.size) start = 0;
  const check = startBlobHash(file);
  if (start > 0) await hashFile(partial, check.hash);
  onBytes?.(start);
  if (start < file.size) await appendRemoteBytes(params, partial, start, check.hash);
  else if (file.size === 0) await writeFile(partial, '');
  const size = (await stat(partial)).size;
  if (size !== file.size) {
    throw new HubError('network', `${file.path}: the transfer ended at byte ${size} of ${file.size}; the partial file is kept and resumes from there.`);
  }
  const digest = check.hash.digest('hex');
  if (digest !== check.expected) {
    await unlink(partial);
    throw new HubError(
      'checksum',
      `${params.repo}/${file.path}: the downloaded bytes do not match the Hub's ${check.algorithm} (${check.expected.slice(0, 12)}…, got ${digest.slice(0, 12)}…); the file was discarded.`,
    );
  }
  await syncFile(partial);
  await rename(partial, blob);
  return blob;
}

async function appendRemoteBytes(params: BlobDownload, partial: string, start: number, hash: ReturnType<typeof startBlobHash>['hash']): Promise<void> {
  const { file, signal } = params;
  const response = await fetchResolvedFile({ hub: params.hub, repo: params.repo, revision: params.commit, path: file.path, start, ...(signal ? { signal } : {}) });
  if (!response.body) throw new HubError('server', `${file.path}: the Hub sent no content`);
  const resumed = response.status === 206;
  if (start > 0 && !resumed) {
    // The server ignored the Range: start over, and forget the bytes hashed so far.
    await writeFile(partial, '');
    throw new HubError('network', `${file.path}: the server cannot resume; starting the file again.`);
  }
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      params.onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(response.body as WebReadableStream), count, createWriteStream(partial, { flags: start > 0 ? 'a' : 'w' }), {
      ...(signal ? { signal } : {}),
    });
  } catch (error) {
    throw networkError(error, new URL(resolveUrl(params.hub.hubUrl, params.repo, params.commit, file.path)), signal);
  }
}

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
