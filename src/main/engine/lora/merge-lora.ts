import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { EngineError } from '../errors';
import { ModelFolder } from '../model/model-folder';
import { decodeToF32, encodeFromF32 } from '../safetensors/convert';
import { dtypeSize, isFloatDtype, type FloatDtype } from '../safetensors/dtype';
import { WasmBackend, type LoraApplyParams } from '../compute/wasm-backend';
import { SafetensorsShardWriter } from '../safetensors/writer';
import { fmaF32 } from '../methods/numerics';
import { readLoraAdapter, type LoraAdapter, type LoraDelta } from './adapter';

export interface MergeLoraParams {
  model: string;
  adapter: string;
  cacheDir: string;
  /** The recipe's reference, for messages. */
  reference: string;
}

const ROW_CHUNK_BYTES = 16 << 20;
const WEIGHT_FILE = /\.(safetensors|bin|pt|pth)$|\.index\.json$/;

/**
 * The base model with a LoRA adapter merged in, as PEFT's merge_and_unload computes it: W + (B·A)·scaling
 * in f32 (delta rounded to W's dtype first when W is 16-bit). Built once into the cache, tensor by
 * tensor and row chunk by row chunk, in a hidden folder renamed into place when complete.
 */
export async function mergeLora(params: MergeLoraParams): Promise<string> {
  const target = await loraMergeTarget(params);
  if (await stat(join(target, 'config.json')).catch(() => undefined)) return target;
  await mkdir(params.cacheDir, { recursive: true });
  const building = join(params.cacheDir, `.${basename(target)}.${process.pid}.partial`);
  await rm(building, { recursive: true, force: true });
  await mkdir(building);
  try {
    await writeMergedWeights(params, building);
    await copyOtherFiles(params.model, building);
    await rename(building, target).catch(async (error) => {
      if (await stat(join(target, 'config.json')).catch(() => undefined)) return;
      throw error;
    });
  } finally {
    await rm(building, { recursive: true, force: true });
  }
  return target;
}

/** Where `mergeLora` builds (or has built) the merged model: named by the model, the adapter and their files. */
export async function loraMergeTarget(params: MergeLoraParams): Promise<string> {
  return join(params.cacheDir, `${cacheLabel(params)}-${await cacheKey(params)}`);
}

/**
 * A readable name for the merged model's folder: the reference's model and adapter, a Hub id as
 * org--name (a hub cache snapshot folder is only a commit hash), a path by its last folder.
 */
function cacheLabel({ model, adapter, reference }: MergeLoraParams): string {
  const parts = reference.split('+');
  const label = (part: string | undefined, dir: string) => {
    const id = part?.replace(/@[^/@]*$/, '');
    if (id && /^[\w.-]+\/[\w.-]+$/.test(id) && !id.startsWith('.')) return id.replace('/', '--');
    return basename(dir);
  };
  return parts.length === 2 ? `${label(parts[0], model)}+${label(parts[1], adapter)}` : `${basename(model)}+${basename(adapter)}`;
}

/**
 * Checks that `mergeLora` can merge the adapter into the model (the adapter readable, each delta
 * meeting a 2-D float weight of its shape) from the headers and the adapter alone; writes nothing.
 * Resolves to the bytes the merged model's weights will take.
 */
export async function checkLoraAdapter(params: MergeLoraParams): Promise<number> {
  const adapter = await readLoraAdapter(params.adapter);
  const folder = await ModelFolder.open(params.model);
  try {
    checkTargets(params, adapter, folder);
    let bytes = 0;
    for (const { entry } of folder.tensors.values()) {
      const delta = adapter.deltas.get(entry.name);
      if (delta) checkDelta(entry.dtype, entry.shape, delta, entry.name);
      bytes += entry.byteLength;
    }
    return bytes;
  } finally {
    await folder.close();
  }
}

function checkTargets(params: MergeLoraParams, adapter: LoraAdapter, folder: ModelFolder): void {
  const missing = [...adapter.deltas.keys()].filter((t) => !folder.tensors.has(t));
  if (missing.length > 0) throw new EngineError(`${params.reference}: the adapter adapts ${missing[0]}, which ${params.model} does not have`, { tensor: missing[0]! });
}

/** Throws unless `delta` fits the weight `name` of this dtype and shape. */
function checkDelta(dtype: string, shape: number[], delta: LoraDelta, name: string): void {
  if (!isFloatDtype(dtype as never) || shape.length !== 2) throw new EngineError(`LoRA: "${name}" is not a 2-D float tensor`, { tensor: name });
  const [rows, cols] = shape as [number, number];
  const [outRows, outCols] = delta.transposed ? [delta.a.cols, delta.b.rows] : [delta.b.rows, delta.a.cols];
  if (outRows !== rows || outCols !== cols) throw new EngineError(`LoRA: the delta for "${name}" is ${outRows}×${outCols}, the weight ${rows}×${cols}`, { tensor: name });
}

async function cacheKey({ model, adapter }: MergeLoraParams): Promise<string> {
  const hash = createHash('sha256');
  for (const dir of [model, adapter]) {
    hash.update(resolve(dir));
    for (const name of (await readdir(dir)).sort()) {
      const info = await stat(join(dir, name));
      hash.update(`${name}:${info.size}:${info.mtimeMs}`);
    }
  }
  return hash.digest('hex').slice(0, 16);
}

async function writeMergedWeights(params: MergeLoraParams, outDir: string): Promise<void> {
  const adapter = await readLoraAdapter(params.adapter);
  const folder = await ModelFolder.open(params.model);
  const backend = new WasmBackend();
  try {
    checkTargets(params, adapter, folder);
    const planned = [...folder.tensors.values()].map(({ entry }) => ({ name: entry.name, dtype: entry.dtype, shape: entry.shape }));
    const writer = await SafetensorsShardWriter.create(join(outDir, 'model.safetensors'), planned);
    try {
      for (const { reader, entry } of folder.tensors.values()) {
        const delta = adapter.deltas.get(entry.name);
        if (delta) checkDelta(entry.dtype, entry.shape, delta, entry.name);
        const factors = delta && deltaFactors(delta, adapter.scaling);
        const rowLength = entry.shape.length > 1 ? entry.shape[entry.shape.length - 1]! : entry.numel;
        const rowBytes = rowLength * dtypeSize(entry.dtype);
        const step = Math.max(1, Math.floor(ROW_CHUNK_BYTES / Math.max(1, rowBytes))) * rowBytes;
        for (let start = 0; start < entry.byteLength; start += step) {
          const bytes = await reader.read(entry.name, undefined, start, Math.min(step, entry.byteLength - start));
          const merged = factors ? await applyDelta(backend, bytes, entry.dtype as FloatDtype, start / rowBytes, factors) : bytes;
          await writer.write(entry.name, merged, start);
        }
      }
      await writer.commit();
    } catch (error) {
      await writer.abort();
      throw error;
    }
  } finally {
    await Promise.allSettled([folder.close(), backend.dispose()]);
  }
}

/**
 * The delta as left·right (each row of W takes `rank` entries of left): B·A, or for a transposed
 * delta (B·A)ᵀ = Aᵀ·Bᵀ, the same products in the same order over the rank.
 */
function deltaFactors({ a, b, transposed }: LoraDelta, scaling: number): Omit<LoraApplyParams, 'cols'> {
  if (!transposed) return { rank: a.rows, left: b.values, right: a.values, scale: scaling };
  return { rank: a.rows, left: transpose(a.values, a.rows, a.cols), right: transpose(b.values, b.rows, b.cols), scale: scaling };
}

function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = values[i * cols + j]!;
  return out;
}

/** Rows [firstRow, …) of W with the delta added: on the CPU kernels where they take the weight, else `loraApplyF32`. */
async function applyDelta(backend: WasmBackend, bytes: Uint8Array, dtype: FloatDtype, firstRow: number, factors: Omit<LoraApplyParams, 'cols'>): Promise<Uint8Array> {
  const count = bytes.byteLength / dtypeSize(dtype);
  const cols = factors.right.length / factors.rank;
  const rows = count / cols;
  const rowFactors = { ...factors, cols, left: factors.left.subarray(firstRow * factors.rank, (firstRow + rows) * factors.rank) };
  if (dtype !== 'F16' && cols % 4 === 0 && bytes.byteOffset % 4 === 0) {
    const out = new Uint8Array(bytes.byteLength);
    const host = (data: Uint8Array) => (dtype === 'F32' ? { dtype, data: new Float32Array(data.buffer, data.byteOffset, count) } : { dtype, data: new Uint16Array(data.buffer, data.byteOffset, count) });
    await backend.loraApply(host(bytes), rowFactors, host(out));
    return out;
  }
  const w = new Float32Array(count);
  decodeToF32(bytes, dtype, w);
  loraApplyF32(w, rowFactors, w);
  encodeFromF32(w, dtype, bytes);
  return bytes;
}

/**
 * PEFT's merge of a LoRA delta into rows of W, as torch computes it: d = the FMA chain over k of
 * left[o, k]·right[k, c] from +0 (sgemm's order), d = f(d · scale), then w + d in f32 (PEFT keeps the
 * adapter in f32 over a 16-bit base, and `weight += delta` rounds once, to W's dtype, when stored).
 * `out` may be `w`.
 */
export function loraApplyF32(w: Float32Array, params: LoraApplyParams, out: Float32Array): void {
  const { cols, rank, left, right } = params;
  const scale = Math.fround(params.scale);
  for (let row = 0; row < w.length / cols; row++) {
    for (let c = 0; c < cols; c++) {
      let d = 0;
      for (let k = 0; k < rank; k++) d = fmaF32(left[row * rank + k]!, right[k * cols + c]!, d);
      out[row * cols + c] = w[row * cols + c]! + Math.fround(d * scale);
    }
  }
}

/** config.json, tokenizer and generation files: everything in the model folder but its weights. */
async function copyOtherFiles(model: string, outDir: string): Promise<void> {
  for (const name of await readdir(model)) {
    if (WEIGHT_FILE.test(name) || name.startsWith('.')) continue;
    const from = join(model, name);
    if ((await stat(from)).isFile()) await copyFile(from, join(outDir, name));
  }
}
