import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { JobInfo } from '../../shared/contract';
import type { JobFile } from '../../shared/job';
import type { ProgressEvent } from '../../shared/progress';
import type { EventBus } from './events';

export interface JobServiceOptions {
  /** Plain Node (never Electron's): dawn.node cannot read GPU buffers back inside Electron. */
  nodeBinary: string;
  engineEntry: string;
  /** Where job and recipe files are written. */
  workDir: string;
  outputRoot: string;
  modelRoots: string[];
  events: EventBus;
}

export interface StartJobParams {
  recipe: string;
  outputName: string;
  device?: 'auto' | 'cpu' | 'gpu';
  memoryBudget?: number;
  outShardSize?: number;
}

const LOG_LINES = 500;

/** Runs merges as engine child processes and follows their JSON-lines progress. */
export class JobService {
  private jobs = new Map<string, { info: JobInfo; child: ChildProcess | undefined }>();

  constructor(private readonly options: JobServiceOptions) {}

  list(): JobInfo[] {
    return [...this.jobs.values()].map((j) => j.info).sort((a, b) => b.startedAt - a.startedAt);
  }

  get(id: string): JobInfo | undefined {
    return this.jobs.get(id)?.info;
  }

  async start({ recipe, outputName, device, memoryBudget, outShardSize }: StartJobParams): Promise<JobInfo> {
    const id = randomUUID();
    await mkdir(this.options.workDir, { recursive: true });
    const recipeFile = join(this.options.workDir, `${id}.yml`);
    const jobFile = join(this.options.workDir, `${id}.json`);
    const outDir = join(this.options.outputRoot, outputName);
    const job: JobFile = {
      recipeText: recipe,
      recipeFile,
      outDir,
      options: {
        modelRoots: this.options.modelRoots,
        ...(device ? { device } : {}),
        ...(memoryBudget ? { memoryBudget } : {}),
        ...(outShardSize ? { outShardSize } : {}),
      },
    };
    await writeFile(recipeFile, recipe);
    await writeFile(jobFile, JSON.stringify(job, null, 2));
    const info: JobInfo = { id, state: 'running', outputName, outDir, startedAt: Date.now(), log: [] };
    const child = spawn(this.options.nodeBinary, [this.options.engineEntry, 'run-job', jobFile, '--progress=jsonl'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: undefined },
    });
    this.jobs.set(id, { info, child });
    this.follow(id, child);
    this.options.events.emit('job.state', info);
    return info;
  }

  cancel(id: string): JobInfo {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no job ${id}`);
    if (job.info.state === 'running') job.child?.kill('SIGTERM');
    return job.info;
  }

  /** Stops every running engine, for shutdown. */
  stopAll(): void {
    for (const job of this.jobs.values()) if (job.info.state === 'running') job.child?.kill('SIGTERM');
  }

  private follow(id: string, child: ChildProcess): void {
    const job = this.jobs.get(id)!;
    const log = (line: string) => {
      job.info.log.push(line);
      if (job.info.log.length > LOG_LINES) job.info.log.splice(0, job.info.log.length - LOG_LINES);
    };
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
    createInterface({ input: child.stderr! }).on('line', log);
    child.on('error', (error) => {
      job.info.error = `could not start the engine (${this.options.nodeBinary}): ${error.message}`;
      this.settle(id, 'failed');
    });
    child.on('close', (code) => {
      job.child = undefined;
      if (job.info.state !== 'running') return;
      this.settle(id, code === 0 ? 'done' : code === 130 ? 'cancelled' : 'failed');
    });
  }

  private settle(id: string, state: JobInfo['state']): void {
    const job = this.jobs.get(id)!;
    job.info.state = state;
    job.info.finishedAt = Date.now();
    if (state === 'failed' && !job.info.error) job.info.error = job.info.log.at(-1) ?? 'the engine stopped';
    this.options.events.emit('job.state', job.info);
  }
}
