import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeLlamaModel, type LlamaShape } from '../../src/main/engine/demo/make-demo-models';
import { runMerge } from '../../src/main/engine/run-merge';
import { readModelF32, tempDir } from '../helpers';

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

  it('accepts the older `model:<reference>` form', async () => {
    const out = await merge(recipe('model:chat'));
    expect(JSON.parse(await readFile(join(out, 'tokenizer_config.json'), 'utf8')).chat_template).toBe('{{ messages }}');
  });

  it('union over identical vocabularies is the base tokenizer', async () => {
    const out = await merge(recipe('union'));
    expect(JSON.parse(await readFile(join(out, 'tokenizer_config.json'), 'utf8')).chat_template).toBeUndefined();
  });

  it('re-indexes a model whose vocabulary differs, row by row, to the output vocabulary', async () => {
    const out = await merge(recipe('union', 'other-vocab'));
    const merged = await readModelF32(out);
    const base = await readModelF32(join(root, 'base'));
    const other = await readModelF32(join(root, 'other-vocab'));
    const row = (t: Float32Array, r: number) => [...t.subarray(r * 16, r * 16 + 16)];
    const embed = 'model.embed_tokens.weight';
    // tok3 is row 3 of the base and row 4 of the other model.
    const expected = row(base.get(embed)!.values, 3).map((b, c) => 0.5 * b + 0.5 * row(other.get(embed)!.values, 4)[c]!);
    row(merged.get(embed)!.values, 3).forEach((v, c) => expect(v).toBeCloseTo(expected[c]!, 6));
  });

  it('names the key when a tokenizer cannot be read', async () => {
    await writeFile(join(root, 'broken', 'tokenizer.json'), '{ not json').catch(async () => {
      await cp(join(root, 'chat'), join(root, 'broken'), { recursive: true });
      await writeFile(join(root, 'broken', 'tokenizer.json'), '{ not json');
    });
    await expect(merge(recipe('union', 'broken'))).rejects.toThrow(/recipe\.yml:8:1: tokenizer_source: .*broken\/tokenizer\.json:1:3: not valid JSON/);
  });
});

describe('vocabularies of different sizes without tokenizer_source', () => {
  const golden = (name: string) => join(process.cwd(), 'test/fixtures/golden/models', name);
  const text = `merge_method: linear\nmodels:\n  - model: ${golden('llama-base')}\n    parameters: {weight: 0.5}\n  - model: ${golden('llama-vocab56')}\n    parameters: {weight: 0.5}\ndtype: float32\n`;

  it('are refused, naming the tensor, both shapes and the two ways out', async () => {
    await expect(merge(text)).rejects.toThrow(/"model\.embed_tokens\.weight" has a different number of token rows.*\[48,16\].*\[56,16\].*tokenizer_source.*--unsafe-truncate-embeddings/s);
  });
});
