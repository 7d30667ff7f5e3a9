import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateRequest } from '../../src/shared/contract';
import { parseRecipeText, recipeGradient } from '../../src/main/services/recipe-service';
import { SettingsService } from '../../src/main/services/settings-service';
import { DEMO_ROOT } from '../global-setup';
import { tempDir } from '../helpers';

const search = { modelRoots: [DEMO_ROOT] };
const excaliburOnDemo = `merge_method: slerp
base_model: alloy-demo-chat
models:
  - model: alloy-demo-chat
  - model: alloy-demo-code
parameters:
  t:
    - filter: self_attn
      value: [1, 0.5, 0]
    - filter: mlp
      value: [0, 1]
    - value: 0.25
dtype: float32
`;

describe('recipe.parse', () => {
  it('orders the Lamarck recipe into its five stages, the last one the output', async () => {
    const result = parseRecipeText(await readFile('test/fixtures/recipes/lamarck.yml', 'utf8'));
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.stages.map((s) => s.name)).toEqual([
      'lamarck-14b-reason-della',
      'lamarck-14b-prose-della',
      'lamarck-14b-converge-della',
      'lamarck-14b-converge',
      'lamarck-14b-finalize',
    ]);
    expect(result.stages[3]!.dependsOn).toEqual(['lamarck-14b-converge-della']);
    expect(result.stages.filter((s) => s.final).map((s) => s.name)).toEqual(['lamarck-14b-finalize']);
  });

  it('reports the engine\'s message at the line and column of the mistake, unknown methods included', () => {
    const typo = parseRecipeText('merge_method: linear\nmodels:\n  - model: a\n    parameters:\n      weigth: 1\n  - model: b\n    paramters: {}\n');
    expect(typo.ok).toBe(false);
    if (!typo.ok) expect(typo.problems).toContainEqual(expect.objectContaining({ line: 7, column: 5, message: expect.stringContaining('did you mean "parameters"') }));
    const method = parseRecipeText('merge_method: slurp\nmodels:\n  - model: a\n');
    expect(method).toEqual({ ok: false, problems: [expect.objectContaining({ key: 'merge_method', line: 1, message: expect.stringContaining('unknown merge_method "slurp"') })] });
  });
});

describe('recipe.gradient', () => {
  it('reads each layer\'s t off the engine\'s plan, one line per filter', async () => {
    const result = await recipeGradient({ recipe: excaliburOnDemo, search });
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.source).toBe('plan');
    expect(result.layers).toBe(4);
    const line = (filter: string) => result.series.find((s) => s.parameter === 't' && s.filter === filter)?.values;
    expect(line('self_attn')).toEqual([1, 1 - 1 / 3, 1 / 3, 0].map((x) => expect.closeTo(x, 12)));
    expect(line('mlp')).toEqual([0, 1 / 3, 2 / 3, 1].map((x) => expect.closeTo(x, 12)));
    expect(line('rest')).toEqual([0.25, 0.25, 0.25, 0.25]);
  });

  it('gives per-model lines for per-model parameters', async () => {
    const result = await recipeGradient({ recipe: await readFile('resources/demo/linear.yml', 'utf8'), search });
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.series.map((s) => [s.model, s.filter, s.values[0]])).toEqual([
      ['alloy-demo-chat', 'all', 0.6],
      ['alloy-demo-code', 'all', 0.4],
    ]);
  });

  it('draws no line for the base model of a method that takes no per-model value of it (dare_ties)', async () => {
    const recipe = 'merge_method: dare_ties\nbase_model: alloy-demo-chat\nmodels:\n  - model: alloy-demo-chat\n  - model: alloy-demo-code\n    parameters: {weight: 0.5, density: [0.2, 0.8]}\n';
    const result = await recipeGradient({ recipe, search });
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.series.map((s) => [s.parameter, s.model])).toEqual([
      ['weight', 'alloy-demo-code'],
      ['density', 'alloy-demo-code'],
      ['lambda', undefined],
    ]);
  });

  it('says what is wrong with a slices recipe whose models are on disk, rather than falling back to its ranges', async () => {
    const result = await recipeGradient({ recipe: 'merge_method: passthrough\nslices:\n  - sources:\n      - {model: alloy-demo-chat, layer_range: [2, 6]}\n', search });
    expect(result.ok).toBe(false);
    expect(JSON.stringify(result)).toMatch(/layer_range \[2, 6\] of alloy-demo-chat goes past its 4 layers/);
  });

  it('evaluates a slices recipe over its layer ranges when its models are not on disk (Excalibur)', async () => {
    const result = await recipeGradient({ recipe: await readFile('test/fixtures/recipes/excalibur.yml', 'utf8'), search });
    if (!result.ok) throw new Error(JSON.stringify(result.problems));
    expect(result.source).toBe('slices');
    expect(result.layers).toBe(32);
    const attn = result.series.find((s) => s.filter === 'self_attn')!.values;
    expect(attn[0]).toBe(1);
    expect(attn[31]).toBe(0);
    expect(attn[8]).toBeCloseTo(0.7 - 0.4 * ((8 * 4) / 31 - 1), 12);
  });

  it('refuses absurd layer ranges of a slices recipe without its models, instead of sizing arrays by them', async () => {
    const slices = (end: number, slicesCount = 1) =>
      `merge_method: linear\nslices:\n${`  - sources:\n      - model: nope/a\n        layer_range: [0, ${end}]\n        parameters: {weight: [0, 1]}\n      - model: nope/b\n        layer_range: [0, ${end}]\n`.repeat(slicesCount)}`;
    const deep = await recipeGradient({ recipe: slices(400), search });
    expect(deep.ok && deep.layers).toBe(400);
    for (const [end, count] of [[50_000, 1], [4_000, 3], [1_000_000_000, 1]] as const) {
      const started = Date.now();
      const result = await recipeGradient({ recipe: slices(end, count), search });
      expect(result.ok, `[0, ${end}] × ${count}`).toBe(false);
      if (!result.ok) {
        expect(result.problems).toEqual([
          expect.objectContaining({ key: 'layer_range', line: 2, message: expect.stringMatching(new RegExp(`add up to ${end * count} layers \\(the widest is \\[0, ${end}\\]\\); Alloy draws gradients for at most 10000 layers`)) }),
        ]);
      }
      expect(Date.now() - started).toBeLessThan(2_000);
    }
  });
});

describe('settings', () => {
  it('keeps what is set in its file and refuses values outside the contract', async () => {
    const file = join(await tempDir(), 'settings.json');
    await new SettingsService(file).set({ theme: 'dark', memoryBudget: 1 << 28 });
    expect(await new SettingsService(file).get()).toMatchObject({ theme: 'dark', memoryBudget: 1 << 28, device: 'auto' });
    expect(() => validateRequest('settings.set', { theme: 'pink' })).toThrow(/theme/);
  });

  it('takes many settings.set at once: none fails, and the file ends with what the last one left', async () => {
    const dir = await tempDir();
    const file = join(dir, 'settings.json');
    const settings = new SettingsService(file);
    const themes = ['light', 'dark', 'system'] as const;
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => settings.set({ memoryBudget: (1 + round * 8 + i) << 20, theme: themes[i % 3]! })),
      );
      expect(answers.filter((a) => a.status === 'rejected')).toEqual([]);
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(await settings.get());
      expect((await settings.get()).memoryBudget).toBe((round * 8 + 8) << 20);
    }
    // No temporary file is left beside it.
    expect(await readdir(dir)).toEqual(['settings.json']);
  });
});
