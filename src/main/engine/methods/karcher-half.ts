import { MAX_TASK_MODELS, sliceHost, type ComputeBackend, type HalfStep, type HostArray } from '../compute/types';
import { HostScratch } from './host-scratch';
import { addNorms } from './norm-lanes';
import { stepRounding } from './numerics';
import { TorchNorm } from './torch-reductions';
import { f32Host, OutputBuffer, type Chunk, type TensorMergeContext, type TensorSink, type TensorSource } from './types';

const f = Math.fround;

/** Most elements whose iterate (and tangent) karcher in 16-bit steps keeps in memory: 8 bytes an element, 2 GiB. */
export const KARCHER_HALF_MAX_ELEMENTS = 1 << 28;

/**
 * mergekit's karcher computing in bf16 (or f16: the same steps, rounded to f16), step by step as torch
 * does it on such tensors. An f32 0-d tensor multiplying a bf16 tensor (cos and sin of the step, the
 * scale) is rounded to bf16 first (torch casts it to the common dtype), one dividing it (the norms) is
 * not, nor is a Python float (the weights): torch's CPU kernels for bf16 take mul's scalar cast and
 * div's as given. The units r(x / ‖x‖), the mean built by bf16 adds, each iteration's dots (torch.dot:
 * f32 arithmetic, the result in bf16), θ, sin θ and their quotient as bf16 scalars, the tangent added
 * model by model in bf16, the f32 norms of the tangent and the iterate in torch's order, the step by
 * the cos and sin of the tangent's norm (as bf16). The iterate and the tangent are whole-tensor arrays
 * (bf16, or f32 holding f16 values: `HostScratch.stepArray`); the units are recomputed from the
 * inputs, read twice per iteration.
 */
export async function karcherHalfSteps(source: TensorSource, sink: TensorSink, ctx: TensorMergeContext, step: HalfStep, maxIter: number, tol: number): Promise<void> {
  const r = stepRounding(step);
  const n = ctx.perModel.length;
  if (ctx.backend && n < MAX_TASK_MODELS) {
    const scratch = new HostScratch(ctx.backend);
    try {
      await karcherHalfStepsOnBackend(source, sink, ctx, ctx.backend, scratch, step, maxIter, tol);
    } finally {
      scratch.release();
    }
    return;
  }
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
  const alphas = validAlphas(valid, n);
  // Only valid models (norms above tol) take units here.
  const unit = (x: number, j: number) => r(x / norms[j]!);
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
    const dots = await unitDots(source, mean, valid, unit, r);
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
  const scale = r(scaleOf(norms));
  for await (const { start, length } of source.chunks()) {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = r(scale * mean[start + i]!);
    await sink.write(start, out);
  }
}

/** mergekit's weights of the valid models: 1/n each over their (Python, f64) sum, taken as f32 by torch's mul. */
function validAlphas(valid: number[], n: number): number[] {
  const alphaSum = valid.reduce((sum) => sum + 1 / n, 0);
  return valid.map(() => f(1 / n / alphaSum));
}

/** Σ_j f(f(1/n)·‖x_j‖) over every model in f32 (Python's sum of f32 0-d tensors): the scale of the mean. */
function scaleOf(norms: number[]): number {
  let sum = 0;
  for (const norm of norms) sum = f(sum + f(f(1 / norms.length) * norm));
  return sum;
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
 * torch.dot(mean, unit_j) of 16-bit tensors, for each valid model: the products added in f64 in index
 * order (`gramSums`' order on a backend; torch adds
 * them in f32 in its own vector order; the result is rounded to 16 bits, which hides that order but
 * where the sum sits within a few f32 ulps of a rounding boundary).
 */
async function unitDots(source: TensorSource, mean: Float32Array, valid: number[], unit: (x: number, j: number) => number, r: (x: number) => number): Promise<number[]> {
  const sums = valid.map(() => 0);
  for await (const { start, length, inputs } of source.chunks()) {
    valid.forEach((j, k) => {
      const x = inputs[j]!;
      let s = sums[k]!;
      for (let i = 0; i < length; i++) s += mean[start + i]! * unit(x[i]!, j);
      sums[k] = s;
    });
  }
  return sums.map((s) => r(f(s)));
}

/**
 * `karcherHalfSteps` on a backend, the same bits: the units by `unitSum` (r(x / ‖x‖), a lone quotient from
 * −0), the mean's 16-bit adds and each model's tangent term r(t + r(c·r(u − r(dot·m)))) by `blend2`,
 * the step r(r(cos·m) + r(sin·r(t / ‖t‖))) by `unitSum` and `blend2`, the norms by `normLanes`, the
 * dots by `gramSums` (exact products added in f64 in index order, as the loop adds them).
 */
async function karcherHalfStepsOnBackend(
  source: TensorSource,
  sink: TensorSink,
  ctx: TensorMergeContext,
  backend: ComputeBackend,
  scratch: HostScratch,
  step: HalfStep,
  maxIter: number,
  tol: number,
): Promise<void> {
  const r = stepRounding(step);
  const n = ctx.perModel.length;
  const numel = ctx.numel;
  const lone = { step, signedZeros: true };
  const inputsOf = (chunk: Chunk): HostArray[] => chunk.raw ?? chunk.inputs.map(f32Host);
  const runs = Array.from({ length: n }, () => new TorchNorm(numel));
  for await (const chunk of source.chunks()) await addNorms(backend, runs, inputsOf(chunk), chunk.length);
  const norms = runs.map((run) => run.result());
  const valid = norms.map((_, j) => j).filter((j) => norms[j]! > tol);
  if (valid.length === 0) {
    await karcherHalfSteps(source, sink, { ...ctx, backend: undefined }, step, maxIter, tol);
    return;
  }
  const alphas = validAlphas(valid, n);
  const mean = scratch.stepArray('mean', step, numel);
  const tangent = scratch.stepArray('tangent', step, numel);
  const part = (array: HostArray, chunk: Chunk) => sliceHost(array, chunk.start, chunk.length);
  /** The chunk's units r(x_j / ‖x_j‖) of the valid models. */
  const units = async (chunk: Chunk): Promise<HostArray[]> => {
    const inputs = inputsOf(chunk);
    const out = valid.map((_, k) => scratch.stepArray(`unit ${k}`, step, chunk.length));
    for (let k = 0; k < valid.length; k++) await backend.unitSum([inputs[valid[k]!]!], [norms[valid[k]!]!], [1], out[k]!, lone);
    return out;
  };
  // Sums start from torch's zeros (+0): r(+0 + x) turns a −0 term into +0.
  const zeros = (length: number) => f32Host(scratch.zeros(length));
  for await (const chunk of source.chunks()) {
    const u = await units(chunk);
    const m = part(mean, chunk);
    for (let k = 0; k < valid.length; k++) await backend.blend2(1, k === 0 ? zeros(chunk.length) : m, alphas[k]!, u[k]!, m, step);
  }
  const meanNorm = await backendNorm(backend, mean, numel);
  if (meanNorm < tol) {
    for await (const chunk of source.chunks()) await backend.unitSum([inputsOf(chunk)[valid[0]!]!], [norms[valid[0]!]!], [1], part(mean, chunk), lone);
  } else {
    await backend.unitSum([mean], [meanNorm], [1], mean, lone);
  }
  for (let iter = 0; iter < maxIter; iter++) {
    const sums = new Float64Array((valid.length + 1) ** 2);
    for await (const chunk of source.chunks()) await backend.gramSums([part(mean, chunk), ...(await units(chunk))], sums);
    const steps = valid.map((_, k) => {
      const dot = Math.min(1, Math.max(-1, r(f(sums[k + 1]!))));
      const theta = r(Math.acos(dot));
      return { k, dot, skip: theta < tol, factor: r(r(theta / r(Math.sin(theta))) * alphas[k]!) };
    });
    const tangentNorm = new TorchNorm(numel);
    for await (const chunk of source.chunks()) {
      const u = await units(chunk);
      const m = part(mean, chunk);
      const t = part(tangent, chunk);
      const offset = scratch.stepArray('offset', step, chunk.length);
      let first = true;
      for (const { k, dot, skip, factor } of steps) {
        if (skip) continue;
        await backend.blend2(1, u[k]!, -dot, m, offset, step);
        await backend.blend2(1, first ? zeros(chunk.length) : t, factor, offset, t, step);
        first = false;
      }
      if (first) await backend.blend2(1, zeros(chunk.length), 0, zeros(chunk.length), t, step);
      await addNorms(backend, [tangentNorm], [t], chunk.length);
    }
    const length = tangentNorm.result();
    if (length < tol) break;
    await backend.unitSum([tangent], [length], [1], tangent, lone);
    await backend.blend2(r(Math.cos(length)), mean, r(Math.sin(length)), tangent, mean, step);
    const unitNorm = await backendNorm(backend, mean, numel);
    if (unitNorm > tol) await backend.unitSum([mean], [unitNorm], [1], mean, lone);
  }
  const scale = r(scaleOf(norms));
  const output = new OutputBuffer(sink);
  for await (const chunk of source.chunks()) {
    const out = output.take(chunk.length);
    await backend.unitSum([part(mean, chunk)], [1], [scale], out, lone);
    await output.write(chunk.start, out);
  }
}

async function backendNorm(backend: ComputeBackend, values: HostArray, numel: number): Promise<number> {
  const run = new TorchNorm(numel);
  await addNorms(backend, [run], [values], numel);
  return run.result();
}
