import { readFile } from 'node:fs/promises';
import type { DownloadInfo } from '../../../shared/library-contract';
import { BlobLocks } from './blob-locks';
import { DownloadJob, type DownloadContext, type DownloadRequest, type SavedDownload } from './download-job';
import type { HubOptions } from './hub-options';
import { writeFileAtomic } from '../write-file-atomic';

export interface DownloadManagerOptions {
  /** The hub cache folder downloads are written into. */
  cacheDir: string;
  /** The Hub to use and the token, asked for at the start of each download. */
  hubOptions: () => Promise<HubOptions>;
  /** Downloads running at once; more wait in the queue. Default 2. */
  maxConcurrent?: number;
  /** Tries per file on lost connections and server errors. Default 4. */
  retries?: number;
  retryDelayMs?: number;
  freeBytes?: (path: string) => Promise<number>;
  /** Least time between two progress reports of one download (state changes are reported at once). Default 200 ms. */
  progressIntervalMs?: number;
  onProgress?: (info: DownloadInfo) => void;
  /** A download finished with every file in the cache. */
  onDone?: (info: DownloadInfo) => void;
  /**
   * Where the queue is kept between runs of the app: downloads not finished come back at the next
   * start with their partial files, going on by themselves if they were running or queued, else paused.
   * In memory only when absent.
   */
  stateFile?: string;
}

interface SavedQueue {
  version: 1;
  downloads: SavedDownload[];
}

/** Downloads queued with a concurrency limit; each can be paused, resumed and cancelled. */
export class DownloadManager {
  private readonly jobs = new Map<string, DownloadJob>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly lastReport = new Map<string, number>();
  private readonly context: DownloadContext;
  private readonly waiters = new Set<() => void>();
  private saving: Promise<void> = Promise.resolve();
  private restoring = false;
  /** The state file's text as last written (or read): an unchanged queue is not written again. */
  private savedText = JSON.stringify({ version: 1, downloads: [] } satisfies SavedQueue);
  /** Settles once the downloads of an earlier run of the app are back in the queue. */
  readonly loaded: Promise<void>;

  constructor(private readonly options: DownloadManagerOptions) {
    this.context = {
      cacheDir: options.cacheDir,
      hubOptions: options.hubOptions,
      retries: options.retries ?? 4,
      retryDelayMs: options.retryDelayMs ?? 500,
      ...(options.freeBytes ? { freeBytes: options.freeBytes } : {}),
      locks: new BlobLocks(),
      changed: (job, important) => this.report(job, important),
    };
    this.loaded = this.load();
  }

  /**
   * Queues a download; the same repo and revision already queued or under way is returned instead,
   * and one that failed is replaced.
   */
  start(request: DownloadRequest): DownloadInfo {
    const revision = request.revision ?? 'main';
    const same = [...this.jobs.values()].find(
      (j) => j.info.repo === request.repo && j.info.revision === revision && !j.isFinished() && j.info.state !== 'failed',
    );
    if (same) return this.resume(same.info.id);
    // The new one takes over a failed one's partial files: the list would show the repo twice.
    for (const j of this.jobs.values()) if (j.info.repo === request.repo && j.info.revision === revision && j.info.state === 'failed') this.jobs.delete(j.info.id);
    const job = new DownloadJob(request, this.context);
    this.jobs.set(job.info.id, job);
    this.report(job, true);
    this.pump();
    return copy(job.info);
  }

  pause(id: string): DownloadInfo {
    const job = this.job(id);
    job.pause();
    return copy(job.info);
  }

  /** Continues a paused or failed download from its partial files. */
  resume(id: string): DownloadInfo {
    const job = this.job(id);
    job.requeue();
    this.pump();
    return copy(job.info);
  }

  async cancel(id: string): Promise<DownloadInfo> {
    const job = this.job(id);
    await job.cancel();
    await this.running.get(id);
    return copy(job.info);
  }

  /** Forgets the done and cancelled downloads (a list cleared in one window stays cleared after a reload); returns the rest. */
  clearFinished(): DownloadInfo[] {
    for (const [id, job] of this.jobs) if (job.info.state === 'done' || job.info.state === 'cancelled') this.jobs.delete(id);
    return this.list();
  }

  list(): DownloadInfo[] {
    return [...this.jobs.values()].map((j) => copy(j.info));
  }

  get(id: string): DownloadInfo {
    return copy(this.job(id).info);
  }

  /** Resolves when nothing is running or queued, and the state file says so. */
  async idle(): Promise<void> {
    while (this.running.size || [...this.jobs.values()].some((j) => j.info.state === 'queued')) {
      await new Promise<void>((resolve) => this.waiters.add(resolve));
    }
    await this.saving;
  }

  /** Pauses everything (the app is closing); partial files stay, and what was under way goes on at the next start. */
  async stopAll(): Promise<void> {
    for (const job of this.jobs.values()) {
      if (job.info.state === 'running' || job.info.state === 'queued') job.resumeOnStart = true;
      job.pause();
    }
    await Promise.all(this.running.values());
    this.save();
    await this.saving;
  }

  private job(id: string): DownloadJob {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no download with id ${id}`);
    return job;
  }

  private pump(): void {
    const limit = this.options.maxConcurrent ?? 2;
    for (const job of this.jobs.values()) {
      if (this.running.size >= limit) break;
      if (job.info.state !== 'queued' || this.running.has(job.info.id)) continue;
      const run = job.run().finally(() => {
        this.running.delete(job.info.id);
        if (job.info.state === 'done') this.options.onDone?.(copy(job.info));
        this.pump();
        for (const wake of this.waiters) wake();
        this.waiters.clear();
      });
      this.running.set(job.info.id, run);
    }
  }

  /** Reads the state file back: each unfinished download returns with its id and partial files. */
  private async load(): Promise<void> {
    const file = this.options.stateFile;
    if (!file) return;
    let saved: SavedQueue | undefined;
    try {
      this.savedText = await readFile(file, 'utf8');
      saved = JSON.parse(this.savedText) as SavedQueue;
    } catch {
      return;
    }
    if (saved?.version !== 1 || !Array.isArray(saved.downloads)) return;
    this.restoring = true;
    for (const entry of saved.downloads) {
      if (typeof entry?.info?.id !== 'string' || typeof entry.request?.repo !== 'string' || this.jobs.has(entry.info.id)) continue;
      const job = await DownloadJob.restore(entry, this.context).catch(() => undefined);
      if (!job) continue;
      this.jobs.set(job.info.id, job);
      if (entry.resume) job.requeue();
      this.report(job, true);
    }
    this.restoring = false;
    this.save();
    this.pump();
  }

  /** Writes the unfinished downloads to the state file (whole, then renamed into place), one write at a time. */
  private save(): void {
    const file = this.options.stateFile;
    if (!file || this.restoring) return;
    const downloads = [...this.jobs.values()].filter((j) => !j.isFinished()).map((j) => j.saved());
    const text = JSON.stringify({ version: 1, downloads } satisfies SavedQueue);
    if (text === this.savedText) return;
    this.savedText = text;
    this.saving = this.saving
      .then(() => writeFileAtomic(file, text))
      .catch(() => undefined);
  }

  private report(job: DownloadJob, important: boolean): void {
    if (important) this.save();
    const now = Date.now();
    const interval = this.options.progressIntervalMs ?? 200;
    if (!important && now - (this.lastReport.get(job.info.id) ?? 0) < interval) return;
    this.lastReport.set(job.info.id, now);
    this.options.onProgress?.(copy(job.info));
  }
}

function copy(info: DownloadInfo): DownloadInfo {
  return { ...info, files: info.files.map((f) => ({ ...f })), ...(info.error ? { error: { ...info.error } } : {}) };
}
