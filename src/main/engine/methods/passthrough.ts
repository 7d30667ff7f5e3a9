import { elementwise, type MergeMethod } from './types';

/** mergekit's passthrough: one model's tensor as it is, optionally times `scale`. */
export const passthrough: MergeMethod = {
  name: 'passthrough',
  prettyName: 'Passthrough',
  description: 'Copies tensors unchanged: for stacking layer ranges (frankenmerges) and slicing.',
  base: 'none',
  inputs: { max: 1 },
  parameters: [
    { name: 'scale', scope: 'model', type: 'number', required: false, description: 'Multiply this model\'s tensors by this factor.' },
  ],
  kernel: elementwise((inputs, out, ctx) => {
    if (inputs.length !== 1) throw new Error('passthrough takes exactly one model per slice');
    const scale = ctx.perModel[0]?.['scale'];
    const x = inputs[0]!;
    if (typeof scale !== 'number') {
      out.set(x);
      return;
    }
    const s = Math.fround(scale);
    for (let i = 0; i < out.length; i++) out[i] = Math.fround(x[i]! * s);
  }),
};
