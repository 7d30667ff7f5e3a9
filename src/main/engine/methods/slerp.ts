import { normOfParts, ParallelTorchSum, TorchNorm } from './torch-reductions';
import { hostArray, type HostArray } from '../compute/types';
import { f32Host, type MergeMethod, type TensorSource } from './types';

const DOT_THRESHOLD = 0.9995;
const EPS = 1e-8;
const f = Math.fround;

/** mergekit 0.1.5 reduces slerp's inputs in runs of this many elements (its `_CHUNK_ELEMENTS`). */
const RUN = 1024 * 1024;

/**
 * Feeds inputs 0 and 1 to `count` per-run reductions, as mergekit's chunked loops do: `feed` adds
 * elements [from, to) of a chunk, all in one run, to that run's reductions.
 */
async function reduceRuns<R extends { add(x: number): void; result(): number }>(
  source: TensorSource,
  numel: number,
  count: number,
  make: (length: number) => R,
  feed: (runs: R[], a: Float32Array, b: Float32Array, from: number, to: number) => void,
): Promise<number[][]> {
  const parts: number[][] = Array.from({ length: count }, () => []);
  let runs: R[] = [];
  let position = 0;
  for await (const { inputs } of source.chunks()) {
    const [a, b] = inputs as [Float32Array, Float32Array];
    for (let i = 0; i < a.length; ) {
      if (position % RUN === 0) runs = parts.map(() => make(Math.min(RUN, numel - position)));
      const to = Math.min(a.length, i + RUN - (position % RUN));
      feed(runs, a, b, i, to);
      position += to - i;
      i = to;
      if (position % RUN === 0 || position === numel) runs.forEach((run, k) => parts[k]!.push(run.result()));
    }
  }
  return parts;
}

/** L2 norms of inputs 0 and 1 (as 1 when ≤ eps), reduced as torch reduces them. */
async function norms(source: TensorSource, numel: number): Promise<[number, number]> {
  const [p0, p1] = await reduceRuns(source, numel, 2, (n) => new TorchNorm(n), ([r0, r1], a, b, from, to) => {
    for (let i = from; i < to; i++) {
      r0!.add(a[i]!);
      r1!.add(b[i]!);
    }
  });
  const n0 = normOfParts(p0!);
  const n1 = normOfParts(p1!);
  return [n0 > EPS ? n0 : 1, n1 > EPS ? n1 : 1];
}

/** `(a / |a| * b / |b|).sum()` per run, the runs' sums added in order, clamped to [-1, 1]. */
async function normalizedDot(source: TensorSource, numel: number, n0: number, n1: number, threads: number): Promise<number> {
  const [parts] = await reduceRuns(source, numel, 1, (n) => new ParallelTorchSum(n, threads), ([run], a, b, from, to) => {
    for (let i = from; i < to; i++) run!.add(f(f(a[i]! / n0) * f(b[i]! / n1)));
  });
  let dot = 0;
  for (const p of parts!) dot = f(dot + p);
  return Math.min(1, Math.max(-1, dot));
}

/**
 * mergekit 0.1.5's slerp in f32: v0 is the base model, each tensor normalized as one vector;
 * nearly colinear pairs (|dot| > 0.9995) use lerp. Coefficients are sin((1−t)θ)/sin θ and sin(tθ)/sin θ.
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
    const view = <T>(inputs: T[]): T[] => (base === 0 ? inputs : [inputs[1]!, inputs[0]!]);
    const ordered: TensorSource = {
      async *chunks() {
        for await (const c of source.chunks()) yield { ...c, inputs: view(c.inputs) };
      },
    };
    const t = f(ctx.global['t'] as number);
    const [n0, n1] = await norms(ordered, ctx.numel);
    const dot = await normalizedDot(ordered, ctx.numel, n0, n1, ctx.torchThreads ?? 1);
    const colinear = Math.abs(dot) > DOT_THRESHOLD;
    const theta = f(Math.acos(colinear ? 0 : dot));
    const sinTheta = f(Math.sin(theta));
    const oneMinusT = f(1 - t);
    const c0 = colinear ? oneMinusT : f(f(Math.sin(f(oneMinusT * theta))) / sinTheta);
    const c1 = colinear ? t : f(f(Math.sin(f(t * theta))) / sinTheta);
    for await (const chunk of source.chunks()) {
      if (ctx.backend) {
        // The inputs as read and the output in its own dtype, where source and sink allow.
        const [a, b] = view(chunk.raw ?? chunk.inputs.map(f32Host)) as [HostArray, HostArray];
        const out = sink.writeEncoded && sink.outDtype ? hostArray(sink.outDtype, chunk.length) : f32Host(new Float32Array(chunk.length));
        await ctx.backend.blend2(c0, a, c1, b, out);
        await (out.dtype === 'F32' && !sink.writeEncoded ? sink.write(chunk.start, out.data) : sink.writeEncoded!(chunk.start, out));
        continue;
      }
      const [a, b] = view(chunk.inputs) as [Float32Array, Float32Array];
      const out = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) out[i] = f(f(c0 * a[i]!) + f(c1 * b[i]!));
      await sink.write(chunk.start, out);
    }
  },
};
