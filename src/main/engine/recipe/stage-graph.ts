import { isAbsolute, win32 } from 'node:path';
import { EngineError } from '../errors';
import type { ModelReference, Recipe, SourcePosition } from './types';

export interface Stage {
  recipe: Recipe;
  /** The stage's name, or `(final)` for the unnamed document. */
  name: string;
  /** Names of the stages whose outputs this one reads. */
  dependsOn: string[];
  /** Model references (as written) that point at another stage, by that stage's name. */
  references: Map<string, string>;
}

export interface StageGraph {
  /** Stages in the order they run: every stage after the ones it reads. */
  order: Stage[];
  final: Stage;
}

export function referencedModels(recipe: Recipe): ModelReference[] {
  const refs: ModelReference[] = [];
  if (recipe.baseModel) refs.push(recipe.baseModel);
  for (const m of recipe.models ?? []) refs.push(m.model);
  for (const s of [...(recipe.slices ?? []), ...(recipe.modules ?? []).flatMap((m) => m.slices ?? [])]) {
    if (s.baseModel) refs.push(s.baseModel);
    for (const src of s.sources) refs.push(src.model);
  }
  for (const m of recipe.modules ?? []) for (const model of m.models ?? []) refs.push(model.model);
  const tok = recipe.tokenizer?.source ?? recipe.tokenizerSource;
  if (tok && typeof tok === 'object') refs.push(tok);
  return refs;
}

/**
 * A reference names a stage when its path is the stage's name (mergekit-multi's rule) or, unless it
 * is an explicit local path (absolute, or from ./ or ../), ends with `/name`, as model cards write
 * them (`merges/lamarck-14b-converge-della`).
 */
function stageNamed(ref: ModelReference, names: Set<string>): string | undefined {
  if (names.has(ref.path)) return ref.path;
  if (isAbsolute(ref.path) || win32.isAbsolute(ref.path) || /^\.\.?[\\/]/.test(ref.path)) return undefined;
  const last = ref.path.replace(/\/+$/, '').split('/').pop() ?? '';
  return ref.path.includes('/') && names.has(last) ? last : undefined;
}

/** Where `stage`'s recipe names the stage `target` (the reference that closes a cycle). */
function referencePosition(stage: Stage, target: string): SourcePosition | undefined {
  const raw = [...stage.references].find(([, name]) => name === target)?.[0];
  return referencedModels(stage.recipe).find((ref) => ref.raw === raw)?.position;
}

/** Orders a multi-document recipe by its dependencies, the output last; cycles and two unnamed documents are errors. */
export function buildStageGraph(recipes: Recipe[], file: string): StageGraph {
  const names = new Set<string>();
  const unnamed = recipes.flatMap((r, i) => (r.name ? [] : [i + 1]));
  if (unnamed.length > 1) throw new EngineError(`${file}: documents ${unnamed.join(', ')} have no "name:"; one document at most may be unnamed (it is the output)`, { file, key: 'name' });
  recipes.forEach((r) => {
    if (r.name && names.has(r.name)) throw new EngineError(`${file}: two documents are named "${r.name}"`, { file, key: 'name' });
    if (r.name) names.add(r.name);
  });
  const stages = recipes.map((recipe): Stage => {
    const references = new Map<string, string>();
    for (const ref of referencedModels(recipe)) {
      const target = stageNamed(ref, names);
      if (target && target !== recipe.name) references.set(ref.raw, target);
    }
    return { recipe, name: recipe.name ?? '(final)', dependsOn: [...new Set(references.values())], references };
  });
  const byName = new Map(stages.map((s) => [s.name, s]));
  const order: Stage[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (stage: Stage, path: string[]) => {
    if (state.get(stage.name) === 'done') return;
    if (state.get(stage.name) === 'visiting') {
      const at = referencePosition(byName.get(path.at(-1)!)!, stage.name);
      const where = at ? `${at.file}:${at.line}:${at.column}` : file;
      throw new EngineError(`${where}: the stages depend on each other in a cycle: ${[...path, stage.name].join(' → ')}`, { file, ...(at ? { line: at.line, column: at.column } : {}) });
    }
    state.set(stage.name, 'visiting');
    for (const dep of stage.dependsOn) visit(byName.get(dep)!, [...path, stage.name]);
    state.set(stage.name, 'done');
    order.push(stage);
  };
  for (const stage of stages) visit(stage, []);
  // The unnamed document is the output, wherever it stands (mergekit-multi); else the last stage nothing reads.
  const needed = new Set(stages.flatMap((s) => s.dependsOn));
  const sinks = stages.filter((s) => !needed.has(s.name));
  const final = stages.find((s) => !s.recipe.name) ?? sinks[sinks.length - 1] ?? stages[stages.length - 1]!;
  // Nothing reads the output, so it can be built last.
  order.splice(order.indexOf(final), 1);
  order.push(final);
  return { order, final };
}
