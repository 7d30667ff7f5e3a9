import { hubFetch } from './hub-fetch';
import type { HubOptions } from './hub-options';

export interface RemoteFile {
  path: string;
  size: number;
  /** git's blob id: the blob's name in the cache for files not in LFS. */
  oid: string;
  /** The LFS object: its sha256 names the blob and verifies the bytes. */
  lfs?: { sha256: string; size: number };
}

export interface RemoteRevision {
  repo: string;
  /** The commit `revision` points at now. */
  commit: string;
  gated: false | 'auto' | 'manual';
  files: RemoteFile[];
}

/** The commit a revision (branch, tag or commit) points at, and every file in it, through @huggingface/hub. */
export async function listRemoteFiles(params: { hub: HubOptions; repo: string; revision?: string }): Promise<RemoteRevision> {
  // Loaded when first needed: the engine's process (the same program) must not pay its ~70 MB at start.
  const { listFiles, modelInfo } = await import('@huggingface/hub');
  const fetch = hubFetch(params.hub);
  const info = await modelInfo({ name: params.repo, revision: params.revision ?? 'main', hubUrl: params.hub.hubUrl, fetch, additionalFields: ['sha'] });
  const commit = String((info as { sha?: string }).sha ?? '');
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`the Hub gave no commit for ${params.repo}@${params.revision ?? 'main'}`);
  const files: RemoteFile[] = [];
  for await (const entry of listFiles({ repo: params.repo, revision: commit, recursive: true, hubUrl: params.hub.hubUrl, fetch })) {
    if (entry.type !== 'file') continue;
    files.push({
      path: entry.path,
      size: entry.size,
      oid: entry.oid ?? '',
      ...(entry.lfs ? { lfs: { sha256: entry.lfs.oid, size: entry.lfs.size } } : {}),
    });
  }
  return { repo: params.repo, commit, gated: (info.gated ?? false) as RemoteRevision['gated'], files };
}
