import { stepOf, stepRounding } from './numerics';
import { elementwise, type MergeMethod } from './types';

const f = Math.fround;

/**
 * mergekit's nearswap: weight = clamp(t / max(|base - other|, 1e-6), 0, 1), then a lerp toward
 * the other model. torch evaluates `t / x` as `x.reciprocal() * t`, so that is what is rounded here,
 * each step in the compute dtype (bf16 models merge in bf16 in mergekit).
 */
export const nearswap: MergeMethod = {
  name: 'nearswap',
  prettyName: 'NearSwap',
  description: 'Takes the other model\'s value wherever it is within t of the base, blending in between.',
  paper: 'https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001',
  base: 'required',
  inputs: { min: 2, max: 2 },
  parameters: [
    { name: 't', scope: 'global', type: 'number', required: true, min: 0, description: 'Distance below which the other model\'s value is taken whole.' },
  ],
  kernel: elementwise(
    (inputs, out, ctx) => {
      const base = ctx.baseIndex!;
      const others = inputs.filter((_, i) => i !== base);
      const a = inputs[base]!;
      if (others.length === 0) {
        out.set(a);
        return;
      }
      if (others.length !== 1) throw new Error('nearswap merges exactly two models, one base and one other');
      const b = others[0]!;
      const t = f(ctx.global['t'] as number);
      const r = stepRounding(ctx.computeDtype);
      const minDiff = r(1e-6);
      for (let i = 0; i < out.length; i++) {
        const diff = Math.max(Math.abs(r(a[i]! - b[i]!)), minDiff);
        const w = Math.min(Math.max(r(r(1 / diff) * t), 0), 1);
        out[i] = r(r(w * b[i]!) + r(r(1 - w) * a[i]!));
      }
    },
    // The backends round each step to f32, or to bf16 where mergekit computes in bf16.
    (backend, inputs, out, ctx) => {
      if (inputs.length !== 2) return undefined;
      const base = ctx.baseIndex!;
      return backend.nearswap(inputs[base]!, inputs[1 - base]!, f(ctx.global['t'] as number), out, stepOf(ctx.computeDtype));
    },
  ),
};
