import type { MergeMethod, TensorSource } from './types';

const DOT_THRESHOLD = 0.9995;
const EPS = 1e-8;
const f = Math.fround;

/** Sums of squares of inputs 0 and 1, accumulated in f64 (numpy's sdot is f32 with a machine-dependent order). */
async function norms(source: TensorSource): Promise<[number, number]> {
  let s0 = 0;
  let s1 = 0;
  for await (const { inputs } of source.chunks()) {
    const [a, b] = inputs as [Float32Array, Float32Array];
    for (let i = 0; i < a.length; i++) {
      s0 += a[i]! * a[i]!;
      s1 += b[i]! * b[i]!;
    }
  }
  return [f(Math.sqrt(f(s0))), f(Math.sqrt(f(s1)))];
}

/** `np.sum(v0 * v1)` over the normalized vectors: f32 quotients and products, summed in f64. */
async function normalizedDot(source: TensorSource, n0: number, n1: number): Promise<number> {
  let dot = 0;
  for await (const { inputs } of source.chunks()) {
    const [a, b] = inputs as [Float32Array, Float32Array];
    for (let i = 0; i < a.length; i++) {
      const x = n0 > EPS ? f(a[i]! / n0) : a[i]!;
      const y = n1 > EPS ? f(b[i]! / n1) : b[i]!;
      dot += f(x * y);
    }
  }
  return f(dot);
}

/**
 * mergekit's slerp: v0 is the base model. The two tensors are normalized as whole vectors; when
 * they are nearly colinear (|dot| > 0.9995) it falls back to lerp. numpy computes the angle terms
 * in float32 (NEP 50 keeps float32 scalars float32), so each step is rounded to f32 here too.
 */
export const slerp: MergeMethod = {
  name: 'slerp',
  prettyName: 'SLERP',
  description: 'Spherical interpolation between the base model and one other, by t.',
  paper: 'https://en.wikipedia.org/wiki/Slerp',
  base: 'required',
  parameters: [
    { name: 't', scope: 'global', type: 'number', required: true, min: 0, max: 1, description: 'Interpolation factor: 0 is the base model, 1 the other.' },
  ],
  async kernel(source, sink, ctx) {
    const count = ctx.perModel.length;
    if (count === 1) {
      for await (const chunk of source.chunks()) await sink.write(chunk.start, chunk.inputs[0]!);
      return;
    }
    if (count !== 2) throw new Error('slerp merges exactly two models');
    const base = ctx.baseIndex ?? 0;
    const view = (inputs: Float32Array[]) => (base === 0 ? inputs : [inputs[1]!, inputs[0]!]);
    const ordered: TensorSource = {
      async *chunks() {
        for await (const c of source.chunks()) yield { ...c, inputs: view(c.inputs) };
      },
    };
    const t = ctx.global['t'] as number;
    const [n0, n1] = await norms(ordered);
    const dot = await normalizedDot(ordered, n0, n1);
    let c0: number;
    let c1: number;
    if (Math.abs(dot) > DOT_THRESHOLD) {
      c0 = f(1 - t);
      c1 = f(t);
    } else {
      const theta0 = f(Math.acos(dot));
      const sinTheta0 = f(Math.sin(theta0));
      const thetaT = f(theta0 * f(t));
      c0 = f(f(Math.sin(f(theta0 - thetaT))) / sinTheta0);
      c1 = f(f(Math.sin(thetaT)) / sinTheta0);
    }
    for await (const { start, inputs } of ordered.chunks()) {
      const [a, b] = inputs as [Float32Array, Float32Array];
      const out = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) out[i] = f(f(c0 * a[i]!) + f(c1 * b[i]!));
      await sink.write(start, out);
    }
  },
};
