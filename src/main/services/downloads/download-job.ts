import { randomUUID } from 'node:crypto';
import { stat, unlink } from 'node:fs/promises';
import type { DownloadInfo, DownloadState } from '../../../shared/library-contract';
import type { BlobLocks } from './blob-locks';
import { blobLockPath, blobName, blobPath, linkSnapshotFile, repoDir, snapshotDir, writeRef } from './cache-layout';
import { ensureFreeSpace } from './check-free-space';
import { downloadBlob } from './download-blob';
import { acquireFileLock } from './hub-file-lock';
import { HubError, isTransient } from './hub-error';
import type { HubOptions } from './hub-options';
import { listRemoteFiles, type RemoteFile } from './list-remote-files';
import { etaSeconds, RateMeter } from './rate-meter';
import { selectFiles, type FileSelection } from './select-files';

export interface DownloadRequest {
  repo: string;
  /** Branch, tag or commit. Default: "main". */
  revision?: string;
  /** Default: 'merge', what a merge needs. */
  files?: FileSelection;
}

export interface DownloadContext {
  cacheDir: string;
  hubOptions: () => Promise<HubOptions>;
  /** Tries per file on a lost connection or a server error, each resuming from the partial file. Default 4. */
  retries: number;
  /** First pause between tries, doubled each time. Default 500 ms. */
  retryDelayMs: number;
  /** Free bytes on the cache's disk; default `statfs`. */
  freeBytes?: (path: string) => Promise<number>;
  /** Shared by every download of the manager, so one blob has one writer. */
  locks: BlobLocks;
  /** Called on every change: `important` for state changes, otherwise progress. */
  changed: (job: DownloadJob, important: boolean) => void;
}

/** What is kept of a download between runs of the app (`DownloadManager`'s state file). */
export interface SavedDownload {
  request: DownloadRequest;
  info: DownloadInfo;
  /** The files chosen, with their blob names, once listed. */
  remoteFiles: RemoteFile[];
  /** Whether it was queued or running when saved: it goes on by itself at the next start. */
  resume: boolean;
}

/** One repo revision being downloaded into the hub cache: its files one after another. */
export class DownloadJob {
  readonly info: DownloadInfo;
  private controller: AbortController | undefined;
  private remoteFiles: RemoteFile[] = [];
  private readonly meter = new RateMeter();
  /** Paused because the app is closing: saved as one to resume at the next start. */
  resumeOnStart = false;

  constructor(
    readonly request: DownloadRequest,
    private readonly context: DownloadContext,
    saved?: Pick<SavedDownload, 'info' | 'remoteFiles'>,
  ) {
    this.info = saved?.info ?? {
      id: randomUUID(),
      repo: request.repo,
      revision: request.revision ?? 'main',
      state: 'queued',
      files: [],
      totalBytes: 0,
      downloadedBytes: 0,
      bytesPerSecond: 0,
      createdAt: Date.now(),
    };
    this.remoteFiles = saved?.remoteFiles ?? [];
  }

  /**
   * A download saved by an earlier run of the app, paused, its files' bytes read from the cache:
   * the blobs committed and the partial files left, which a resume continues with HTTP Range.
   */
  static async restore(saved: SavedDownload, context: DownloadContext): Promise<DownloadJob> {
    const info: DownloadInfo = { ...saved.info, state: saved.info.state === 'failed' ? 'failed' : 'paused', bytesPerSecond: 0 };
    delete info.etaSeconds;
    delete info.notice;
    const job = new DownloadJob(saved.request, context, { info, remoteFiles: saved.remoteFiles });
    const storage = job.storage;
    for (const file of info.files) {
      const remote = saved.remoteFiles.find((r) => r.path === file.path);
      const blob = remote ? blobPath(storage, blobName(remote)) : undefined;
      const whole = blob ? await stat(blob).catch(() => undefined) : undefined;
      const partial = blob && !whole ? await stat(`${blob}.incomplete`).catch(() => undefined) : undefined;
      file.downloaded = whole ? file.size : Math.min(file.size, partial?.size ?? 0);
      file.state = whole ? 'done' : file.state === 'failed' ? 'failed' : 'pending';
    }
    info.downloadedBytes = info.files.reduce((sum, f) => sum + f.downloaded, 0);
    return job;
  }

  /** What to keep of it for the next start of the app. */
  saved(): SavedDownload {
    const { state } = this.info;
    return { request: this.request, info: { ...this.info, files: this.info.files.map((f) => ({ ...f })) }, remoteFiles: this.remoteFiles, resume: state === 'queued' || state === 'running' || this.resumeOnStart };
  }

  get storage(): string {
    return repoDir(this.context.cacheDir, this.request.repo);
  }

  /** Downloads every selected file; ends done, failed, paused or cancelled, never throws. */
  async run(): Promise<void> {
    const controller = new AbortController();
    this.controller = controller;
    this.setState('running');
    this.meter.reset();
    try {
      const hub = this.withNotices(await this.context.hubOptions());
      await this.planFiles(hub);
      await this.checkSpace();
      for (const file of this.remoteFiles) {
        if (controller.signal.aborted) break;
        await this.fetchFile(hub, file, controller.signal);
      }
      if (controller.signal.aborted) return;
      await writeRef(this.storage, this.info.revision, this.info.commit!);
      this.finish('done');
    } catch (error) {
      if (controller.signal.aborted) return;
      const e = error instanceof HubError ? error : new HubError('server', (error as Error).message);
      this.info.error = { kind: e.kind, message: e.message };
      this.finish('failed');
    } finally {
      this.controller = undefined;
      if (this.info.state === 'cancelled') await this.removePartials();
    }
  }

  pause(): void {
    if (this.info.state !== 'running' && this.info.state !== 'queued') return;
    this.setState('paused');
    this.controller?.abort();
  }

  /** Stops the download and deletes its partial files; finished blobs stay (other revisions may share them). */
  async cancel(): Promise<void> {
    if (this.isFinished()) return;
    const running = this.controller !== undefined;
    this.finish('cancelled');
    this.controller?.abort();
    if (!running) await this.removePartials();
  }

  /** Ready to run again after a pause or a failure. */
  requeue(): void {
    if (this.info.state !== 'paused' && this.info.state !== 'failed') return;
    this.resumeOnStart = false;
    delete this.info.error;
    delete this.info.finishedAt;
    this.setState('queued');
  }

  isFinished(): boolean {
    return this.info.state === 'done' || this.info.state === 'cancelled';
  }

  /** The Hub options with waits (rate limit) reported on the download as a notice. */
  private withNotices(hub: HubOptions): HubOptions {
    const onWait = hub.rateLimit?.onWait;
    return {
      ...hub,
      rateLimit: {
        ...hub.rateLimit,
        onWait: (wait) => {
          onWait?.(wait);
          this.setNotice(`The Hub is limiting requests (429): trying again in ${wait.seconds} s (${wait.attempt} of ${wait.retries}).`);
        },
      },
    };
  }

  /** Shows (or, undefined, clears) what the download is waiting for. */
  setNotice(notice: string | undefined): void {
    if (notice === this.info.notice) return;
    if (notice === undefined) delete this.info.notice;
    else this.info.notice = notice;
    this.context.changed(this, true);
  }

  private async planFiles(hub: HubOptions): Promise<void> {
    if (this.info.commit && this.remoteFiles.length) return;
    const remote = await listRemoteFiles({ hub, repo: this.request.repo, revision: this.info.commit ?? this.info.revision });
    const files = selectFiles(remote.files, this.request.files);
    if (!files.length) throw new HubError('not-found', `${this.request.repo}@${this.info.revision} has none of the files asked for.`);
    this.remoteFiles = files;
    this.info.commit = remote.commit;
    this.info.snapshotPath = snapshotDir(this.storage, remote.commit);
    this.info.files = files.map((f) => ({ path: f.path, size: f.size, downloaded: 0, state: 'pending' }));
    this.info.totalBytes = files.reduce((sum, f) => sum + f.size, 0);
    delete this.info.notice;
    this.context.changed(this, true);
  }

  private async checkSpace(): Promise<void> {
    let needed = 0;
    for (const file of this.remoteFiles) {
      const blob = blobPath(this.storage, blobName(file));
      if (await stat(blob).catch(() => undefined)) continue;
      const partial = (await stat(`${blob}.incomplete`).catch(() => undefined))?.size ?? 0;
      needed += Math.max(0, file.size - partial);
    }
    const free = this.context.freeBytes ? await this.context.freeBytes(this.context.cacheDir) : undefined;
    await ensureFreeSpace(this.context.cacheDir, needed, free);
  }

  private async fetchFile(hub: HubOptions, file: RemoteFile, signal: AbortSignal): Promise<void> {
    const progress = this.info.files.find((f) => f.path === file.path)!;
    progress.state = 'downloading';
    let checksumRetried = false;
    for (let attempt = 0; ; attempt++) {
      this.setFileBytes(progress, 0);
      try {
        const onBytes = (bytes: number) => this.setFileBytes(progress, progress.downloaded + bytes);
        const blob = blobPath(this.storage, blobName(file));
        await this.context.locks.run(blob, () => this.underHubLock(file, signal, () =>
          downloadBlob({ hub, repo: this.request.repo, commit: this.info.commit!, file, storage: this.storage, signal, onBytes }),
        ));
        break;
      } catch (error) {
        if (signal.aborted) return;
        const retryChecksum = error instanceof HubError && error.kind === 'checksum' && !checksumRetried;
        if (retryChecksum) checksumRetried = true;
        else if (!isTransient(error) || attempt + 1 >= this.context.retries) {
          progress.state = 'failed';
          throw error;
        }
        await sleep(this.context.retryDelayMs * 2 ** attempt, signal);
      }
    }
    await linkSnapshotFile(this.storage, this.info.commit!, file.path, blobName(file));
    progress.state = 'done';
    this.context.changed(this, false);
  }

  /**
   * Runs `work` holding huggingface_hub's lock on the file's blob, so Python (or another Alloy) never
   * writes it at the same time; while another holds it, the download says so and waits. A blob already
   * committed needs no lock: `downloadBlob` returns at once.
   */
  private async underHubLock<T>(file: RemoteFile, signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    const etag = blobName(file);
    if (await stat(blobPath(this.storage, etag)).catch(() => undefined)) return work();
    const lockPath = blobLockPath(this.context.cacheDir, this.request.repo, etag);
    const onBusy = () => this.setNotice(`Waiting for another program (Python's huggingface_hub?) that is downloading ${file.path} into the same cache: it holds ${lockPath}.`);
    let held;
    try {
      held = await acquireFileLock(lockPath, { signal, onBusy });
    } catch (error) {
      if (signal.aborted) throw new HubError('aborted', 'stopped');
      throw error;
    }
    this.setNotice(undefined);
    try {
      return await work();
    } finally {
      await held.release();
    }
  }

  private setFileBytes(progress: DownloadInfo['files'][number], bytes: number): void {
    if (this.info.notice && bytes > progress.downloaded) this.setNotice(undefined);
    progress.downloaded = bytes;
    this.info.downloadedBytes = this.info.files.reduce((sum, f) => sum + f.downloaded, 0);
    this.meter.record(this.info.downloadedBytes);
    this.info.bytesPerSecond = this.meter.bytesPerSecond();
    const eta = etaSeconds(this.info.totalBytes - this.info.downloadedBytes, this.info.bytesPerSecond);
    if (eta === undefined) delete this.info.etaSeconds;
    else this.info.etaSeconds = eta;
    this.context.changed(this, false);
  }

  private setState(state: DownloadState): void {
    this.info.state = state;
    delete this.info.notice;
    if (state !== 'running') this.info.bytesPerSecond = 0;
    this.context.changed(this, true);
  }

  private finish(state: 'done' | 'failed' | 'cancelled'): void {
    this.info.finishedAt = Date.now();
    if (state === 'done') this.info.etaSeconds = 0;
    this.setState(state);
  }

  private async removePartials(): Promise<void> {
    for (const file of this.remoteFiles) await unlink(`${blobPath(this.storage, blobName(file))}.incomplete`).catch(() => undefined);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}
