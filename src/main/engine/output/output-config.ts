/**
 * The merged model's config.json, as mergekit writes it (mergekit/merge.py `_model_out_config`,
 * then transformers' `PretrainedConfig.save_pretrained`).
 */
import type { ArchitectureDef } from '../architecture';
import { EngineError } from '../errors';
import { parseTorchDtype, torchDtypeName } from '../safetensors/dtype';

export interface OutputConfigParams {
  /** config.json of the base model, or of the first referenced model when there is no base. */
  baseConfig: Record<string, unknown>;
  /**
   * Layers of the output: the sum of the slices' lengths. mergekit writes it only for `slices:`
   * recipes; for `models:` recipes it equals the base model's count, so passing it is harmless.
   */
  numLayers?: number;
  /**
   * For a multimodal model: the layer count of each module given as slices (mergekit writes none for
   * a module given as models), under that module's key (`text_config.num_hidden_layers`).
   */
  moduleLayers?: { module: string; key?: string; count: number }[];
  /** The recipe's `out_dtype`, else its `dtype` (mergekit's order). */
  outDtype?: string;
  def: ArchitectureDef;
}

/**
 * A copy of `baseConfig` with the layer count and dtype of the merge, key order kept.
 *
 * The dtype goes under `dtype`, not `torch_dtype`: mergekit requires transformers ≥ 5, whose
 * config reads a legacy `torch_dtype` into `dtype` and saves only `dtype`. So a base config's
 * `torch_dtype` key is renamed in place even when the recipe sets no dtype.
 *
 * Where transformers' save differs and this does not follow: it sorts keys, drops values equal to
 * the class defaults and stamps its own `transformers_version`; Alloy keeps the base config's
 * keys, order and version as they are.
 */
export function makeOutputConfig(params: OutputConfigParams): Record<string, unknown> {
  const { baseConfig, numLayers, outDtype, def } = params;
  let config = structuredClone(baseConfig);

  const dtype = outDtype !== undefined ? canonicalDtype(outDtype) : undefined;
  config = withDtypeKey(config, dtype);

  if (numLayers !== undefined && def.numLayersKey) {
    // transformers writes the layer count under the key the config already uses (EXAONE: `num_layers`).
    const keys = [def.numLayersKey, ...(def.numLayersAliases ?? [])];
    const present = keys.filter((key) => hasConfigValue(config, key));
    for (const key of present.length ? present : [def.numLayersKey]) setConfigValue(config, key, numLayers);
  }
  for (const { key, count } of params.moduleLayers ?? []) {
    // mergekit warns and goes on for a module with layers but no key (none of Alloy's has one), and for a
    // key whose parent object the config lacks ("you may need to manually correct it"); so does this, silently.
    if (key === undefined || !hasConfigValue(config, key.split('.').slice(0, -1).join('.') || key)) continue;
    setConfigValue(config, key, count);
  }
  return config;
}

/** `bfloat16`, `float16`, `float32` for the names mergekit accepts (with or without `torch.`); anything else as written. */
function canonicalDtype(name: string): string {
  const parsed = parseTorchDtype(name);
  return parsed ? torchDtypeName(parsed) : name.replace(/^torch\./, '');
}

/**
 * transformers 5's handling: `dtype` wins over `torch_dtype`; the value is saved under `dtype`,
 * at the position `dtype` or else `torch_dtype` had, or at the end when neither was there.
 */
function withDtypeKey(config: Record<string, unknown>, dtype: string | undefined): Record<string, unknown> {
  const hasDtype = Object.prototype.hasOwnProperty.call(config, 'dtype') && config['dtype'] !== null;
  const hasTorchDtype = Object.prototype.hasOwnProperty.call(config, 'torch_dtype');
  if (!hasTorchDtype) {
    if (dtype !== undefined) config['dtype'] = dtype;
    return config;
  }
  const value = dtype ?? (hasDtype ? config['dtype'] : config['torch_dtype']);
  const res: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(config)) {
    if (key === 'torch_dtype') {
      if (!hasDtype) res['dtype'] = value;
    } else if (key === 'dtype') {
      res['dtype'] = value;
    } else {
      res[key] = v;
    }
  }
  // A `dtype: null` next to `torch_dtype` is treated as absent by transformers.
  if (!Object.prototype.hasOwnProperty.call(res, 'dtype')) res['dtype'] = value;
  return res;
}

/** mergekit's set_config_value: every part but the last must already exist. */
function hasConfigValue(config: Record<string, unknown>, key: string): boolean {
  let obj: unknown = config;
  for (const part of key.split('.')) {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || !(part in obj)) return false;
    obj = (obj as Record<string, unknown>)[part];
  }
  return true;
}

function setConfigValue(config: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let obj: Record<string, unknown> = config;
  for (const [i, part] of parts.slice(0, -1).entries()) {
    const next = obj[part];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      throw new EngineError(`the base model's config.json has no "${parts.slice(0, i + 1).join('.')}" to set the layer count under`, { key });
    }
    obj = next as Record<string, unknown>;
  }
  obj[parts[parts.length - 1]!] = value;
}
