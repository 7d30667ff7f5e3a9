/**
 * Which tensors a model has, from its config.json: mergekit's architecture lookup
 * (mergekit/architecture/__init__.py `arch_info_for_config`) over the definitions in
 * `definitions.ts`.
 */
import { EngineError } from '../errors';
import { ARCHITECTURES, LAYER_INDEX, prefixedModule } from './definitions';
import type { ArchitectureDef, ArchitectureModule, WeightInfo } from './types';

export type { ArchitectureDef, ArchitectureModule, WeightInfo } from './types';
export { ARCHITECTURES, LAYER_INDEX } from './definitions';

/** Class names that load a causal LM head, the only kind a `model_type` fallback may stand for. */
const CAUSAL_LM_CLASS = /(?:ForCausalLM|LMHeadModel)$/;

/**
 * The definition for a model's config.json, found as mergekit finds it:
 * 1. `architectures` must name exactly one class (mergekit: "More than one architecture in config?");
 * 2. the definitions listing that class name; one is the answer whatever `model_type` says;
 *    several (PhiForCausalLM: `phi` and `phi-msft`) are told apart by `model_type`;
 * 3. Alloy's fallback where mergekit would instead guess the layout from tensor names: with no
 *    `architectures`, or an unknown `…ForCausalLM` / `…LMHeadModel` class, the definition whose
 *    `model_type` matches. Other unknown classes (a classification head, say) are refused, since
 *    their tensors differ from the causal LM's.
 */
export function resolveArchitecture(config: Record<string, unknown>, configFile: string): ArchitectureDef {
  const modelType = typeof config['model_type'] === 'string' ? config['model_type'] : undefined;
  const archNames = readArchitectures(config, configFile);
  const archName = archNames[0];

  if (archName !== undefined) {
    const candidates = ARCHITECTURES.filter((def) => def.architectures.includes(archName));
    if (candidates.length === 1) return candidates[0]!;
    if (candidates.length > 1) {
      const match = candidates.find((def) => def.modelType === modelType);
      if (match) return match;
      throw new EngineError(
        `${configFile}: "${archName}" is defined for model_type ${candidates.map((d) => `"${d.modelType}"`).join(' and ')}, ` +
          `but the config's model_type is ${modelType === undefined ? 'missing' : `"${modelType}"`}`,
        { file: configFile, key: 'model_type' },
      );
    }
  }

  if (modelType !== undefined && (archName === undefined || CAUSAL_LM_CLASS.test(archName))) {
    const byType = ARCHITECTURES.find((def) => def.modelType === modelType);
    if (byType) return byType;
  }

  const what = [archName !== undefined ? `architecture "${archName}"` : 'no "architectures" entry', modelType !== undefined ? `model_type "${modelType}"` : 'no model_type']
    .join(', ');
  throw new EngineError(`${configFile}: unknown model architecture (${what}). Alloy can merge: ${knownArchitectures()}`, {
    file: configFile,
    key: archName !== undefined ? 'architectures' : 'model_type',
  });
}

/** `Class (model_type)` for every definition, for messages and help. */
export function knownArchitectures(): string {
  return ARCHITECTURES.flatMap((def) => def.architectures.map((a) => `${a} (${def.modelType})`)).join(', ');
}

function readArchitectures(config: Record<string, unknown>, configFile: string): string[] {
  const value = config['architectures'];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) {
    throw new EngineError(`${configFile}: "architectures" must be a list of class names`, { file: configFile, key: 'architectures' });
  }
  if (value.length > 1) {
    throw new EngineError(`${configFile}: "architectures" names ${value.length} classes (${value.join(', ')}); a merge needs exactly one`, {
      file: configFile,
      key: 'architectures',
    });
  }
  return value;
}

/** The layer count from config.json (`num_hidden_layers`, gpt2's `n_layer`, …; dotted keys reach into nested configs). */
export function numLayers(def: ArchitectureDef, config: Record<string, unknown>, configFile: string): number {
  let value = getConfigValue(config, def.numLayersKey);
  for (const alias of def.numLayersAliases ?? []) if (value === undefined) value = getConfigValue(config, alias);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    const found = value === undefined ? 'is missing' : `is ${JSON.stringify(value)}, not a layer count`;
    throw new EngineError(`${configFile}: "${def.numLayersKey}" ${found} (a ${def.modelType} model keeps its number of layers there)`, {
      file: configFile,
      key: def.numLayersKey,
    });
  }
  return value;
}

/** mergekit's get_config_value: `a.b.c` walks nested objects. */
export function getConfigValue(config: Record<string, unknown>, key: string): unknown {
  let obj: unknown = config;
  for (const part of key.split('.')) {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || !Object.prototype.hasOwnProperty.call(obj, part)) return undefined;
    obj = (obj as Record<string, unknown>)[part];
  }
  return obj;
}

/** The weights of layer `layerIndex`: the layer templates with `${layer_index}` (and `${layer_index±1}`) filled in. */
export function layerWeights(def: ArchitectureDef, layerIndex: number): WeightInfo[] {
  return def.layerWeights.map((w) => substituteWeight(w, layerIndex));
}

/** Every weight of a model with `layers` layers, in the order a merge writes them. */
export function allWeights(def: ArchitectureDef, layers: number): WeightInfo[] {
  const res = [...def.preWeights];
  for (let i = 0; i < layers; i++) res.push(...layerWeights(def, i));
  res.push(...def.postWeights);
  return res;
}

function substituteWeight(w: WeightInfo, layerIndex: number): WeightInfo {
  const res: WeightInfo = { ...w, name: substitute(w.name, layerIndex) };
  if (w.aliases) res.aliases = w.aliases.map((a) => substitute(a, layerIndex));
  if (w.tiedNames) res.tiedNames = w.tiedNames.map((t) => substitute(t, layerIndex));
  return res;
}

/** mergekit's TemplateWithArithmetic, for the layer placeholders. */
function substitute(template: string, layerIndex: number): string {
  if (!template.includes('${')) return template;
  return template.replace(/\$\{layer_index([+-]1)?\}/g, (_, delta: string | undefined) => String(layerIndex + (delta ? Number(delta) : 0)));
}

/** The text before `${layer_index}` in each layer template and alias: `model.layers.`, `transformer.h.`, `h.`. */
function layerPrefixes(def: ArchitectureDef): string[] {
  const prefixes = new Set<string>();
  for (const w of def.layerWeights) {
    for (const name of [w.name, ...(w.aliases ?? [])]) {
      const at = name.indexOf(LAYER_INDEX);
      if (at >= 0) prefixes.add(name.slice(0, at));
    }
  }
  // Longest first, so `transformer.h.` wins over a shorter prefix it ends with.
  return [...prefixes].sort((a, b) => b.length - a.length);
}

/**
 * The layer a tensor belongs to, or undefined for embeddings, final norm, lm_head and names outside
 * the architecture. Any tensor under a layer prefix counts (`model.layers.7.self_attn.rotary_emb.inv_freq`
 * is layer 7), not only the templated ones.
 */
export function layerOfTensor(def: ArchitectureDef, name: string): number | undefined {
  for (const prefix of layerPrefixes(def)) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(name.slice(prefix.length));
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** One module of a model with its tensors under their checkpoint names (prefix applied). */
export type ModuleInfo = Omit<ArchitectureModule, 'weightPrefix'>;

/**
 * A model's modules in the definition's order, as mergekit sees them: a one-part model is one module
 * named `default` (so `modules: {default: ...}` is a valid recipe for it, as in mergekit).
 */
export function architectureModules(def: ArchitectureDef): ModuleInfo[] {
  if (!def.modules) {
    return [{
      name: 'default',
      preWeights: def.preWeights,
      layerWeights: def.layerWeights,
      postWeights: def.postWeights,
      numLayersKey: def.numLayersKey,
      ...(def.numLayersAliases ? { numLayersAliases: def.numLayersAliases } : {}),
    }];
  }
  return def.modules.map((m) => ({
    name: m.name,
    ...prefixedModule(m),
    ...(m.numLayersKey !== undefined ? { numLayersKey: m.numLayersKey } : {}),
    ...(m.numLayersAliases ? { numLayersAliases: m.numLayersAliases } : {}),
    ...(m.fixedLayers !== undefined ? { fixedLayers: m.fixedLayers } : {}),
  }));
}

/** A module's layer count in a model: fixed by the definition, else read from config.json as `numLayers` does. */
export function moduleNumLayers(def: ArchitectureDef, module: ModuleInfo, config: Record<string, unknown>, configFile: string): number {
  if (module.fixedLayers !== undefined) return module.fixedLayers;
  if (module.numLayersKey === undefined) return 0;
  return numLayers(
    { ...def, numLayersKey: module.numLayersKey, numLayersAliases: module.numLayersAliases ?? [], modelType: def.modules ? `${def.modelType} ${module.name}` : def.modelType },
    config,
    configFile,
  );
}

/** The weights of layer `layerIndex` of a module. */
export function moduleLayerWeights(module: ModuleInfo, layerIndex: number): WeightInfo[] {
  return module.layerWeights.map((w) => substituteWeight(w, layerIndex));
}
