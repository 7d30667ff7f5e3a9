import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelSummary } from '../../../shared/contract';
import { parseJson } from '../../engine/model/parse-json';
import { readModelConfig, type ConfigFacts } from './read-model-config';
import { summarizeWeights } from './summarize-weights';

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
  const facts = { ...configFacts(file, await readFile(file, 'utf8')), ...(await summarizeWeights(dir)) };
  return { ...facts, hasTokenizer: TOKENIZER_FILES.some((f) => files.includes(f)) };
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
