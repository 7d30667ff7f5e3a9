import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelSummary } from '../../shared/contract';
import { ModelFolder } from '../engine/model/model-folder';

export interface LibraryRoot {
  path: string;
  source: ModelSummary['source'];
}

/** Every model in the library's folders, described from config.json and safetensors headers alone. */
export class LibraryService {
  constructor(private readonly roots: LibraryRoot[]) {}

  async list(): Promise<ModelSummary[]> {
    const found: ModelSummary[] = [];
    for (const root of this.roots) {
      const names = await readdir(root.path).catch(() => [] as string[]);
      for (const name of names.sort()) {
        const dir = join(root.path, name);
        if (!(await stat(join(dir, 'config.json')).catch(() => undefined))) continue;
        const summary = await summarizeModel(dir, name, root.source).catch(() => undefined);
        if (summary) found.push(summary);
      }
    }
    return found;
  }
}

export async function summarizeModel(dir: string, name: string, source: ModelSummary['source']): Promise<ModelSummary> {
  const folder = await ModelFolder.open(dir);
  try {
    const c = folder.config;
    const num = (key: string) => (typeof c[key] === 'number' ? (c[key] as number) : 0);
    const dtypes = new Set<string>();
    let parameters = 0;
    let bytes = 0;
    for (const { entry } of folder.tensors.values()) {
      dtypes.add(entry.dtype);
      parameters += entry.numel;
    }
    for (const shard of folder.shards) bytes += shard.fileSize;
    const files = await readdir(dir);
    return {
      id: dir,
      name,
      path: dir,
      source,
      architecture: Array.isArray(c['architectures']) ? String(c['architectures'][0]) : 'unknown',
      modelType: typeof c['model_type'] === 'string' ? c['model_type'] : 'unknown',
      layers: num('num_hidden_layers') || num('n_layer'),
      hiddenSize: num('hidden_size') || num('n_embd'),
      vocabSize: num('vocab_size'),
      parameters,
      dtypes: [...dtypes].sort(),
      shards: folder.shards.length,
      bytes,
      hasTokenizer: files.includes('tokenizer.json') || files.includes('tokenizer.model'),
    };
  } finally {
    await folder.close();
  }
}
