import { roundBf16 } from './numerics';
import { TorchNorm } from './torch-reductions';
import type { TensorMergeContext, TensorSink, TensorSource } from './types';

const f = Math.fround;
const r = roundBf16;

/** Most elements whose iterate (and tangent) karcher in bf16 steps keeps in memory: 2 × 256 MiB. */
export const KARCHER_BF16_MAX_ELEMENTS = 1 << 26;

/**
 * mergekit's karcher computing in bf16, step by step as torch does it on bf16 tensors. An f32 0-d
 * tensor multiplying a bf16 tensor (cos and sin of the step, the scale) is rounded to bf16 first (torch
 * casts it to the common dtype), one dividing it (the norms) is not, nor is a Python float (the
 * weights): torch's CPU kernels for bf16 take mul's scalar cast and div's as given. The units
 * r(x / r(‖x‖)), the mean built by bf16 adds, each iteration's dots (torch.dot: f32 arithmetic, the
 * result in bf16), θ, sin θ and their quotient as bf16 scalars, the tangent added model by model in
 * bf16, the f32 norms of the tangent and the iterate in torch's order, the step by the f32 cos and
 * sin of the tangent's norm. The iterate and the tangent are whole-tensor arrays; the units are
 * recomputed from the inputs, read twice per iteration.
 */
export async function karcherBf16(source: TensorSource, sink: TensorSink, ctx: TensorMergeContext, maxIter: number, tol: number): Promise<void> {
  const n = ctx.perModel.length;
  const norms = await inputNorms(source, n, ctx.numel);
  const valid = norms.map((_, j) => j).filter((j) => norms[j]! > tol);
  if (valid.length === 0) {
    for await (const { start, length, inputs } of source.chunks()) {
      const out = new Float32Array(length);
      for (let i = 0; i < length; i++) for (let j = 0; j < n; j++) out[i] = r(out[i]! + r(inputs[j]![i]! * 0));
      await sink.write(start, out);
    }
    return;
  }
  const alphaSum = valid.reduce((sum) => sum + 1 / n, 0);
  const alphas = valid.map(() => f(1 / n / alphaSum));
  const unit = (x: number, j: number) => (norms[j] === 0 ? 0 : r(x / norms[j]!));
  const mean = new Float32Array(ctx.numel);
  for await (const { start, length, inputs } of source.chunks()) {
    for (let i = 0; i < length; i++) {
      let m = 0;
      valid.forEach((j, k) => (m = r(m + r(unit(inputs[j]![i]!, j) * alphas[k]!))));
      mean[start + i] = m;
    }
  }
  const meanNorm = normOf(mean);
  if (meanNorm < tol) {
    for await (const { start, length, inputs } of source.chunks()) for (let i = 0; i < length; i++) mean[start + i] = unit(inputs[valid[0]!]![i]!, valid[0]!);
  } else {
    for (let i = 0; i < mean.length; i++) mean[i] = r(mean[i]! / meanNorm);
  }
  const tangent = new Float32Array(ctx.numel);
  for (let iter = 0; iter < maxIter; iter++) {
    const dots = await unitDots(source, mean, valid, unit);
    const steps = valid.map((j, k) => {
      const dot = Math.min(1, Math.max(-1, dots[k]!));
      const theta = r(Math.acos(dot));
      return { j, dot, skip: theta < tol, factor: r(r(theta / r(Math.sin(theta))) * alphas[k]!) };
    });
    tangent.fill(0);
    const tangentNorm = new TorchNorm(ctx.numel);
    for await (const { start, length, inputs } of source.chunks()) {
      for (let i = 0; i < length; i++) {
        const m = mean[start + i]!;
        let t = 0;
        for (const { j, dot, skip, factor } of steps) if (!skip) t = r(t + r(factor * r(unit(inputs[j]![i]!, j) - r(dot * m))));
        tangent[start + i] = t;
        tangentNorm.add(t);
      }
    }
    const length = tangentNorm.result();
    if (length < tol) break;
    const [cos, sin] = [r(Math.cos(length)), r(Math.sin(length))];
    for (let i = 0; i < mean.length; i++) mean[i] = r(r(cos * mean[i]!) + r(sin * r(tangent[i]! / length)));
    const unitNorm = normOf(mean);
    if (unitNorm > tol) for (let i = 0; i < mean.length; i++) mean[i] = r(mean[i]! / unitNorm);
  }
  let sum = 0;
  for (let j = 0; j < n; j++) sum = f(sum + f(f(1 / n) * norms[j]!));
  const scale = r(sum);
  for await (const { start, length } of source.chunks()) {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = r(scale * mean[start + i]!);
    await sink.write(start, out);
  }
}

/** Each input's f32 norm in torch's order (`torch.linalg.vector_norm(x.to(float32))`). */
async function inputNorms(source: TensorSource, n: number, numel: number): Promise<number[]> {
  const runs = Array.from({ length: n }, () => new TorchNorm(numel));
  for await (const { length, inputs } of source.chunks()) for (let j = 0; j < n; j++) for (let i = 0; i < length; i++) runs[j]!.add(inputs[j]![i]!);
  return runs.map((run) => run.result());
}

function normOf(values: Float32Array): number {
  const run = new TorchNorm(values.length);
  for (let i = 0; i < values.length; i++) run.add(values[i]!);
  return run.result();
}

/**
 * torch.dot(mean, unit_j) of bf16 tensors, for each valid model: the products added in f64 (torch adds
 * them in f32 in its own vector order; the result is rounded to bf16, which hides that order but
 * where the sum sits within a few f32 ulps of a bf16 rounding boundary).
 */
async function unitDots(source: TensorSource, mean: Float32Array, valid: number[], unit: (x: number, j: number) => number): Promise<number[]> {
  const sums = valid.map(() => 0);
  for await (const { start, length, inputs } of source.chunks()) {
    valid.forEach((j, k) => {
      const x = inputs[j]!;
      let s = 0;
      for (let i = 0; i < length; i++) s += mean[start + i]! * unit(x[i]!, j);
      sums[k]! += s;
    });
  }
  return sums.map((s) => r(f(s)));
}
