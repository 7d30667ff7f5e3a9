import { MagnitudeMask, magnitudeThresholds } from './magnitude-select';
import { keepAt, maskKey } from './random-mask';
import type { MergeMethod, ParameterDecl, TensorMergeContext, TensorSource } from './types';

const f = Math.fround;

export interface TaskArithmeticConfig {
  name: string;
  prettyName: string;
  paper: string;
  description: string;
  /** TIES sign election over the weighted deltas. */
  consensus: 'sum' | undefined;
  sparsification: 'magnitude' | 'magnitude_outliers' | 'random' | undefined;
  defaultNormalize: boolean;
  defaultRescale: boolean;
}

/**
 * mergekit's GeneralizedTaskArithmeticMerge: deltas from the base, each optionally sparsified
 * (density), weighted, optionally sign-elected (TIES), summed, divided by the summed weights
 * (normalize), times lambda, added back to the base. All in f32.
 */
export function taskArithmeticMethod(config: TaskArithmeticConfig): MergeMethod {
  const parameters: ParameterDecl[] = [
    { name: 'weight', scope: 'model', type: 'number', required: true, description: 'How much of this model\'s task vector (its difference from the base) is added.' },
    { name: 'density', scope: 'model', type: 'number', required: false, default: 1, min: 0, max: 1, description: 'Fraction of the task vector kept.' },
    { name: 'normalize', scope: 'global', type: 'boolean', required: false, default: config.defaultNormalize, description: 'Divide by the sum of the weights that take part.' },
    { name: 'rescale', scope: 'global', type: 'boolean', required: false, default: config.defaultRescale, description: 'Rescale what is kept to the task vector\'s original L1 norm.' },
    { name: 'lambda', scope: 'global', type: 'number', required: false, default: 1, description: 'Scale of the merged task vector.' },
    { name: 'int8_mask', scope: 'global', type: 'boolean', required: false, default: false, description: 'Store masks as int8 (memory only; results are the same).' },
  ];
  if (config.sparsification === 'magnitude_outliers') {
    parameters.push({ name: 'gamma', scope: 'model', type: 'number', required: false, default: 0.01, min: 0, max: 1, description: 'Fraction of the largest task-vector entries dropped as outliers.' });
  }
  return {
    name: config.name,
    prettyName: config.prettyName,
    description: config.description,
    paper: config.paper,
    base: 'required',
    parameters,
    kernel: (source, sink, ctx) => mergeTaskVectors(config, source, sink, ctx),
  };
}

async function mergeTaskVectors(config: TaskArithmeticConfig, source: TensorSource, sink: { write(start: number, v: Float32Array): Promise<void> }, ctx: TensorMergeContext): Promise<void> {
  const base = ctx.baseIndex!;
  const others = ctx.perModel.map((_, i) => i).filter((i) => i !== base);
  const weights = others.map((m) => f(ctx.perModel[m]!['weight'] as number));
  const densities = others.map((m) => (ctx.perModel[m]!['density'] as number | undefined) ?? 1);
  const normalize = ctx.global['normalize'] as boolean;
  const rescale = ctx.global['rescale'] as boolean;
  const lambda = f((ctx.global['lambda'] as number | undefined) ?? 1);
  const masks = await magnitudeMasks(config, source, ctx, base, others, densities);
  const scales = rescale && config.sparsification ? await rescaleFactors(config, source, ctx, base, others, densities, masks) : others.map(() => 1);
  masks.forEach((m) => m?.reset());
  const keys = others.map((m) => maskKey(ctx.seed, ctx.tensorName, m));
  let plainDivisor = 0;
  for (const w of weights) plainDivisor = f(plainDivisor + w);
  if (Math.abs(plainDivisor) < 1e-8) plainDivisor = 1;
  const d = new Float64Array(others.length);
  let buffer = new Float32Array(0);
  for await (const { start, length, inputs } of source.chunks()) {
    if (buffer.length < length) buffer = new Float32Array(length);
    const out = buffer.subarray(0, length);
    const b = inputs[base]!;
    for (let i = 0; i < length; i++) {
      for (let j = 0; j < others.length; j++) {
        let delta = f(inputs[others[j]!]![i]! - b[i]!);
        const density = densities[j]!;
        if (config.sparsification && density < 1) {
          if (density <= 0) delta = 0;
          else if (masks[j]) {
            if (!masks[j]!.keeps(Math.abs(delta))) delta = 0;
          } else if (!keepAt(keys[j]!, start + i, density)) delta = 0;
          if (scales[j] !== 1) delta = f(delta * scales[j]!);
        }
        d[j] = f(delta * weights[j]!);
      }
      let mixed = 0;
      let divisor = plainDivisor;
      if (config.consensus) {
        let vote = 0;
        for (let j = 0; j < others.length; j++) vote = f(vote + d[j]!);
        const majority = vote >= 0 ? 1 : -1;
        divisor = 0;
        for (let j = 0; j < others.length; j++) {
          const agrees = Math.sign(d[j]!) === majority;
          mixed = f(mixed + (agrees ? d[j]! : 0));
          divisor = f(divisor + (agrees ? weights[j]! : 0));
        }
        if (divisor === 0) divisor = 1;
      } else {
        for (let j = 0; j < others.length; j++) mixed = f(mixed + d[j]!);
      }
      if (normalize) mixed = f(mixed / divisor);
      if (lambda !== 1) mixed = f(mixed * lambda);
      out[i] = f(b[i]! + mixed);
    }
    await sink.write(start, out);
  }
}

/** mergekit's L1 rescale: Σ|delta| / Σ|kept delta| per model (1 when either is below 1e-7). */
async function rescaleFactors(
  config: TaskArithmeticConfig,
  source: TensorSource,
  ctx: TensorMergeContext,
  base: number,
  others: number[],
  densities: number[],
  masks: (MagnitudeMask | undefined)[],
): Promise<number[]> {
  const before = others.map(() => 0);
  const after = others.map(() => 0);
  const keys = others.map((m) => maskKey(ctx.seed, ctx.tensorName, m));
  masks.forEach((m) => m?.reset());
  for await (const { start, inputs } of source.chunks()) {
    const b = inputs[base]!;
    others.forEach((m, j) => {
      if (densities[j]! >= 1) return;
      const x = inputs[m]!;
      for (let i = 0; i < x.length; i++) {
        const delta = Math.abs(f(x[i]! - b[i]!));
        before[j] = before[j]! + delta;
        const kept = masks[j] ? masks[j]!.keeps(delta) : keepAt(keys[j]!, start + i, densities[j]!);
        if (kept) after[j] = after[j]! + delta;
      }
    });
  }
  return others.map((_, j) => {
    const a = f(before[j]!);
    const k = f(after[j]!);
    return densities[j]! >= 1 || a < 1e-7 || k < 1e-7 ? 1 : f(a / k);
  });
}

/** The magnitude masks of the models whose density prunes anything (mergekit's magnitude and magnitude_outliers). */
async function magnitudeMasks(config: TaskArithmeticConfig, source: TensorSource, ctx: TensorMergeContext, base: number, others: number[], densities: number[]): Promise<(MagnitudeMask | undefined)[]> {
  if (config.sparsification !== 'magnitude' && config.sparsification !== 'magnitude_outliers') return others.map(() => undefined);
  const n = ctx.numel;
  // Ranks counted from the largest |delta|: [skip, upTo) are kept.
  const ranks = others.map((m, j) => {
    const density = densities[j]!;
    if (density >= 1 || density <= 0 || n === 0) return undefined;
    if (config.sparsification === 'magnitude') return { skip: 0, upTo: Math.max(1, Math.trunc(density * n)) };
    const target = Math.trunc(density * n);
    const top = Math.trunc(((ctx.perModel[m]!['gamma'] as number | undefined) ?? 0.01) * n);
    const bottom = Math.max(0, n - target - top);
    return { skip: n - bottom - target, upTo: n - bottom };
  });
  const wanted = others.flatMap((m, j) => (ranks[j] ? [{ j, m, k: ranks[j]!.upTo }, ...(ranks[j]!.skip > 0 ? [{ j, m, k: ranks[j]!.skip }] : [])] : []));
  const found = await magnitudeThresholds(source, base, wanted.map((w) => w.m), wanted.map((w) => w.k));
  return others.map((_, j) => {
    if (!ranks[j]) return undefined;
    const upTo = found[wanted.findIndex((w) => w.j === j && w.k === ranks[j]!.upTo)]!;
    const skipAt = ranks[j]!.skip > 0 ? found[wanted.findIndex((w) => w.j === j && w.k === ranks[j]!.skip)] : undefined;
    return new MagnitudeMask(skipAt, upTo);
  });
}
