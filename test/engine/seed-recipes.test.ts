import { readFile, readdir, symlink, mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeLlamaModel, type LlamaShape } from '../../src/main/engine/demo/make-demo-models';
import { runMerge } from '../../src/main/engine/run-merge';
import { readModelF32, tempDir } from '../helpers';

/** Tiny stand-ins deep enough for the seed recipes' layer ranges (Lamarck slices 48 layers). */
const SHAPE: LlamaShape = { hidden: 16, intermediate: 32, layers: 48, heads: 2, kvHeads: 1, vocab: 32 };

let root: string;

beforeAll(async () => {
  root = await tempDir();
  await mkdir(join(root, 'models'));
  await writeLlamaModel(join(root, 'base'), { name: 'base', seed: 1 }, SHAPE);
  for (let i = 1; i <= 4; i++) await writeLlamaModel(join(root, `ft${i}`), { name: `ft${i}`, seed: 1 + i, baseSeed: 1 }, SHAPE);
});

/** Each model a recipe names, by its last path segment, as a link to a stand-in: the base for the base model. */
async function standIns(recipeText: string, baseName: string): Promise<string> {
  const dir = await tempDir();
  const names = [...recipeText.matchAll(/(?:model|base_model|tokenizer_source):\s+(\S+)/g)].map((m) => basename(m[1]!.replace(/\/$/, '')));
  let i = 0;
  for (const name of new Set(names)) {
    if (name.startsWith('lamarck-14b-') && !name.endsWith('model_stock')) continue; // stages of the recipe itself
    await symlink(join(root, name === baseName ? 'base' : `ft${(i++ % 4) + 1}`), join(dir, name)).catch(() => undefined);
  }
  return dir;
}

async function runSeed(file: string, baseName: string, edit: (text: string) => string = (t) => t) {
  const recipeText = edit(await readFile(join('test/fixtures/recipes', file), 'utf8'));
  const out = join(await tempDir(), 'out');
  const models = await standIns(recipeText, baseName);
  await runMerge({ recipeText, recipeFile: join(root, file), outDir: out, options: { modelRoots: [models], seed: 1 } });
  return out;
}

function allFinite(model: Map<string, { values: Float32Array }>): boolean {
  return [...model.values()].every((t) => t.values.every(Number.isFinite));
}

describe('the seed recipes, unchanged but for model names, on tiny stand-ins', () => {
  it('Lamarck-14B-v0.3: five stages (DELLA, DELLA, DELLA over both, SLERP with per-slice t, TIES), tokenizer from the named source', async () => {
    const out = await runSeed('lamarck.yml', 'Virtuoso-Small');
    const model = await readModelF32(out);
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).num_hidden_layers).toBe(48);
    expect(model.has('model.layers.47.mlp.down_proj.weight')).toBe(true);
    expect(allFinite(model)).toBe(true);
    expect(await readdir(out)).toContain('tokenizer.json');
    const stages = await readdir(join(out, '..', '.out.stages'));
    for (const stage of ['lamarck-14b-reason-della', 'lamarck-14b-prose-della', 'lamarck-14b-converge-della', 'lamarck-14b-converge']) expect(stages).toContain(stage);
    // The output's card tells the whole recipe: five stages, the models they read, every document.
    const card = await readFile(join(out, 'README.md'), 'utf8');
    expect(card).toContain('This model was built by a recipe of 5 stages');
    expect(card).toMatch(/\n3\. `lamarck-14b-converge-della`: \[DELLA\]\([^)]*\) of `lamarck-14b-reason-della`, `lamarck-14b-prose-della`, base \[arcee-ai\/Virtuoso-Small\]/);
    expect(card).toContain('* [CultriX/SeQwence-14B-EvolMerge](https://huggingface.co/CultriX/SeQwence-14B-EvolMerge)');
    expect(card).not.toMatch(/^\* .*lamarck-14b-reason-della/m);
    expect(card).toContain(await readFile(join('test/fixtures/recipes', 'lamarck.yml'), 'utf8'));
  });

  it('Excalibur-7b: SLERP with self_attn and mlp gradients over 32 layers', async () => {
    const out = await runSeed('excalibur.yml', 'merliniteX-blockF2');
    const model = await readModelF32(out);
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).num_hidden_layers).toBe(32);
    expect(allFinite(model)).toBe(true);
  });

  it('Yi-34B-200K-DARE-merge-v5: dare_ties over eight models with int8_mask', async () => {
    const out = await runSeed('yi-dare-ties.yml', 'chargoddard_Yi-34B-200K-Llama', (text) => text.replace(/\/home\/alpha\/+\S*\/([^/\s]+)\/?/g, '$1'));
    const model = await readModelF32(out);
    const base = await readModelF32(join(root, 'base'));
    expect(allFinite(model)).toBe(true);
    const name = 'model.layers.10.self_attn.q_proj.weight';
    expect(model.get(name)!.values).not.toEqual(base.get(name)!.values);
  });
});
