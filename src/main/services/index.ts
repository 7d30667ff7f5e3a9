import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Handlers, MethodInfo, PlanSummary, RecipeProblem } from '../../shared/contract';
import { EngineError } from '../engine/errors';
import { MERGE_METHODS } from '../engine/methods/registry';
import { planRecipe } from '../engine/run-merge';
import { EventBus } from './events';
import { JobService } from './job-service';
import { LibraryService } from './library-service';
import type { AppPaths } from './paths';
import { SettingsService } from './settings-service';
import { createStudioHandlers } from './studio-handlers';

export interface ServicesOptions {
  paths: AppPaths;
  nodeBinary: string;
  outputRoot: string;
  /** Folders of models the user added, besides the demo models. */
  modelFolders?: string[];
  workDir?: string;
  /** Where settings are kept between runs; in memory only when absent. */
  settingsFile?: string;
}

export interface Services {
  handlers: Handlers;
  events: EventBus;
  jobs: JobService;
  library: LibraryService;
  settings: SettingsService;
}

/** Builds the services every face mounts: one handler per contract channel, one event bus. */
export function createServices(options: ServicesOptions): Services {
  const events = new EventBus();
  const modelRoots = [options.paths.demoModels, ...(options.modelFolders ?? [])];
  const library = new LibraryService([
    { path: options.paths.demoModels, source: 'demo' },
    ...(options.modelFolders ?? []).map((path) => ({ path, source: 'folder' as const })),
    // Finished merges are models too: they appear in the library beside their inputs.
    { path: options.outputRoot, source: 'folder' },
  ]);
  const jobs = new JobService({
    nodeBinary: options.nodeBinary,
    engineEntry: options.paths.engineEntry,
    workDir: options.workDir ?? join(tmpdir(), `alloy-jobs-${process.pid}`),
    outputRoot: options.outputRoot,
    modelRoots: [...modelRoots, options.outputRoot],
    events,
  });
  const settings = new SettingsService(options.settingsFile);
  const handlers: Handlers = {
    'library.list': () => library.list(),
    'methods.list': async () => [...MERGE_METHODS.values()].map(methodInfo),
    'recipe.demo': async () => ({ name: 'demo-linear', recipe: await readFile(options.paths.demoRecipe, 'utf8') }),
    'recipe.plan': async ({ recipe }) => {
      try {
        const plan = await planRecipe({ recipeText: recipe, recipeFile: 'recipe.yml', options: { modelRoots } });
        const summary: PlanSummary = {
          mergeMethod: plan.method,
          models: plan.models.map((m) => m.reference),
          tensors: plan.tensors.length,
          shards: plan.shards.map((s) => ({ file: s.file, tensors: s.tensors.length, bytes: s.bytes })),
          bytesToRead: plan.bytesToRead,
          bytesToWrite: plan.bytesToWrite,
          outDtype: plan.tensors[0]?.dtype ?? 'F32',
          warnings: plan.warnings,
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
    'job.list': async () => jobs.list(),
    ...createStudioHandlers({ modelRoots, settings }),
  };
  return { handlers, events, jobs, library, settings };
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
