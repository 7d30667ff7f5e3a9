import { dirname, resolve } from 'node:path';
import type { ProgressEvent } from '../../shared/progress';
import { EngineError } from './errors';
import { executePlan, type ExecuteOptions } from './execute/execute-plan';
import type { ModelSearch } from './model/resolve-model';
import { planMerge } from './plan/plan-merge';
import type { MergePlan } from './plan/types';
import { parseRecipes } from './recipe/parse-recipe';

export interface MergeOptions {
  /** mergekit's --out-shard-size, in bytes. */
  outShardSize?: number;
  seed?: number;
  allowCrimes?: boolean;
  copyTokenizer?: boolean;
  writeModelCard?: boolean;
  overwrite?: boolean;
  memoryBudget?: number;
  device?: 'auto' | 'cpu' | 'gpu';
  modelRoots?: string[];
}

export interface PlanRecipeParams {
  recipeText: string;
  /** Where the recipe came from: errors name it, relative model paths resolve beside it. */
  recipeFile: string;
  options?: MergeOptions;
}

/** Parses a one-stage recipe and plans it against the models' headers. */
export async function planRecipe({ recipeText, recipeFile, options = {} }: PlanRecipeParams): Promise<MergePlan> {
  const recipes = parseRecipes(recipeText, recipeFile);
  if (recipes.length !== 1) {
    throw new EngineError(`${recipeFile}: holds ${recipes.length} recipes; multi-stage recipes are not supported yet`, { file: recipeFile });
  }
  const search: ModelSearch = { recipeDir: dirname(resolve(recipeFile)), modelRoots: options.modelRoots ?? [] };
  return planMerge({
    recipe: recipes[0]!,
    search,
    ...(options.outShardSize !== undefined ? { outShardSize: options.outShardSize } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.allowCrimes !== undefined ? { allowCrimes: options.allowCrimes } : {}),
  });
}

export interface RunMergeParams extends PlanRecipeParams {
  outDir: string;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
}

/** Recipe text → merged model folder at `outDir`. The one entry point of the CLI, the jobs and the tests. */
export async function runMerge(params: RunMergeParams) {
  const { options = {}, onProgress } = params;
  onProgress?.({ type: 'stage', stage: 'plan', message: `planning ${params.recipeFile}` });
  if (options.device === 'gpu') {
    onProgress?.({ type: 'warning', message: 'the GPU backend is not built yet; merging on the CPU' });
  }
  const plan = await planRecipe(params);
  for (const warning of plan.warnings) onProgress?.({ type: 'warning', message: warning });
  const execute: ExecuteOptions = {
    outDir: resolve(params.outDir),
    ...(options.overwrite !== undefined ? { overwrite: options.overwrite } : {}),
    ...(options.copyTokenizer !== undefined ? { copyTokenizer: options.copyTokenizer } : {}),
    ...(options.writeModelCard !== undefined ? { writeModelCard: options.writeModelCard } : {}),
    ...(options.memoryBudget !== undefined ? { memoryBudget: options.memoryBudget } : {}),
    ...(params.signal ? { signal: params.signal } : {}),
    ...(onProgress ? { onProgress } : {}),
  };
  return { plan, ...(await executePlan(plan, execute)) };
}
