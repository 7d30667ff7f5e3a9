import type { MergeMethod } from './types';

const f = Math.fround;

/**
 * mergekit's nuslerp: spherical interpolation of two models (or of their task vectors when a base is
 * given) at t = w₂ / (w₁ + w₂), over the whole tensor (`nuslerp_flatten`, the default), per row, or
 * per column (`nuslerp_row_wise`). Norms and dots are summed in f64; see docs/architecture.md.
 */
export const nuslerp: MergeMethod = {
  name: 'nuslerp',
  prettyName: 'NuSLERP',
  description: 'Spherical interpolation of two models, or of their task vectors when a base is given, weighted by their weights.',
  base: 'optional',
  parameters: [
    { name: 'weight', scope: 'model', type: 'number', required: true, description: 'Relative weight; t is the second model\'s share.' },
    { name: 'nuslerp_flatten', scope: 'global', type: 'boolean', required: false, default: true, description: 'Treat the whole tensor as one vector.' },
    { name: 'nuslerp_row_wise', scope: 'global', type: 'boolean', required: false, default: false, description: 'Interpolate column vectors instead of row vectors (when not flattened).' },
  ],
  async kernel(source, sink, ctx) {
    const base = ctx.baseIndex;
    const pair = ctx.perModel.map((_, i) => i).filter((i) => i !== base);
    if (pair.length === 1) {
      for await (const chunk of source.chunks()) await sink.write(chunk.start, chunk.inputs[pair[0]!]!);
      return;
    }
    if (pair.length !== 2) throw new Error('nuslerp merges exactly two models besides the base');
    const [a, b] = pair as [number, number];
    const weights = pair.map((i) => ctx.perModel[i]!['weight'] as number);
    const total = 0 + weights[0]! + weights[1]!;
    const t = Math.abs(total) < 1e-6 ? 0.5 : weights[1]! / total;
    const cols = ctx.shape.length === 2 ? ctx.shape[1]! : ctx.numel;
    if (ctx.shape.length > 2 && ctx.global['nuslerp_flatten'] === false) throw new Error('nuslerp without flattening handles tensors of at most two dimensions');
    const group =
      ctx.global['nuslerp_flatten'] !== false ? () => 0 : ctx.global['nuslerp_row_wise'] === true ? (i: number) => i % cols : (i: number) => Math.floor(i / cols);
    const groups = ctx.global['nuslerp_flatten'] !== false ? 1 : ctx.global['nuslerp_row_wise'] === true ? cols : Math.max(1, ctx.numel / cols);
    const value = (inputs: Float32Array[], m: number, i: number) => (base === undefined ? inputs[m]![i]! : f(inputs[m]![i]! - inputs[base]![i]!));
    const sq0 = new Float64Array(groups);
    const sq1 = new Float64Array(groups);
    for await (const { start, inputs } of source.chunks()) {
      for (let i = 0; i < inputs[a]!.length; i++) {
        const g = group(start + i);
        sq0[g] = sq0[g]! + value(inputs, a, i) ** 2;
        sq1[g] = sq1[g]! + value(inputs, b, i) ** 2;
      }
    }
    const n0 = sq0.map((s) => Math.max(f(Math.sqrt(s)), f(1e-7)));
    const n1 = sq1.map((s) => Math.max(f(Math.sqrt(s)), f(1e-7)));
    const dot = new Float64Array(groups);
    for await (const { start, inputs } of source.chunks()) {
      for (let i = 0; i < inputs[a]!.length; i++) {
        const g = group(start + i);
        dot[g] = dot[g]! + f(f(value(inputs, a, i) / n0[g]!) * f(value(inputs, b, i) / n1[g]!));
      }
    }
    const oneMinusT = f(1 - t);
    const tf = f(t);
    const coefficients = [...dot].map((d) => {
      const cos = Math.min(1, Math.max(-1, f(d)));
      const colinear = f(1 - f(cos * cos)) <= f(1e-16);
      const theta = f(Math.acos(colinear ? 0 : cos));
      return { colinear, c0: f(Math.sin(f(oneMinusT * theta))), c1: f(Math.sin(f(tf * theta))), sinTheta: f(Math.sin(theta)) };
    });
    let buffer = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      for (let i = 0; i < length; i++) {
        const { colinear, c0, c1, sinTheta } = coefficients[group(start + i)]!;
        const x = value(inputs, a, i);
        const y = value(inputs, b, i);
        const r = colinear ? f(f(oneMinusT * x) + f(tf * y)) : f(f(f(c0 * x) + f(c1 * y)) / sinTheta);
        out[i] = base === undefined ? r : f(inputs[base]![i]! + r);
      }
      await sink.write(start, out);
    }
  },
};
