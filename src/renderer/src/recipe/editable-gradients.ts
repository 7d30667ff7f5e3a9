import type { MethodParameterInfo } from '../../../shared/contract';
import type { GradientSeries } from '../../../shared/studio-contract';
import type { YamlPath } from './recipe-yaml';

/** One value list the chart and the table can edit: a parameter's setting for one model and one filter. */
export interface EditableGradient {
  parameter: string;
  model?: string;
  /** `self_attn`, `mlp`…; `rest` for a filterless entry after filtered ones; `all` without filters. */
  filter: string;
  /** Set for a value given in one slice (`slices[n].parameters`, or a source's): it spans that slice only. */
  slice?: number;
  /** Where the value is in the YAML document. */
  path: YamlPath;
  /** A gradient's anchors, or one number. */
  value: number | number[];
}

type Read = (path: YamlPath) => unknown;

function isValue(v: unknown): v is number | number[] {
  return typeof v === 'number' || (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number'));
}

function fromSetting(parameter: string, model: string | undefined, path: YamlPath, setting: unknown, slice?: number): EditableGradient[] {
  const base = { parameter, ...(model !== undefined ? { model } : {}), ...(slice !== undefined ? { slice } : {}) };
  if (isValue(setting)) return [{ ...base, filter: 'all', path, value: setting }];
  if (!Array.isArray(setting)) return [];
  return setting.flatMap((entry: unknown, k) => {
    if (!entry || typeof entry !== 'object') return [];
    const { filter, value } = entry as { filter?: unknown; value?: unknown };
    if (!isValue(value)) return [];
    const name = typeof filter === 'string' && filter !== '*' ? filter : 'rest';
    return [{ ...base, filter: name, path: [...path, k, 'value'], value }];
  });
}

const modelOf = (entry: unknown): string => (entry && typeof entry === 'object' ? String((entry as { model?: unknown }).model ?? '') : '');

/** Every numeric setting of the method's parameters in the shown document, the slices' own too. */
export function editableGradients(parameters: MethodParameterInfo[], read: Read): EditableGradient[] {
  const out: EditableGradient[] = [];
  const models = read(['models']);
  const slices = read(['slices']);
  for (const p of parameters.filter((p) => p.type === 'number')) {
    if (p.scope === 'global') out.push(...fromSetting(p.name, undefined, ['parameters', p.name], read(['parameters', p.name])));
    else if (Array.isArray(models)) {
      models.forEach((m: unknown, i) => {
        const path: YamlPath = ['models', i, 'parameters', p.name];
        out.push(...fromSetting(p.name, modelOf(m), path, read(path)));
      });
    }
    if (!Array.isArray(slices)) continue;
    slices.forEach((_: unknown, s) => {
      if (p.scope === 'global') out.push(...fromSetting(p.name, undefined, ['slices', s, 'parameters', p.name], read(['slices', s, 'parameters', p.name]), s));
      const sources = read(['slices', s, 'sources']);
      if (!Array.isArray(sources)) return;
      sources.forEach((source: unknown, j) => {
        const path: YamlPath = ['slices', s, 'sources', j, 'parameters', p.name];
        out.push(...fromSetting(p.name, modelOf(source), path, read(path), s));
      });
    });
  }
  return out;
}

/** The engine's line for an editable value; a lone filterless entry is drawn over every tensor. */
export function seriesFor(edit: EditableGradient, series: GradientSeries[]): GradientSeries | undefined {
  const mine = series.filter((s) => s.parameter === edit.parameter && (s.model ?? undefined) === edit.model);
  return mine.find((s) => s.filter === edit.filter) ?? (edit.filter === 'rest' ? mine.find((s) => s.filter === 'all') : undefined);
}

/** The label of the engine's line this value shapes: model and filter. */
export function lineLabelOf(edit: EditableGradient): string {
  return [edit.model, edit.filter === 'all' ? '' : edit.filter].filter(Boolean).join(' · ') || edit.parameter;
}

/** The value's own label: its line's, and the slice it is given in. */
export function labelOf(edit: EditableGradient): string {
  return edit.slice === undefined ? lineLabelOf(edit) : `slice ${edit.slice + 1} · ${lineLabelOf(edit)}`;
}
