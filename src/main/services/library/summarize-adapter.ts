import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LoraAdapterFacts } from '../../../shared/contract';
import { parseJson } from '../../engine/model/parse-json';
import { openTensorFile } from '../../engine/model/open-tensor-file';
import type { ModelFacts } from './summarize-model';

/** The weight files a PEFT adapter folder holds, in the order the engine looks for them. */
const ADAPTER_WEIGHTS = ['adapter_model.safetensors', 'adapter_model.bin'];

/**
 * Whether a folder is a LoRA adapter rather than a model: it has adapter_config.json and no weights
 * but the adapter's (an adapter repo may carry its base's config.json beside them).
 */
export function isAdapterFolder(names: readonly string[]): boolean {
  return names.includes('adapter_config.json') && !names.some((n) => /\.(safetensors|bin|pt|pth)$/.test(n) && !ADAPTER_WEIGHTS.includes(n));
}

/**
 * A LoRA adapter folder described from adapter_config.json and its weights' header: listed, never
 * mergeable on its own (it is applied to a model, `model+adapter`), its `problem` saying so.
 */
export async function summarizeAdapter(dir: string): Promise<ModelFacts> {
  const files = await readdir(dir);
  const weightsFile = ADAPTER_WEIGHTS.find((f) => files.includes(f));
  const adapter = await adapterFacts(dir);
  const weights: AdapterWeights = weightsFile ? await readWeights(join(dir, weightsFile)) : { parameters: 0, dtypes: [] };
  const problem = adapter.problem ?? (weightsFile ? weights.error : `${dir}: no ${ADAPTER_WEIGHTS.join(' or ')}`);
  return {
    architecture: 'LoRA adapter',
    modelType: 'lora',
    layers: 0,
    hiddenSize: 0,
    vocabSize: 0,
    parameters: weights.parameters,
    dtypes: weights.dtypes,
    shards: weightsFile ? 1 : 0,
    missingShards: [],
    weightFormat: weightsFile?.endsWith('.safetensors') ? 'safetensors' : weightsFile ? 'pytorch' : 'none',
    hasTokenizer: false,
    mergeable: false,
    problem: problem ?? `a LoRA adapter${adapter.baseModel ? ` for ${adapter.baseModel}` : ''}: merged applied to a model (model+adapter), not on its own`,
    adapter: { ...adapter, ...(problem ? { problem } : {}) },
  };
}

/** Rank, alpha, target modules and base model from adapter_config.json; `problem` when it is not a LoRA the engine applies. */
async function adapterFacts(dir: string): Promise<LoraAdapterFacts> {
  const file = join(dir, 'adapter_config.json');
  let config: Record<string, unknown>;
  try {
    const parsed = parseJson(await readFile(file, 'utf8'), file);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${file}: expected a JSON object`);
    config = parsed as Record<string, unknown>;
  } catch (error) {
    return { rank: 0, alpha: 0, targetModules: [], problem: (error as Error).message };
  }
  const number = (key: string) => (typeof config[key] === 'number' ? (config[key] as number) : 0);
  const modules = config['target_modules'];
  const peftType = config['peft_type'] ?? 'LORA';
  const facts: LoraAdapterFacts = {
    ...(typeof config['base_model_name_or_path'] === 'string' && config['base_model_name_or_path'] ? { baseModel: config['base_model_name_or_path'] } : {}),
    rank: number('r'),
    alpha: number('lora_alpha'),
    targetModules: Array.isArray(modules) ? modules.map(String) : typeof modules === 'string' ? [modules] : [],
  };
  if (peftType !== 'LORA') return { ...facts, problem: `${file}: a ${String(peftType)} adapter; only LoRA adapters can be applied to a model` };
  return facts;
}

interface AdapterWeights {
  parameters: number;
  dtypes: string[];
  /** Why the file cannot be read (a half-copied file), naming it. */
  error?: string;
}

/** Parameter count and dtypes from the weights file's header (a .bin's pickle index): no tensor data is read. */
async function readWeights(file: string): Promise<AdapterWeights> {
  const reader = await openTensorFile(file).catch((error: Error) => error);
  if (reader instanceof Error) return { parameters: 0, dtypes: [], error: reader.message };
  try {
    let parameters = 0;
    const dtypes = new Set<string>();
    for (const entry of reader.tensors.values()) {
      parameters += entry.numel;
      dtypes.add(entry.dtype);
    }
    return { parameters, dtypes: [...dtypes].sort() };
  } finally {
    await reader.close();
  }
}
