import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planRecipe } from '../../src/main/engine/run-merge';
import { DEMO_MODELS } from '../fuzz/properties';

const plan = (recipeText: string) => planRecipe({ recipeText, recipeFile: join(DEMO_MODELS, 'r.yml'), options: { modelRoots: [DEMO_MODELS] } });
const twoModels = (method: string, extra = '') =>
  `merge_method: ${method}\nbase_model: alloy-demo-base\nmodels:\n  - model: alloy-demo-base\n  - model: alloy-demo-chat\n${extra}`;

describe('the dtype mergekit saves a method\'s result in (the demo models are bf16)', () => {
  it('arcee_fusion and ramplus_tl return f32 from bf16 inputs (their mask and boosts are f32 tensors), with or without dtype: bfloat16', async () => {
    for (const method of ['arcee_fusion', 'ramplus_tl']) {
      for (const extra of ['', 'dtype: bfloat16\n']) {
        const planned = await plan(twoModels(method, extra));
        expect(new Set(planned.tensors.map((t) => t.dtype)), `${method} ${extra}`).toEqual(new Set(['F32']));
      }
    }
  });

  it('out_dtype still decides, and other methods keep the inputs\' dtype', async () => {
    const cast = await plan(twoModels('arcee_fusion', 'out_dtype: bfloat16\n'));
    expect(new Set(cast.tensors.map((t) => t.dtype))).toEqual(new Set(['BF16']));
    const ram = await plan(twoModels('ram', 'dtype: bfloat16\n'));
    expect(new Set(ram.tensors.map((t) => t.dtype))).toEqual(new Set(['BF16']));
  });
});
