import { mkdir, symlink, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { selectFiles } from '../../src/main/services/downloads/select-files';
import type { RemoteFile } from '../../src/main/services/downloads/list-remote-files';
import { LibraryService } from '../../src/main/services/library/library-service';
import { tempDir } from '../helpers';
import { TINY_MISTRAL_PARAMETERS, tinyMistralFiles } from './fake-hub/fixture-repos';

const files = (...paths: string[]): RemoteFile[] => paths.map((path) => ({ path, size: 1, oid: 'x' }));
const chosen = (all: RemoteFile[], selection?: Parameters<typeof selectFiles>[1]) => selectFiles(all, selection).map((f) => f.path);

describe('which files a download takes', () => {
  it('by default what a merge needs, not .bin beside safetensors, nothing in subfolders', () => {
    const repo = files('config.json', 'model.safetensors', 'pytorch_model.bin', 'tokenizer.model', 'README.md', 'onnx/model.onnx', 'generation_config.json', 'merges.txt', 'vocab.json', 'original/consolidated.pth');
    expect(chosen(repo)).toEqual(['config.json', 'model.safetensors', 'tokenizer.model', 'generation_config.json', 'merges.txt', 'vocab.json']);
  });

  it('takes PyTorch weights and their index when there are no safetensors', () => {
    expect(chosen(files('config.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin', 'pytorch_model.bin.index.json', 'training_args.bin'))).toEqual([
      'config.json',
      'pytorch_model-00001-of-00002.bin',
      'pytorch_model-00002-of-00002.bin',
      'pytorch_model.bin.index.json',
    ]);
  });

  it("skips Mistral's consolidated.safetensors beside the transformers shards; 'all' and lists take what they say", () => {
    const repo = files('config.json', 'consolidated.safetensors', 'model-00001-of-00001.safetensors', 'params.json');
    expect(chosen(repo)).toEqual(['config.json', 'model-00001-of-00001.safetensors']);
    expect(chosen(repo, 'all')).toHaveLength(4);
    expect(chosen(repo, ['params.json'])).toEqual(['params.json']);
  });
});

describe('a library of hundreds of models', () => {
  it('lists 300 hub cache repos from headers, and relists from its memo', async () => {
    const cache = await tempDir();
    const source = tinyMistralFiles();
    const template = join(await tempDir(), 'blobs');
    await mkdir(template);
    for (const [name, content] of Object.entries(source)) await writeFile(join(template, name), content);
    for (let i = 0; i < 300; i++) {
      const storage = join(cache, `models--org--model-${i}`);
      const commit = i.toString(16).padStart(40, '0');
      await cp(template, join(storage, 'blobs'), { recursive: true });
      await mkdir(join(storage, 'snapshots', commit), { recursive: true });
      await mkdir(join(storage, 'refs'));
      await writeFile(join(storage, 'refs', 'main'), commit);
      for (const name of Object.keys(source)) await symlink(`../../blobs/${name}`, join(storage, 'snapshots', commit, name));
    }
    const library = new LibraryService({ folders: [], hubCaches: [cache] });
    let start = performance.now();
    const first = await library.list();
    const cold = performance.now() - start;
    start = performance.now();
    const again = await library.list();
    const warm = performance.now() - start;
    expect(first).toHaveLength(300);
    expect(first.every((m) => m.parameters === TINY_MISTRAL_PARAMETERS && m.reference === m.repoId)).toBe(true);
    expect(again).toEqual(first);
    expect(cold).toBeLessThan(5000);
    expect(warm).toBeLessThan(cold);
  });
});
