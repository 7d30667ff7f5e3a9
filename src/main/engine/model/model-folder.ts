import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import { EngineError } from '../errors';
import type { SafetensorsReader, TensorEntry, TensorReader } from '../safetensors/reader';
import { CheckpointConverter } from './checkpoint-conversion';
import { openTensorFile } from './open-tensor-file';
import { parseJson } from './parse-json';

export const INDEX_FILE = 'model.safetensors.index.json';
export const PYTORCH_INDEX_FILE = 'pytorch_model.bin.index.json';

export interface ModelTensor {
  reader: TensorReader;
  entry: TensorEntry;
  /** For a tensor converted on load (`checkpoint-conversion.ts`): the stored tensors whose bytes, in order, are its bytes. */
  parts?: ModelTensor[];
}

/** A local model folder: config.json plus safetensors shards (or PyTorch .bin ones), opened header-only. */
export class ModelFolder {
  private readonly converter: CheckpointConverter;

  private constructor(
    readonly path: string,
    readonly config: Record<string, unknown>,
    readonly shards: SafetensorsReader[],
    /** The tensors as stored, under their stored names. */
    readonly tensors: ReadonlyMap<string, ModelTensor>,
  ) {
    this.converter = new CheckpointConverter(path, config, tensors);
  }

  /**
   * The tensor a merge reads under `name`: the stored one, else one converted as transformers converts
   * this family's checkpoints on load (Mixtral's and Qwen3-MoE's per-expert tensors as fused experts).
   * Throws when a conversion applies but the checkpoint's parts do not fit (missing experts, shapes).
   */
  tensor(name: string): ModelTensor | undefined {
    return this.converter.find(name);
  }

  static async open(path: string): Promise<ModelFolder> {
    const dir = resolve(path);
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) throw new EngineError(`${dir}: no model folder here`, { file: dir });
    const config = await readJsonObject(join(dir, 'config.json'));
    const shardFiles = await findShardFiles(dir);
    const shards: SafetensorsReader[] = [];
    try {
      for (const file of shardFiles) shards.push(await openTensorFile(file));
    } catch (error) {
      await Promise.all(shards.map((s) => s.close()));
      throw error;
    }
    const tensors = new Map<string, ModelTensor>();
    for (const reader of shards) {
      for (const entry of reader.tensors.values()) {
        if (tensors.has(entry.name)) {
          throw new EngineError(`${dir}: tensor "${entry.name}" is in both ${basename(tensors.get(entry.name)!.reader.path)} and ${basename(reader.path)}`, { file: dir, tensor: entry.name });
        }
        tensors.set(entry.name, { reader, entry });
      }
    }
    return new ModelFolder(dir, config, shards, tensors);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }
}

export async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new EngineError(`${file}: missing`, { file });
  }
  const value = parseJson(text, file);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new EngineError(`${file}: expected a JSON object`, { file });
  }
  return value as Record<string, unknown>;
}

/**
 * The shard files of a model: those its safetensors index names, else model.safetensors, else every
 * *.safetensors; only without any safetensors, the PyTorch checkpoints the same way (as transformers
 * prefers them).
 */
async function findShardFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  const safetensors = await shardsOf(dir, names, INDEX_FILE, 'model.safetensors', '.safetensors');
  if (safetensors.length > 0) return safetensors;
  const pytorch = await shardsOf(dir, names, PYTORCH_INDEX_FILE, 'pytorch_model.bin', '.bin');
  if (pytorch.length === 0) throw new EngineError(`${dir}: no .safetensors (or pytorch_model.bin) files`, { file: dir });
  return pytorch;
}

async function shardsOf(dir: string, names: string[], indexFile: string, single: string, extension: string): Promise<string[]> {
  if (names.includes(indexFile)) return indexedFiles(dir, join(dir, indexFile));
  if (names.includes(single)) return [join(dir, single)];
  return names.filter((n) => n.endsWith(extension) && !n.startsWith('.')).sort().map((n) => join(dir, n));
}

async function indexedFiles(dir: string, indexPath: string): Promise<string[]> {
  const index = await readJsonObject(indexPath);
  const weightMap = index['weight_map'];
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new EngineError(`${indexPath}: "weight_map" is not an object`, { file: indexPath, key: 'weight_map' });
  }
  const files = new Set<string>();
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string') throw new EngineError(`${indexPath}: tensor "${tensor}" maps to a non-string`, { file: indexPath, tensor });
    const path = confine(dir, file, indexPath);
    if (!files.has(path)) await mustBeFile(path, `${indexPath}: tensor "${tensor}" is in ${file}, which is missing`, tensor);
    files.add(path);
  }
  return [...files].sort();
}

async function mustBeFile(path: string, message: string, tensor: string): Promise<void> {
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) throw new EngineError(message, { file: path, tensor });
}

/** Resolves `file` inside `dir`, refusing names that climb out of it. */
export function confine(dir: string, file: string, source: string): string {
  const full = resolve(dir, file);
  if (!full.startsWith(dir + sep)) {
    throw new EngineError(`${source}: "${file}" points outside the model folder`, { file: source });
  }
  return full;
}
