import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { runMerge } from '../../src/main/engine/run-merge';
import { parseKmb } from '../../src/main/cli/args';
import { bitsToF32, f32Bits } from '../../src/main/engine/safetensors/convert';
import { roundBf16, roundF16 } from '../../src/main/engine/methods/numerics';
import { TokenizerFile } from '../../src/main/engine/tokenizer/tokenizer-file';
import { readModelF32, tempDir } from '../helpers';

/** A case made by tools/oracle/make_goldens.py with real mergekit. */
interface GoldenCase {
  name: string;
  recipe: string;
  output: string;
  bar: 'exact' | 'bf16-1ulp' | 'f32-reduction' | 'stats';
  method: string;
  args?: string[];
  notes?: string;
}

const ROOT = resolve('test/fixtures/golden');
const LORA_CACHE = mkdtempSync(join(tmpdir(), 'alloy-lora-'));
afterAll(() => rm(LORA_CACHE, { recursive: true, force: true }));
const cases: GoldenCase[] = JSON.parse(readFileSync(join(ROOT, 'cases.json'), 'utf8'));

/** Distance in units in the last place between two f32 values (sign-magnitude ordering). */
function ulps(a: number, b: number): number {
  const key = (x: number) => {
    const bits = f32Bits(x);
    return bits & 0x80000000 ? 0x80000000 - bits : bits + 0x80000000;
  };
  return Math.abs(key(a) - key(b));
}

/** bf16 ulps: the f32 bit distance scaled to bf16's 7-bit mantissa. */
function bf16Ulps(a: number, b: number): number {
  return ulps(a, b) / 65536;
}

/** The spacing of f32 values at magnitude `x`. */
function ulpOf(x: number): number {
  return Math.abs(bitsToF32(f32Bits(x) + 1) - x);
}

function optionsFrom(args: string[] = [], memoryBudget?: number) {
  const at = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const shard = at('--out-shard-size');
  const seed = at('--random-seed');
  return {
    ...(shard ? { outShardSize: parseKmb(shard) } : {}),
    ...(seed ? { seed: Number(seed) } : {}),
    ...(memoryBudget ? { memoryBudget } : {}),
    ...(args.includes('--unsafe-truncate-embeddings') ? { unsafeTruncateEmbeddings: true } : {}),
    loraMergeCache: LORA_CACHE,
  };
}

describe('goldens from real mergekit', () => {
  it('has cases to check', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  // Methods that rank or reduce whole tensors run a second time with a 2 KB budget: their passes then span many chunks.
  const wholeTensor = new Set(['ties', 'breadcrumbs', 'sce', 'arcee_fusion', 'karcher', 'multislerp', 'model_stock', 'nuslerp', 'slerp']);
  const runs = cases.filter((c) => c.bar !== 'stats').flatMap((c) => (wholeTensor.has(c.method) ? [{ c, budget: undefined }, { c, budget: 2048 }] : [{ c, budget: undefined }]));
  for (const { c, budget } of runs) {
    it(`${c.name} (${c.method}, ${c.bar}${budget ? `, ${budget}-byte chunks` : ''})`, async () => {
      const recipeFile = join(ROOT, 'recipes', c.recipe);
      const out = join(await tempDir(), c.name);
      await runMerge({ recipeText: await readFile(recipeFile, 'utf8'), recipeFile, outDir: out, options: optionsFrom(c.args, budget) });
      const expected = await readModelF32(join(ROOT, 'outputs', c.output));
      const actual = await readModelF32(out);
      expect([...actual.keys()].sort()).toEqual([...expected.keys()].sort());
      const worst: { name: string; ulps: number }[] = [];
      for (const [name, want] of expected) {
        const got = actual.get(name)!;
        expect(got.shape, name).toEqual(want.shape);
        expect(got.dtype, name).toBe(want.dtype);
        let max = 0;
        const scale = c.bar === 'f32-reduction' ? ulpOf(want.values.reduce((m, v) => Math.max(m, Math.abs(v)), 0)) : 0;
        for (let i = 0; i < want.values.length; i++) {
          const a = got.values[i]!;
          const b = want.values[i]!;
          if (Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))) continue;
          max = Math.max(max, scale ? Math.abs(a - b) / scale : want.dtype === 'BF16' ? bf16Ulps(a, b) : ulps(a, b));
        }
        if (max > 0) worst.push({ name, ulps: max });
      }
      const limit = c.bar === 'exact' ? 0 : c.bar === 'f32-reduction' ? 4 : 1;
      expect(worst.filter((w) => w.ulps > limit)).toEqual([]);
      expect(await shardTensorNames(out), 'each tensor written once').toEqual([...actual.keys()].sort());
      await expectSameTokenizer(join(ROOT, 'outputs', c.output), out);
      await expectSameLayerCounts(join(ROOT, 'outputs', c.output), out);
    });
  }

  // Random methods draw from a counter hash, not torch's RNG: compare what must agree, tensor by tensor.
  for (const c of cases.filter((c) => c.bar === 'stats')) {
    it(`${c.name} (${c.method}, statistically: size and mean of the merged task vector, fraction changed, rescale factor)`, async () => {
      const recipeFile = join(ROOT, 'recipes', c.recipe);
      const recipeText = await readFile(recipeFile, 'utf8');
      const out = join(await tempDir(), c.name);
      await runMerge({ recipeText, recipeFile, outDir: out, options: optionsFrom(c.args) });
      const recipe = parse(recipeText) as { base_model: string; models: { model: string }[] };
      const base = await readModelF32(resolve(ROOT, 'recipes', recipe.base_model));
      const others = recipe.models.filter((m) => m.model !== recipe.base_model);
      const single = others.length === 1 ? await readModelF32(resolve(ROOT, 'recipes', others[0]!.model)) : undefined;
      const expected = await readModelF32(join(ROOT, 'outputs', c.output));
      const actual = await readModelF32(out);
      let compared = 0;
      for (const [name, want] of expected) {
        if (want.values.length < 256) continue;
        const b = base.get(name)!.values;
        const got = actual.get(name)!.values;
        // Two independent draws of the kept fraction p over n entries: each spreads by √(p(1 − p)/n),
        // and the size of the kept (rescaled) task vector by about √((1 − p)/(p·n)) times 1.25.
        const kept = changedFraction(want.values, b);
        const sizeBound = Math.max(0.15, 5 * Math.SQRT2 * 1.25 * Math.sqrt((1 - kept) / (kept * want.values.length)));
        const ratio = distance(got, b) / distance(want.values, b);
        expect(Math.abs(ratio - 1), name).toBeLessThan(sizeBound);
        expect(Math.abs(changedFraction(got, b) - kept), name).toBeLessThan(Math.max(0.02, 5 * Math.SQRT2 * Math.sqrt((kept * (1 - kept)) / want.values.length)));
        const [meanGot, meanWant] = [taskVectorMean(got, b), taskVectorMean(want.values, b)];
        expect(Math.abs(meanGot.mean - meanWant.mean), name).toBeLessThan(6 * Math.hypot(meanGot.standardError, meanWant.standardError));
        if (single) {
          const delta = single.get(name)!.values;
          // Both rescale to the delta's L1 norm, so the factor is Σ|delta| / Σ|kept delta|: about 1/density,
          // off by the mask's draw, whose relative spread is about √((1 − p) / (p·n)) times |delta|'s 1.25.
          const [factorGot, factorWant] = [rescaleFactor(got, b, delta), rescaleFactor(want.values, b, delta)];
          const p = changedFraction(want.values, b);
          const spread = 1.25 * Math.sqrt((1 - p) / (p * want.values.length));
          expect(Math.abs(factorGot - factorWant) / factorWant, name).toBeLessThan(5 * Math.SQRT2 * spread);
          expect(factorGot, name).toBeGreaterThan(1 / p / (1 + 5 * spread));
        }
        compared++;
      }
      expect(compared).toBeGreaterThan(10);
    });
  }
});

function distance(values: Float32Array, base: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (values[i]! - base[i]!) ** 2;
  return Math.sqrt(sum);
}

/** The mean of the merged task vector, with the standard error of a mean over its entries. */
function taskVectorMean(values: Float32Array, base: Float32Array): { mean: number; standardError: number } {
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < values.length; i++) {
    const d = values[i]! - base[i]!;
    sum += d;
    squares += d * d;
  }
  const mean = sum / values.length;
  return { mean, standardError: Math.sqrt(Math.max(0, squares / values.length - mean * mean) / values.length) };
}

/** With one model merged: the median of (merged − base) / (model − base) over the entries kept. */
function rescaleFactor(values: Float32Array, base: Float32Array, model: Float32Array): number {
  const ratios: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const delta = model[i]! - base[i]!;
    if (values[i] !== base[i] && Math.abs(delta) > 1e-4) ratios.push((values[i]! - base[i]!) / delta);
  }
  ratios.sort((x, y) => x - y);
  return ratios[ratios.length >> 1]!;
}

function changedFraction(values: Float32Array, base: Float32Array): number {
  let changed = 0;
  for (let i = 0; i < values.length; i++) if (values[i] !== base[i]) changed++;
  return changed / values.length;
}

/** config.json's layer counts (a multimodal model's per module) where mergekit wrote them. */
/** Every tensor name in the shards' headers, sorted, duplicates kept. */
async function shardTensorNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.safetensors'))) {
    const bytes = await readFile(join(dir, file));
    const length = Number(bytes.readBigUInt64LE(0));
    names.push(...Object.keys(JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'))).filter((k) => k !== '__metadata__'));
  }
  return names.sort();
}

async function expectSameLayerCounts(expectedDir: string, actualDir: string): Promise<void> {
  const read = async (dir: string) => JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const [want, got] = [await read(expectedDir), await read(actualDir)];
  const get = (config: Record<string, unknown>, key: string) => key.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), config);
  for (const key of ['num_hidden_layers', 'n_layer', 'num_layers', 'text_config.num_hidden_layers', 'vision_config.num_hidden_layers']) {
    // transformers saves EXAONE's num_layers as num_hidden_layers, Alloy keeps the config's key: a top-level key is compared where Alloy has it.
    // transformers also nests a flat config's text keys (Qwen2.5-VL's) under text_config; Alloy keeps them flat, where transformers reads them too.
    const flat = key.startsWith('text_config.') && get(got, 'text_config') === undefined ? key.slice('text_config.'.length) : key;
    if (typeof get(want, key) === 'number' && (key.includes('.') || get(got, key) !== undefined)) expect(get(got, flat), key).toBe(get(want, key));
  }
}

/** Where mergekit wrote a tokenizer: the same vocabulary, added tokens and config vocab_size. */
async function expectSameTokenizer(expectedDir: string, actualDir: string): Promise<void> {
  const expected = await TokenizerFile.read(expectedDir);
  if (!expected) return;
  const actual = await TokenizerFile.read(actualDir);
  expect(actual, 'tokenizer.json written').toBeDefined();
  expect([...actual!.vocab()].sort()).toEqual([...expected.vocab()].sort());
  expect(actual!.added).toEqual(expected.added);
  const config = async (dir: string) => JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')).vocab_size;
  expect(await config(actualDir)).toBe(await config(expectedDir));
  const template = (dir: string) => readFile(join(dir, 'chat_template.jinja'), 'utf8').catch(() => undefined);
  expect(await template(actualDir)).toBe(await template(expectedDir));
}
