import * as v from 'valibot';

/**
 * The library's and the downloads' channels: their own block of the contract, spread into
 * `requestSchemas`, `ResponseTypes` and `EventTypes` in `contract.ts`.
 *
 *   library.list        {}                                   → ModelSummary[] (contract.ts)
 *   library.delete      { id, dryRun? }                      → LibraryDeleteResult (dryRun: what it would remove and free)
 *   library.folders     {}                                   → string[]
 *   library.addFolder   { path }                             → string[] (the folders now)
 *   library.removeFolder { path }                            → string[]
 *   library.openFolder  { id }                               → { opened, path, message? } (a listed model's folder in the file manager)
 *   hub.status          {}                                   → HubStatus
 *   hub.setToken        { token }                            → HubStatus (the token is kept by the services, never sent back)
 *   hub.clearToken      {}                                   → HubStatus
 *   download.peek       { repo, revision? }                  → RemoteModelSummary
 *   download.start      { repo, revision?, files? }          → DownloadInfo
 *   download.pause / download.resume / download.cancel { id } → DownloadInfo
 *   download.list       {}                                   → DownloadInfo[]
 *   download.clear      {}                                   → DownloadInfo[] (those left: finished ones are forgotten, for every window)
 *   events: download.progress (DownloadInfo, at most ~5 per second per download, and on every
 *   state change), library.changed ({ reason }) when models appear, change or go.
 */

export type DownloadState = 'queued' | 'running' | 'paused' | 'done' | 'failed' | 'cancelled';

export type DownloadErrorKind =
  | 'unauthorized'
  | 'gated'
  | 'forbidden'
  | 'not-found'
  | 'rate-limited'
  | 'network'
  | 'server'
  | 'checksum'
  | 'no-space'
  | 'aborted';

export interface DownloadFileInfo {
  path: string;
  size: number;
  /** Bytes in the blob or its partial file so far. */
  downloaded: number;
  state: 'pending' | 'downloading' | 'done' | 'failed';
}

export interface DownloadInfo {
  id: string;
  repo: string;
  /** As asked: a branch, tag or commit ("main" by default). */
  revision: string;
  /** The commit the revision resolved to, once known. */
  commit?: string;
  state: DownloadState;
  files: DownloadFileInfo[];
  totalBytes: number;
  downloadedBytes: number;
  /** Over the last few seconds; 0 when idle. */
  bytesPerSecond: number;
  /** Seconds left at the current rate; absent when unknown. */
  etaSeconds?: number;
  createdAt: number;
  finishedAt?: number;
  /** The snapshot folder (`…/models--org--name/snapshots/<commit>`), once the commit is known. */
  snapshotPath?: string;
  /** Why it failed, in words a user can act on (never contains a token). */
  error?: { kind: DownloadErrorKind; message: string };
  /**
   * What a running download is waiting for, when it waits: the Hub's rate limit (429, until its
   * Retry-After), or another program (Python's huggingface_hub) writing the same file.
   */
  notice?: string;
}

/** A Hub repo described from its config and safetensors headers, read with range requests. */
export interface RemoteModelSummary {
  repo: string;
  commit: string;
  gated: false | 'auto' | 'manual';
  architecture: string;
  modelType: string;
  layers: number;
  hiddenSize: number;
  vocabSize: number;
  /** From the safetensors headers' shapes. */
  parameters: number;
  dtypes: string[];
  shards: number;
  /** Bytes of the safetensors weights. */
  weightBytes: number;
  /** Bytes `download.start` takes by default (what a merge needs). */
  downloadBytes: number;
  /** Every file in the repo, with the default selection marked. */
  files: { path: string; size: number; selected: boolean }[];
  hasTokenizer: boolean;
  weightFormat: 'safetensors' | 'pytorch' | 'none';
  /** Whether Alloy's engine knows the architecture; `problem` says why not. */
  mergeable: boolean;
  problem?: string;
}

export interface LibraryDeleteResult {
  /** Snapshot, ref and blob paths removed (with `dryRun`: that would be removed). */
  deleted: string[];
  freedBytes: number;
}

export interface HubStatus {
  hubUrl: string;
  /** Where the token comes from; the token itself never leaves the services. */
  tokenSource: 'env' | 'file' | 'settings' | 'none';
  /**
   * Where a token set in the app is kept: `encrypted` on disk by the OS keychain (Electron's
   * safeStorage), `memory` only while the services run (web mode, or no keychain).
   */
  tokenStorage: 'encrypted' | 'memory';
  cacheDir: string;
  freeBytes: number;
}

const id = v.pipe(v.string(), v.minLength(1), v.maxLength(4096));
const repo = v.pipe(v.string(), v.maxLength(200), v.regex(/^(?!.*\.\.)\w[\w.-]*\/\w[\w.-]*$/, 'a Hub repo id: "org/name"'));
const revision = v.pipe(v.string(), v.minLength(1), v.maxLength(200), v.regex(/^(?!\/)(?!.*(?:^|\/)\.{1,2}(?:\/|$))[^\s]+$/, 'a branch, tag or commit'));
const folder = v.pipe(v.string(), v.minLength(1), v.maxLength(4096));
// Every message is written out: valibot's own would quote the value, and a token must never be echoed.
const hubToken = v.pipe(
  v.string('the token must be text'),
  v.minLength(1, 'the token is empty'),
  v.maxLength(1000, 'the token is longer than 1000 characters'),
  v.regex(/^[\x21-\x7e]+$/, 'a token is printable ASCII without spaces'),
);

export const libraryRequestSchemas = {
  'library.delete': v.strictObject({ id, dryRun: v.optional(v.boolean()) }),
  'library.folders': v.strictObject({}),
  'library.addFolder': v.strictObject({ path: folder }),
  'library.removeFolder': v.strictObject({ path: folder }),
  'library.openFolder': v.strictObject({ id }),
  'hub.status': v.strictObject({}),
  'hub.setToken': v.strictObject({ token: hubToken }),
  'hub.clearToken': v.strictObject({}),
  'download.peek': v.strictObject({ repo, revision: v.optional(revision) }),
  'download.start': v.strictObject({
    repo,
    revision: v.optional(revision),
    /** 'merge' (default): what a merge needs; 'all'; or the paths to take. */
    files: v.optional(v.union([v.picklist(['merge', 'all']), v.pipe(v.array(v.pipe(v.string(), v.maxLength(1000))), v.maxLength(10_000))])),
  }),
  'download.pause': v.strictObject({ id }),
  'download.resume': v.strictObject({ id }),
  'download.cancel': v.strictObject({ id }),
  'download.list': v.strictObject({}),
  'download.clear': v.strictObject({}),
} as const;

export interface LibraryResponseTypes {
  'library.delete': LibraryDeleteResult;
  'library.folders': string[];
  'library.addFolder': string[];
  'library.removeFolder': string[];
  /** `opened: false` where the face cannot open folders (web mode): `path` is there to copy. */
  'library.openFolder': { opened: boolean; path: string; message?: string };
  'hub.status': HubStatus;
  'hub.setToken': HubStatus;
  'hub.clearToken': HubStatus;
  'download.peek': RemoteModelSummary;
  'download.start': DownloadInfo;
  'download.pause': DownloadInfo;
  'download.resume': DownloadInfo;
  'download.cancel': DownloadInfo;
  'download.list': DownloadInfo[];
  'download.clear': DownloadInfo[];
}

export interface LibraryEventTypes {
  'download.progress': DownloadInfo;
  'library.changed': { reason: 'files' | 'download' | 'delete' | 'folders' };
}
