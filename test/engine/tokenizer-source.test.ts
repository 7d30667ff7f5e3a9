import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeLlamaModel, type LlamaShape } from '../../src/main/engine/demo/make-demo-models';
import { runMerge } from '../../src/main/engine/run-merge';
import { tempDir } from '../helpers';

const SHAPE: LlamaShape = { hidden: 16, intermediate: 32, layers: 2, heads: 2, kvHeads: 1, vocab: 32 };
let root: string;

beforeAll(async () => {
  root = await tempDir();
  await writeLlamaModel(join(root, 'base'), { name: 'base', seed: 1 }, SHAPE);
  await writeLlamaModel(join(root, 'chat'), { name: 'chat', seed: 2, baseSeed: 1 }, SHAPE);
  const config = join(root, 'chat', 'tokenizer_config.json');
  await writeFile(config, JSON.stringify({ ...JSON.parse(await readFile(config, 'utf8')), chat_template: '{{ messages }}' }));
  await cp(join(root, 'chat'), join(root, 'other-vocab'), { recursive: true });
  const tokenizer = join(root, 'other-vocab', 'tokenizer.json');
  const json = JSON.parse(await readFile(tokenizer, 'utf8'));
  json.model.vocab = { ...json.model.vocab, tok3: 4, tok4: 3 };
  await writeFile(tokenizer, JSON.stringify(json));
});

const recipe = (source: string, other = 'chat') => `merge_method: linear
models:
  - model: base
    parameters: {weight: 0.5}
  - model: ${other}
    parameters: {weight: 0.5}
base_model: base
tokenizer_source: ${source}
dtype: float32
`;

async function merge(text: string) {
  const out = join(await tempDir(), 'out');
  await runMerge({ recipeText: text, recipeFile: join(root, 'recipe.yml'), outDir: out, options: {} });
  return out;
}

describe('tokenizer_source', () => {
  it('with the same vocabulary everywhere, merges plainly and takes the tokenizer from the named model', async () => {
    const out = await merge(recipe('chat'));
    expect(JSON.parse(await readFile(join(out, 'tokenizer_config.json'), 'utf8')).chat_template).toBe('{{ messages }}');
  });

  it('union over identical vocabularies is the base tokenizer', async () => {
    const out = await merge(recipe('union'));
    expect(JSON.parse(await readFile(join(out, 'tokenizer_config.json'), 'utf8')).chat_template).toBeUndefined();
  });

  it('refuses vocabularies that differ, at the key, naming the token', async () => {
    await expect(merge(recipe('union', 'other-vocab'))).rejects.toThrow(/recipe\.yml:8:1: tokenizer_source: the vocabularies of base and other-vocab differ \("tok3" is 3 in one and 4 in the other\)/);
  });
});

describe('vocabularies of different sizes without tokenizer_source', () => {
  const golden = (name: string) => join(process.cwd(), 'test/fixtures/golden/models', name);
  const text = `merge_method: linear\nmodels:\n  - model: ${golden('llama-base')}\n    parameters: {weight: 0.5}\n  - model: ${golden('llama-vocab56')}\n    parameters: {weight: 0.5}\ndtype: float32\n`;

  it('are refused, naming the tensor, both shapes and the two ways out', async () => {
    await expect(merge(text)).rejects.toThrow(/"model\.embed_tokens\.weight" has a different number of token rows.*\[48,16\].*\[56,16\].*tokenizer_source.*--unsafe-truncate-embeddings/s);
  });
});
