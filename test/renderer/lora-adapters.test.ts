// @vitest-environment happy-dom
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AlloyApi, ModelSummary } from '../../src/shared/contract';
import LibraryView from '../../src/renderer/src/views/LibraryView.vue';
import RecipeView from '../../src/renderer/src/views/RecipeView.vue';
import { tempDir } from '../helpers';
import { mountView, realApi, settle, until } from './real-api';

/** A PEFT adapter (r 4, alpha 8) trained on llama-base, beside that base, in a library folder of their own. */
const ADAPTER = resolve('test/fixtures/golden/loras/llama-lora');
const BASE = resolve('test/fixtures/golden/models/llama-base');

const savedCache = process.env['XDG_CACHE_HOME'];
beforeAll(async () => {
  // The engine merges a base+LoRA once into $XDG_CACHE_HOME/alloy/lora-merges: a temporary one here.
  process.env['XDG_CACHE_HOME'] = await tempDir('alloy-lora-cache-');
});
afterAll(() => {
  if (savedCache === undefined) delete process.env['XDG_CACHE_HOME'];
  else process.env['XDG_CACHE_HOME'] = savedCache;
});
afterEach(() => {
  document.body.innerHTML = '';
});

/**
 * The real services with a folder holding llama-base and its adapter, my-lora, added to the library;
 * with `other`, also an-other-lora, the same adapter saying it was trained on org/other-base.
 */
async function apiWithAdapter({ other = false } = {}): Promise<{ api: AlloyApi; base: ModelSummary; lora: ModelSummary }> {
  const api = realApi();
  const dir = await tempDir();
  await cp(BASE, join(dir, 'llama-base'), { recursive: true });
  await cp(ADAPTER, join(dir, 'my-lora'), { recursive: true });
  if (other) {
    await cp(ADAPTER, join(dir, 'an-other-lora'), { recursive: true });
    const config = join(dir, 'an-other-lora', 'adapter_config.json');
    await writeFile(config, JSON.stringify({ ...JSON.parse(await readFile(config, 'utf8')), base_model_name_or_path: 'org/other-base' }));
  }
  await api.invoke('library.addFolder', { path: dir });
  const listed = await api.invoke('library.list', {});
  return { api, base: listed.find((m) => m.name === 'llama-base')!, lora: listed.find((m) => m.name === 'my-lora')! };
}

describe('LoRA adapters in the Library view', () => {
  it('shows an adapter as a LoRA adapter for its base, with its rank and size, and never as a base to fit', async () => {
    const { api, lora } = await apiWithAdapter();
    const { wrapper } = await mountView(LibraryView, api);
    const row = () => wrapper.findAll('[data-testid=library-row]').find((r) => r.attributes('data-model') === 'my-lora');
    await until(() => row() !== undefined);
    const cells = row()!.findAll('td').map((c) => c.text());
    expect(row()!.get('[data-testid=lora-tag]').text()).toBe('LoRA adapter');
    expect(row()!.get('[data-testid=lora-facts]').text()).toBe('for test/fixtures/golden/models/llama-base · rank 4 · alpha 8');
    expect(row()!.text()).not.toContain('not mergeable');
    expect(cells.slice(1, 4)).toEqual(['LoRA adapter', '—', '—']);
    expect(cells[7]).toMatch(/^\d+(\.\d+)? KB$/);
    expect(lora.bytes).toBeGreaterThan(9000);
    const bases = wrapper.findAll('[data-testid=library-base] option').map((o) => o.attributes('value'));
    expect(bases).not.toContain(lora.id);
    expect(bases).toContain((await api.invoke('library.list', {})).find((m) => m.name === 'llama-base')!.id);
  });
});

describe('LoRA adapters in the recipe form', () => {
  it('does not offer an adapter as a model or a base', async () => {
    const { api, lora } = await apiWithAdapter();
    const { wrapper, recipe } = await mountView(RecipeView, api);
    recipe.setText('merge_method: task_arithmetic\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-chat\n    parameters: {weight: 1}\ndtype: float32\n');
    await settle(recipe);
    await until(() => wrapper.find('[data-testid=library-chip][data-model=llama-base]').exists());
    expect(wrapper.find('[data-testid=library-chip][data-model=my-lora]').exists()).toBe(false);
    expect(wrapper.findAll('[data-testid=add-model-select] option').map((o) => o.attributes('value'))).not.toContain(lora.reference);
    const bases = wrapper.findAll('[data-testid=base-model] option').map((o) => o.attributes('value'));
    expect(bases).toContain((await api.invoke('library.list', {})).find((m) => m.name === 'llama-base')!.reference);
    expect(bases).not.toContain(lora.reference);
  });

  it('applies a picked adapter to a model as "model+adapter", which the engine plans; "none" takes it off again', async () => {
    const { api, base, lora } = await apiWithAdapter();
    const { wrapper, recipe } = await mountView(RecipeView, api);
    recipe.setText(`merge_method: task_arithmetic\nbase_model: ${base.reference}\nmodels:\n  - model: ${base.reference}\n    parameters: {weight: 0.5} # kept\ndtype: float32\n`);
    await settle(recipe);
    const picker = () => wrapper.get<HTMLSelectElement>('[data-testid=recipe-model] [data-testid=model-lora]');
    await until(() => wrapper.find('[data-testid=model-lora]').exists() && picker().findAll('option').length === 2);
    expect(picker().findAll('option').map((o) => o.text())).toEqual(['none', 'my-lora · rank 4 · for test/fixtures/golden/models/llama-base (made for this model)']);

    await picker().setValue(lora.reference);
    await settle(recipe);
    expect(recipe.read(['models', 0, 'model'])).toBe(`${base.reference}+${lora.reference}`);
    expect(recipe.text).toContain('parameters: {weight: 0.5} # kept');
    expect(wrapper.get('[data-testid=recipe-model] strong').text()).toBe('llama-base + LoRA my-lora');
    expect(picker().element.value).toBe(lora.reference);
    // The engine found both folders and merged the adapter into the model to plan it.
    await until(() => recipe.valid, 30_000);
    expect(recipe.gradient).toMatchObject({ ok: true, source: 'plan' });
    const plan = await api.invoke('recipe.plan', { recipe: recipe.text });
    expect(plan.ok && plan.plan.models).toContain(`${base.reference}+${lora.reference}`);

    await picker().setValue('');
    await settle(recipe);
    expect(recipe.read(['models', 0, 'model'])).toBe(base.reference);
    expect(wrapper.get('[data-testid=recipe-model] strong').text()).toBe('llama-base');
  });

  it('lists the adapters made for a card\'s model first, labelled, and the others after, unlabelled', async () => {
    const { api, base } = await apiWithAdapter({ other: true });
    const { wrapper, recipe } = await mountView(RecipeView, api);
    recipe.setText(`merge_method: linear\nmodels:\n  - model: ${base.reference}\n    parameters: {weight: 1}\n  - model: org/other-base\n    parameters: {weight: 1}\n  - model: alloy-demo-chat\n    parameters: {weight: 1}\ndtype: float32\n`);
    await settle(recipe);
    const options = (i: number) => wrapper.findAll('[data-testid=recipe-model]')[i]!.findAll('[data-testid=model-lora] option').map((o) => o.text());
    await until(() => wrapper.findAll('[data-testid=model-lora]').length === 3 && options(0).length === 3);
    const mine = 'my-lora · rank 4 · for test/fixtures/golden/models/llama-base';
    const other = 'an-other-lora · rank 4 · for org/other-base';
    // By name an-other-lora comes first; made for llama-base, my-lora is listed before it on llama-base's card.
    expect(options(0)).toEqual(['none', `${mine} (made for this model)`, other]);
    // A Hub id the library does not hold: an-other-lora names it.
    expect(options(1)).toEqual(['none', `${other} (made for this model)`, mine]);
    // Made for neither: both, by name, unlabelled.
    expect(options(2)).toEqual(['none', other, mine]);
  });

  it('applies an adapter to the base model as "base+adapter" in base_model, made-for ones first; "none" takes it off', async () => {
    const { api, base, lora } = await apiWithAdapter({ other: true });
    const { wrapper, recipe } = await mountView(RecipeView, api);
    recipe.setText(`merge_method: task_arithmetic\nbase_model: ${base.reference}\nmodels:\n  - model: ${base.reference}\n    parameters: {weight: 1}\ndtype: float32\n`);
    await settle(recipe);
    const picker = () => wrapper.get<HTMLSelectElement>('[data-testid=base-lora]');
    await until(() => wrapper.find('[data-testid=base-lora]').exists() && picker().findAll('option').length === 3);
    expect(picker().findAll('option').map((o) => o.text())).toEqual([
      'none',
      'my-lora · rank 4 · for test/fixtures/golden/models/llama-base (made for this model)',
      'an-other-lora · rank 4 · for org/other-base',
    ]);

    await picker().setValue(lora.reference);
    await settle(recipe);
    expect(recipe.read(['base_model'])).toBe(`${base.reference}+${lora.reference}`);
    expect(recipe.text).toContain(`base_model: ${base.reference}+${lora.reference}\nmodels:\n  - model: ${base.reference}\n`);
    expect(picker().element.value).toBe(lora.reference);
    const baseSelect = wrapper.get<HTMLSelectElement>('[data-testid=base-model]');
    expect(baseSelect.element.value).toBe(`${base.reference}+${lora.reference}`);
    expect(baseSelect.findAll('option').find((o) => o.element.value === baseSelect.element.value)!.text()).toBe('llama-base + LoRA my-lora');
    // The engine reads the base as the base with the adapter merged in, to plan it.
    await until(() => recipe.valid, 30_000);
    const plan = await api.invoke('recipe.plan', { recipe: recipe.text });
    expect(plan.ok && plan.plan.models).toContain(`${base.reference}+${lora.reference}`);

    await picker().setValue('');
    await settle(recipe);
    expect(recipe.read(['base_model'])).toBe(base.reference);
    expect(baseSelect.element.value).toBe(base.reference);
  });

  it('keeps an adapter written by hand that the library does not list, shown by its reference', async () => {
    const { api, base } = await apiWithAdapter();
    const { wrapper, recipe } = await mountView(RecipeView, api);
    recipe.setText(`merge_method: linear\nmodels:\n  - model: ${base.reference}+org/elsewhere-lora\n    parameters: {weight: 1}\ndtype: float32\n`);
    await settle(recipe);
    await until(() => wrapper.find('[data-testid=model-lora]').exists());
    const picker = wrapper.get<HTMLSelectElement>('[data-testid=model-lora]');
    expect(picker.element.value).toBe('org/elsewhere-lora');
    expect(wrapper.get('[data-testid=recipe-model] strong').text()).toBe('llama-base + LoRA org/elsewhere-lora');
    // The engine says where it looked for the adapter, at that model.
    await until(() => recipe.problems.length > 0, 30_000);
    expect(recipe.problems.map((p) => p.message).join('\n')).toMatch(/LoRA adapter "org\/elsewhere-lora"/);
  });
});

describe('LoRA adapters on slice sources', () => {
  /** A passthrough stack of llama-base's layers 0-2 (scaled, with a comment) and 2-4. */
  function stack(model: string): string {
    return `merge_method: passthrough\nslices:\n  - sources:\n      - model: ${model}\n        layer_range: [0, 2]\n        parameters: {scale: 1} # kept\n  - sources:\n      - model: ${model}\n        layer_range: [2, 4]\ndtype: float32\n`;
  }

  it('applies a picked adapter to one source as "model+adapter", made-for ones first, its other keys kept; "none" takes it off', async () => {
    const { api, base, lora } = await apiWithAdapter({ other: true });
    const { wrapper, recipe } = await mountView(RecipeView, api);
    recipe.setText(stack(base.reference));
    await settle(recipe);
    const pickers = () => wrapper.findAll<HTMLSelectElement>('[data-testid=slices-editor] [data-testid=slice-lora]');
    await until(() => pickers().length === 2 && pickers()[0]!.findAll('option').length === 3);
    expect(pickers()[0]!.findAll('option').map((o) => o.text())).toEqual([
      'none',
      'my-lora · rank 4 · for test/fixtures/golden/models/llama-base (made for this model)',
      'an-other-lora · rank 4 · for org/other-base',
    ]);

    await pickers()[0]!.setValue(lora.reference);
    await settle(recipe);
    expect(recipe.read(['slices', 0, 'sources', 0])).toEqual({ model: `${base.reference}+${lora.reference}`, layer_range: [0, 2], parameters: { scale: 1 } });
    expect(recipe.text).toContain('parameters: {scale: 1} # kept');
    expect(recipe.read(['slices', 1, 'sources', 0, 'model'])).toBe(base.reference);
    expect(pickers()[0]!.element.value).toBe(lora.reference);
    expect(pickers()[1]!.element.value).toBe('');
    // The library still knows the source's layers through its adapter.
    expect(wrapper.get('[aria-label="Slice 1 model 1 end layer"]').attributes('max')).toBe('4');
    await until(() => recipe.valid, 30_000);
    const plan = await api.invoke('recipe.plan', { recipe: recipe.text });
    expect(plan.ok && plan.plan.models).toContain(`${base.reference}+${lora.reference}`);

    await pickers()[0]!.setValue('');
    await settle(recipe);
    expect(recipe.read(['slices', 0, 'sources', 0])).toEqual({ model: base.reference, layer_range: [0, 2], parameters: { scale: 1 } });
  });

  it('offers no picker without adapters, keeps one written by hand, and never offers an adapter as a source model', async () => {
    const { api, base, lora } = await apiWithAdapter();
    const { wrapper, recipe } = await mountView(RecipeView, api);
    recipe.setText(stack(`${base.reference}+org/elsewhere-lora`));
    await settle(recipe);
    const pickers = () => wrapper.findAll<HTMLSelectElement>('[data-testid=slice-lora]');
    await until(() => pickers().length === 2 && pickers()[0]!.findAll('option').length === 3);
    expect(pickers()[0]!.element.value).toBe('org/elsewhere-lora');
    expect(pickers()[0]!.findAll('option').map((o) => o.text())).toEqual(['none', 'org/elsewhere-lora', 'my-lora · rank 4 · for test/fixtures/golden/models/llama-base (made for this model)']);
    expect(wrapper.findAll('#slice-models option').map((o) => o.attributes('value'))).not.toContain(lora.reference);

    const { wrapper: plain, recipe: plainRecipe } = await mountView(RecipeView);
    plainRecipe.setText(stack('alloy-demo-chat'));
    await settle(plainRecipe);
    await until(() => plain.find('[data-testid=slices-editor]').exists() && !plain.find('[data-testid=recipe-loading]').exists());
    expect(plain.find('[data-testid=slice-lora]').exists()).toBe(false);
  });
});
