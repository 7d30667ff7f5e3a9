import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelSummary } from '../../../shared/contract';
import { readModelConfig } from './read-model-config';
import { summarizeWeights } from './summarize-weights';

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'spiece.model', 'vocab.json'];

export type ModelFacts = Omit<ModelSummary, 'id' | 'name' | 'path' | 'source' | 'reference' | 'repoId' | 'revision' | 'refs' | 'bytes' | 'incomplete'>;

/** A model folder described from config.json and its safetensors headers alone. */
export async function summarizeModel(dir: string): Promise<ModelFacts> {
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const files = await readdir(dir);
  const facts = { ...readModelConfig(config, join(dir, 'config.json')), ...(await summarizeWeights(dir)) };
  return { ...facts, hasTokenizer: TOKENIZER_FILES.some((f) => files.includes(f)) };
}
