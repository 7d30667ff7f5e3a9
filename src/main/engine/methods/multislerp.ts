import { bilinear, gramMatrix } from './gram';
import type { MergeMethod } from './types';

const f = Math.fround;

/**
 * mergekit's multislerp: each model (or task vector, with a base) is put on the unit sphere, their
 * weighted mean is projected back onto it, and the result is scaled by the weighted mean norm. Norms
 * and dots come from one Gram pass in f64. mergekit's tangent step adds only rounding residue (the
 * weighted tangents of the units around their own weighted mean sum to zero), so Alloy computes that
 * residue element by element as torch does and takes the exponential map at a zero-length tangent.
 */
export const multislerp: MergeMethod = {
  name: 'multislerp',
  prettyName: 'Multi-SLERP',
  description: 'Spherical interpolation of any number of models (or their task vectors), by weight.',
  paper: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea',
  base: 'optional',
  parameters: [
    { name: 'weight', scope: 'model', type: 'number', required: true, description: 'This model\'s share of the interpolation.' },
    { name: 'normalize_weights', scope: 'global', type: 'boolean', required: false, default: true, description: 'Divide the weights by their sum.' },
    { name: 'eps', scope: 'global', type: 'number', required: false, default: 1e-8, min: 0, description: 'Small constant for numerical stability.' },
  ],
  async kernel(source, sink, ctx) {
    const base = ctx.baseIndex;
    const models = ctx.perModel.map((_, i) => i).filter((i) => i !== base);
    if (models.length === 1) {
      for await (const chunk of source.chunks()) await sink.write(chunk.start, chunk.inputs[models[0]!]!);
      return;
    }
    const eps = f(ctx.global['eps'] as number);
    let weights = models.map((m) => f(ctx.perModel[m]!['weight'] as number));
    if (ctx.global['normalize_weights'] !== false) {
      const total = weights.reduce((a, w) => f(a + w), 0);
      weights = weights.map((w) => f(w / total));
    }
    const gram = await gramMatrix(source, models, base);
    const norms = gram.map((row, j) => f(Math.sqrt(row[j]!)));
    const denominators = norms.map((n) => f(n + eps));
    const meanCoefficients = weights.map((w, j) => w / denominators[j]!);
    const meanNorm = f(Math.sqrt(bilinear(gram, meanCoefficients, meanCoefficients)));
    const value = (inputs: Float32Array[], m: number, i: number) => (base === undefined ? inputs[m]![i]! : f(inputs[m]![i]! - inputs[base]![i]!));
    if (meanNorm < eps && models.length !== 2) {
      throw new Error('the weighted sum of the models on the unit sphere is zero (antipodal models with balancing weights); try other weights');
    }
    const dots = models.map((_, j) => f(bilinear(gram, oneHot(models.length, j, 1 / denominators[j]!), meanCoefficients) / meanNorm));
    const averageNorm = norms.reduce((a, n, j) => f(a + f(n * weights[j]!)), 0);
    let buffer = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      for (let i = 0; i < length; i++) {
        let r: number;
        if (meanNorm < eps) {
          r = f(f(value(inputs, models[0]!, i) * weights[0]!) + f(value(inputs, models[1]!, i) * weights[1]!));
        } else {
          let mean = 0;
          for (let j = 0; j < models.length; j++) mean = f(mean + f(f(value(inputs, models[j]!, i) / denominators[j]!) * weights[j]!));
          const direction = f(mean / meanNorm);
          let tangent = 0;
          for (let j = 0; j < models.length; j++) {
            const unit = f(value(inputs, models[j]!, i) / denominators[j]!);
            tangent = f(tangent + f(f(unit - f(dots[j]! * direction)) * weights[j]!));
          }
          r = f(f(direction + tangent) * averageNorm);
        }
        out[i] = base === undefined ? r : f(r + inputs[base]![i]!);
      }
      await sink.write(start, out);
    }
  },
};

function oneHot(n: number, j: number, value: number): number[] {
  return Array.from({ length: n }, (_, k) => (k === j ? value : 0));
}
