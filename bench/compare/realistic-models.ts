import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { llamaConfig, llamaTensors, type LlamaShape } from '../../src/main/engine/demo/make-demo-models';
import { encodeFromF32 } from '../../src/main/engine/safetensors/convert';
import { SafetensorsShardWriter, type PlannedTensor } from '../../src/main/engine/safetensors/writer';

/** A Llama-family shape: TinyLlama's widths, as many layers as bring the model to the size asked for. */
export type ModelShape = LlamaShape;

export function shapeForParams(params: number): ModelShape {
  const widths = { hidden: 2048, intermediate: 5632, heads: 32, kvHeads: 4, vocab: 32000 };
  const kv = (widths.hidden / widths.heads) * widths.kvHeads;
  const perLayer = 2 * widths.hidden ** 2 + 2 * kv * widths.hidden + 3 * widths.hidden * widths.intermediate + 2 * widths.hidden;
  const fixed = 2 * widths.vocab * widths.hidden + widths.hidden;
  return { ...widths, layers: Math.max(2, Math.round((params - fixed) / perLayer)) };
}

/** xorshift32 → roughly normal values (sum of uniforms), scaled like trained weights. */
function fill(values: Float32Array, seed: number, scale: number, offset: number, add: boolean): void {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < values.length; i++) {
    let sum = 0;
    for (let k = 0; k < 3; k++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      sum += (x >>> 0) / 4294967296;
    }
    const v = (sum - 1.5) * 2 * scale + offset;
    values[i] = add ? values[i]! + v : v;
  }
}

/**
 * Writes a bf16 model of `shape` into `dir` (shards of at most ~1 GB, index, config): the base model's
 * weights from `seed`, and for a fine-tune (`tuneSeed`), those plus a small perturbation of its own.
 * Made in a hidden folder renamed into place; a model already there is kept.
 */
export async function ensureModel(dir: string, shape: ModelShape, seed: number, tuneSeed?: number): Promise<void> {
  if (await stat(join(dir, 'config.json')).catch(() => undefined)) return;
  const building = `${dir}.partial`;
  await rm(building, { recursive: true, force: true });
  await mkdir(building, { recursive: true });
  const all = llamaTensors(shape);
  const shards: PlannedTensor[][] = [[]];
  let bytes = 0;
  for (const t of all) {
    const size = t.shape.reduce((a, b) => a * b, 1) * 2;
    if (bytes + size > 1e9 && shards[shards.length - 1]!.length > 0) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1]!.push(t);
    bytes += size;
  }
  const weightMap: Record<string, string> = {};
  for (const [n, shard] of shards.entries()) {
    const file = `model-${String(n + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const writer = await SafetensorsShardWriter.create(join(building, file), shard);
    for (const [i, t] of shard.entries()) {
      const values = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
      const isNorm = t.name.endsWith('norm.weight');
      const tensorSeed = Math.imul(seed, 7919) + all.indexOf(t) * 104729 + i;
      fill(values, tensorSeed, isNorm ? 0.02 : 0.02, isNorm ? 1 : 0, false);
      if (tuneSeed !== undefined) fill(values, Math.imul(tuneSeed, 15485863) + all.indexOf(t), 0.002, 0, true);
      const encoded = new Uint8Array(values.length * 2);
      encodeFromF32(values, 'BF16', encoded);
      await writer.write(t.name, encoded);
      weightMap[t.name] = file;
    }
    await writer.commit();
  }
  const total = all.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * 2, 0);
  await writeFile(join(building, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  await writeFile(join(building, 'config.json'), JSON.stringify(llamaConfig(shape), null, 2));
  await rename(building, dir);
}
