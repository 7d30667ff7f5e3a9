import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsReader } from '../../engine/safetensors/reader';

export interface WeightFacts {
  /** Sum of the tensors' element counts, from the headers' shapes. */
  parameters: number;
  dtypes: string[];
  shards: number;
  missingShards: string[];
  /** Why shards that are there cannot be read (a half-copied file: its header names bytes past its end), naming each file. */
  shardErrors: string[];
  weightFormat: 'safetensors' | 'pytorch' | 'none';
}

/** The shards a model folder's weights should be in: its index's files, else its `*.safetensors`. */
export async function safetensorsShards(dir: string, files: string[]): Promise<string[]> {
  if (files.includes('model.safetensors.index.json')) {
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map?: Record<string, string> };
    return [...new Set(Object.values(index.weight_map ?? {}))].sort();
  }
  return files.filter((f) => f.endsWith('.safetensors')).sort();
}

/** Parameter count, dtypes and shards from the safetensors headers only: no tensor data is read. */
export async function summarizeWeights(dir: string): Promise<WeightFacts> {
  const files = await readdir(dir);
  const shards = await safetensorsShards(dir, files).catch(() => [] as string[]);
  if (!shards.length) {
    const pytorch = files.filter((f) => /\.(bin|pt|pth)$/.test(f));
    return { parameters: 0, dtypes: [], shards: pytorch.length, missingShards: [], shardErrors: [], weightFormat: pytorch.length ? 'pytorch' : 'none' };
  }
  const dtypes = new Set<string>();
  const missingShards: string[] = [];
  const shardErrors: string[] = [];
  let parameters = 0;
  for (const shard of shards) {
    if (!files.includes(shard)) {
      missingShards.push(shard);
      continue;
    }
    const reader = await SafetensorsReader.open(join(dir, shard)).catch((error: Error) => void shardErrors.push(error.message));
    if (!reader) {
      missingShards.push(shard);
      continue;
    }
    for (const entry of reader.tensors.values()) {
      dtypes.add(entry.dtype);
      parameters += entry.numel;
    }
    await reader.close();
  }
  return { parameters, dtypes: [...dtypes].sort(), shards: shards.length, missingShards, shardErrors, weightFormat: 'safetensors' };
}
