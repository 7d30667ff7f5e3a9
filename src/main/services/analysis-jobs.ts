import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { applyAnalysisEvent, type AnalysisDtype, type AnalysisEvent, type AnalysisInfo } from '../../shared/analysis';
import type { AnalysisJobFile } from '../../shared/job';
import type { EventBus } from './events';
import { isGpuLibraryNotice } from './gpu-library-notice';
import { writeFileAtomic } from './write-file-atomic';
import { stopChild } from './stop-child';

export interface AnalysisJobsOptions {
  /** Plain Node, as for merges: the engine never runs inside Electron. */
  nodeBinary: string;
  engineEntry: string;
  /** Where the job files are written. */
  workDir: string;
  /** Where recipes find models by name, as they are when a job starts (the library's folders change while the app runs). */
  modelRoots: () => string[];
  events: EventBus;
  /** Where finished analyses are kept between runs of the app (`analyses.json` beside the settings); in memory only when absent. */
  analysesFile?: string;
}

interface SavedAnalyses {
  version: 1;
  analyses: AnalysisInfo[];
}

export interface StartAnalysisParams {
  base: string;
  models: string[];
  t?: number[];
  dtype?: AnalysisDtype;
  memoryBudget?: number;
}

/** Finished analyses kept for `analysis.list`. */
const KEPT = 20;

/**
 * The analysis kind of engine job: each analysis is a job file of `kind: "analysis"` run by
 * `alloy run-job … --progress=jsonl` in a child process, as a merge is; its JSON lines are relayed as
 * `analysis.progress` and folded into the run's `AnalysisInfo`, so a reloaded window finds every result.
 */
export class AnalysisJobs {
  /** `cancelRequested`: the app asked the run to stop, so an engine that ends by that signal was cancelled. */
  private runs = new Map<string, { info: AnalysisInfo; child: ChildProcess | undefined; cancelRequested?: boolean; stopping?: boolean; ended?: Promise<void> }>();
  private saving: Promise<void> = Promise.resolve();
  /** Settles once the analyses of an earlier run of the app are read back. */
  readonly loaded: Promise<void>;

  constructor(private readonly options: AnalysisJobsOptions) {
    this.loaded = this.load();
  }

  list(): AnalysisInfo[] {
    return [...this.runs.values()].map((r) => r.info).sort((a, b) => b.startedAt - a.startedAt);
  }

  async start({ base, models, t, dtype, memoryBudget }: StartAnalysisParams): Promise<AnalysisInfo> {
    await this.loaded;
    const id = randomUUID();
    await mkdir(this.options.workDir, { recursive: true });
    const jobFile = join(this.options.workDir, `analysis-${id}.json`);
    const job: AnalysisJobFile = {
      kind: 'analysis',
      base,
      models,
      ...(t ? { t } : {}),
      ...(dtype ? { dtype } : {}),
      options: { modelRoots: this.options.modelRoots(), ...(memoryBudget ? { memoryBudget } : {}) },
    };
    await writeFile(jobFile, JSON.stringify(job, null, 2));
    const info: AnalysisInfo = { id, state: 'running', base, models, t: t ?? [], ...(dtype ? { dtype } : {}), startedAt: Date.now(), groups: [], layers: [], warnings: [] };
    const child = spawn(this.options.nodeBinary, [this.options.engineEntry, 'run-job', jobFile, '--progress=jsonl'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: undefined },
    });
    this.runs.set(id, { info, child });
    this.forgetOld();
    this.follow(id, child, jobFile);
    this.options.events.emit('analysis.state', info);
    return info;
  }

  cancel(id: string): AnalysisInfo {
    const run = this.runs.get(id);
    if (!run) throw new Error(`no analysis ${id}`);
    if (run.info.state === 'running') {
      // The engine may not have set up its handler yet, and then dies of the signal itself: still a cancel.
      run.cancelRequested = true;
      run.child?.kill('SIGTERM');
    }
    return run.info;
  }

  /**
   * Stops every running analysis, for shutdown: SIGTERM (an analysis keeps nothing on disk), SIGKILL if
   * its engine is still there after a grace period. Each is then `failed` ("Alloy stopped while this
   * analysis was running", as after a crash); resolves once the analyses file says so.
   */
  async stopAll(graceMs = 5_000): Promise<void> {
    const running = [...this.runs.values()].filter((run) => run.info.state === 'running' && run.child);
    await Promise.all(
      running.map(async (run) => {
        run.stopping = true;
        await stopChild(run.child!, 'SIGTERM', graceMs, run.ended);
      }),
    );
    await this.saving;
  }

  private follow(id: string, child: ChildProcess, jobFile: string): void {
    const run = this.runs.get(id)!;
    const stderr: string[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let event: AnalysisEvent;
      try {
        event = JSON.parse(line) as AnalysisEvent;
      } catch {
        return;
      }
      run.info = applyAnalysisEvent(run.info, event);
      this.options.events.emit('analysis.progress', { id, event });
    });
    createInterface({ input: child.stderr! }).on('line', (line) => isGpuLibraryNotice(line) || stderr.push(line));
    child.on('error', (error) => {
      run.info = { ...run.info, error: `could not start the engine (${this.options.nodeBinary}): ${error.message}` };
      this.settle(id, 'failed');
    });
    let ended!: () => void;
    run.ended = new Promise((resolve) => (ended = resolve));
    child.on('close', (code, signal) => {
      run.child = undefined;
      const removed = rm(jobFile, { force: true }).catch(() => undefined);
      if (run.info.state !== 'running') return ended();
      if (run.stopping && code !== 0) {
        run.info = { ...run.info, error: 'Alloy stopped while this analysis was running' };
        void removed.then(() => this.settle(id, 'failed')).finally(ended);
        return;
      }
      const cancelled = code === 130 || (run.cancelRequested === true && signal === 'SIGTERM');
      if (code !== 0 && !cancelled && !run.info.error) run.info = { ...run.info, error: stderr.at(-1) ?? (signal ? `the engine was stopped by ${signal}` : 'the engine stopped') };
      void removed.then(() => this.settle(id, code === 0 ? 'done' : cancelled ? 'cancelled' : 'failed')).finally(ended);
    });
  }

  private settle(id: string, state: AnalysisInfo['state']): void {
    const run = this.runs.get(id)!;
    run.info = { ...run.info, state, finishedAt: Date.now() };
    // A cancel is not a failure: the engine's "cancelled" error event is no message for the user.
    if (state === 'cancelled') delete run.info.error;
    this.options.events.emit('analysis.state', run.info);
    this.save();
  }

  /** Reads back the analyses file: one that was running when the app stopped ended with it. */
  private async load(): Promise<void> {
    if (!this.options.analysesFile) return;
    const text = await readFile(this.options.analysesFile, 'utf8').catch(() => undefined);
    let saved: SavedAnalyses | undefined;
    try {
      saved = text === undefined ? undefined : (JSON.parse(text) as SavedAnalyses);
    } catch {
      saved = undefined;
    }
    if (saved?.version !== 1 || !Array.isArray(saved.analyses)) return;
    for (const info of saved.analyses) {
      if (typeof info?.id !== 'string' || this.runs.has(info.id) || !Array.isArray(info.layers)) continue;
      const restored = info.state === 'running' ? { ...info, state: 'failed' as const, finishedAt: Date.now(), error: 'Alloy stopped while this analysis was running' } : info;
      this.runs.set(info.id, { info: restored, child: undefined });
    }
  }

  /** Writes the finished analyses (whole, then renamed into place), one write at a time. */
  private save(): void {
    const file = this.options.analysesFile;
    if (!file) return;
    const analyses = this.list().filter((info) => info.state !== 'running').slice(0, KEPT);
    const text = JSON.stringify({ version: 1, analyses } satisfies SavedAnalyses);
    this.saving = this.saving.then(() => writeFileAtomic(file, text)).catch(() => undefined);
  }

  private forgetOld(): void {
    const finished = this.list().filter((info) => info.state !== 'running');
    for (const info of finished.slice(KEPT)) this.runs.delete(info.id);
  }
}
