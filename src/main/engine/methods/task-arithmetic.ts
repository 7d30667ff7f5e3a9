import { magnitudeThresholds, type MagnitudeThreshold } from './magnitude-select';
import { keepAt, maskKey } from './random-mask';
import { f32Bits } from '../safetensors/convert';
import type { MergeMethod, ParameterDecl, TensorMergeContext, TensorSource } from './types';

const f = Math.fround;

export interface TaskArithmeticConfig {
  name: string;
  prettyName: string;
  paper: string;
  description: string;
  /** TIES sign election over the weighted deltas. */
  consensus: 'sum' | undefined;
  sparsification: 'magnitude' | 'random' | undefined;
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
  let thresholds: (MagnitudeThreshold | undefined)[] = others.map(() => undefined);
  if (config.sparsification === 'magnitude') {
    const pruned = others.flatMap((_, j) => (densities[j]! < 1 && densities[j]! > 0 ? [j] : []));
    const found = await magnitudeThresholds(source, base, pruned.map((j) => others[j]!), pruned.map((j) => Math.max(1, Math.floor(densities[j]! * ctx.numel))));
    thresholds = others.map((_, j) => found[pruned.indexOf(j)]);
  }
  const scales = rescale && config.sparsification ? await rescaleFactors(config, source, ctx, base, others, densities, thresholds) : others.map(() => 1);
  const ties = thresholds.map((t) => t?.ties ?? 0);
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
          else if (config.sparsification === 'magnitude') {
            const t = thresholds[j]!;
            const bits = f32Bits(Math.abs(delta));
            if (bits < t.bits || (bits === t.bits && ties[j]! <= 0)) delta = 0;
            else if (bits === t.bits) ties[j] = ties[j]! - 1;
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
  thresholds: (MagnitudeThreshold | undefined)[],
): Promise<number[]> {
  const before = others.map(() => 0);
  const after = others.map(() => 0);
  const ties = thresholds.map((t) => t?.ties ?? 0);
  const keys = others.map((m) => maskKey(ctx.seed, ctx.tensorName, m));
  for await (const { start, inputs } of source.chunks()) {
    const b = inputs[base]!;
    others.forEach((m, j) => {
      if (densities[j]! >= 1) return;
      const x = inputs[m]!;
      for (let i = 0; i < x.length; i++) {
        const delta = Math.abs(f(x[i]! - b[i]!));
        before[j] = before[j]! + delta;
        let kept: boolean;
        if (config.sparsification === 'magnitude') {
          const bits = f32Bits(delta);
          const t = thresholds[j]!;
          kept = bits > t.bits || (bits === t.bits && ties[j]! > 0);
          if (kept && bits === t.bits) ties[j] = ties[j]! - 1;
        } else kept = keepAt(keys[j]!, start + i, densities[j]!);
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
