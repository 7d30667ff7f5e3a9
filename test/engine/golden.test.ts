import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runMerge } from '../../src/main/engine/run-merge';
import { parseKmb } from '../../src/main/cli/args';
import { bitsToF32, f32Bits } from '../../src/main/engine/safetensors/convert';
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
  };
}

describe('goldens from real mergekit', () => {
  it('has cases to check', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  // The TIES cases run a second time with a 2 KB budget: its top-k trim then spans many chunks.
  const runs = cases.filter((c) => c.bar !== 'stats').flatMap((c) => (c.method === 'ties' ? [{ c, budget: undefined }, { c, budget: 2048 }] : [{ c, budget: undefined }]));
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
    });
  }
});

