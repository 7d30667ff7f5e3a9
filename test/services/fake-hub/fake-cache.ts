import { createHash } from 'node:crypto';
import { mkdir, open, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { llamaConfig, llamaTensors, parameterCount, safetensorsHeader, type TinyTensor } from './tiny-model';

export interface FakeCacheOptions {
  models: number;
  layers: number;
  hidden: number;
  vocab: number;
  shards: number;
}

/**
 * A hub cache of `models` repos laid out as huggingface_hub writes them (blobs, snapshot links,
 * refs/main), each a Llama model whose safetensors files have real headers and sparse data: the
 * files have their full size but take no disk, as the library reads headers only.
 * Returns the models' parameter count, each one's repo id and bytes, and the safetensors bytes in all.
 */
export async function writeFakeHubCache(cacheDir: string, options: FakeCacheOptions, first = 0): Promise<{ parameters: number; models: { repo: string; bytes: number }[]; weightBytes: number }> {
  const tensors = llamaTensors(options.layers, options.hidden, options.vocab, 'BF16');
  const perShard = Math.ceil(tensors.length / options.shards);
  const shards = Array.from({ length: options.shards }, (_, i) => tensors.slice(i * perShard, (i + 1) * perShard));
  const names = shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(options.shards).padStart(5, '0')}.safetensors`);
  const index = JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(shards.flatMap((s, i) => s.map((t) => [t.name, names[i]!]))) });
  const models: { repo: string; bytes: number }[] = [];
  let weightBytes = 0;
  for (let m = first; m < first + options.models; m++) {
    const repo = `bench/model-${String(m).padStart(4, '0')}`;
    const storage = join(cacheDir, `models--${repo.replace('/', '--')}`);
    const commit = createHash('sha1').update(`commit ${m}`).digest('hex');
    const snapshot = join(storage, 'snapshots', commit);
    await mkdir(join(storage, 'blobs'), { recursive: true });
    await mkdir(snapshot, { recursive: true });
    await mkdir(join(storage, 'refs'), { recursive: true });
    await writeFile(join(storage, 'refs', 'main'), commit);
    const files: [string, (path: string) => Promise<number>][] = [
      ['config.json', (p) => writeText(p, llamaConfig(options.layers, options.hidden, options.vocab, 'bfloat16'))],
      ['generation_config.json', (p) => writeText(p, `{"bos_token_id": 1, "eos_token_id": 2, "model": ${m}}`)],
      ['tokenizer.json', (p) => writeText(p, `{"version": "1.0", "model": {"type": "BPE", "vocab": {"m${m}": 0}}}`)],
      ['model.safetensors.index.json', (p) => writeText(p, index)],
      ...shards.map((shard, i): [string, (path: string) => Promise<number>] => [names[i]!, (p) => writeSparseSafetensors(p, shard, `${m}:${i}`)]),
    ];
    let bytes = 0;
    for (const [name, write] of files) {
      // Blobs are named by content as the Hub's etags are; a stand-in name per model and file does here.
      const etag = createHash('sha256').update(`${m}/${name}`).digest('hex');
      const written = await write(join(storage, 'blobs', etag));
      bytes += written;
      if (name.endsWith('.safetensors')) weightBytes += written;
      await symlink(join('..', '..', 'blobs', etag), join(snapshot, name));
    }
    models.push({ repo, bytes });
  }
  return { parameters: parameterCount(tensors), models, weightBytes };
}

async function writeText(path: string, text: string): Promise<number> {
  await writeFile(path, text);
  return Buffer.byteLength(text);
}

/** A safetensors file: the real header, then the data as a hole of the right length. */
async function writeSparseSafetensors(path: string, tensors: TinyTensor[], seed: string): Promise<number> {
  const { header, dataBytes } = safetensorsHeader(tensors, { format: 'pt', seed });
  const handle = await open(path, 'w');
  try {
    await handle.write(header);
    await handle.truncate(header.length + dataBytes);
  } finally {
    await handle.close();
  }
  return header.length + dataBytes;
}
