// @vitest-environment happy-dom
import { readFileSync } from 'node:fs';
import { flushPromises } from '@vue/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import RecipeView from '../../src/renderer/src/views/RecipeView.vue';
import { join } from 'node:path';
import { writeLlamaModel } from '../../src/main/engine/demo/make-demo-models';
import { tempDir } from '../helpers';
import { mountView, settle, until } from './real-api';

const EXCALIBUR_ON_DEMO = `merge_method: slerp
base_model: alloy-demo-chat
models:
  - model: alloy-demo-chat
  - model: alloy-demo-code
parameters:
  t:
    - filter: self_attn
      value: [1, 0.7, 0.3, 0.5, 0]
    - filter: mlp
      value: [0, 0.3, 0.7, 0.5, 1]
    - value: 0.5 # fallback for rest of tensors
dtype: float32
`;

afterEach(() => {
  document.body.innerHTML = '';
});

async function mountEditor(text: string) {
  const mounted = await mountView(RecipeView);
  const editor = mounted.wrapper.get<HTMLTextAreaElement>('[data-testid=recipe-editor]');
  await editor.setValue(text);
  await settle(mounted.recipe);
  return { ...mounted, editor };
}

describe('the recipe editor', () => {
  it('starts from the demo recipe, with the methods from the registry', async () => {
    const { wrapper, recipe } = await mountView(RecipeView);
    await settle(recipe);
    const options = wrapper.findAll('[data-testid=method-select] option').map((o) => o.attributes('value'));
    expect(options).toEqual(expect.arrayContaining(['linear', 'slerp', 'ties', 'della', 'passthrough', 'nearswap']));
    expect(wrapper.get('[data-testid=method-description]').text()).toMatch(/weighted average/i);
    expect(wrapper.get('[data-testid=method-paper]').attributes('href')).toMatch(/^https:/);
    expect(wrapper.findAll('[data-testid=recipe-model]').map((m) => m.find('strong').text())).toEqual(['alloy-demo-chat', 'alloy-demo-code']);
  });

  it('a library model dragged onto the models list is added to the YAML', async () => {
    const { wrapper, recipe, api } = await mountEditor('merge_method: linear\nmodels:\n  - model: alloy-demo-chat\ndtype: float32\n');
    const chip = wrapper.get('[data-testid=library-chip][data-model=alloy-demo-code]');
    const dataTransfer = new DataTransfer();
    await chip.trigger('dragstart', { dataTransfer });
    const zone = wrapper.get('[data-testid=models-drop]');
    await zone.trigger('dragover', { dataTransfer });
    expect(zone.classes()).toContain('dropping');
    await zone.trigger('drop', { dataTransfer });
    // The library's reference for it (the demo's folder), which the engine resolves, not its bare name.
    const code = (await api.invoke('library.list', {})).find((m) => m.name === 'alloy-demo-code')!;
    expect(code.reference).not.toBe(code.name);
    expect(recipe.text).toContain(`- model: alloy-demo-chat\n  - model: ${code.reference}\n`);
    expect(wrapper.findAll('[data-testid=recipe-model]').map((m) => m.find('strong').text())).toEqual(['alloy-demo-chat', 'alloy-demo-code']);
    expect(wrapper.find('[data-testid=library-chip][data-model=alloy-demo-code]').exists()).toBe(false);
    // Text dragged from elsewhere is not a model.
    const other = new DataTransfer();
    other.setData('text/plain', 'rm -rf');
    await zone.trigger('drop', { dataTransfer: other });
    expect(recipe.text).not.toContain('rm -rf');
  });

  it('a model picked from "Add from the library…" is written by its reference, and the engine finds it', async () => {
    const { wrapper, recipe, api } = await mountEditor('merge_method: linear\nmodels:\n  - model: alloy-demo-chat\n    parameters: {weight: 1}\ndtype: float32\n');
    const code = (await api.invoke('library.list', {})).find((m) => m.name === 'alloy-demo-code')!;
    await wrapper.get('[data-testid=add-model-select]').setValue(code.reference);
    await wrapper.get('[data-testid=add-model-button]').trigger('click');
    expect(recipe.text).toContain(`- model: ${code.reference}\n`);
    expect(recipe.text).not.toMatch(/- model: alloy-demo-code\b/);
    // Shown by its library name, and offered no more.
    expect(wrapper.findAll('[data-testid=recipe-model]')[1]!.find('strong').text()).toBe('alloy-demo-code');
    expect(wrapper.findAll('[data-testid=add-model-select] option').map((o) => o.attributes('value'))).not.toContain(code.reference);
    recipe.edit(['models', 1, 'parameters', 'weight'], 1);
    const plan = await api.invoke('recipe.plan', { recipe: recipe.text });
    expect(plan.ok ? plan.plan.models.length : plan.problems).toBe(2);
  });

  it('fills the form from a pasted recipe: method, base, models and a filtered gradient', async () => {
    const { wrapper } = await mountEditor(EXCALIBUR_ON_DEMO);
    expect(wrapper.get<HTMLSelectElement>('[data-testid=method-select]').element.value).toBe('slerp');
    expect(wrapper.get<HTMLSelectElement>('[data-testid=base-model]').element.value).toBe('alloy-demo-chat');
    expect(wrapper.get<HTMLSelectElement>('[data-testid=param-mode-global-t]').element.value).toBe('filters');
    const filters = [0, 1, 2].map((k) => wrapper.get<HTMLInputElement>(`[data-testid=param-filter-global-t-${k}]`).element.value);
    const values = [0, 1, 2].map((k) => wrapper.get<HTMLInputElement>(`[data-testid=param-filter-value-global-t-${k}]`).element.value);
    expect(filters).toEqual(['self_attn', 'mlp', '']);
    expect(values).toEqual(['1, 0.7, 0.3, 0.5, 0', '0, 0.3, 0.7, 0.5, 1', '0.5']);
    expect(wrapper.get<HTMLSelectElement>('[data-testid=dtype]').element.value).toBe('float32');
    expect(wrapper.find('[data-testid=recipe-ok]').exists()).toBe(true);
  });

  it('writes each form edit into the YAML, keeping comments and the keys it does not show', async () => {
    const { wrapper, editor } = await mountEditor(EXCALIBUR_ON_DEMO);
    const filter = wrapper.get('[data-testid=param-filter-global-t-1]');
    await filter.setValue('mlp.down_proj');
    await filter.trigger('change');
    // nearswap takes t too: a switch drops only what the new method does not take.
    await wrapper.get('[data-testid=method-select]').setValue('nearswap');
    await wrapper.get('[data-testid=out-dtype]').setValue('bfloat16');
    await wrapper.get('[data-testid=add-model-hub]').setValue('org/another-7b');
    await wrapper.get('[data-testid=add-model-hub]').trigger('keydown', { key: 'Enter' });
    const text = editor.element.value;
    expect(text).toContain('merge_method: nearswap');
    expect(text).toContain('out_dtype: bfloat16');
    expect(text).toMatch(/- model: alloy-demo-code\n {2}- model: org\/another-7b/);
    expect(text).toContain('filter: mlp.down_proj');
    expect(text).toContain('- value: 0.5 # fallback for rest of tensors');
  });

  it('generates per-model fields from the method\'s declared parameters', async () => {
    const { wrapper, editor } = await mountEditor(EXCALIBUR_ON_DEMO.replace('merge_method: slerp', 'merge_method: ties'));
    const model0 = wrapper.findAll('[data-testid=recipe-model]')[0]!;
    expect(model0.find('[data-testid=param-model0-weight]').exists()).toBe(true);
    expect(model0.find('[data-testid=param-model0-density]').exists()).toBe(true);
    await model0.get('[data-testid=param-mode-model0-density]').setValue('value');
    const input = model0.get('[data-testid=param-value-model0-density]');
    await input.setValue('0.2, 0.8');
    await input.trigger('change');
    expect(editor.element.value).toMatch(/- model: alloy-demo-chat\n {4}parameters:\n {6}density: \[0\.2, 0\.8\]/);
  });

  it('marks a required per-model parameter required on every model but the base, which the engine asks nothing of', async () => {
    const { wrapper } = await mountEditor(EXCALIBUR_ON_DEMO.replace('merge_method: slerp', 'merge_method: dare_ties').replace(/parameters:[\s\S]*dtype/, 'dtype'));
    const [base, other] = wrapper.findAll('[data-testid=recipe-model]');
    expect(base!.text()).toContain('base');
    expect(base!.get('[data-testid=param-model0-weight]').text()).not.toContain('required');
    expect(other!.get('[data-testid=param-model1-weight]').text()).toContain('required');
  });

  it('marks a wrong value at its field with the engine\'s own message', async () => {
    const { wrapper } = await mountEditor(EXCALIBUR_ON_DEMO.replace('dtype: float32', 'dtype: float8'));
    const dtype = wrapper.get('[data-testid=dtype]');
    expect(dtype.attributes('aria-invalid')).toBe('true');
    expect(wrapper.get('.options').text()).toContain('dtype "float8" is not one of float32, float16, bfloat16');
    expect(wrapper.get('[data-testid=recipe-problems]').text()).toMatch(/line 13:8/);
  });

  it('marks a problem the planner finds at its field: an unknown chat template', async () => {
    const { wrapper } = await mountEditor(`${EXCALIBUR_ON_DEMO}tokenizer_source: base\nchat_template: vicuna-ish\n`);
    expect(wrapper.get('[data-testid=chat-template]').attributes('aria-invalid')).toBe('true');
    expect(wrapper.get('[data-testid=chat-template-problem]').text()).toContain('"vicuna-ish" is neither a template nor one of auto, chatml');
  });

  it('shows every problem the planner finds, and says "valid" only when there is none', async () => {
    const { wrapper, recipe } = await mountEditor('merge_method: linear\nmodels:\n  - model: alloy-demo-chat\n  - model: alloy-demo-code\ndtype: float32\n');
    expect(recipe.parse).toMatchObject({ ok: true });
    expect(wrapper.find('[data-testid=recipe-ok]').exists()).toBe(false);
    expect(wrapper.get('[data-testid=recipe-problems]').text()).toContain('missing required parameter "weight"');
    // Also in the form: at the model it names, else above the form.
    expect(wrapper.get('[data-testid=recipe-form]').text()).toContain('missing required parameter "weight"');
    expect(wrapper.get('[data-testid=recipe-not-ok]').text()).toBe('✗ 1 problem');
    await wrapper.get('[data-testid=recipe-editor]').setValue('merge_method: linear\nmodels:\n  - model: alloy-demo-chat\n    parameters: {weight: 1}\n  - model: alloy-demo-code\n    parameters: {weight: 1}\ndtype: float32\n');
    // Not "valid" while the new text waits for its check.
    expect(wrapper.find('[data-testid=recipe-ok]').exists()).toBe(false);
    await settle(recipe);
    expect(wrapper.find('[data-testid=recipe-ok]').exists()).toBe(true);
    expect(wrapper.get('[data-testid=recipe-problems]').text()).toBe('');
  });

  it('while the YAML does not parse, the form is disabled and says why; after the fix it follows the YAML', async () => {
    const good = 'merge_method: slerp\nbase_model: alloy-demo-chat\nmodels:\n  - model: alloy-demo-chat\n  - model: alloy-demo-code\nparameters:\n  t: 0.7\ndtype: float32\n';
    const { wrapper, recipe, editor } = await mountEditor(good);
    const fields = wrapper.get('[data-testid=recipe-form-fields]');
    expect(fields.attributes('disabled')).toBeUndefined();
    expect(wrapper.find('[data-testid=form-disabled-reason]').exists()).toBe(false);
    await editor.setValue(good.replace('dtype: float32', 'dtype: [float32'));
    await settle(recipe);
    expect(fields.attributes('disabled')).toBeDefined();
    expect(fields.attributes('aria-describedby')).toBe('form-disabled-reason');
    expect(wrapper.get('[data-testid=form-disabled-reason]').text()).toMatch(/^The YAML does not parse .*fix it in the YAML pane to edit the form\.$/);
    for (const id of ['add-model-hub', 'add-model-hub-button', 'add-model-button', 'add-model-select', 'method-select']) expect(wrapper.get(`[data-testid=${id}]`).attributes('disabled'), id).toBeDefined();
    // A Hub id typed (and Enter pressed) while it cannot be written is kept, not cleared.
    const hub = wrapper.get<HTMLInputElement>('[data-testid=add-model-hub]');
    await hub.setValue('org/kept');
    await hub.trigger('keydown', { key: 'Enter' });
    expect(hub.element.value).toBe('org/kept');
    expect(recipe.text).not.toContain('org/kept');
    // A draft typed while broken gives way to what the fixed YAML says.
    const t = wrapper.get<HTMLInputElement>('[data-testid=param-value-global-t]');
    await t.setValue('0.9');
    await editor.setValue(good);
    await settle(recipe);
    expect(fields.attributes('disabled')).toBeUndefined();
    expect(t.element.value).toBe('0.7');
    expect(recipe.text).toContain('t: 0.7');
  });

  it('keeps the recipe across a reload, and asks before "New recipe" discards a changed one', async () => {
    const mine = 'merge_method: linear\nmodels:\n  - model: alloy-demo-chat\n    parameters: {weight: 1}\ndtype: float32 # mine\n';
    const first = await mountEditor(mine);
    first.wrapper.unmount();
    // A reload: a new store over the same localStorage finds the user's recipe, not the demo.
    const { wrapper, recipe } = await mountView(RecipeView, undefined, { keepStorage: true });
    await settle(recipe);
    expect(wrapper.get<HTMLTextAreaElement>('[data-testid=recipe-editor]').element.value).toBe(mine);
    expect(recipe.text).toBe(mine);
    // New recipe asks first; keeping it changes nothing.
    await wrapper.get('[data-testid=new-recipe]').trigger('click');
    expect(recipe.text).toBe(mine);
    expect(wrapper.get('[data-testid=confirm-new]').text()).toContain('The changes to this one will be lost');
    await wrapper.get('[data-testid=cancel-new-recipe]').trigger('click');
    expect(wrapper.find('[data-testid=confirm-new]').exists()).toBe(false);
    expect(recipe.text).toBe(mine);
    // From the keyboard: the question takes the focus on "Keep editing", and Escape closes it, back on "New recipe".
    await wrapper.get('[data-testid=new-recipe]').trigger('click');
    await flushPromises();
    expect(document.activeElement).toBe(wrapper.get('[data-testid=cancel-new-recipe]').element);
    await wrapper.get('[data-testid=confirm-new]').trigger('keydown', { key: 'Escape' });
    expect(wrapper.find('[data-testid=confirm-new]').exists()).toBe(false);
    expect(document.activeElement).toBe(wrapper.get('[data-testid=new-recipe]').element);
    expect(recipe.text).toBe(mine);
    await wrapper.get('[data-testid=new-recipe]').trigger('click');
    await wrapper.get('[data-testid=confirm-new-recipe]').trigger('click');
    // Of the method shown (linear), with nothing it does not take (no slerp t).
    expect(recipe.text).toBe('merge_method: linear\ndtype: float32\n');
    // A recipe not changed since it started is replaced without asking.
    await wrapper.get('[data-testid=new-recipe]').trigger('click');
    expect(wrapper.find('[data-testid=confirm-new]').exists()).toBe(false);
  });

  it('switching the method drops the parameters and base_model the new one does not take, and says so', async () => {
    const ties = 'merge_method: ties\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-chat\n    parameters:\n      weight: 0.5\n      density: 0.3\n  - model: alloy-demo-code\n    parameters:\n      density: 0.7\nparameters:\n  normalize: true\n  int8_mask: true\ndtype: float32 # mine\n';
    const { wrapper, recipe } = await mountEditor(ties);
    await wrapper.get('[data-testid=method-select]').setValue('linear');
    await settle(recipe);
    // linear takes weight and normalize, and no base model.
    expect(recipe.text).toBe('merge_method: linear\nmodels:\n  - model: alloy-demo-chat\n    parameters:\n      weight: 0.5\n  - model: alloy-demo-code\nparameters:\n  normalize: true\ndtype: float32 # mine\n');
    expect(wrapper.get('[data-testid=method-removed]').text()).toBe('Removed int8_mask, density, base_model: linear does not take them.');
    expect(wrapper.find('[data-testid=base-model]').exists()).toBe(false);
    // A switch that removes nothing says nothing; slerp takes a base model, so none is removed.
    await wrapper.get('[data-testid=method-select]').setValue('slerp');
    await settle(recipe);
    expect(recipe.text).toMatch(/^merge_method: slerp\n/);
    expect(recipe.text).not.toContain('weight');
    expect(wrapper.get('[data-testid=method-removed]').text()).toBe('Removed normalize, weight: slerp does not take them.');
    recipe.setText('merge_method: della\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-chat\n');
    await settle(recipe);
    await wrapper.get('[data-testid=method-select]').setValue('ties');
    await settle(recipe);
    expect(recipe.text).toBe('merge_method: ties\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-chat\n');
    expect(wrapper.find('[data-testid=method-removed]').exists()).toBe(false);
  });

  it('"New recipe" writes only what its method takes', async () => {
    const { wrapper, recipe } = await mountEditor('merge_method: ties\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-chat\n');
    await wrapper.get('[data-testid=new-recipe]').trigger('click');
    await wrapper.get('[data-testid=confirm-new-recipe]').trigger('click');
    await settle(recipe);
    expect(recipe.text).toBe('merge_method: ties\ndtype: float32\n');
    await wrapper.get('[data-testid=method-select]').setValue('slerp');
    await wrapper.get('[data-testid=new-recipe]').trigger('click');
    await wrapper.get('[data-testid=confirm-new-recipe]').trigger('click');
    expect(recipe.text).toBe('merge_method: slerp\nparameters:\n  t: 0.5\ndtype: float32\n');
  });

  it('lists the library\'s models by name whatever their case, as the Library view does', async () => {
    const { wrapper, api } = await mountEditor('merge_method: linear\nmodels:\n  - model: alloy-demo-chat\ndtype: float32\n');
    const dir = await tempDir();
    for (const [i, name] of ['Zephyr-7b', 'airoboros-7b', 'Mistral-7b'].entries()) {
      await writeLlamaModel(join(dir, name), { name, seed: 20 + i }, { hidden: 64, intermediate: 128, layers: 4, heads: 4, kvHeads: 2, vocab: 256 });
    }
    await api.invoke('library.addFolder', { path: dir });
    const chips = () => wrapper.findAll('[data-testid=library-chip]').map((c) => c.attributes('data-model')!);
    await until(() => chips().includes('Zephyr-7b'));
    expect(chips()).toEqual([...chips()].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase())));
    expect(chips().indexOf('airoboros-7b')).toBeLessThan(chips().indexOf('Mistral-7b'));
  });

  it('offers a model added to the library after the view loaded, by its reference', async () => {
    const { wrapper, api } = await mountEditor('merge_method: linear\nmodels:\n  - model: alloy-demo-chat\ndtype: float32\n');
    const options = () => wrapper.findAll('[data-testid=add-model-select] option').map((o) => o.text());
    expect(options().some((o) => o.startsWith('late-model ·'))).toBe(false);
    const dir = await tempDir();
    await writeLlamaModel(join(dir, 'late-model'), { name: 'late-model', seed: 5 }, { hidden: 64, intermediate: 128, layers: 4, heads: 4, kvHeads: 2, vocab: 256 });
    await api.invoke('library.addFolder', { path: dir });
    // library.changed: the picker follows without a reload.
    await until(() => options().some((o) => o.startsWith('late-model ·')));
    const late = (await api.invoke('library.list', {})).find((m) => m.name === 'late-model')!;
    expect(wrapper.get('[data-testid=library-chip][data-model=late-model]').attributes('data-reference')).toBe(late.reference);
  });

  it('marks an unknown method at the method picker', async () => {
    const { wrapper } = await mountEditor(EXCALIBUR_ON_DEMO.replace('merge_method: slerp', 'merge_method: slurp'));
    expect(wrapper.get('[data-testid=method-problem]').text()).toContain('unknown merge_method "slurp"');
    expect(wrapper.get('[data-testid=method-select]').attributes('aria-invalid')).toBe('true');
  });

  it('marks a misspelt key inside a model at that model', async () => {
    const { wrapper } = await mountEditor(EXCALIBUR_ON_DEMO.replace('  - model: alloy-demo-code\n', '  - model: alloy-demo-code\n    paramters: {t: 1}\n'));
    const card = wrapper.findAll('[data-testid=recipe-model]')[1]!;
    expect(card.classes()).toContain('invalid');
    expect(card.text()).toContain('unknown key "paramters"');
    expect(card.text()).toContain('did you mean "parameters"');
  });

  it('a stage that reads an earlier, unbuilt stage is valid and charts its gradient (the earlier stage stands in by its base)', async () => {
    const twoStages = `name: demo-blend\nmerge_method: linear\nmodels:\n  - model: alloy-demo-chat\n    parameters:\n      weight: 0.5\n  - model: alloy-demo-code\n    parameters:\n      weight: 0.5\ndtype: float32\n---\nmerge_method: slerp\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-base\n  - model: merges/demo-blend\nparameters:\n  t: [0, 0.5]\ndtype: float32\n`;
    const { wrapper, recipe } = await mountEditor(twoStages);
    await wrapper.findAll('[data-testid=stage-node]')[1]!.trigger('click');
    await settle(recipe);
    expect(recipe.problems).toEqual([]);
    expect(recipe.gradient?.ok).toBe(true);
    expect(recipe.valid).toBe(true);
    expect(wrapper.find('[data-testid=gradient-problem]').exists()).toBe(false);
  });

  it('shows the Lamarck recipe as five stages and edits the one picked', async () => {
    const { wrapper, recipe } = await mountEditor(readFileSync('test/fixtures/recipes/lamarck.yml', 'utf8'));
    const nodes = wrapper.findAll('[data-testid=stage-node]');
    expect(nodes.map((n) => n.attributes('data-stage'))).toEqual([
      'lamarck-14b-reason-della',
      'lamarck-14b-prose-della',
      'lamarck-14b-converge-della',
      'lamarck-14b-converge',
      'lamarck-14b-finalize',
    ]);
    await nodes[3]!.trigger('click');
    await settle(recipe);
    expect(wrapper.get<HTMLSelectElement>('[data-testid=method-select]').element.value).toBe('slerp');
    expect(wrapper.findAll('[data-testid=layer-block]')).toHaveLength(14);
    await wrapper.get('[data-testid=method-select]').setValue('nuslerp');
    const docs = recipe.text.split(/^---$/m);
    expect(docs[3]).toContain('merge_method: nuslerp');
    expect(docs[4]).toContain('merge_method: ties');
  });
});
