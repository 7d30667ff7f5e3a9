// @vitest-environment happy-dom
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { VueWrapper } from '@vue/test-utils';
import { analyzeModels } from '../../src/main/engine/analysis/analyze-models';
import { writeLlamaModel } from '../../src/main/engine/demo/make-demo-models';
import AnalysisView from '../../src/renderer/src/views/AnalysisView.vue';
import { writeSparseLlamaModel } from '../engine/sparse-model';
import { tempDir } from '../helpers';
import { mountView, realApi, until } from './real-api';

const DEMO = resolve('resources/demo/models');
const demo = (name: string) => join(DEMO, name);

afterEach(() => {
  document.body.innerHTML = '';
});

const state = (wrapper: VueWrapper) => {
  const status = wrapper.find('[data-testid=analysis-status]');
  return status.exists() ? status.attributes('data-state') : undefined;
};
const column = (wrapper: VueWrapper, metric: string, model: number) =>
  wrapper.findAll(`[data-testid=analysis-table-${metric}-row]`).map((row) => row.findAll('td')[model]!.text());

async function pick(wrapper: VueWrapper, base: string, models: string[], t: string): Promise<void> {
  await until(() => wrapper.find('[data-testid=analysis-form]').exists());
  await wrapper.get('[data-testid=analysis-base]').setValue(base);
  for (const m of models) await wrapper.get(`[data-testid="analysis-model-${m}"]`).setValue(true);
  await wrapper.get('[data-testid=analysis-t]').setValue(t);
}

describe('the analysis view', () => {
  it('compares the demo models with their base and fills the tables with the engine\'s numbers', async () => {
    const { wrapper } = await mountView(AnalysisView);
    await until(() => wrapper.find('[data-testid=analysis-form]').exists());
    const start = wrapper.get('[data-testid=analysis-start]');
    expect((start.element as HTMLButtonElement).disabled).toBe(true);
    await pick(wrapper, demo('alloy-demo-base'), ['alloy-demo-chat', 'alloy-demo-code'], 'lots');
    // A wrong t is said at the field, and nothing can start.
    expect(wrapper.get('#analysis-t').attributes('aria-invalid')).toBe('true');
    expect(wrapper.find('.field [role=alert]').text()).toMatch(/t must be a number/);
    expect((start.element as HTMLButtonElement).disabled).toBe(true);
    await wrapper.get('[data-testid=analysis-t]').setValue('0.001');
    expect((start.element as HTMLButtonElement).disabled).toBe(false);
    await wrapper.get('[data-testid=analysis-form]').trigger('submit');
    await until(() => state(wrapper) === 'done', 30_000);
    expect(wrapper.get('[data-testid=analysis-status]').text()).toMatch(/done · 100 % · 6 of 6 parts/);

    const engine = await analyzeModels({ base: demo('alloy-demo-base'), models: [demo('alloy-demo-chat'), demo('alloy-demo-code')], t: [0.001] });
    const rows = wrapper.findAll('[data-testid=analysis-table-relative-l2-row]');
    expect(rows.map((r) => r.get('th').text())).toEqual(['embed', '0', '1', '2', '3', 'head']);
    expect(wrapper.findAll('[data-testid=analysis-table-cosine] thead th').map((th) => th.text())).toEqual(['Layer', 'alloy-demo-chat', 'alloy-demo-code']);
    for (const [model, name] of [[0, 'chat'], [1, 'code']] as const) {
      expect(column(wrapper, 'relative-l2', model), name).toEqual(engine.layers.map((l) => l.metrics[model]!.relativeL2!.toPrecision(4)));
      expect(column(wrapper, 'cosine', model), name).toEqual(engine.layers.map((l) => l.metrics[model]!.cosine!.toFixed(6)));
      expect(column(wrapper, 'swap', model), name).toEqual(engine.layers.map((l) => `${(100 * l.metrics[model]!.swapFractions[0]!).toFixed(2)} %`));
    }
    // The chart (an image to a screen reader) steps through the layers with the arrow keys, reading each out.
    const chart = wrapper.get('[data-testid=analysis-chart-relative-l2]');
    await chart.trigger('keydown', { key: 'ArrowRight' });
    await chart.trigger('keydown', { key: 'ArrowRight' });
    const l0 = engine.layers[1]!.metrics;
    expect(wrapper.get('[data-testid=analysis-metric-relative-l2] .readout').text()).toBe(
      `layer 0: alloy-demo-chat ${l0[0]!.relativeL2!.toPrecision(4)}, alloy-demo-code ${l0[1]!.relativeL2!.toPrecision(4)}`,
    );
    await chart.trigger('keydown', { key: 'End' });
    expect(wrapper.get('[data-testid=analysis-metric-relative-l2] .readout').text()).toMatch(/^head: /);
  });

  it('offers only models of the base\'s architecture and depth', async () => {
    const dir = await tempDir();
    await writeLlamaModel(join(dir, 'two-layers'), { name: 'two-layers', seed: 4 }, { hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 256 });
    const api = realApi();
    await api.invoke('library.addFolder', { path: dir });
    const { wrapper } = await mountView(AnalysisView, api);
    await until(() => wrapper.find('[data-testid="analysis-model-two-layers"]').exists());
    await wrapper.get('[data-testid=analysis-base]').setValue(demo('alloy-demo-base'));
    const shallow = wrapper.get('[data-testid="analysis-model-two-layers"]');
    expect((shallow.element as HTMLInputElement).disabled).toBe(true);
    expect(shallow.element.closest('label')!.textContent).toContain('2 layers; the base: LlamaForCausalLM, 4');
    expect((wrapper.get('[data-testid="analysis-model-alloy-demo-chat"]').element as HTMLInputElement).disabled).toBe(false);
  });

  it('tells two models of one name apart in the pickers and the tables', async () => {
    const [one, two] = [await tempDir(), await tempDir()];
    const shape = { hidden: 64, intermediate: 128, layers: 4, heads: 4, kvHeads: 2, vocab: 256 };
    await writeLlamaModel(join(one, 'twin'), { name: 'twin', seed: 5 }, shape);
    await writeLlamaModel(join(two, 'twin'), { name: 'twin', seed: 6 }, shape);
    const api = realApi();
    await api.invoke('library.addFolder', { path: one });
    await api.invoke('library.addFolder', { path: two });
    const { wrapper } = await mountView(AnalysisView, api);
    await until(() => wrapper.findAll('[data-testid="analysis-model-twin"]').length === 2);
    const labels = wrapper.findAll('[data-testid="analysis-model-twin"]').map((box) => box.element.closest('label')!.textContent!.trim());
    expect(labels.sort()).toEqual([`twin (${join(one, 'twin')})`, `twin (${join(two, 'twin')})`].sort());
    const options = wrapper.findAll('[data-testid=analysis-base] option').map((o) => o.text());
    expect(options).toContain(`twin (${join(one, 'twin')})`);
    expect(options).toContain('alloy-demo-base');
    await wrapper.get('[data-testid=analysis-base]').setValue(demo('alloy-demo-base'));
    for (const box of wrapper.findAll('[data-testid="analysis-model-twin"]')) await box.setValue(true);
    await wrapper.get('[data-testid=analysis-t]').setValue('');
    await wrapper.get('[data-testid=analysis-form]').trigger('submit');
    await until(() => state(wrapper) === 'done', 30_000);
    const heads = wrapper.findAll('[data-testid=analysis-table-cosine] thead th').map((th) => th.text());
    expect(heads.slice(1).sort()).toEqual(labels.sort());
  });

  it('shows progress while a large analysis runs and cancels it', async () => {
    const dir = await tempDir();
    const shape = { hidden: 1024, intermediate: 4096, layers: 24, vocab: 32000, layersPerFile: 6 };
    await writeSparseLlamaModel(join(dir, 'big-base'), shape);
    await writeSparseLlamaModel(join(dir, 'big-tuned'), shape);
    const api = realApi();
    await api.invoke('library.addFolder', { path: dir });
    const { wrapper } = await mountView(AnalysisView, api);
    await until(() => wrapper.find('[data-testid="analysis-model-big-tuned"]').exists());
    await pick(wrapper, join(dir, 'big-base'), ['big-tuned'], '0.001');
    await wrapper.get('[data-testid=analysis-form]').trigger('submit');
    // The first parts arrive while the rest is read: the table fills row by row.
    await until(() => ![undefined, '—'].includes(column(wrapper, 'swap', 0)[1]), 30_000);
    expect(state(wrapper)).toBe('running');
    expect(column(wrapper, 'swap', 0).at(-1)).toBe('—');
    expect((wrapper.get('[data-testid=analysis-base]').element as HTMLSelectElement).disabled).toBe(true);
    await wrapper.get('[data-testid=analysis-cancel]').trigger('click');
    await until(() => state(wrapper) === 'cancelled', 10_000);
    expect(wrapper.find('[data-testid=analysis-run-error]').exists()).toBe(false);
    expect(wrapper.find('[data-testid=analysis-cancel]').exists()).toBe(false);
    expect((wrapper.get('[data-testid=analysis-start]').element as HTMLButtonElement).disabled).toBe(false);
  });

  it('shows the engine\'s error when a model\'s weights cannot be read', async () => {
    const dir = await tempDir();
    await writeLlamaModel(join(dir, 'broken'), { name: 'broken', seed: 9, baseSeed: 1 });
    const api = realApi();
    await api.invoke('library.addFolder', { path: dir });
    const { wrapper } = await mountView(AnalysisView, api);
    await until(() => wrapper.find('[data-testid="analysis-model-broken"]').exists());
    await pick(wrapper, demo('alloy-demo-base'), ['broken'], '0.001');
    // Cut short once picked (the library refuses a model it finds cut short): the engine meets it.
    const shard = await open(join(dir, 'broken', 'model-00002-of-00002.safetensors'), 'r+');
    await shard.truncate((await shard.stat()).size - 4096);
    await shard.close();
    await wrapper.get('[data-testid=analysis-form]').trigger('submit');
    await until(() => state(wrapper) === 'failed', 30_000);
    expect(wrapper.get('[data-testid=analysis-run-error]').text()).toMatch(/model-00002-of-00002\.safetensors/);
  });

  it('finds an analysis started before the window was (re)loaded, with what it compared', async () => {
    const api = realApi();
    const started = await api.invoke('analysis.start', { base: demo('alloy-demo-base'), models: [demo('alloy-demo-code')], t: [0.0001, 0.01] });
    const { wrapper } = await mountView(AnalysisView, api);
    await until(() => state(wrapper) === 'done', 30_000);
    expect((await api.invoke('analysis.list', {}))[0]!.id).toBe(started.id);
    expect((wrapper.get('[data-testid=analysis-base]').element as HTMLSelectElement).value).toBe(demo('alloy-demo-base'));
    expect((wrapper.get('[data-testid="analysis-model-alloy-demo-code"]').element as HTMLInputElement).checked).toBe(true);
    expect((wrapper.get('[data-testid=analysis-t]').element as HTMLInputElement).value).toBe('0.0001, 0.01');
    expect(wrapper.findAll('[data-testid=analysis-table-swap] thead th').map((th) => th.text())).toEqual(['Layer', 'alloy-demo-code · t=0.0001', 'alloy-demo-code · t=0.01']);
  });
});
