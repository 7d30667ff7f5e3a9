import { fmaF32 } from './numerics';
import { elementwise, type MergeMethod } from './types';

/**
 * mergekit 0.1.5: `result.addcmul_(tensor, weight)` from zeros in f32 (also for bf16 inputs), one model
 * at a time in recipe order, then `result / weight.sum()`. torch's addcmul_ is a fused multiply-add on CPU.
 */
export const linear: MergeMethod = {
  name: 'linear',
  prettyName: 'Linear',
  description: 'Weighted average of the models, element by element.',
  paper: 'https://arxiv.org/abs/2203.05482',
  base: 'none',
  parameters: [
    { name: 'weight', scope: 'model', type: 'number', required: true, description: 'How much of this model goes into the mix.' },
    { name: 'normalize', scope: 'global', type: 'boolean', required: false, default: true, description: 'Divide by the sum of the weights.' },
  ],
  kernel: elementwise(
    (inputs, out, ctx) => {
      const weights = ctx.perModel.map((p) => Math.fround(p['weight'] as number));
      let divisor = 0;
      for (const w of weights) divisor = Math.fround(divisor + w);
      const normalize = ctx.global['normalize'] !== false;
      for (let i = 0; i < out.length; i++) {
        let acc = 0;
        for (let m = 0; m < inputs.length; m++) acc = fmaF32(inputs[m]![i]!, weights[m]!, acc);
        out[i] = normalize ? Math.fround(acc / divisor) : acc;
      }
    },
    (backend, inputs, out, ctx) => backend.linear(inputs, ctx.perModel.map((p) => p['weight'] as number), ctx.global['normalize'] !== false, out),
  ),
};
