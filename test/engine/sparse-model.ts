import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { llamaConfig, llamaLayerTensors, type LlamaShape } from '../../src/main/engine/demo/make-demo-models';
import { layoutShard, type PlannedTensor } from '../../src/main/engine/safetensors/writer';

/** A Llama shape (32 heads, 8 of them for keys and values) and how many layers each file holds. */
export interface BigLlamaShape extends Omit<LlamaShape, 'heads' | 'kvHeads'> {
  /** Layers per safetensors file, so no file passes a file system's size limit. */
  layersPerFile: number;
}

const withHeads = (shape: BigLlamaShape): LlamaShape => ({ ...shape, heads: 32, kvHeads: 8 });

/** The model's safetensors files: embeddings with the first layers, norm and LM head with the last. */
function filesOf(shape: BigLlamaShape): PlannedTensor[][] {
  const files: PlannedTensor[][] = [];
  for (let i = 0; i < shape.layers; i++) {
    if (i % shape.layersPerFile === 0) files.push([]);
    files.at(-1)!.push(...llamaLayerTensors(i, withHeads(shape)));
  }
  files[0]!.unshift({ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [shape.vocab, shape.hidden] });
  files.at(-1)!.push({ name: 'model.norm.weight', dtype: 'BF16', shape: [shape.hidden] }, { name: 'lm_head.weight', dtype: 'BF16', shape: [shape.vocab, shape.hidden] });
  return files;
}

/**
 * A Llama-shaped model of any size that costs no disk: each safetensors file is a real header
 * followed by a hole (a sparse file), so every weight reads as zero, at whatever speed the file
 * system serves holes. Returns the bytes of tensor data it claims.
 */
export async function writeSparseLlamaModel(dir: string, shape: BigLlamaShape): Promise<number> {
  await mkdir(dir, { recursive: true });
  const files = filesOf(shape);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const [i, tensors] of files.entries()) {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(files.length).padStart(5, '0')}.safetensors`;
    const layout = layoutShard(tensors, { format: 'pt' });
    const handle = await open(join(dir, file), 'w');
    await handle.write(layout.header, 0, layout.header.byteLength, 0);
    await handle.truncate(layout.totalBytes);
    await handle.close();
    for (const t of tensors) weightMap[t.name] = file;
    total += layout.totalBytes - layout.header.byteLength;
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  await writeFile(join(dir, 'config.json'), JSON.stringify(llamaConfig(withHeads(shape))));
  return total;
}
