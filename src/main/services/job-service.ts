import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { JobInfo } from '../../shared/contract';
import type { JobFile } from '../../shared/job';
import type { ProgressEvent } from '../../shared/progress';
import type { EventBus } from './events';
import { isGpuLibraryNotice } from './gpu-library-notice';
import { interruptedMerge } from './interrupted-merge';
import { writeFileAtomic } from './write-file-atomic';
import { stopChild } from './stop-child';

export interface JobServiceOptions {
  /** Plain Node (never Electron's): dawn.node cannot read GPU buffers back inside Electron. */
  nodeBinary: string;
  engineEntry: string;
  /** Where job and recipe files are written. */
  workDir: string;
  outputRoot: string;
  /** Where recipes find models by name, as they are when a job starts (the library's folders change while the app runs). */
  modelRoots: () => string[];
  events: EventBus;
  /**
   * Where the jobs are kept between runs of the app, so a merge the app was running when it stopped
   * (quit, crash, power loss) comes back as interrupted and can be resumed. In memory only when absent.
   */
  jobsFile?: string;
}

export interface StartJobParams {
  recipe: string;
  outputName: string;
  device?: 'auto' | 'cpu' | 'gpu';
  memoryBudget?: number;
  outShardSize?: number;
  overwrite?: boolean;
}

interface Job {
  info: JobInfo;
  /** What the engine is given; kept so that a resume runs the very same merge. */
  job: JobFile;
  jobFile: string;
  child: ChildProcess | undefined;
  /** The app asked this run to stop (Cancel): an engine that ends by that signal was cancelled, not failed. */
  cancelRequested?: boolean;
  /** A resume is checking what the interrupted run left: a second one must not start another engine. */
  resuming?: boolean;
  /** The app is quitting: the engine was stopped keeping its shards (`stopAll`). */
  stopping?: boolean;
  /** Settles once the engine has ended and the job's state is set. */
  ended?: Promise<void>;
}

/** How long a stopped engine has to end before it is killed. */
const STOP_GRACE_MS = 5_000;

interface SavedJobs {
  version: 1;
  jobs: { info: JobInfo; job: JobFile; jobFile: string }[];
}

const LOG_LINES = 500;
/** Finished jobs kept in the jobs file. */
const KEPT_JOBS = 50;

/**
 * Throws, before any job is made, when the output folder already holds files (an earlier merge):
 * the engine would only fail on it, and the finished merge shown would give way to that failure.
 */
async function refuseIfTaken(outDir: string, outputName: string): Promise<void> {
  const entries = await readdir(outDir).catch(() => []);
  if (entries.length > 0) throw new Error(`the output folder ${outputName} already exists (${outDir}); choose another name, or replace it`);
}

/** Runs merges as engine child processes and follows their JSON-lines progress. */
export class JobService {
  private jobs = new Map<string, Job>();
  private saving: Promise<void> = Promise.resolve();
  /** Settles once the jobs of an earlier run of the app are read back. */
  readonly loaded: Promise<void>;

  constructor(private readonly options: JobServiceOptions) {
    this.loaded = this.load();
  }

  list(): JobInfo[] {
    return [...this.jobs.values()].map((j) => j.info).sort((a, b) => b.startedAt - a.startedAt);
  }

  get(id: string): JobInfo | undefined {
    return this.jobs.get(id)?.info;
  }

  async start({ recipe, outputName, device, memoryBudget, outShardSize, overwrite }: StartJobParams): Promise<JobInfo> {
    await this.loaded;
    const id = randomUUID();
    const recipeFile = join(this.options.workDir, `${id}.yml`);
    const jobFile = join(this.options.workDir, `${id}.json`);
    const outDir = join(this.options.outputRoot, outputName);
    // Two engines building one folder would overwrite each other's shards and journal.
    if (!overwrite) await refuseIfTaken(outDir, outputName);
    this.refuseIfBusy(outDir);
    const job: JobFile = {
      recipeText: recipe,
      recipeFile,
      outDir,
      options: {
        modelRoots: this.options.modelRoots(),
        ...(device ? { device } : {}),
        ...(memoryBudget ? { memoryBudget } : {}),
        ...(outShardSize ? { outShardSize } : {}),
        ...(overwrite ? { overwrite } : {}),
      },
    };
    // A new merge into the same folder starts its build folder afresh: older jobs there can no longer resume.
    for (const other of this.jobs.values()) {
      if (other.info.outDir !== outDir || !other.info.resumable) continue;
      delete other.info.resumable;
      this.options.events.emit('job.state', other.info);
    }
    const info: JobInfo = { id, state: 'running', outputName, outDir, startedAt: Date.now(), log: [] };
    this.jobs.set(id, { info, job, jobFile, child: undefined });
    await this.launch(id);
    return info;
  }

  cancel(id: string): JobInfo {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no job ${id}`);
    if (job.info.state === 'running') {
      // The engine may not have set up its handler yet, and then dies of the signal itself: still a cancel.
      job.cancelRequested = true;
      job.child?.kill('SIGTERM');
    }
    return job.info;
  }

  /**
   * Runs an interrupted merge again with the engine's `--resume`: the shards its journal lists that
   * still match are kept, the others written, and the result is what an uninterrupted run writes.
   */
  async resume(id: string): Promise<JobInfo> {
    await this.loaded;
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no job ${id}`);
    // Checked and claimed with no await between: two resumes at once would start two engines on one folder.
    if (job.info.state === 'running' || job.resuming) throw new Error(`${job.info.outputName} is still running`);
    this.refuseIfBusy(job.info.outDir, job);
    job.resuming = true;
    let left: { finishedShards: number } | undefined;
    try {
      left = await interruptedMerge(job.info.outDir);
      if (!left) {
        delete job.info.resumable;
        this.options.events.emit('job.state', job.info);
        throw new Error(`${job.info.outputName} left nothing to resume from (no journal of finished shards beside ${job.info.outDir}); run the merge again`);
      }
      delete job.cancelRequested;
      delete job.stopping;
      job.job = { ...job.job, options: { ...job.job.options, resume: true } };
      job.info.state = 'running';
    } finally {
      job.resuming = false;
    }
    for (const key of ['finishedAt', 'error', 'resumable', 'lastProgress'] as const) delete job.info[key];
    this.log(job, `resuming from ${left.finishedShards} finished shard${left.finishedShards === 1 ? '' : 's'}`);
    await this.launch(id);
    return job.info;
  }

  /** Throws when a job other than `except` is writing `outDir`. */
  private refuseIfBusy(outDir: string, except?: Job): void {
    const busy = [...this.jobs.values()].find((j) => j !== except && (j.info.state === 'running' || j.resuming) && j.info.outDir === outDir);
    if (busy) throw new Error(`another merge is writing ${outDir}; wait for it or cancel it first`);
  }

  /**
   * Stops every running engine, for shutdown, keeping what each merge has written: the engine gets
   * SIGHUP, which it leaves to its default action (it ends where it stands, as a kill does; a cancel's
   * SIGTERM would remove its hidden folder), SIGKILL if it is still there after a grace period. Each job
   * is then `failed` ("Alloy stopped while this merge was running") and resumable from its journal, as
   * after a crash; resolves once the jobs file says so.
   */
  async stopAll(graceMs = STOP_GRACE_MS): Promise<void> {
    const running = [...this.jobs.values()].filter((job) => job.info.state === 'running' && job.child);
    await Promise.all(
      running.map(async (job) => {
        job.stopping = true;
        await stopChild(job.child!, 'SIGHUP', graceMs, job.ended);
      }),
    );
    await this.saving;
  }

  /**
   * Writes the job's files and starts its engine. When that fails (the work folder cannot be made or
   * written), the job is settled as failed with the reason, and the error thrown to the caller: it is
   * never left `running` with no engine to end or cancel it.
   */
  private async launch(id: string): Promise<void> {
    try {
      await this.spawnEngine(id);
    } catch (error) {
      const job = this.jobs.get(id)!;
      job.info.error = `could not start the merge: ${(error as Error).message}`;
      await this.removeJobFiles(job);
      await this.settle(id, 'failed');
      throw new Error(job.info.error);
    }
  }

  private async spawnEngine(id: string): Promise<void> {
    const job = this.jobs.get(id)!;
    await mkdir(dirname(job.jobFile), { recursive: true });
    await mkdir(dirname(job.job.recipeFile), { recursive: true });
    await writeFile(job.job.recipeFile, job.job.recipeText);
    await writeFile(job.jobFile, JSON.stringify(job.job, null, 2));
    const child = spawn(this.options.nodeBinary, [this.options.engineEntry, 'run-job', job.jobFile, '--progress=jsonl'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: undefined },
    });
    job.child = child;
    this.follow(id, child);
    if (job.cancelRequested) child.kill('SIGTERM');
    this.options.events.emit('job.state', job.info);
    this.save();
  }

  private log(job: Job, line: string): void {
    job.info.log.push(line);
    if (job.info.log.length > LOG_LINES) job.info.log.splice(0, job.info.log.length - LOG_LINES);
  }

  private follow(id: string, child: ChildProcess): void {
    const job = this.jobs.get(id)!;
    const log = (line: string) => this.log(job, line);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let event: ProgressEvent;
      try {
        event = JSON.parse(line) as ProgressEvent;
      } catch {
        log(line);
        return;
      }
      job.info.lastProgress = event;
      if (event.type === 'stage' || event.type === 'warning' || event.type === 'device') log(event.message);
      if (event.type === 'device') job.info.device = event.description;
      if (event.type === 'error') job.info.error = event.message;
      this.options.events.emit('job.progress', { jobId: id, event });
    });
    createInterface({ input: child.stderr! }).on('line', (line) => isGpuLibraryNotice(line) || log(line));
    child.on('error', (error) => {
      job.info.error = `could not start the engine (${this.options.nodeBinary}): ${error.message}`;
      void this.settle(id, 'failed');
    });
    let ended!: () => void;
    job.ended = new Promise((resolve) => (ended = resolve));
    child.on('close', (code, signal) => {
      if (job.child !== child) return ended();
      job.child = undefined;
      const removed = this.removeJobFiles(job);
      if (job.info.state !== 'running') return ended();
      const cancelled = code === 130 || (job.cancelRequested === true && signal === 'SIGTERM');
      if (job.stopping && code !== 0 && !cancelled) job.info.error = 'Alloy stopped while this merge was running';
      if (signal && code === null && !cancelled && !job.info.error) job.info.error = `the engine was stopped by ${signal} before the merge finished`;
      void removed.then(() => this.settle(id, code === 0 ? 'done' : cancelled ? 'cancelled' : 'failed')).finally(ended);
    });
  }

  /** The engine has read them; a resume writes them again. */
  private async removeJobFiles(job: Job): Promise<void> {
    await Promise.all([rm(job.jobFile, { force: true }), rm(job.job.recipeFile, { force: true })]).catch(() => undefined);
  }

  private async settle(id: string, state: JobInfo['state']): Promise<void> {
    const job = this.jobs.get(id)!;
    job.info.state = state;
    job.info.finishedAt = Date.now();
    if (state === 'failed' && !job.info.error) job.info.error = job.info.log.at(-1) ?? 'the engine stopped';
    if (state !== 'done') await this.markResumable(job);
    this.options.events.emit('job.state', job.info);
    this.save();
  }

  private async markResumable(job: Job): Promise<void> {
    const left = await interruptedMerge(job.info.outDir).catch(() => undefined);
    if (left && job.info.state !== 'running') job.info.resumable = left;
  }

  /** Reads back the jobs file: a job that was running when the app stopped is interrupted, resumable if its journal is there. */
  private async load(): Promise<void> {
    if (!this.options.jobsFile) return;
    const text = await readFile(this.options.jobsFile, 'utf8').catch(() => undefined);
    let saved: SavedJobs | undefined;
    try {
      saved = text === undefined ? undefined : (JSON.parse(text) as SavedJobs);
    } catch {
      saved = undefined;
    }
    if (saved?.version !== 1 || !Array.isArray(saved.jobs)) return;
    for (const { info, job, jobFile } of saved.jobs) {
      if (typeof info?.id !== 'string' || this.jobs.has(info.id) || typeof job?.outDir !== 'string') continue;
      const restored: Job = { info, job, jobFile, child: undefined };
      this.jobs.set(info.id, restored);
      if (info.state === 'running') {
        info.state = 'failed';
        info.finishedAt = Date.now();
        info.error = 'Alloy stopped while this merge was running';
      }
      delete info.resumable;
      if (info.state !== 'done') await this.markResumable(restored);
    }
  }

  /** Writes the jobs file (whole, then renamed into place), one write at a time. */
  private save(): void {
    const file = this.options.jobsFile;
    if (!file) return;
    const jobs = [...this.jobs.values()]
      .sort((a, b) => b.info.startedAt - a.info.startedAt)
      .slice(0, KEPT_JOBS)
      .map(({ info, job, jobFile }) => ({ info, job, jobFile }));
    const text = JSON.stringify({ version: 1, jobs } satisfies SavedJobs);
    this.saving = this.saving
      .then(() => writeFileAtomic(file, text))
      .catch(() => undefined);
  }
}
