import { resolveArchitecture } from '../../engine/architecture';

export interface ConfigFacts {
  architecture: string;
  modelType: string;
  layers: number;
  hiddenSize: number;
  vocabSize: number;
  mergeable: boolean;
  problem?: string;
}

/** What config.json says about a model's shape (a multimodal model's `text_config` when the top level lacks it). */
export function readModelConfig(config: Record<string, unknown>, file = 'config.json'): ConfigFacts {
  const text = typeof config['text_config'] === 'object' && config['text_config'] !== null ? (config['text_config'] as Record<string, unknown>) : {};
  const num = (...keys: string[]) => {
    for (const source of [config, text]) for (const key of keys) if (typeof source[key] === 'number') return source[key] as number;
    return 0;
  };
  const architectures = config['architectures'];
  const facts: ConfigFacts = {
    architecture: Array.isArray(architectures) && architectures.length ? String(architectures[0]) : 'unknown',
    modelType: typeof config['model_type'] === 'string' ? config['model_type'] : 'unknown',
    layers: num('num_hidden_layers', 'n_layer', 'num_layers'),
    hiddenSize: num('hidden_size', 'n_embd', 'd_model'),
    vocabSize: num('vocab_size'),
    mergeable: true,
  };
  try {
    resolveArchitecture(config, file);
  } catch (error) {
    facts.mergeable = false;
    facts.problem = (error as Error).message;
  }
  return facts;
}
