import { normOfParts, ParallelTorchSum, TorchNorm } from './torch-reductions';
import { CASCADE_ROW, hostValue, sliceHost, type ComputeBackend, type HostArray } from '../compute/types';
import { f32Host, OutputBuffer, type MergeMethod, type TensorSource } from './types';

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

/** Inputs 0 and 1 of each chunk as host arrays (as read where the source has them), with the chunk's place. */
async function* hostChunks(source: TensorSource, view: <T>(inputs: T[]) => T[]): AsyncIterable<{ start: number; length: number; a: HostArray; b: HostArray }> {
  for await (const chunk of source.chunks()) {
    const [a, b] = view(chunk.raw ?? chunk.inputs.map(f32Host)) as [HostArray, HostArray];
    yield { start: chunk.start, length: chunk.length, a, b };
  }
}

/** Bulk calls shorter than this go through the reductions' own `add`. */
const MIN_BULK = 64;

/**
 * `norms` with the lanes summed on a backend (`normLanes`): the same values added in the same order;
 * only a run's tail, and elements before a chunk gets back in step with the lanes, go through add.
 */
async function normsOnBackend(source: TensorSource, numel: number, backend: ComputeBackend, view: <T>(inputs: T[]) => T[]): Promise<[number, number]> {
  const parts: [number[], number[]] = [[], []];
  let r0 = new TorchNorm(0);
  let r1 = new TorchNorm(0);
  let position = 0;
  const lanes = new Float32Array(16);
  for await (const { a, b } of hostChunks(source, view)) {
    for (let i = 0; i < a.data.length; ) {
      if (position % RUN === 0) {
        r0 = new TorchNorm(Math.min(RUN, numel - position));
        r1 = new TorchNorm(Math.min(RUN, numel - position));
      }
      const to = Math.min(a.data.length, i + RUN - (position % RUN));
      let n = Math.min(r0.bulk(), to - i);
      n -= n % 8;
      if (n >= MIN_BULK) {
        lanes.set(r0.laneSums, 0);
        lanes.set(r1.laneSums, 8);
        await backend.normLanes([sliceHost(a, i, n), sliceHost(b, i, n)], lanes);
        r0.laneSums.set(lanes.subarray(0, 8));
        r1.laneSums.set(lanes.subarray(8, 16));
        r0.added(n);
        r1.added(n);
      } else {
        n = 1;
        r0.add(hostValue(a, i));
        r1.add(hostValue(b, i));
      }
      i += n;
      position += n;
      if (position % RUN === 0 || position === numel) {
        parts[0].push(r0.result());
        parts[1].push(r1.result());
      }
    }
  }
  const n0 = normOfParts(parts[0]);
  const n1 = normOfParts(parts[1]);
  return [n0 > EPS ? n0 : 1, n1 > EPS ? n1 : 1];
}

/** `normalizedDot` with whole rows of each run's cascade sums on a backend (`dotRows`). */
async function normalizedDotOnBackend(source: TensorSource, numel: number, n0: number, n1: number, threads: number, backend: ComputeBackend, view: <T>(inputs: T[]) => T[]): Promise<number> {
  const parts: number[] = [];
  let run = new ParallelTorchSum(0, 1);
  let position = 0;
  for await (const { a, b } of hostChunks(source, view)) {
    for (let i = 0; i < a.data.length; ) {
      if (position % RUN === 0) run = new ParallelTorchSum(Math.min(RUN, numel - position), threads);
      const to = Math.min(a.data.length, i + RUN - (position % RUN));
      const { sum, room } = run.part();
      let n = Math.min(sum.bulkRows(), Math.floor(Math.min(room, to - i) / CASCADE_ROW)) * CASCADE_ROW;
      if (n >= MIN_BULK) {
        const state = sum.cascade();
        await backend.dotRows(sliceHost(a, i, n), sliceHost(b, i, n), n0, n1, state);
        sum.rowsAdded(state);
        run.skipped(n);
      } else {
        n = 1;
        run.add(f(f(hostValue(a, i) / n0) * f(hostValue(b, i) / n1)));
      }
      i += n;
      position += n;
      if (position % RUN === 0 || position === numel) parts.push(run.result());
    }
  }
  let dot = 0;
  for (const p of parts) dot = f(dot + p);
  return Math.min(1, Math.max(-1, dot));
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
  inputs: { min: 2, max: 2 },
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
    const backend = ctx.backend;
    const [n0, n1] = backend ? await normsOnBackend(source, ctx.numel, backend, view) : await norms(ordered, ctx.numel);
    const dot = backend ? await normalizedDotOnBackend(source, ctx.numel, n0, n1, ctx.torchThreads ?? 1, backend, view) : await normalizedDot(ordered, ctx.numel, n0, n1, ctx.torchThreads ?? 1);
    const colinear = Math.abs(dot) > DOT_THRESHOLD;
    const theta = f(Math.acos(colinear ? 0 : dot));
    const sinTheta = f(Math.sin(theta));
    const oneMinusT = f(1 - t);
    const c0 = colinear ? oneMinusT : f(f(Math.sin(f(oneMinusT * theta))) / sinTheta);
    const c1 = colinear ? t : f(f(Math.sin(f(t * theta))) / sinTheta);
    const output = new OutputBuffer(sink);
    for await (const chunk of source.chunks()) {
      if (backend) {
        // The inputs as read and the output in its own dtype, where source and sink allow.
        const [a, b] = view(chunk.raw ?? chunk.inputs.map(f32Host)) as [HostArray, HostArray];
        const out = output.take(chunk.length);
        await backend.blend2(c0, a, c1, b, out);
        await output.write(chunk.start, out);
        continue;
      }
      const [a, b] = view(chunk.inputs) as [Float32Array, Float32Array];
      const out = new Float32Array(a.length);
      for (let i = 0; i < a.length; i++) out[i] = f(f(c0 * a[i]!) + f(c1 * b[i]!));
      await sink.write(chunk.start, out);
    }
  },
};
