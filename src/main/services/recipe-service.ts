import type { RecipeProblem } from '../../shared/contract';
import type { GradientSeries, RecipeGradientResult, RecipeParseResult, StageInfo } from '../../shared/studio-contract';
import { EngineError } from '../engine/errors';
import { getMergeMethod } from '../engine/methods/registry';
import type { ModelSearch } from '../engine/model/resolve-model';
import { planMerge } from '../engine/plan/plan-merge';
import type { MergePlan } from '../engine/plan/types';
import { ParameterResolver } from '../engine/recipe/evaluate-setting';
import { parseRecipes } from '../engine/recipe/parse-recipe';
import { buildStageGraph, referencedModels } from '../engine/recipe/stage-graph';
import { planStagesInOrder, standInOutputs, type StagePlan } from './plan-stages';
import type { ParameterSetting, Recipe } from '../engine/recipe/types';

const RECIPE_FILE = 'recipe.yml';

/** The engine's problems, without the file name (the editor has one recipe). */
export function problemsOf(error: EngineError): RecipeProblem[] {
  const problems = (error as EngineError & { problems?: RecipeProblem[] }).problems;
  if (problems?.length) return problems.map(({ message, line, column, key }) => ({ message, ...(line ? { line } : {}), ...(column ? { column } : {}), ...(key ? { key } : {}) }));
  const { line, column, key } = error.location;
  return [{ message: error.message, ...(line ? { line } : {}), ...(column ? { column } : {}), ...(key ? { key } : {}) }];
}

/** An unknown merge method is found by the planner; the editor wants it at parse time, at its key. */
function methodProblems(recipes: Recipe[]): RecipeProblem[] {
  const problems: RecipeProblem[] = [];
  for (const recipe of recipes) {
    try {
      getMergeMethod(recipe.mergeMethod);
    } catch (error) {
      const at = recipe.positions['merge_method'];
      problems.push({ message: (error as Error).message, key: 'merge_method', ...(at ? { line: at.line, column: at.column } : {}) });
    }
  }
  return problems;
}

/** Recipe text → its stages in run order, or every problem with its line and column. */
export function parseRecipeText(text: string): RecipeParseResult {
  try {
    const recipes = parseRecipes(text, RECIPE_FILE);
    const problems = methodProblems(recipes);
    if (problems.length) return { ok: false, problems };
    const graph = buildStageGraph(recipes, RECIPE_FILE);
    const stages = graph.order.map(
      (s): StageInfo => ({
        name: s.name,
        document: recipes.indexOf(s.recipe),
        method: s.recipe.mergeMethod,
        dependsOn: s.dependsOn,
        models: [...new Set(referencedModels(s.recipe).map((r) => r.raw))],
        final: s === graph.final,
      }),
    );
    return { ok: true, stages, warnings: recipes[0]?.warnings ?? [] };
  } catch (error) {
    if (error instanceof EngineError) return { ok: false, problems: problemsOf(error) };
    throw error;
  }
}

export interface GradientParams {
  recipe: string;
  document?: number;
  search: ModelSearch;
}

/**
 * Per-layer values of every parameter the recipe sets, as the engine applies them: read off the
 * engine's plan when the models are found, else evaluated by the engine's ParameterResolver over
 * the recipe's own layer ranges (a `slices:` recipe pasted before its models are downloaded).
 */
export async function recipeGradient({ recipe: text, document = 0, search }: GradientParams): Promise<RecipeGradientResult> {
  let recipes: Recipe[];
  let recipe: Recipe;
  try {
    recipes = parseRecipes(text, RECIPE_FILE);
    recipe = pickDocument(recipes, document);
    getMergeMethod(recipe.mergeMethod);
  } catch (error) {
    if (error instanceof EngineError) return { ok: false, problems: problemsOf(error) };
    throw error;
  }
  try {
    return gradientFromPlan(recipe, await planDocument(recipes, recipe, search));
  } catch (error) {
    if (!(error instanceof EngineError)) throw error;
    // Models not on disk yet: the slices' own ranges still say the layers; any other problem is the recipe's.
    if (recipe.slices && error.location.key === 'model') return gradientFromSlices(recipe);
    return { ok: false, problems: problemsOf(error) };
  }
}

/**
 * Plans one document of the recipe. A stage that reads earlier stages (not built yet) is planned
 * against the models their outputs take their shape from; where an earlier stage does not plan,
 * its name stays unresolved and says so.
 */
async function planDocument(recipes: Recipe[], recipe: Recipe, search: ModelSearch): Promise<MergePlan> {
  if (recipes.length === 1) return planMerge({ recipe, search });
  const { order } = buildStageGraph(recipes, RECIPE_FILE);
  const target = order.find((s) => s.recipe === recipe)!;
  const earlier = await planStagesInOrder(order.slice(0, order.indexOf(target)), search).catch((): StagePlan[] => []);
  return planMerge({ recipe, search: { ...search, stageOutputs: standInOutputs(target, earlier) } });
}

function pickDocument(recipes: Recipe[], document: number): Recipe {
  const recipe = recipes[document];
  if (!recipe) throw new EngineError(`the recipe has ${recipes.length} document(s); there is no document ${document + 1}`);
  return recipe;
}

/** Every filter the recipe writes for a parameter, in the order written. */
function filtersOf(recipe: Recipe, name: string): string[] {
  const settings: (ParameterSetting | undefined)[] = [recipe.parameters?.values[name]];
  for (const m of recipe.models ?? []) settings.push(m.parameters?.values[name]);
  for (const s of recipe.slices ?? []) {
    settings.push(s.parameters?.values[name]);
    for (const src of s.sources) settings.push(src.parameters?.values[name]);
  }
  const filters: string[] = [];
  for (const setting of settings) {
    if (!Array.isArray(setting)) continue;
    for (const entry of setting) {
      if (typeof entry === 'object' && entry.filter && entry.filter !== '*' && !filters.includes(entry.filter)) filters.push(entry.filter);
    }
  }
  return filters;
}

/** Which line a tensor belongs to: the first filter its name contains, else `rest` (`all` without filters). */
function groupOf(tensorName: string, filters: string[]): string {
  return filters.find((f) => tensorName.includes(f)) ?? (filters.length ? 'rest' : 'all');
}

function groupsOf(filters: string[]): string[] {
  return filters.length ? [...filters, 'rest'] : ['all'];
}

function layerOf(tensorName: string): number | undefined {
  const match = /\.(\d+)\./.exec(tensorName);
  return match ? Number(match[1]) : undefined;
}

class SeriesTable {
  private readonly byKey = new Map<string, GradientSeries>();

  constructor(private readonly layers: number) {}

  set(parameter: string, model: string | undefined, filter: string, layer: number, value: number): void {
    const key = JSON.stringify([parameter, model ?? null, filter]);
    let series = this.byKey.get(key);
    if (!series) {
      series = { parameter, ...(model !== undefined ? { model } : {}), filter, values: new Array<number | null>(this.layers).fill(null) };
      this.byKey.set(key, series);
    }
    if (series.values[layer] === null) series.values[layer] = value;
  }

  all(): GradientSeries[] {
    return [...this.byKey.values()];
  }
}

function numericParameters(recipe: Recipe): { name: string; scope: 'model' | 'global' }[] {
  return getMergeMethod(recipe.mergeMethod).parameters.filter((p) => p.type === 'number');
}

function gradientFromPlan(recipe: Recipe, plan: MergePlan): RecipeGradientResult {
  const layerTensors = plan.tensors.map((t) => ({ t, layer: layerOf(t.name) })).filter((x): x is { t: MergePlan['tensors'][number]; layer: number } => x.layer !== undefined);
  const layers = layerTensors.reduce((n, x) => Math.max(n, x.layer + 1), 0);
  const table = new SeriesTable(layers);
  // A method with a base takes no per-model value of it (its task vector is zero): no line is drawn for it.
  const usesBaseValues = getMergeMethod(recipe.mergeMethod).base === 'none';
  for (const param of numericParameters(recipe)) {
    const filters = filtersOf(recipe, param.name);
    for (const { t, layer } of layerTensors) {
      const group = groupOf(t.name, filters);
      if (param.scope === 'global') {
        const value = t.global[param.name];
        if (typeof value === 'number') table.set(param.name, undefined, group, layer, value);
        continue;
      }
      t.perModel.forEach((values, i) => {
        const value = values[param.name];
        const index = t.inputs[i]!.model;
        if (!usesBaseValues && index === plan.baseModel) return;
        const model = plan.models[index]!.reference;
        if (typeof value === 'number') table.set(param.name, model, group, layer, value);
      });
    }
  }
  return { ok: true, layers, source: 'plan', slices: sliceSpans(recipe, layers), series: table.all() };
}

function sliceSpans(recipe: Recipe, layers: number): { start: number; count: number }[] {
  if (!recipe.slices) return [{ start: 0, count: layers }];
  let start = 0;
  return recipe.slices.map((s) => {
    const range = s.sources[0]!.layerRange;
    const span = { start, count: range[1] - range[0] };
    start += span.count;
    return span;
  });
}

/**
 * The most output layers a `slices:` recipe is drawn for without its models. The deepest models have a
 * few hundred layers; a range past this is a typo (or a hostile request), and its arrays would take
 * gigabytes.
 */
export const MAX_GRADIENT_LAYERS = 10_000;

/** The planner's rule, without the models: layer i of a slice of n layers is at t = i / (n − 1). */
function gradientFromSlices(recipe: Recipe): RecipeGradientResult {
  const spans = sliceSpans(recipe, 0);
  const layers = spans.reduce((n, s) => n + s.count, 0);
  if (layers > MAX_GRADIENT_LAYERS) {
    const widest = recipe.slices!.map((s) => s.sources[0]!.layerRange).reduce((a, b) => (b[1] - b[0] > a[1] - a[0] ? b : a));
    const at = recipe.positions['slices'];
    return {
      ok: false,
      problems: [
        {
          message: `the slices' layer ranges add up to ${layers} layers (the widest is [${widest[0]}, ${widest[1]}]); Alloy draws gradients for at most ${MAX_GRADIENT_LAYERS} layers, and real models have a few hundred at most: check the layer_range values`,
          key: 'layer_range',
          ...(at ? { line: at.line, column: at.column } : {}),
        },
      ],
    };
  }
  const table = new SeriesTable(layers);
  for (const param of numericParameters(recipe)) {
    const groups = groupsOf(filtersOf(recipe, param.name));
    recipe.slices!.forEach((slice, si) => {
      const { start, count } = spans[si]!;
      for (let i = 0; i < count; i++) {
        const resolver = new ParameterResolver(recipe, slice, count > 1 ? i / (count - 1) : 1);
        for (const group of groups) {
          const tensorName = `model.layers.${start + i}.${group === 'rest' || group === 'all' ? 'input_layernorm' : group}.weight`;
          const models = param.scope === 'global' ? [undefined] : slice.sources.map((s) => s.model);
          for (const model of models) {
            const value = resolver.parameter(param.name, { tensorName, ...(model ? { model } : {}) });
            if (typeof value === 'number') table.set(param.name, model?.raw, group, start + i, value);
          }
        }
      }
    });
  }
  return { ok: true, layers, source: 'slices', slices: spans, series: table.all() };
}
