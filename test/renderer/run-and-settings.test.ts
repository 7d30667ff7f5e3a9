// @vitest-environment happy-dom
import { readFileSync } from 'node:fs';
import { flushPromises } from '@vue/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import RecipeView from '../../src/renderer/src/views/RecipeView.vue';
import RunView from '../../src/renderer/src/views/RunView.vue';
import SettingsView from '../../src/renderer/src/views/SettingsView.vue';
import { mountView, realApi, settle, until } from './real-api';

afterEach(() => {
  document.body.innerHTML = '';
  delete document.documentElement.dataset['theme'];
});

describe('the plan and run view', () => {
  it('finds a merge that was started before the window was (re)loaded and follows it to 100 %', async () => {
    const api = realApi();
    const started = await api.invoke('job.start', { recipe: readFileSync('resources/demo/linear.yml', 'utf8'), outputName: 'reattached' });
    const { wrapper } = await mountView(RunView, api);
    await until(() => wrapper.find('[data-testid=job-status][data-state=done]').exists(), 30_000);
    expect(wrapper.get('[data-testid=job-percent]').text()).toContain('100 %');
    expect(wrapper.get('[data-testid=job-output]').text()).toContain(started.outDir);
    expect(wrapper.get('[data-testid=job-log]').text()).toMatch(/Log \(\d+ lines\)/);
    // The engine's device event: which backend computed, named for the user.
    expect(wrapper.get('[data-testid=job-device]').text()).toMatch(/^Computing on (CPU|GPU): \S/);
    // The card the engine wrote beside the weights, rendered; web mode cannot open folders, and says so.
    await until(() => wrapper.find('[data-testid=model-card]').exists());
    expect(wrapper.get('[data-testid=model-card] h2').text()).toBe('reattached');
    expect(wrapper.get('[data-testid=model-card]').text()).toContain('Merge Details');
    expect(wrapper.get('[data-testid=model-card] pre[data-language=yaml]').text()).toContain('merge_method: linear');
    expect(wrapper.get('[data-testid=open-folder]').text()).toBe('Copy path');
    await wrapper.get('[data-testid=open-folder]').trigger('click');
    await until(() => wrapper.find('[data-testid=open-folder-message]').exists());
    expect(wrapper.get('[data-testid=open-folder-message]').text()).toContain(started.outDir);
  });

  it('shows a multi-stage merge stage by stage', async () => {
    const api = realApi();
    const recipe = `name: blend
merge_method: linear
models:
  - model: alloy-demo-chat
    parameters: {weight: 0.5}
  - model: alloy-demo-code
    parameters: {weight: 0.5}
dtype: float32
---
name: final
merge_method: slerp
base_model: alloy-demo-base
models:
  - model: alloy-demo-base
  - model: blend
parameters:
  t: 0.3
dtype: float32
`;
    await api.invoke('job.start', { recipe, outputName: 'two-stages' });
    const { wrapper } = await mountView(RunView, api);
    await until(() => wrapper.find('[data-testid=job-status][data-state=done]').exists(), 30_000);
    expect(wrapper.get('[data-testid=job-stage]').text()).toBe('Stage 2 of 2: final');
    expect(wrapper.get('[data-testid=job-percent]').text()).toContain('100 %');
  });

  it('plans the recipe being edited and shows what it reads and writes', async () => {
    const { wrapper } = await mountView(RunView);
    await until(() => !(wrapper.get('[data-testid=plan-button]').element as HTMLButtonElement).disabled);
    await wrapper.get('[data-testid=plan-button]').trigger('click');
    await until(() => wrapper.find('[data-testid=plan-tensors]').exists());
    expect(wrapper.get('[data-testid=plan-tensors]').text()).toBe('39');
    expect(wrapper.get('[data-testid=plan-writes]').text()).toMatch(/in 1 shard/);
  });

  it('marks the plan stale once the recipe text changes, until it is planned again', async () => {
    const { wrapper, recipe } = await mountView(RunView);
    await until(() => !(wrapper.get('[data-testid=plan-button]').element as HTMLButtonElement).disabled);
    await wrapper.get('[data-testid=plan-button]').trigger('click');
    await until(() => wrapper.find('[data-testid=plan-tensors]').exists());
    expect(wrapper.find('[data-testid=plan-stale]').exists()).toBe(false);
    expect(wrapper.get('[data-testid=plan-summary]').attributes('data-stale')).toBeUndefined();
    recipe.setText(recipe.text.replace('dtype: float32', 'dtype: float16'));
    await flushPromises();
    expect(wrapper.get('[data-testid=plan-stale]').text()).toMatch(/recipe has changed since this plan/);
    expect(wrapper.get('[data-testid=plan-summary]').attributes('data-stale')).toBe('true');
    await wrapper.get('[data-testid=plan-button]').trigger('click');
    await until(() => !wrapper.find('[data-testid=plan-stale]').exists());
    expect(wrapper.get('[data-testid=plan-summary]').attributes('data-stale')).toBeUndefined();
  });

  it('the plan names the disk space free, where the engine would compute, and a time from the last merge\'s rate', async () => {
    const api = realApi();
    const before = await api.invoke('recipe.plan', { recipe: readFileSync('resources/demo/linear.yml', 'utf8') });
    expect(before.ok && before.plan.estimate).toBeUndefined();
    await api.invoke('job.start', { recipe: readFileSync('resources/demo/linear.yml', 'utf8'), outputName: 'for-the-rate' });
    for (const start = Date.now(); (await api.invoke('job.list', {}))[0]?.state !== 'done'; await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() - start > 30_000) throw new Error('the merge did not finish');
    }
    const { wrapper } = await mountView(RunView, api);
    await until(() => !(wrapper.get('[data-testid=plan-button]').element as HTMLButtonElement).disabled);
    await wrapper.get('[data-testid=plan-button]').trigger('click');
    await until(() => wrapper.find('[data-testid=plan-device]').exists(), 60_000);
    expect(wrapper.get('[data-testid=plan-disk-free]').text()).toMatch(/^\d+(\.\d+)? (B|KB|MB|GB|TB)$/);
    expect(wrapper.get('[data-testid=plan-device]').text()).toMatch(/^(CPU|GPU): \S.* \(auto\)$/);
    expect(wrapper.get('[data-testid=plan-estimate]').text()).toMatch(/^(under a second|\d+ s) at \d+\.\d (KB|MB|GB)\/s, your last merge's rate$/);
  });

  it('a cancelled merge says so, and what became of its output, without an error; after a reload it shows no made-up 0 %', async () => {
    const api = realApi();
    const stack = `merge_method: passthrough\nslices:\n${'  - sources:\n      - model: alloy-demo-chat\n        layer_range: [0, 4]\n'.repeat(40)}dtype: float32\n`;
    const started = await api.invoke('job.start', { recipe: stack, outputName: 'to-cancel' });
    await api.invoke('job.cancel', { id: started.id });
    for (const start = Date.now(); (await api.invoke('job.list', {}))[0]?.state === 'running'; await new Promise((r) => setTimeout(r, 50))) {
      if (Date.now() - start > 30_000) throw new Error('the merge did not stop');
    }
    const { wrapper } = await mountView(RunView, api);
    await until(() => wrapper.find('[data-testid=job-status]').exists());
    expect(wrapper.get('[data-testid=job-status]').attributes('data-state')).toBe('cancelled');
    expect(wrapper.get('[data-testid=job-cancelled]').text()).toContain('nothing was put in to-cancel');
    expect(wrapper.find('[role=alert]').exists()).toBe(false);
    expect(wrapper.find('[data-testid=job-percent]').exists()).toBe(false);
  });

  it('Enter in the output folder box starts the merge, as the Merge button beside it does', async () => {
    const { wrapper, api } = await mountView(RunView);
    await until(() => !(wrapper.get('[data-testid=run-button]').element as HTMLButtonElement).disabled);
    const name = wrapper.get('[data-testid=output-name]');
    await name.setValue('named-then-enter');
    await name.trigger('keydown', { key: 'Enter' });
    await until(() => wrapper.find('[data-testid=job-status][data-state=done]').exists(), 30_000);
    expect((await api.invoke('job.list', {})).map((j) => j.outputName)).toEqual(['named-then-enter']);
  });

  it('Enter starts nothing while the Merge button is disabled (no recipe)', async () => {
    const { wrapper, recipe, api } = await mountView(RunView);
    await until(() => recipe.text !== '');
    recipe.setText('');
    await flushPromises();
    expect((wrapper.get('[data-testid=run-button]').element as HTMLButtonElement).disabled).toBe(true);
    await wrapper.get('[data-testid=output-name]').trigger('keydown', { key: 'Enter' });
    await new Promise((r) => setTimeout(r, 200));
    await flushPromises();
    expect(await api.invoke('job.list', {})).toEqual([]);
    expect(wrapper.find('[data-testid=job-status]').exists()).toBe(false);
    expect(wrapper.find('[data-testid=merge-error]').exists()).toBe(false);
  });

  it('plans in the shards the merge will write: the settings\' shard size', async () => {
    const api = realApi();
    // Eight stacked copies of the demo model in float32: about 4.7 MB.
    const stack = `merge_method: passthrough\nslices:\n${'  - sources:\n      - model: alloy-demo-chat\n        layer_range: [0, 4]\n'.repeat(8)}dtype: float32\n`;
    await api.invoke('settings.set', { outShardSize: 1 << 20 });
    const result = await api.invoke('recipe.plan', { recipe: stack });
    if (!result.ok) throw new Error(result.problems[0]?.message);
    expect(result.plan.shards.length).toBe(Math.ceil(result.plan.bytesToWrite / (1 << 20)));
    expect(result.plan.shards.every((s) => s.bytes <= 1 << 20)).toBe(true);
  });
});

describe('the settings view', () => {
  it('switches the theme and keeps the memory budget in the services', async () => {
    const api = realApi();
    const { wrapper } = await mountView(SettingsView, api);
    await until(() => wrapper.find('[data-testid=settings-form]').exists());
    await wrapper.get('[data-testid=theme-dark]').setValue(true);
    await until(() => document.documentElement.dataset['theme'] === 'dark');
    const memory = wrapper.get('[data-testid=settings-memory]');
    await memory.setValue('256');
    await memory.trigger('change');
    await until(() => !wrapper.text().includes('Saving'));
    expect(await api.invoke('settings.get', {})).toMatchObject({ theme: 'dark', memoryBudget: 256 * 2 ** 20 });
  });

  it('says at the field when a size cannot be saved, and which value is kept', async () => {
    const api = realApi();
    await api.invoke('settings.set', { memoryBudget: 512 * 2 ** 20 });
    const { wrapper } = await mountView(SettingsView, api);
    await until(() => wrapper.find('[data-testid=settings-form]').exists());
    const memory = wrapper.get('[data-testid=settings-memory]');
    // setValue fires input and change, as a person's edit does; the field then shows the value kept.
    for (const typed of ['0', '-5', '']) {
      await memory.setValue(typed);
      expect(wrapper.get('[data-testid=settings-memory-problem]').text()).toMatch(/at least 1 MiB: 512 MiB is kept\.$/);
      expect(memory.attributes('aria-invalid')).toBe('true');
    }
    const shard = wrapper.get('[data-testid=settings-shard]');
    await shard.setValue('0.0001');
    expect(wrapper.get('[data-testid=settings-shard-problem]').text()).toBe('"0.0001" is not a size of at least 0.001 GB: 5 GB is kept.');
    expect((memory.element as HTMLInputElement).value).toBe('512');
    expect(wrapper.get('[data-testid=settings-memory-note]').text()).toMatch(/at once: 512 MiB\./);
    await memory.setValue('128');
    await until(() => !wrapper.text().includes('Saving'));
    expect(wrapper.find('[data-testid=settings-memory-problem]').exists()).toBe(false);
    expect(await api.invoke('settings.get', {})).toMatchObject({ memoryBudget: 128 * 2 ** 20, outShardSize: 5e9 });
    await memory.setValue('1536');
    await until(() => wrapper.get('[data-testid=settings-memory-note]').text().includes('1.5 GiB'));
  });
});

describe('passthrough', () => {
  it('stacks layers with slices and draws them on the layer map', async () => {
    const { wrapper, recipe } = await mountView(RecipeView);
    await wrapper.get('[data-testid=method-select]').setValue('passthrough');
    await wrapper.get('[data-testid=use-slices]').trigger('click');
    await wrapper.get('[data-testid=add-slice]').trigger('click');
    await settle(recipe);
    // The model has 4 layers: the new slice stays inside them (its last two), and the recipe plans.
    expect(recipe.read(['slices'])).toEqual([
      { sources: [{ model: 'alloy-demo-chat', layer_range: [0, 4] }] },
      { sources: [{ model: 'alloy-demo-chat', layer_range: [2, 4] }] },
    ]);
    expect(wrapper.get('[aria-label="Slice 2 model 1 end layer"]').attributes('max')).toBe('4');
    expect(recipe.problems).toEqual([]);
    expect(wrapper.find('[data-testid=recipe-ok]').exists()).toBe(true);
    // A range typed past the model's layers is marked at its row.
    expect(wrapper.find('[data-testid=slice-range-problem]').exists()).toBe(false);
    const end = wrapper.get('[aria-label="Slice 2 model 1 end layer"]');
    await end.setValue('6');
    await end.trigger('change');
    await settle(recipe);
    expect(wrapper.get('[data-testid=slice-range-problem]').text()).toBe("layer_range [2, 6] goes past alloy-demo-chat's 4 layers");
    await end.setValue('4');
    await end.trigger('change');
    const start = wrapper.get('[aria-label="Slice 2 model 1 first layer"]');
    await start.setValue('2');
    await start.trigger('change');
    await settle(recipe);
    const blocks = wrapper.findAll('[data-testid=layer-block]');
    expect(blocks.map((b) => b.attributes('title'))).toEqual(['alloy-demo-chat: layers 0–3 → output 0–3', 'alloy-demo-chat: layers 2–3 → output 4–5']);
    expect(recipe.parse).toMatchObject({ ok: true });
    expect(recipe.text).toContain('layer_range: [2, 4]');
  });
});
