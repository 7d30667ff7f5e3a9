import { MAX_TASK_MODELS, type ComputeBackend, type RamParams } from '../compute/types';
import { stepOf, stepRounding } from './numerics';
import { f32Host, OutputBuffer, type MergeMethod, type TensorMergeContext, type TensorSink, type TensorSource } from './types';

const f = Math.fround;

const EPSILON = { name: 'epsilon', scope: 'global', type: 'number', required: false, default: 1e-5, min: 0, description: 'A task-vector entry counts as changed when its magnitude is above this.' } as const;

/**
 * mergekit's ram: an entry changed (|delta| > epsilon) by one model alone is taken whole; one changed by
 * several is averaged over those models.
 */
export const ram: MergeMethod = {
  name: 'ram',
  prettyName: 'Reinforced Agent Merging',
  description: 'Keeps each model\'s unique changes whole and averages the changes models share.',
  paper: 'https://arxiv.org/abs/2601.13572',
  base: 'required',
  parameters: [EPSILON],
  kernel: (source, sink, ctx) => mergeRam(source, sink, ctx, undefined),
};

/**
 * mergekit's ramplus_tl: as ram, but each model's unique changes are scaled by 1 + r·clamp(ρ, 0, α),
 * where ρ is how many of its changes it shares over how many are its own, counted per tensor.
 */
export const ramplusTl: MergeMethod = {
  name: 'ramplus_tl',
  prettyName: 'Reinforced Agent Merging Plus (Tensor-Local)',
  description: 'RAM, with each model\'s unique changes boosted by how much it overlaps with the others.',
  paper: 'https://arxiv.org/abs/2601.13572',
  base: 'required',
  parameters: [
    { name: 'r', scope: 'global', type: 'number', required: false, default: 0.1, min: 0, description: 'Strength of the boost of unique changes.' },
    { name: 'alpha', scope: 'global', type: 'number', required: false, default: 0.2, min: 0, description: 'Cap on the overlap ratio used for the boost.' },
    EPSILON,
  ],
  // Each model's boost is an f32 tensor: mergekit's result is f32 from bf16 or f16 inputs.
  resultDtype: () => 'F32',
  async kernel(source, sink, ctx) {
    const r = f(ctx.global['r'] as number);
    const alpha = f(ctx.global['alpha'] as number);
    const epsilon = ctx.global['epsilon'] as number;
    const { shared, unique } = await countChanges(source, ctx, epsilon);
    const boosts = shared.map((s, j) => {
      const rho = f(f(s) / Math.max(f(unique[j]!), f(epsilon)));
      return f(1 + f(r * Math.min(Math.max(rho, 0), alpha)));
    });
    await mergeRam(source, sink, ctx, boosts);
  },
};

function nonBase(ctx: TensorMergeContext): number[] {
  return ctx.perModel.map((_, i) => i).filter((i) => i !== ctx.baseIndex);
}

/**
 * The backend that runs the passes (`ramCounts`, `ramMerge`: the same bits as the loops below, in f32
 * or bf16 steps), if there is one and the models fit.
 */
function onBackend(ctx: TensorMergeContext): ComputeBackend | undefined {
  return ctx.backend && nonBase(ctx).length >= 1 && nonBase(ctx).length <= MAX_TASK_MODELS ? ctx.backend : undefined;
}

/** ram's parameters for the backend's passes. */
function ramParams(ctx: TensorMergeContext, boosts?: number[]): RamParams {
  return { epsilon: ctx.global['epsilon'] as number, step: stepOf(ctx.computeDtype), ...(boosts ? { boosts } : {}) };
}

/**
 * mergekit's ram steps in its compute dtype: task vectors x − base and the shared changes' division
 * by their count are tensor ops (rounded to bf16 there), as is the test |tv| > epsilon, whose epsilon
 * torch casts to the tensor's dtype; the sum over models accumulates in f32 and rounds once.
 */
function ramRounding(ctx: TensorMergeContext): { round: (x: number) => number; threshold: number } {
  const round = stepRounding(ctx.computeDtype);
  return { round, threshold: round(ctx.global['epsilon'] as number) };
}

/** Per model: how many of its changed entries other models change too, and how many it changes alone. */
async function countChanges(source: TensorSource, ctx: TensorMergeContext, epsilon: number): Promise<{ shared: number[]; unique: number[] }> {
  const others = nonBase(ctx);
  const backend = onBackend(ctx);
  if (backend) {
    const counts = new Float64Array(2 * others.length);
    for await (const chunk of source.chunks()) {
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      await backend.ramCounts(inputs[ctx.baseIndex!]!, others.map((m) => inputs[m]!), ramParams(ctx), counts);
    }
    return { shared: others.map((_, j) => counts[2 * j]!), unique: others.map((_, j) => counts[2 * j + 1]!) };
  }
  const { round, threshold } = ramRounding(ctx);
  const shared = others.map(() => 0);
  const unique = others.map(() => 0);
  const changed = new Uint8Array(others.length);
  for await (const { length, inputs } of source.chunks()) {
    const b = inputs[ctx.baseIndex!]!;
    for (let i = 0; i < length; i++) {
      let count = 0;
      others.forEach((m, j) => {
        changed[j] = Math.abs(round(f(inputs[m]![i]! - b[i]!))) > threshold ? 1 : 0;
        count += changed[j]!;
      });
      for (let j = 0; j < others.length; j++) {
        if (!changed[j]) continue;
        if (count > 1) shared[j]!++;
        else unique[j]!++;
      }
    }
  }
  return { shared, unique };
}

async function mergeRam(source: TensorSource, sink: TensorSink, ctx: TensorMergeContext, boosts: number[] | undefined): Promise<void> {
  const others = nonBase(ctx);
  const backend = onBackend(ctx);
  if (backend) {
    const params = ramParams(ctx, boosts);
    const output = new OutputBuffer(sink);
    for await (const chunk of source.chunks()) {
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      const out = output.take(chunk.length);
      await backend.ramMerge(inputs[ctx.baseIndex!]!, others.map((m) => inputs[m]!), params, out);
      await output.write(chunk.start, out);
    }
    return;
  }
  const { round, threshold } = ramRounding(ctx);
  // ramplus_tl's boosts are f32 tensors: its unique terms, sum and result are f32 (ram's are rounded).
  const roundSum = boosts ? f : round;
  const delta = new Float64Array(others.length);
  let buffer = new Float32Array(0);
  for await (const { start, length, inputs } of source.chunks()) {
    if (buffer.length < length) buffer = new Float32Array(length);
    const out = buffer.subarray(0, length);
    const b = inputs[ctx.baseIndex!]!;
    for (let i = 0; i < length; i++) {
      let count = 0;
      others.forEach((m, j) => {
        const d = round(f(inputs[m]![i]! - b[i]!));
        delta[j] = Math.abs(d) > threshold ? d : 0;
        if (delta[j] !== 0) count++;
      });
      let merged = 0;
      for (let j = 0; j < others.length; j++) {
        const d = delta[j]!;
        const term = count === 1 ? (boosts ? f(d * boosts[j]!) : d) : count > 1 ? round(d / count) : 0;
        merged = f(merged + term);
      }
      // Every NaN as 0x7fc00000 (which of two NaNs a sum returns is up to the hardware and the JIT).
      const r = roundSum(b[i]! + roundSum(merged));
      out[i] = Number.isNaN(r) ? NaN : r;
    }
    await sink.write(start, out);
  }
}
