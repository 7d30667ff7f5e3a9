import { mkdir, readFile, rm, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { llamaConfig, llamaTensors, type LlamaShape } from '../src/main/engine/demo/make-demo-models';
import { SafetensorsShardWriter, type PlannedTensor } from '../src/main/engine/safetensors/writer';

/** TinyLlama's widths (hidden 2048, MLP 5632, 4 KV heads of 64, vocab 32000); the depth sets the size. */
export type BenchShape = LlamaShape;

const WIDTHS = { hidden: 2048, intermediate: 5632, heads: 32, kvHeads: 4, vocab: 32000 };

/** The number of layers that brings the model closest to `params` parameters (at least one). */
export function shapeFor(params: number): BenchShape {
  const { hidden: h, intermediate: m, heads, kvHeads, vocab } = WIDTHS;
  const kv = (h / heads) * kvHeads;
  const perLayer = 2 * h * h + 2 * kv * h + 3 * h * m + 2 * h;
  const fixed = 2 * vocab * h + h;
  return { ...WIDTHS, layers: Math.max(1, Math.round((params - fixed) / perLayer)) };
}

/** The model's tensors: the demo models' Llama layout, at this shape. */
export function tensorsOf(shape: BenchShape): PlannedTensor[] {
  return llamaTensors(shape);
}

export const numelOf = (t: PlannedTensor): number => t.shape.reduce((a, b) => a * b, 1);

/**
 * Fills `out` with bf16 codes shaped like trained weights: random sign and mantissa, exponents
 * around 2^-7 (|w| mostly 0.002..0.06), drawn by xorshift32 so a 2 GB model takes seconds.
 */
function fillWeights(out: Uint16Array, seed: number, tune: number): number {
  let x = seed >>> 0 || 1;
  let y = (tune * 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const r = x >>> 0;
    const exponent = 127 - 5 - (r & 3) - ((r >>> 2) & 3); // 2^-5 .. 2^-11
    let mantissa = (r >>> 8) & 0x7f;
    if (tune) {
      // A fine-tune: the base's weight moved by up to ±3 bf16 ulps (a task vector of a few percent).
      y ^= y << 13;
      y ^= y >>> 17;
      y ^= y << 5;
      mantissa = Math.min(0x7f, Math.max(0, mantissa + ((y >>> 0) % 7) - 3));
    }
    out[i] = ((r >>> 31) << 15) | (exponent << 7) | mantissa;
  }
  return x;
}

/**
 * Writes a bf16 Llama-shaped model into `dir` in shards of about 2 GB, unless one of this shape is
 * there: the base's weights from `seed`, and with `tune` > 0 a fine-tune of that base (each weight
 * a few ulps away), so that task vectors are small as they are between real checkpoints.
 */
export async function ensureModel(dir: string, shape: BenchShape, seed: number, tune = 0): Promise<{ bytes: number; created: boolean }> {
  const tensors = tensorsOf(shape);
  const bytes = tensors.reduce((sum, t) => sum + 2 * numelOf(t), 0);
  const marker = join(dir, 'bench-shape.json');
  const wanted = JSON.stringify({ shape, seed, tune });
  const existing = await readFile(marker, 'utf8').catch(() => undefined);
  if (existing === wanted) return { bytes, created: false };
  const temp = `${dir}.partial`;
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  const shards: PlannedTensor[][] = [[]];
  let shardBytes = 0;
  for (const t of tensors) {
    if (shardBytes > 0 && shardBytes + 2 * numelOf(t) > 2e9) {
      shards.push([]);
      shardBytes = 0;
    }
    shards.at(-1)!.push(t);
    shardBytes += 2 * numelOf(t);
  }
  const weightMap: Record<string, string> = {};
  let state = seed;
  let buffer = new Uint16Array(0);
  for (const [i, shard] of shards.entries()) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const writer = await SafetensorsShardWriter.create(join(temp, file), shard);
    for (const t of shard) {
      const n = numelOf(t);
      if (buffer.length < n) buffer = new Uint16Array(n);
      const values = buffer.subarray(0, n);
      state = fillWeights(values, state + 0x9e3779b9, tune);
      if (t.shape.length === 1) for (let k = 0; k < n; k++) values[k] = (values[k]! & 0x807f) | (127 << 7); // norms near ±1
      await writer.write(t.name, new Uint8Array(values.buffer, 0, n * 2));
      weightMap[t.name] = file;
    }
    await writer.commit();
  }
  const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n';
  await writeFile(join(temp, 'model.safetensors.index.json'), json({ metadata: { total_size: bytes }, weight_map: weightMap }));
  await writeFile(join(temp, 'config.json'), json(llamaConfig(shape)));
  await writeFile(join(temp, 'bench-shape.json'), wanted);
  await rm(dir, { recursive: true, force: true });
  await rename(temp, dir);
  return { bytes, created: true };
}
