import { join } from 'node:path';
import { EngineError } from '../errors';
import { readJsonObject } from '../model/model-folder';
import { openTensorFile } from '../model/open-tensor-file';
import { decodeToF32 } from '../safetensors/convert';
import { isFloatDtype } from '../safetensors/dtype';
import type { SafetensorsReader } from '../safetensors/reader';

/** One adapted weight: delta = B·A (transposed for embeddings and fan_in_fan_out), times `scaling`. */
export interface LoraDelta {
  /** The base model's tensor this adapts, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  target: string;
  /** [r, in] for linear layers; [r, num_embeddings] for embeddings. */
  a: { rows: number; cols: number; values: Float32Array };
  /** [out, r] for linear layers; [embedding_dim, r] for embeddings. */
  b: { rows: number; cols: number; values: Float32Array };
  /** The delta is (B·A)ᵀ: embeddings, and linear layers saved fan_in_fan_out. */
  transposed: boolean;
}

export interface LoraAdapter {
  scaling: number;
  deltas: Map<string, LoraDelta>;
}

const KEY = /^base_model\.model\.(.+)\.lora_(A|B|embedding_A|embedding_B)\.weight$/;

/** Reads a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors or .bin). */
export async function readLoraAdapter(dir: string): Promise<LoraAdapter> {
  const configPath = join(dir, 'adapter_config.json');
  const config = await readJsonObject(configPath);
  const fail = (why: string) => new EngineError(`${configPath}: ${why}`, { file: configPath });
  if ((config['peft_type'] ?? 'LORA') !== 'LORA') throw fail(`a ${String(config['peft_type'])} adapter; only LoRA adapters can be merged`);
  if (config['use_dora']) throw fail('a DoRA adapter; only plain LoRA adapters can be merged');
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    const pattern = config[key];
    if (pattern && typeof pattern === 'object' && Object.keys(pattern).length > 0) throw fail(`per-module ${key} is not supported`);
  }
  if (Array.isArray(config['modules_to_save']) && config['modules_to_save'].length > 0) throw fail('modules_to_save (full replacement weights) is not supported');
  const r = config['r'];
  const alpha = config['lora_alpha'];
  if (typeof r !== 'number' || r <= 0 || typeof alpha !== 'number') throw fail('"r" and "lora_alpha" must be numbers');
  const scaling = config['use_rslora'] ? alpha / Math.sqrt(r) : alpha / r;
  const reader = await openTensorFile(await adapterWeights(dir));
  try {
    return { scaling, deltas: await readDeltas(reader, config['fan_in_fan_out'] === true) };
  } finally {
    await reader.close();
  }
}

async function adapterWeights(dir: string): Promise<string> {
  for (const name of ['adapter_model.safetensors', 'adapter_model.bin']) {
    const file = join(dir, name);
    if (await openTensorFile(file).then(async (r) => (await r.close(), true), () => false)) return file;
  }
  throw new EngineError(`${dir}: no adapter_model.safetensors or adapter_model.bin`, { file: dir });
}

async function readDeltas(reader: SafetensorsReader, fanInFanOut: boolean): Promise<Map<string, LoraDelta>> {
  const parts = new Map<string, Partial<Record<'A' | 'B', { rows: number; cols: number; values: Float32Array }>> & { embedding?: boolean }>();
  for (const [name, entry] of reader.tensors) {
    const match = KEY.exec(name);
    if (!match) throw new EngineError(`${reader.path}: tensor "${name}" is not a LoRA A or B weight`, { file: reader.path, tensor: name });
    if (!isFloatDtype(entry.dtype) || entry.shape.length !== 2) throw new EngineError(`${reader.path}: "${name}" is not a 2-D float tensor`, { file: reader.path, tensor: name });
    const values = new Float32Array(entry.numel);
    decodeToF32(await reader.read(name), entry.dtype, values);
    const part = parts.get(match[1]!) ?? {};
    part[match[2]!.endsWith('A') ? 'A' : 'B'] = { rows: entry.shape[0]!, cols: entry.shape[1]!, values };
    if (match[2]!.startsWith('embedding')) part.embedding = true;
    parts.set(match[1]!, part);
  }
  const deltas = new Map<string, LoraDelta>();
  for (const [module, { A, B, embedding }] of parts) {
    if (!A || !B || A.rows !== B.cols) throw new EngineError(`${reader.path}: module "${module}" needs lora_A [r, in] and lora_B [out, r] of the same r`, { file: reader.path });
    const target = `${module}.weight`;
    deltas.set(target, { target, a: A, b: B, transposed: embedding === true || fanInFanOut });
  }
  return deltas;
}
