import { bilinear, gramMatrix } from './gram';
import { karcherHalfSteps, KARCHER_HALF_MAX_ELEMENTS } from './karcher-half';
import { MAX_TASK_MODELS } from '../compute/types';
import { f32Host, OutputBuffer, type MergeMethod } from './types';

const f = Math.fround;

/**
 * mergekit's karcher: the weighted Riemannian (Karcher) mean of the models' directions on the unit
 * sphere, by at most `max_iter` steps of gradient descent, scaled by the mean norm. Every iterate is a
 * combination of the unit vectors, so Alloy iterates on its coefficients over one f64 Gram pass and
 * writes the result in a second pass: two reads of the inputs, never a whole tensor in memory.
 */
export const karcher: MergeMethod = {
  name: 'karcher',
  prettyName: 'Karcher Mean',
  description: 'The geometric mean of the models\' directions on the sphere, scaled by their mean norm.',
  paper: 'https://arxiv.org/abs/2603.04972',
  base: 'none',
  parameters: [
    { name: 'max_iter', scope: 'global', type: 'number', required: false, default: 10, min: 1, integer: true, description: 'Most iterations of the mean\'s refinement.' },
    { name: 'tol', scope: 'global', type: 'number', required: false, default: 1e-5, min: 0, description: 'Stop once a step is shorter than this.' },
  ],
  divergence: ({ numel, computeDtype }) =>
    (computeDtype === 'BF16' || computeDtype === 'F16') && numel > KARCHER_HALF_MAX_ELEMENTS
      ? `karcher: tensors of more than ${KARCHER_HALF_MAX_ELEMENTS} elements are computed in f32, not in ${computeDtype === 'BF16' ? 'bf16' : 'f16'} steps as mergekit computes them, so they may differ from mergekit's in the last bits`
      : undefined,
  async kernel(source, sink, ctx) {
    const models = ctx.perModel.map((_, i) => i);
    if (models.length === 1) {
      for await (const chunk of source.chunks()) await sink.write(chunk.start, chunk.inputs[0]!);
      return;
    }
    const maxIter = ctx.global['max_iter'] as number;
    const tol = ctx.global['tol'] as number;
    const step = ctx.computeDtype;
    if ((step === 'BF16' || step === 'F16') && ctx.numel <= KARCHER_HALF_MAX_ELEMENTS) {
      await karcherHalfSteps(source, sink, ctx, step, maxIter, tol);
      return;
    }
    const gram = await gramMatrix(source, models, undefined, ctx.backend);
    const norms = gram.map((row, j) => f(Math.sqrt(row[j]!)));
    const coefficients = karcherMean(unitGram(gram, norms), norms, maxIter, tol);
    const scale = norms.reduce((sum, n) => sum + n / models.length, 0);
    const used = models.filter((j) => coefficients[j] !== 0);
    if (ctx.backend && used.length > 0 && used.length <= MAX_TASK_MODELS) {
      // The same f64 sum of the same terms in the same order (the zero coefficients skipped, as below).
      const backend = ctx.backend;
      const output = new OutputBuffer(sink);
      for await (const chunk of source.chunks()) {
        const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
        const out = output.take(chunk.length);
        await backend.unitMix(used.map((j) => inputs[j]!), used.map((j) => norms[j]!), used.map((j) => coefficients[j]!), scale, out);
        await output.write(chunk.start, out);
      }
      return;
    }
    let buffer = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      for (let i = 0; i < length; i++) {
        let mean = 0;
        for (let j = 0; j < models.length; j++) if (coefficients[j] !== 0) mean += coefficients[j]! * f(inputs[j]![i]! / norms[j]!);
        out[i] = f(scale * mean);
      }
      await sink.write(start, out);
    }
  },
};

function unitGram(gram: number[][], norms: number[]): number[][] {
  return gram.map((row, j) => row.map((g, k) => (norms[j] && norms[k] ? g / (norms[j]! * norms[k]!) : 0)));
}

/** The Karcher mean's coefficients over the unit vectors, following mergekit's iteration step by step. */
function karcherMean(unit: number[][], norms: number[], maxIter: number, tol: number): number[] {
  const n = norms.length;
  const valid = norms.map((_, j) => j).filter((j) => norms[j]! > tol);
  if (valid.length === 0) return norms.map(() => 0);
  const alphas = norms.map((_, j) => (valid.includes(j) ? 1 / valid.length : 0));
  const length = (c: number[]) => Math.sqrt(Math.max(0, bilinear(unit, c, c)));
  let mean = alphas.slice();
  const meanNorm = length(mean);
  mean = meanNorm < tol ? norms.map((_, j) => (j === valid[0] ? 1 : 0)) : mean.map((c) => c / meanNorm);
  for (let iter = 0; iter < maxIter; iter++) {
    const tangent = new Array<number>(n).fill(0);
    for (const j of valid) {
      const unitJ = norms.map((_, k) => (k === j ? 1 : 0));
      const dot = Math.min(1, Math.max(-1, bilinear(unit, mean, unitJ)));
      const theta = Math.acos(dot);
      if (theta < tol) continue;
      const factor = (alphas[j]! * theta) / Math.sin(theta);
      for (let k = 0; k < n; k++) tangent[k] = tangent[k]! + factor * (unitJ[k]! - dot * mean[k]!);
    }
    const tangentNorm = length(tangent);
    if (tangentNorm < tol) break;
    mean = mean.map((c, k) => Math.cos(tangentNorm) * c + (Math.sin(tangentNorm) * tangent[k]!) / tangentNorm);
    const unitNorm = length(mean);
    if (unitNorm > tol) mean = mean.map((c) => c / unitNorm);
  }
  return mean;
}
