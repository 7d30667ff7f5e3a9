import * as v from 'valibot';
import type { PlanDevice, RecipeProblem } from './contract';

/**
 * The recipe editor's and the settings' channels: their own block of the contract, spread into
 * `requestSchemas` and `ResponseTypes` in `contract.ts`.
 */

/** One document of a (multi-stage) recipe, as the engine's stage graph orders it. */
export interface StageInfo {
  name: string;
  /** Position of the document in the YAML stream, from 0. */
  document: number;
  method: string;
  /** Names of the stages this one reads. */
  dependsOn: string[];
  /** Every model reference the stage names, as written. */
  models: string[];
  /** The stage whose output is the merge's output. */
  final: boolean;
}

export type RecipeParseResult =
  | { ok: true; stages: StageInfo[]; warnings: string[] }
  | { ok: false; problems: RecipeProblem[] };

/** A parameter's value at each output layer, for one model (per-model parameters) and one filter. */
export interface GradientSeries {
  parameter: string;
  /** The model's reference for per-model parameters; absent for global ones. */
  model?: string;
  /** The tensor-name filter this line follows (`self_attn`, `mlp`), `rest` for the others, `all` when the recipe has none. */
  filter: string;
  /** One value per output layer; null where the parameter does not apply. */
  values: (number | null)[];
}

export type RecipeGradientResult =
  | {
      ok: true;
      layers: number;
      /** `plan`: read off the engine's plan of the real models; `slices`: evaluated over the recipe's layer ranges (models not found). */
      source: 'plan' | 'slices';
      /** First output layer and layer count of each slice: a gradient spans one slice. */
      slices: { start: number; count: number }[];
      series: GradientSeries[];
    }
  | { ok: false; problems: RecipeProblem[] };

export interface Settings {
  theme: 'system' | 'light' | 'dark';
  /** Bytes of tensor data a merge may hold at once (--memory-budget). */
  memoryBudget: number;
  /** Bytes per output shard (--out-shard-size). */
  outShardSize: number;
  device: 'auto' | 'cpu' | 'gpu';
}

export const DEFAULT_SETTINGS: Settings = { theme: 'system', memoryBudget: 1 << 30, outShardSize: 5_000_000_000, device: 'auto' };

const recipeText = v.pipe(v.string(), v.maxLength(1_000_000));

export const studioRequestSchemas = {
  'recipe.parse': v.strictObject({ recipe: recipeText }),
  'recipe.gradient': v.strictObject({
    recipe: recipeText,
    /** Which document of a multi-stage recipe, from 0 (default: the first). */
    document: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1000))),
  }),
  'settings.get': v.strictObject({}),
  'settings.set': v.strictObject({
    theme: v.optional(v.picklist(['system', 'light', 'dark'])),
    memoryBudget: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1 << 20))),
    outShardSize: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1 << 20))),
    device: v.optional(v.picklist(['auto', 'cpu', 'gpu'])),
  }),
  /** Where a merge would compute with `device` (default: the settings' choice) on the services' machine: what `auto` resolves to. */
  'settings.device': v.strictObject({ device: v.optional(v.picklist(['auto', 'cpu', 'gpu'])) }),
} as const;

export interface StudioResponseTypes {
  'recipe.parse': RecipeParseResult;
  'recipe.gradient': RecipeGradientResult;
  'settings.get': Settings;
  'settings.set': Settings;
  /** The engine's own answer (`alloy devices --json`), the one a plan's "Computes on" shows. */
  'settings.device': PlanDevice;
}
