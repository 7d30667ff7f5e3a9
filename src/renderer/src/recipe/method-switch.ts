import type { Document } from 'yaml';
import type { MethodInfo } from '../../../shared/contract';
import { readAt, type YamlPath } from './recipe-yaml';

/** Where a recipe sets parameters: recipe-wide, per model, per slice and per slice source. */
function parameterMaps(doc: Document): YamlPath[] {
  const paths: YamlPath[] = [['parameters']];
  const models = readAt(doc, ['models']);
  if (Array.isArray(models)) models.forEach((_, i) => paths.push(['models', i, 'parameters']));
  const slices = readAt(doc, ['slices']);
  if (Array.isArray(slices)) {
    slices.forEach((slice, i) => {
      paths.push(['slices', i, 'parameters']);
      const sources = (slice as { sources?: unknown } | null)?.sources;
      if (Array.isArray(sources)) sources.forEach((_, j) => paths.push(['slices', i, 'sources', j, 'parameters']));
    });
  }
  return paths;
}

/**
 * After a switch to `method`: removes from the document every parameter the method does not declare
 * (recipe-wide, per model, per slice), a `parameters:` left empty, and `base_model` where the method
 * takes none. Returns the names removed, each once, for the user to be told.
 */
export function dropUndeclared(doc: Document, method: MethodInfo): string[] {
  const declared = new Set(method.parameters.map((p) => p.name));
  const removed = new Set<string>();
  for (const path of parameterMaps(doc)) {
    const params = readAt(doc, path);
    if (!params || typeof params !== 'object' || Array.isArray(params)) continue;
    const keys = Object.keys(params);
    const drop = keys.filter((k) => !declared.has(k));
    for (const key of drop) {
      doc.deleteIn([...path, key]);
      removed.add(key);
    }
    if (drop.length && drop.length === keys.length) doc.deleteIn(path);
  }
  if (method.base === 'none' && doc.hasIn(['base_model'])) {
    doc.deleteIn(['base_model']);
    removed.add('base_model');
  }
  return [...removed];
}

/** A new recipe for `method`: its name, the parameters it requires (at their default, else mid-range), a dtype. */
export function newRecipeText(method: MethodInfo | undefined, name = method?.name ?? 'slerp'): string {
  const required = method?.parameters.filter((p) => p.scope === 'global' && p.required) ?? [];
  const value = (p: MethodInfo['parameters'][number]) =>
    p.default ?? (p.type === 'boolean' ? false : p.min !== undefined && p.max !== undefined ? (p.min + p.max) / 2 : 1);
  const parameters = required.length ? `parameters:\n${required.map((p) => `  ${p.name}: ${value(p)}\n`).join('')}` : '';
  return `merge_method: ${name}\n${parameters}dtype: float32\n`;
}
