import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelSummary } from '../../../shared/contract';
import { parseJson } from '../../engine/model/parse-json';
import { readModelConfig, type ConfigFacts } from './read-model-config';
import { summarizeWeights, type WeightFacts } from './summarize-weights';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'spiece.model', 'vocab.json'];

export type ModelFacts = Omit<ModelSummary, 'id' | 'name' | 'path' | 'source' | 'reference' | 'repoId' | 'revision' | 'refs' | 'bytes' | 'incomplete'>;

/**
 * A model folder described from config.json and its safetensors headers alone. A config.json that is
 * not a JSON object still lists the model, not mergeable, its problem naming the file and the error
 * (line and column), as a model of an unknown architecture is listed.
 */
export async function summarizeModel(dir: string): Promise<ModelFacts> {
  const file = join(dir, 'config.json');
  const files = await readdir(dir);
  const { shardErrors, ...weights } = await summarizeWeights(dir);
  const facts = { ...configFacts(file, await readFile(file, 'utf8')), ...weights };
  const problem = facts.mergeable ? weightsProblem(dir, files, { ...weights, shardErrors }) : undefined;
  return { ...facts, ...(problem ? { mergeable: false, problem } : {}), hasTokenizer: TOKENIZER_FILES.some((f) => files.includes(f)) };
}

/** Why a folder whose config the engine knows still cannot be merged: no weights it reads, or shards not there. */
function weightsProblem(dir: string, files: string[], weights: WeightFacts): string | undefined {
  if (weights.weightFormat === 'none') {
    const gguf = files.filter((f) => f.endsWith('.gguf'));
    return gguf.length
      ? `${dir}: only GGUF weights (${gguf.join(', ')}); Alloy merges safetensors or pytorch_model.bin weights`
      : `${dir}: no .safetensors (or pytorch_model.bin) files`;
  }
  const [unreadable, ...more] = weights.shardErrors;
  if (unreadable) return more.length ? `${unreadable} (and ${more.length} more unreadable)` : unreadable;
  if (weights.missingShards.length) return `${dir}: missing shards: ${weights.missingShards.join(', ')}`;
  return undefined;
}

function configFacts(file: string, text: string): ConfigFacts {
  let problem: string;
  try {
    const config = parseJson(text, file);
    if (typeof config === 'object' && config !== null && !Array.isArray(config)) return readModelConfig(config as Record<string, unknown>, file);
    problem = `${file}: expected a JSON object`;
  } catch (error) {
    problem = (error as Error).message;
  }
  return { architecture: 'unknown', modelType: 'unknown', layers: 0, hiddenSize: 0, vocabSize: 0, mergeable: false, problem };
}
