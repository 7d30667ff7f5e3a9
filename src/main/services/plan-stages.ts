import { dirname, resolve } from 'node:path';
import type { PlanSummary, PlannedStage } from '../../shared/contract';
import { planMerge } from '../engine/plan/plan-merge';
import type { ModelSearch } from '../engine/model/resolve-model';
import type { MergePlan } from '../engine/plan/types';
import { parseRecipes } from '../engine/recipe/parse-recipe';
import { buildStageGraph, type Stage } from '../engine/recipe/stage-graph';

const RECIPE_FILE = 'recipe.yml';

/** What a plan of the whole recipe says about its merges; the services add the disk, the device and the time. */
export type RecipePlanFacts = Omit<PlanSummary, 'diskFree' | 'device' | 'deviceError' | 'estimate'>;

export interface StagePlan {
  stage: Stage;
  plan: MergePlan;
}

/** The model a stage's output takes its tensors' names and shapes from: its base, else its first model. */
function shapeSource(plan: MergePlan): string {
  return plan.models[plan.baseModel ?? 0]!.path;
}

/** For planning `stage` before the earlier stages it reads are built: each reference to one points at that stage's shape source. */
export function standInOutputs(stage: Stage, earlier: readonly StagePlan[]): Map<string, string> {
  const standIns = new Map(earlier.map((s) => [s.stage.name, shapeSource(s.plan)]));
  return new Map([...stage.references].flatMap(([raw, name]) => (standIns.has(name) ? [[raw, standIns.get(name)!] as const] : [])));
}

/**
 * Plans stages in the order they run, before any is built: a stage that reads an earlier one is
 * planned against the model that stage's output takes its shape from, so its reads and writes are
 * estimates (exact where the stage keeps its inputs' dtype).
 */
export async function planStagesInOrder(order: readonly Stage[], search: ModelSearch, outShardSize?: number): Promise<StagePlan[]> {
  const planned: StagePlan[] = [];
  for (const stage of order) {
    const stageSearch = { ...search, stageOutputs: standInOutputs(stage, planned) };
    const plan = await planMerge({ recipe: stage.recipe, search: stageSearch, ...(outShardSize ? { outShardSize } : {}) });
    planned.push({ stage, plan });
  }
  return planned;
}

async function planEachStage(recipeText: string, modelRoots: string[], outShardSize?: number): Promise<StagePlan[]> {
  const graph = buildStageGraph(parseRecipes(recipeText, RECIPE_FILE), RECIPE_FILE);
  return planStagesInOrder(graph.order, { recipeDir: dirname(resolve(RECIPE_FILE)), modelRoots }, outShardSize);
}

function stageSummary({ stage, plan }: StagePlan, final: boolean): PlannedStage {
  return { name: stage.name, method: plan.method, reads: stage.dependsOn, tensors: plan.tensors.length, bytesToRead: plan.bytesToRead, bytesToWrite: plan.bytesToWrite, final };
}

/** The recipe's plan: for a multi-stage recipe, the output's tensors and shards, every stage's reads and writes summed, and each stage. */
export async function planRecipeStages(recipeText: string, modelRoots: string[], outShardSize?: number): Promise<RecipePlanFacts> {
  const planned = await planEachStage(recipeText, modelRoots, outShardSize);
  const { plan: final } = planned.at(-1)!;
  const multi = planned.length > 1;
  const sum = (key: 'bytesToRead' | 'bytesToWrite') => planned.reduce((total, s) => total + s.plan[key], 0);
  // The models read from disk: a reference to an earlier stage is that stage's output, not a model.
  const models = planned.flatMap(({ stage, plan }) => plan.models.map((m) => m.reference).filter((ref) => !stage.references.has(ref)));
  return {
    mergeMethod: final.method,
    models: [...new Set(models)],
    tensors: final.tensors.length,
    shards: final.shards.map((s) => ({ file: s.file, tensors: s.tensors.length, bytes: s.bytes })),
    bytesToRead: sum('bytesToRead'),
    bytesToWrite: sum('bytesToWrite'),
    outDtype: final.tensors[0]?.dtype ?? 'F32',
    // The recipe's own warnings (an ignored key, with its line) come with every stage's plan: each is said once.
    warnings: [...new Set(planned.flatMap(({ plan }) => plan.warnings))],
    ...(multi ? { stages: planned.map((s, i) => stageSummary(s, i === planned.length - 1)) } : {}),
  };
}
