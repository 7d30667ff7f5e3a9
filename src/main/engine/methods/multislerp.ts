import { TorchNorm, TorchSum, torchSum } from './torch-reductions';
import type { MergeMethod, TensorSource } from './types';

const f = Math.fround;

/**
 * mergekit's multislerp: each model (or task vector, with a base) is put on the unit sphere, their
 * weighted mean is projected back onto it, and the result is scaled by the weighted mean norm. The
 * norms and dots are reduced as torch reduces them, in passes over the chunks. mergekit's tangent step
 * adds only rounding residue (the weighted tangents of the units around their own weighted mean sum
 * to zero), so its exponential map is taken at a tangent of length ~1e-7, where cos is 1 and sin(x)/x
 * is 1 in f32: Alloy adds the residue as torch computes it, element by element.
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
      const total = torchSum(weights);
      weights = weights.map((w) => f(w / total));
    }
    const value = (inputs: Float32Array[], j: number, i: number) => (base === undefined ? inputs[models[j]!]![i]! : f(inputs[models[j]!]![i]! - inputs[base]![i]!));
    const norms = await reducePerModel(source, models.length, () => new TorchNorm(ctx.numel), (inputs, j, i) => value(inputs, j, i));
    const denominators = norms.map((n) => f(n + eps));
    const unit = (inputs: Float32Array[], j: number, i: number) => f(value(inputs, j, i) / denominators[j]!);
    const mean = (inputs: Float32Array[], i: number) => {
      let sum = 0;
      for (let j = 0; j < models.length; j++) sum = f(sum + f(unit(inputs, j, i) * weights[j]!));
      return sum;
    };
    const [meanNorm] = await reducePerModel(source, 1, () => new TorchNorm(ctx.numel), (inputs, _, i) => mean(inputs, i));
    if (meanNorm! < eps && models.length !== 2) {
      throw new Error('the weighted sum of the models on the unit sphere is zero (antipodal models with balancing weights); try other weights');
    }
    const dots = meanNorm! < eps ? [] : await reducePerModel(source, models.length, () => new TorchSum(ctx.numel), (inputs, j, i) => f(unit(inputs, j, i) * f(mean(inputs, i) / meanNorm!)));
    const averageNorm = torchSum(norms.map((n, j) => f(n * weights[j]!)));
    let buffer = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      for (let i = 0; i < length; i++) {
        let r: number;
        if (meanNorm! < eps) {
          r = f(f(value(inputs, 0, i) * weights[0]!) + f(value(inputs, 1, i) * weights[1]!));
        } else {
          const direction = f(mean(inputs, i) / meanNorm!);
          let tangent = 0;
          for (let j = 0; j < models.length; j++) tangent = f(tangent + f(f(unit(inputs, j, i) - f(dots[j]! * direction)) * weights[j]!));
          r = f(f(direction + tangent) * averageNorm);
        }
        out[i] = base === undefined ? r : f(r + inputs[base]![i]!);
      }
      await sink.write(start, out);
    }
  },
};

/** One pass: `count` reductions, the j-th fed value(inputs, j, i) for every element in order. */
async function reducePerModel(
  source: TensorSource,
  count: number,
  make: () => { add(x: number): void; result(): number },
  value: (inputs: Float32Array[], j: number, i: number) => number,
): Promise<number[]> {
  const runs = Array.from({ length: count }, make);
  for await (const { length, inputs } of source.chunks()) {
    for (let i = 0; i < length; i++) for (let j = 0; j < count; j++) runs[j]!.add(value(inputs, j, i));
  }
  return runs.map((r) => r.result());
}
