import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { defaultTorchThreads } from './methods/torch-reductions';
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { ProgressEvent } from '../../shared/progress';
import { EngineError } from './errors';
import { executePlan, type CacheMode, type ExecuteOptions } from './execute/execute-plan';
import { resolveModelPath, type ModelSearch } from './model/resolve-model';
import type { StageCard } from './output/model-card';
import { planMerge } from './plan/plan-merge';
import type { MergePlan } from './plan/types';
import { parseRecipes } from './recipe/parse-recipe';
import { buildStageGraph, referencedModels, type Stage, type StageGraph } from './recipe/stage-graph';
import type { Recipe } from './recipe/types';

export interface MergeOptions {
  /** mergekit's --out-shard-size, in bytes. */
  outShardSize?: number;
  seed?: number;
  allowCrimes?: boolean;
  /** mergekit's --unsafe-truncate-embeddings. */
  unsafeTruncateEmbeddings?: boolean;
  copyTokenizer?: boolean;
  writeModelCard?: boolean;
  overwrite?: boolean;
  memoryBudget?: number;
  device?: 'auto' | 'cpu' | 'gpu';
  modelRoots?: string[];
  /** Where the stages of a multi-document recipe are built (default: a hidden folder beside the output). */
  intermediateDir?: string;
  /** Where base+LoRA references are merged and kept (mergekit's --lora-merge-cache). */
  loraMergeCache?: string;
  /** Reproduce torch's sums as with this many threads (default: this machine's physical cores, as torch). */
  torchThreads?: number;
  /** Continue an interrupted merge from the shards it finished (`--resume`). */
  resume?: boolean;
  /** How models are read (`--reads`) and shards written (`--writes`): past the page cache, through it, or `auto` (see CacheMode). */
  reads?: CacheMode;
  writes?: CacheMode;
}

export interface PlanRecipeParams {
  recipeText: string;
  /** Where the recipe came from: errors name it, relative model paths resolve beside it. */
  recipeFile: string;
  options?: MergeOptions;
}

function searchFor(recipeFile: string, options: MergeOptions, stageOutputs?: ReadonlyMap<string, string>): ModelSearch {
  return {
    recipeDir: dirname(resolve(recipeFile)),
    modelRoots: options.modelRoots ?? [],
    ...(stageOutputs ? { stageOutputs } : {}),
    ...(options.loraMergeCache ? { loraMergeCache: options.loraMergeCache } : {}),
  };
}

function planOne(recipe: Recipe, recipeFile: string, options: MergeOptions, stageOutputs?: ReadonlyMap<string, string>, buildLoraMerges = false): Promise<MergePlan> {
  return planMerge({
    recipe,
    buildLoraMerges,
    search: searchFor(recipeFile, options, stageOutputs),
    ...(options.outShardSize !== undefined ? { outShardSize: options.outShardSize } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.allowCrimes !== undefined ? { allowCrimes: options.allowCrimes } : {}),
    ...(options.unsafeTruncateEmbeddings ? { unsafeTruncateEmbeddings: true } : {}),
  });
}

/** Parses a one-stage recipe and plans it against the models' headers. */
export async function planRecipe({ recipeText, recipeFile, options = {} }: PlanRecipeParams): Promise<MergePlan> {
  const recipes = parseRecipes(recipeText, recipeFile);
  if (recipes.length !== 1) {
    throw new EngineError(`${recipeFile}: holds ${recipes.length} stages; plan them with describeStages or run them with runMerge`, { file: recipeFile });
  }
  return planOne(recipes[0]!, recipeFile, options);
}

/** The stages of a recipe in the order they run, one line each: for `alloy plan` and the app's graph. */
export function describeStages(recipeText: string, recipeFile: string): { graph: StageGraph; lines: string[] } {
  const graph = buildStageGraph(parseRecipes(recipeText, recipeFile), recipeFile);
  const lines = graph.order.map((s, i) => {
    const reads = s.dependsOn.length ? ` ← ${s.dependsOn.join(', ')}` : '';
    return `${i + 1}. ${s.name} (${s.recipe.mergeMethod})${reads}${s === graph.final ? '  [output]' : ''}`;
  });
  return { graph, lines };
}

export interface RunMergeParams extends PlanRecipeParams {
  outDir: string;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
}

function executeOptions(params: RunMergeParams, outDir: string, overwrite: boolean | undefined): ExecuteOptions {
  const { options = {}, onProgress } = params;
  return {
    outDir,
    ...(overwrite !== undefined ? { overwrite } : {}),
    ...(options.copyTokenizer !== undefined ? { copyTokenizer: options.copyTokenizer } : {}),
    ...(options.writeModelCard !== undefined ? { writeModelCard: options.writeModelCard } : {}),
    ...(options.memoryBudget !== undefined ? { memoryBudget: options.memoryBudget } : {}),
    torchThreads: options.torchThreads ?? machineTorchThreads(),
    ...(options.device ? { device: options.device } : {}),
    ...(options.resume ? { resume: true } : {}),
    ...(options.reads ? { reads: options.reads } : {}),
    ...(options.writes ? { writes: options.writes } : {}),
    ...(params.signal ? { signal: params.signal } : {}),
    ...(onProgress ? { onProgress } : {}),
  };
}

function machineTorchThreads(): number {
  const cpuinfo = (() => {
    try {
      return readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return undefined;
    }
  })();
  return defaultTorchThreads(cpuinfo, availableParallelism());
}

/** Says that base+LoRA models are merged now (those not in the LoRA merge cache yet), before the plan that builds them. */
function announceLoraMerges(recipe: Recipe, onProgress: RunMergeParams['onProgress']): void {
  const adapted = [...new Set(referencedModels(recipe).filter((ref) => ref.lora).map((ref) => ref.raw))];
  if (adapted.length > 0) onProgress?.({ type: 'stage', stage: 'plan', message: `merging LoRA adapters into their bases where the LoRA merge cache lacks them: ${adapted.join(', ')}` });
}

/** Recipe text → merged model folder at `outDir`. The one entry point of the CLI, the jobs and the tests. */
export async function runMerge(params: RunMergeParams) {
  const { options = {}, onProgress } = params;
  onProgress?.({ type: 'stage', stage: 'plan', message: `planning ${params.recipeFile}` });
  const recipes = parseRecipes(params.recipeText, params.recipeFile);
  if (recipes.length > 1) return runStages(params, buildStageGraph(recipes, params.recipeFile));
  announceLoraMerges(recipes[0]!, onProgress);
  const plan = await planOne(recipes[0]!, params.recipeFile, options, undefined, true);
  for (const warning of plan.warnings) onProgress?.({ type: 'warning', message: warning });
  return { plan, ...(await executePlan(plan, executeOptions(params, resolve(params.outDir), options.overwrite))) };
}

/**
 * mergekit-multi: each stage is built into the intermediate folder (the final one into `outDir`),
 * later stages read earlier outputs, and a stage whose recipe and inputs are unchanged is not rebuilt.
 */
async function runStages(params: RunMergeParams, graph: StageGraph) {
  const { options = {}, onProgress } = params;
  const outDir = resolve(params.outDir);
  const stagesDir = resolve(options.intermediateDir ?? join(dirname(outDir), `.${basename(outDir)}.stages`));
  await mkdir(stagesDir, { recursive: true });
  const outputs = new Map<string, string>();
  const stamps = new Map<string, string>();
  let last: Awaited<ReturnType<typeof executePlan>> & { plan: MergePlan | undefined } = { outDir, bytesWritten: 0, seconds: 0, plan: undefined };
  for (const [i, stage] of graph.order.entries()) {
    const isFinal = stage === graph.final;
    const target = isFinal ? outDir : join(stagesDir, stage.name);
    const stageOutputs = new Map([...stage.references].map(([raw, name]) => [raw, outputs.get(name)!]));
    const stamp = await stageStamp(stage, stamps, searchFor(params.recipeFile, options, stageOutputs));
    const stampFile = join(stagesDir, `${stage.name}.stamp`);
    const label = `stage ${i + 1}/${graph.order.length}: ${stage.name} (${stage.recipe.mergeMethod})`;
    outputs.set(stage.name, target);
    stamps.set(stage.name, stamp);
    if ((await readFile(stampFile, 'utf8').catch(() => '')) === stamp && (await stat(join(target, 'config.json')).catch(() => undefined))) {
      onProgress?.({ type: 'stage', stage: 'plan', message: `${label} is up to date` });
      continue;
    }
    onProgress?.({ type: 'stage', stage: 'plan', message: label });
    announceLoraMerges(stage.recipe, onProgress);
    const planned = await planOne(stage.recipe, params.recipeFile, options, stageOutputs, true);
    // The output's card tells the whole recipe: every stage, the models they read, all its documents.
    const plan = isFinal ? { ...planned, modelCard: { ...planned.modelCard, recipeYaml: params.recipeText, stages: graph.order.map(stageCard) } } : planned;
    for (const warning of plan.warnings) onProgress?.({ type: 'warning', message: warning });
    const result = await executePlan(plan, executeOptions(params, target, isFinal ? options.overwrite : true));
    await writeFile(stampFile, stamp);
    last = { ...result, plan };
  }
  return last;
}

function stageCard(stage: Stage): StageCard {
  const base = stage.recipe.baseModel;
  const named = (raw: string) => stage.references.get(raw) ?? raw;
  const models = [...new Set(referencedModels(stage.recipe).filter((ref) => ref.raw !== base?.raw).map((ref) => named(ref.raw)))];
  return { name: stage.name, mergeMethod: stage.recipe.mergeMethod, ...(base ? { baseModel: named(base.raw) } : {}), models };
}

/** What a stage's output depends on: its recipe text, its upstream stages, and its input models' files. */
async function stageStamp(stage: Stage, upstream: Map<string, string>, search: ModelSearch): Promise<string> {
  const hash = createHash('sha256').update(stage.recipe.source.text);
  for (const dep of stage.dependsOn) hash.update(`\0${dep}:${upstream.get(dep)}`);
  for (const ref of referencedModels(stage.recipe)) {
    if (stage.references.has(ref.raw)) continue;
    const dir = await resolveModelPath(ref, search).catch(() => ref.raw);
    for (const file of ['config.json', 'model.safetensors.index.json', 'model.safetensors']) {
      const info = await stat(join(dir, file)).catch(() => undefined);
      if (info) hash.update(`\0${dir}/${file}:${info.size}:${info.mtimeMs}`);
    }
  }
  return hash.digest('hex');
}
