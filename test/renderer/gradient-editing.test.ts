// @vitest-environment happy-dom
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import GradientChart from '../../src/renderer/src/components/recipe/GradientChart.vue';
import { clampAnchor, parseSettingText, presetAnchors } from '../../src/renderer/src/recipe/gradient-presets';
import RecipeView from '../../src/renderer/src/views/RecipeView.vue';
import { mountView, settle } from './real-api';

const RECIPE = `merge_method: slerp
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
    - value: 0.5
dtype: float32
`;

/** The two-slice recipe with a value of its own in the second slice. */
const TWO_SLICES = readFileSync('test/fixtures/recipes/two-slices-slerp.yml', 'utf8').replace(
  '        layer_range: [2, 4]\nparameters:',
  '        layer_range: [2, 4]\n    parameters:\n      t: [0.2, 0.8]\nparameters:',
);

afterEach(() => {
  document.body.innerHTML = '';
});

async function mountGradients() {
  const mounted = await mountView(RecipeView);
  await mounted.wrapper.get('[data-testid=recipe-editor]').setValue(RECIPE);
  await settle(mounted.recipe);
  return mounted;
}

describe('gradient editing', () => {
  it('charts t at each layer as the engine applies it, one line per filter', async () => {
    const { wrapper } = await mountGradients();
    const chart = wrapper.getComponent(GradientChart);
    const series = chart.props('series') as { filter: string; values: number[] }[];
    const line = (f: string) => series.find((s) => s.filter === f)!.values;
    expect(line('self_attn')).toEqual([1, (0.7 * 2) / 3 + 0.3 / 3, 0.3 / 3 + (0.5 * 2) / 3, 0].map((v) => expect.closeTo(v, 12)));
    expect(line('rest')).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect((chart.props('edits') as { filter: string }[]).map((e) => e.filter)).toEqual(['self_attn', 'mlp', 'rest']);
  });

  it('an anchor typed in the table changes the YAML and the engine\'s line', async () => {
    const { wrapper, recipe } = await mountGradients();
    const cell = wrapper.get('[data-testid=anchor-t-self_attn-2]');
    // An anchor's place is a position across the layers, not a value of slerp's own t.
    expect(wrapper.get('[data-testid=anchor-position-t-self_attn-2]').text()).toBe('3 (layer position 0.50)');
    expect(wrapper.get('[data-testid=gradient-table-t-self_attn]').text()).not.toMatch(/t = /);
    await cell.setValue('0.4');
    await cell.trigger('change');
    expect(recipe.text).toContain('value: [1, 0.7, 0.4, 0.5, 0]');
    await settle(recipe);
    const series = wrapper.getComponent(GradientChart).props('series') as { filter: string; values: number[] }[];
    expect(series.find((s) => s.filter === 'self_attn')!.values[2]).toBeCloseTo(0.4 / 3 + (0.5 * 2) / 3, 12);
  });

  it('presets reshape a gradient within the parameter\'s range', async () => {
    const { wrapper, recipe } = await mountGradients();
    await wrapper.get('[data-testid="preset-t-mlp-Λ"]').trigger('click');
    expect(recipe.text).toContain('value: [0, 0.5, 1, 0.5, 0]');
    await wrapper.get('[data-testid="preset-t-self_attn-V"]').trigger('click');
    expect(recipe.text).toContain('value: [1, 0.5, 0, 0.5, 1]');
    await wrapper.get('[data-testid="preset-t-rest-ramp down"]').trigger('click');
    expect(recipe.text).toContain('- value: [1, 0.75, 0.5, 0.25, 0]');
    expect(recipe.text.match(/value:/g)).toHaveLength(3);
  });

  it('anchors can be added and removed from the table', async () => {
    const { wrapper, recipe } = await mountGradients();
    const table = wrapper.get('[data-testid=gradient-table-t-rest]');
    await table.findAll('button').find((b) => b.text() === '+ anchor')!.trigger('click');
    expect(recipe.text).toContain('- value: [0.5, 0.5]');
    await wrapper.get('[data-testid=gradient-table-t-rest]').findAll('button').find((b) => b.text() === '− anchor')!.trigger('click');
    expect(recipe.text).toContain('- value: 0.5');
  });

  it('a two-slice recipe: each slice\'s own values get a table, and editing one changes that slice alone', async () => {
    const { wrapper, recipe } = await mountView(RecipeView);
    await wrapper.get('[data-testid=recipe-editor]').setValue(TWO_SLICES);
    await settle(recipe);
    const chart = wrapper.getComponent(GradientChart);
    expect(chart.props('slices')).toEqual([{ start: 0, count: 2 }, { start: 2, count: 2 }]);
    const edits = chart.props('edits') as { slice?: number; filter: string; path: (string | number)[] }[];
    expect(edits.map((e) => [e.slice, e.path.join('.')])).toEqual([[undefined, 'parameters.t'], [1, 'slices.1.parameters.t']]);
    const cell = wrapper.get('[data-testid=anchor-t-slice-2-t-1]');
    await cell.setValue('0.9');
    await cell.trigger('change');
    expect(recipe.text).toContain('t: [0.2, 0.9]');
    expect(recipe.text).toContain('t: [0, 1]');
    await settle(recipe);
    const line = (chart.props('series') as { values: number[] }[])[0]!.values;
    expect(line).toEqual([0, 1, 0.2, 0.9].map((v) => expect.closeTo(v, 12)));
  });

  it('drag arithmetic: values clamp to the declared range and round to hundredths', () => {
    expect(clampAnchor(1.234, 0, 1)).toBe(1);
    expect(clampAnchor(-0.2, 0, 1)).toBe(0);
    expect(clampAnchor(0.4567, 0, 1)).toBe(0.46);
    expect(clampAnchor(7.891, undefined, undefined)).toBe(7.89);
    expect(presetAnchors('flat', [0, 1], 0, 1)).toEqual([0.5, 0.5, 0.5, 0.5, 0.5]);
    expect(presetAnchors('ramp up', [0, 0, 0, 0, 0, 0, 0], 0, 1)).toHaveLength(7);
    expect(parseSettingText('0.5')).toBe(0.5);
    expect(parseSettingText('[1, 0.7]')).toEqual([1, 0.7]);
    expect(parseSettingText('1, x')).toBeUndefined();
  });
});
