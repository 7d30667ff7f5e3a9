import { readFile, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Handlers, JobInfo, MethodInfo, PlanSummary, RecipeProblem } from '../../shared/contract';
import { EngineError } from '../engine/errors';
import { MERGE_METHODS } from '../engine/methods/registry';
import { EventBus } from './events';
import { JobService } from './job-service';
import { DownloadManager } from './downloads/download-manager';
import { hubUrlFromEnv } from './downloads/hub-options';
import { MemoryTokenStore, type HubTokenStore } from './downloads/hub-token-store';
import { readHubToken } from './downloads/read-hub-token';
import { hubCacheDir } from '../engine/model/resolve-model';
import { loadLibraryFolders } from './library/folder-store';
import { hubCacheDirs } from './library/hub-cache-dirs';
import { createLibraryHandlers } from './library/library-handlers';
import { LibraryService } from './library/library-service';
import type { AppPaths } from './paths';
import { SettingsService } from './settings-service';
import { createStudioHandlers } from './studio-handlers';
import { AnalysisJobs } from './analysis-jobs';
import { DeviceProbe } from './device-probe';
import { freeBytes, lastWriteRate, readModelCard } from './plan-facts';
import { planRecipeStages } from './plan-stages';
import { createAnalysisHandlers } from './analysis-handlers';

export interface ServicesOptions {
  paths: AppPaths;
  nodeBinary: string;
  outputRoot: string;
  /** Folders of models the user added, besides the demo models. */
  modelFolders?: string[];
  workDir?: string;
  /** Where settings are kept between runs; in memory only when absent. */
  settingsFile?: string;
  /** Environment for the hub cache folders, HF_ENDPOINT and HF_TOKEN. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Keeps the token set in the app (`hub.setToken`), which goes before HF_TOKEN and the token file.
   * Electron passes one encrypted with safeStorage; default: in memory for the services' lifetime.
   */
  tokenStore?: HubTokenStore;
  /**
   * Opens a folder in the desktop's file manager (Electron: `shell.openPath`), resolving to an error
   * message or ''. Absent in web mode, whose browser may sit on another machine.
   */
  openFolder?: (path: string) => Promise<string>;
  /** The desktop's folder dialog (Electron's `dialog.showOpenDialog`), resolving to the folder or undefined. Absent in web mode. */
  pickFolder?: () => Promise<string | undefined>;
  /** Downloads running at once. Default 2. */
  maxConcurrentDownloads?: number;
}

export interface Services {
  handlers: Handlers;
  events: EventBus;
  jobs: JobService;
  library: LibraryService;
  downloads: DownloadManager;
  settings: SettingsService;
  /** Analyses (the Analysis view) as engine child processes, like merges. */
  analyses: AnalysisJobs;
  /**
   * For quitting, in every face: stops the merges keeping what they wrote (resumable after the
   * restart), stops the analyses and the downloads (which go on at the next start), and the library's
   * folder watchers; resolves once the state files say so.
   */
  stop(): Promise<void>;
}

/** Builds the services every face mounts: one handler per contract channel, one event bus. */
export function createServices(options: ServicesOptions): Services {
  const events = new EventBus();
  const env = options.env ?? process.env;
  // Job files live here while their engines run; the folder goes when the app stops.
  const workDir = options.workDir ?? join(tmpdir(), `alloy-jobs-${process.pid}`);
  const cacheDir = hubCacheDir(env);
  const library = new LibraryService({
    folders: [
      { path: options.paths.demoModels, source: 'demo' },
      ...(options.modelFolders ?? []).map((path) => ({ path, source: 'folder' as const, user: true })),
      // Finished merges are models too: they appear in the library beside their inputs.
      { path: options.outputRoot, source: 'folder' },
    ],
    hubCaches: [...new Set([cacheDir, ...hubCacheDirs(env)])],
    onChange: () => events.emit('library.changed', { reason: 'files' }),
  });
  library.watch();
  // Where recipes find models by name, as the library lists them now: folders added while the app
  // runs and finished merges included.
  const modelRoots = (): string[] => [...new Set([options.paths.demoModels, ...library.userFolders(), options.outputRoot])];
  const foldersFile = options.settingsFile ? join(dirname(options.settingsFile), 'library-folders.json') : undefined;
  void loadLibraryFolders(foldersFile).then((folders) => folders.forEach((f) => library.addFolder(f)));
  const tokenStore = options.tokenStore ?? new MemoryTokenStore();
  const hub = async () => {
    const fromSettings = await tokenStore.get();
    const found = fromSettings ? { token: fromSettings, source: 'settings' as const } : await readHubToken(env);
    return { hubUrl: hubUrlFromEnv(env), ...(found.token ? { accessToken: found.token } : {}), tokenSource: found.source };
  };
  const downloads = new DownloadManager({
    cacheDir,
    hubOptions: hub,
    ...(options.maxConcurrentDownloads ? { maxConcurrent: options.maxConcurrentDownloads } : {}),
    onProgress: (info) => events.emit('download.progress', info),
    onDone: () => events.emit('library.changed', { reason: 'download' }),
    ...(options.settingsFile ? { stateFile: join(dirname(options.settingsFile), 'downloads.json') } : {}),
  });
  const jobs = new JobService({
    nodeBinary: options.nodeBinary,
    engineEntry: options.paths.engineEntry,
    workDir,
    outputRoot: options.outputRoot,
    modelRoots,
    events,
    ...(options.settingsFile ? { jobsFile: join(dirname(options.settingsFile), 'jobs.json') } : {}),
  });
  const settings = new SettingsService(options.settingsFile);
  const analyses = new AnalysisJobs({
    nodeBinary: options.nodeBinary,
    engineEntry: options.paths.engineEntry,
    workDir,
    modelRoots,
    events,
    ...(options.settingsFile ? { analysesFile: join(dirname(options.settingsFile), 'analyses.json') } : {}),
  });
  const jobOf = (id: string): JobInfo => {
    const info = jobs.get(id);
    if (!info) throw new Error(`no merge with id ${id}`);
    return info;
  };
  const devices = new DeviceProbe({ nodeBinary: options.nodeBinary, engineEntry: options.paths.engineEntry });
  const handlers: Handlers = {
    'library.list': () => library.list(),
    'methods.list': async () => [...MERGE_METHODS.values()].map(methodInfo),
    'recipe.demo': async () => ({ name: 'demo-linear', recipe: await readFile(options.paths.demoRecipe, 'utf8') }),
    'recipe.plan': async ({ recipe }) => {
      try {
        // Planned in the shards the merge will write (the settings' shard size, as job.start passes it).
        const { device, outShardSize } = await settings.get();
        const plan = await planRecipeStages(recipe, modelRoots(), outShardSize);
        const [diskFree, probed] = await Promise.all([
          freeBytes(options.outputRoot),
          devices.describe(device).then(
            (d) => ({ device: d }),
            (e: Error) => ({ deviceError: e.message }),
          ),
        ]);
        const rate = lastWriteRate(jobs.list());
        const summary: PlanSummary = {
          ...plan,
          ...(diskFree !== undefined ? { diskFree } : {}),
          ...probed,
          ...(rate ? { estimate: { seconds: plan.bytesToWrite / rate, bytesPerSecond: rate } } : {}),
        };
        return { ok: true, plan: summary };
      } catch (error) {
        if (error instanceof EngineError) return { ok: false, problems: problemsOf(error) };
        throw error;
      }
    },
    'job.start': async (request) => {
      const { device, memoryBudget, outShardSize } = await settings.get();
      return jobs.start({ device, ...request, memoryBudget, outShardSize });
    },
    'job.cancel': async ({ id }) => jobs.cancel(id),
    'job.resume': ({ id }) => jobs.resume(id),
    'job.list': async () => (await jobs.loaded, jobs.list()),
    'job.card': async ({ id }) => ({ markdown: await readModelCard(jobOf(id)) }),
    'app.capabilities': async () => ({ openFolder: options.openFolder !== undefined, pickFolder: options.pickFolder !== undefined }),
    'library.pickFolder': async () => {
      if (!options.pickFolder) throw new Error('This face cannot show the machine\'s folders: type the folder\'s path.');
      return { path: (await options.pickFolder()) ?? null };
    },
    'job.openFolder': async ({ id }) => {
      const { outDir, state } = jobOf(id);
      if (state !== 'done') throw new Error('the merge has not finished: its folder does not exist yet');
      if (!options.openFolder) return { opened: false, path: outDir, message: 'This face cannot open folders on the machine it runs on: copy the path.' };
      const problem = await options.openFolder(outDir);
      return problem ? { opened: false, path: outDir, message: problem } : { opened: true, path: outDir };
    },
    ...createStudioHandlers({ modelRoots, settings, devices }),
    ...createAnalysisHandlers({ analyses, settings }),
    ...createLibraryHandlers({ library, downloads, events, hub, cacheDir, tokenStore, ...(foldersFile ? { foldersFile } : {}), ...(options.openFolder ? { openFolder: options.openFolder } : {}) }),
  };
  const stop = async () => {
    library.close();
    await Promise.all([jobs.stopAll(), analyses.stopAll(), downloads.stopAll()]);
    await rmdir(workDir).catch(() => undefined);
  };
  return { handlers, events, jobs, library, downloads, settings, analyses, stop };
}

function methodInfo(m: typeof MERGE_METHODS extends ReadonlyMap<string, infer M> ? M : never): MethodInfo {
  return {
    name: m.name,
    prettyName: m.prettyName,
    description: m.description,
    ...(m.paper ? { paper: m.paper } : {}),
    base: m.base,
    parameters: m.parameters.map((p) => ({ ...p })),
  };
}

function problemsOf(error: EngineError): RecipeProblem[] {
  const problems = (error as EngineError & { problems?: RecipeProblem[] }).problems;
  if (problems?.length) return problems;
  const { line, column, key } = error.location;
  return [{ message: error.message, ...(line ? { line } : {}), ...(column ? { column } : {}), ...(key ? { key } : {}) }];
}
