import { EngineError } from '../errors';
import type { ModelReference, OutputSliceDefinition, ParameterMap, ParameterSetting, Recipe, SourcePosition } from './types';

export type SettingValue = number | boolean | string;

/**
 * mergekit's evaluate_setting: a gradient is interpolated at t in double precision
 * (`scaled = t·(n−1)`, `i0 = int(scaled)`), a list of non-numbers is indexed by `int(t·(n−1))`,
 * and the first conditional whose filter is absent, "*" or a substring of the tensor name wins.
 */
export function evaluateSetting(tensorName: string | undefined, setting: ParameterSetting, t: number): SettingValue | undefined {
  if (!Array.isArray(setting)) return setting;
  if (setting.every((e) => typeof e === 'number')) {
    const list = setting as number[];
    const scaled = t * (list.length - 1);
    const i0 = Math.trunc(scaled);
    const i1 = Math.min(list.length - 1, i0 + 1);
    const frac = scaled - i0;
    return (1 - frac) * list[i0]! + frac * list[i1]!;
  }
  for (const cond of setting) {
    if (typeof cond !== 'object') return setting[Math.trunc(t * (setting.length - 1))] as unknown as SettingValue;
    if (cond.filter === undefined || cond.filter === '*' || (tensorName && tensorName.includes(cond.filter))) {
      return evaluateSetting(tensorName, cond.value as ParameterSetting, t);
    }
  }
  return undefined;
}

export interface ParameterQuery {
  tensorName: string | undefined;
  model?: ModelReference;
  required?: boolean;
  default?: SettingValue | undefined;
}

/** mergekit's ConfigReader.parameter: source parameters for the model, then the slice's, then the module's (`modules:`), then the recipe's. */
export class ParameterResolver {
  constructor(
    private readonly recipe: Recipe,
    private readonly slice: OutputSliceDefinition | undefined,
    private readonly t: number,
    private readonly moduleParameters?: ParameterMap,
  ) {}

  parameter(name: string, query: ParameterQuery): SettingValue | undefined {
    return this.lookup(name, query)?.value;
  }

  /** As `parameter`, with where the recipe wrote the value (undefined for a default). */
  lookup(name: string, query: ParameterQuery): { value: SettingValue; position?: SourcePosition } | undefined {
    const { tensorName, model } = query;
    const maps: (ParameterMap | undefined)[] = [];
    if (this.slice) {
      if (model) for (const s of this.slice.sources) if (s.model.raw === model.raw) maps.push(s.parameters);
      maps.push(this.slice.parameters);
    }
    maps.push(this.moduleParameters);
    maps.push(this.recipe.parameters);
    for (const map of maps) {
      if (!map || !(name in map.values)) continue;
      const value = evaluateSetting(tensorName, map.values[name]!, this.t);
      if (value !== undefined) return { value, ...(map.positions[name] ? { position: map.positions[name] } : {}) };
    }
    if (query.required) {
      const at = model?.position;
      const where = `${model ? `${model.raw}` : 'the recipe'}${tensorName ? ` (tensor "${tensorName}")` : ''}`;
      const message = `${at ? `${at.file}:${at.line}:${at.column}: ` : ''}missing required parameter "${name}" for ${where}: give it under that model's parameters, or for all models under the recipe's`;
      throw new EngineError(message, { key: name, ...(tensorName ? { tensor: tensorName } : {}), ...(at ?? {}) });
    }
    return query.default === undefined ? undefined : { value: query.default };
  }
}
