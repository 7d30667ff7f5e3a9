import { HostScratch } from './host-scratch';
import { addNorms } from './norm-lanes';
import { roundStepArray, stepRounding } from './numerics';
import { CASCADE_ROW, hostValue, MAX_TASK_MODELS, sliceHost, type ComputeBackend, type HalfStep, type HostArray } from '../compute/types';
import { TorchNorm, TorchSum, torchNormOf, torchSum, type NormRun } from './torch-reductions';
import { f32Host, OutputBuffer, type Chunk, type MergeMethod, type TensorMergeContext, type TensorSink, type TensorSource } from './types';

const f = Math.fround;

/**
 * mergekit's multislerp: each model (or task vector, with a base) is put on the unit sphere, their
 * weighted mean is projected back onto it, and the result is scaled by the weighted mean norm. The
 * norms and dots are reduced as torch reduces them, in passes over the chunks. mergekit's tangent step
 * adds only rounding residue (the weighted tangents of the units around their own weighted mean sum
 * to zero), so its exponential map is taken at a tangent of length ~1e-7, where cos is 1 and sin(x)/x
 * is 1 in f32: Alloy adds the residue as torch computes it, element by element.
 */
export const multislerp: MergeMethod = {
  name: 'multislerp',
  prettyName: 'Multi-SLERP',
  description: 'Spherical interpolation of any number of models (or their task vectors), by weight.',
  paper: 'https://goddard.blog/posts/multislerp-wow-what-a-cool-idea',
  base: 'optional',
  inputs: { minOthers: 1 },
  parameters: [
    { name: 'weight', scope: 'model', type: 'number', required: true, description: 'This model\'s share of the interpolation.' },
    { name: 'normalize_weights', scope: 'global', type: 'boolean', required: false, default: true, description: 'Divide the weights by their sum.' },
    { name: 'eps', scope: 'global', type: 'number', required: false, default: 1e-8, min: 0, description: 'Small constant for numerical stability.' },
  ],
  async kernel(source, sink, ctx) {
    const base = ctx.baseIndex;
    const models = ctx.perModel.map((_, i) => i).filter((i) => i !== base);
    if (models.length === 1) {
      for await (const chunk of source.chunks()) await sink.write(chunk.start, chunk.inputs[models[0]!]!);
      return;
    }
    if (ctx.computeDtype === 'BF16' || ctx.computeDtype === 'F16') {
      await multislerpHalfSteps(source, sink, ctx, base, models, ctx.computeDtype);
      return;
    }
    const eps = f(ctx.global['eps'] as number);
    let weights = models.map((m) => f(ctx.perModel[m]!['weight'] as number));
    if (ctx.global['normalize_weights'] !== false) {
      const total = torchSum(weights);
      weights = weights.map((w) => f(w / total));
    }
    if (ctx.backend && models.length <= MAX_TASK_MODELS) {
      await multislerpOnBackend(source, sink, ctx.backend, base, models, weights, eps, ctx.numel);
      return;
    }
    const value = (inputs: Float32Array[], j: number, i: number) => (base === undefined ? inputs[models[j]!]![i]! : f(inputs[models[j]!]![i]! - inputs[base]![i]!));
    const norms = await reducePerModel(source, models.length, () => new TorchNorm(ctx.numel), (inputs, j, i) => value(inputs, j, i));
    const denominators = norms.map((n) => f(n + eps));
    const unit = (inputs: Float32Array[], j: number, i: number) => f(value(inputs, j, i) / denominators[j]!);
    const mean = (inputs: Float32Array[], i: number) => {
      let sum = 0;
      for (let j = 0; j < models.length; j++) sum = f(sum + f(unit(inputs, j, i) * weights[j]!));
      return sum;
    };
    const [meanNorm] = await reducePerModel(source, 1, () => new TorchNorm(ctx.numel), (inputs, _, i) => mean(inputs, i));
    if (meanNorm! < eps && models.length !== 2) {
      throw new Error('the weighted sum of the models on the unit sphere is zero (antipodal models with balancing weights); try other weights');
    }
    const dots = meanNorm! < eps ? [] : await reducePerModel(source, models.length, () => new TorchSum(ctx.numel), (inputs, j, i) => f(unit(inputs, j, i) * f(mean(inputs, i) / meanNorm!)));
    const tangent = (inputs: Float32Array[], i: number) => {
      const direction = f(mean(inputs, i) / meanNorm!);
      let sum = 0;
      for (let j = 0; j < models.length; j++) sum = f(sum + f(f(unit(inputs, j, i) - f(dots[j]! * direction)) * weights[j]!));
      return sum;
    };
    const { cos, sinc } = meanNorm! < eps ? { cos: 1, sinc: 1 } : exponentialMap((await reducePerModel(source, 1, () => new TorchNorm(ctx.numel), (inputs, _, i) => tangent(inputs, i)))[0]!, eps);
    const averageNorm = torchSum(norms.map((n, j) => f(n * weights[j]!)));
    let buffer = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      for (let i = 0; i < length; i++) {
        let r: number;
        if (meanNorm! < eps) {
          r = f(f(value(inputs, 0, i) * weights[0]!) + f(value(inputs, 1, i) * weights[1]!));
        } else {
          r = f(f(f(f(mean(inputs, i) / meanNorm!) * cos) + f(tangent(inputs, i) * sinc)) * averageNorm);
        }
        out[i] = base === undefined ? r : f(r + inputs[base]![i]!);
      }
      await sink.write(start, out);
    }
  },
};

/**
 * mergekit's multislerp computing in bf16 or f16, step by step as torch does it on such tensors: every
 * op rounds to the step (the reductions accumulate in f32 and round once), and the tangent step is taken
 * in full (cos and sin(x)/x of the tangent's norm), as 16-bit residues are not negligible there. In
 * passes (`multislerpHalfStepPasses`), each chunk's arrays computed by the backend's kernels
 * (`HalfStepsOnBackend`), or without one on the host (`HalfStepChunk`), which the kernels are held to.
 */
async function multislerpHalfSteps(source: TensorSource, sink: TensorSink, ctx: TensorMergeContext, base: number | undefined, models: number[], step: HalfStep): Promise<void> {
  const r = stepRounding(step);
  let weights = models.map((m) => r(ctx.perModel[m]!['weight'] as number));
  if (ctx.global['normalize_weights'] !== false) {
    const total = r(torchSum(weights));
    weights = weights.map((w) => r(w / total));
  }
  const eps = ctx.global['eps'] as number;
  if (!ctx.backend || models.length > MAX_TASK_MODELS) {
    await multislerpHalfStepPasses(source, sink, new HalfStepChunk(step, models, base, weights, ctx.numel, ctx.torchThreads ?? 1), weights, eps);
    return;
  }
  const scratch = new HostScratch(ctx.backend);
  try {
    await multislerpHalfStepPasses(source, sink, new HalfStepsOnBackend(step, ctx.backend, scratch, models, base, weights, ctx.numel, ctx.torchThreads ?? 1), weights, eps);
  } finally {
    scratch.release();
  }
}

/** What a slerp of the unit mean by its tangent needs: the 16-bit scalars of multislerp's last pass. */
interface HalfStepFinish {
  degenerate: boolean;
  cos: number;
  sinc: number;
  averageNorm: number;
}

/** What computes multislerp's arrays in 16-bit steps, chunk by chunk: on the host (`HalfStepChunk`) or a backend (`HalfStepsOnBackend`). */
interface HalfStepWork {
  readonly step: HalfStep;
  denominators: number[];
  meanNorm: number;
  dots: number[];
  /** One pass: the norms of the task vectors, of the mean, or of the tangent (each in torch's order for a 16-bit tensor). */
  norms(source: TensorSource, of: 'values' | 'mean' | 'tangent'): Promise<number[]>;
  /** One pass: per model, torch's sum of r(u_j·direction). */
  dotProducts(source: TensorSource): Promise<number[]>;
  /** The last pass, written to `sink`. */
  write(source: TensorSource, sink: TensorSink, finish: HalfStepFinish): Promise<void>;
}

/**
 * multislerp's passes in 16-bit steps: the norms, the mean's norm, the dots, the tangent's norm, then
 * the output, every scalar rounded as torch rounds its 16-bit tensor ops.
 */
async function multislerpHalfStepPasses(source: TensorSource, sink: TensorSink, work: HalfStepWork, weights: number[], eps: number): Promise<void> {
  const r = stepRounding(work.step);
  // torch adds a Python scalar to a 16-bit tensor in f32 (the scalar as f32), then rounds the sum.
  const plusEps = (x: number) => r(x + f(eps));
  const norms = (await work.norms(source, 'values')).map(r);
  work.denominators = norms.map(plusEps);
  const [meanNorm] = (await work.norms(source, 'mean')).map(r);
  const degenerate = meanNorm! < r(eps);
  if (degenerate && weights.length !== 2) throw new Error('the weighted sum of the models on the unit sphere is zero (antipodal models with balancing weights); try other weights');
  work.meanNorm = meanNorm!;
  if (!degenerate) work.dots = (await work.dotProducts(source)).map(r);
  const [tangentNorm] = degenerate ? [0] : (await work.norms(source, 'tangent')).map((x) => plusEps(r(x)));
  await work.write(source, sink, {
    degenerate,
    cos: r(Math.cos(tangentNorm!)),
    sinc: r(r(Math.sin(tangentNorm!)) / tangentNorm!),
    averageNorm: r(torchSum(norms.map((x, j) => r(x * weights[j]!)))),
  });
}

/** A chunk's 16-bit arrays on a backend: the task vectors, their units, the mean, its direction, the tangent. */
interface HalfStepArrays {
  values: HostArray[];
  units: HostArray[];
  mean: HostArray;
  direction: HostArray;
  tangent: HostArray;
}

/**
 * multislerp's arrays in 16-bit steps computed by a backend's kernels, each step as `HalfStepChunk` takes
 * it: r(x − base) and r(u − r(dot·dir)) by `blend2` (r(1·u) is u), the units r(v / d), the weighted
 * sums Σ r(u·w) and the direction r(mean / |mean|) by `unitSum` in 16-bit steps (a lone quotient from
 * −0, so it keeps its sign), the norms' lanes by `normLanes`, the dots' rows by `dotRows`. A tensor
 * read in one chunk keeps its arrays from pass to pass.
 */
class HalfStepsOnBackend implements HalfStepWork {
  denominators: number[] = [];
  meanNorm = 1;
  dots: number[] = [];
  private kept = -1;

  constructor(
    readonly step: HalfStep,
    private readonly backend: ComputeBackend,
    private readonly scratch: HostScratch,
    private readonly models: number[],
    private readonly base: number | undefined,
    private readonly weights: number[],
    private readonly numel: number,
    private readonly threads: number,
  ) {}

  async norms(source: TensorSource, of: 'values' | 'mean' | 'tangent'): Promise<number[]> {
    let runs: NormRun[] | undefined;
    for await (const chunk of source.chunks()) {
      const a = await this.load(chunk, of);
      const feeds = of === 'values' ? a.values : [a[of]];
      runs ??= feeds.map(() => halfStepNorm(this.numel, this.step, of, this.threads));
      await addNorms(this.backend, runs, feeds, chunk.length);
    }
    return runs!.map((run) => run.result());
  }

  async dotProducts(source: TensorSource): Promise<number[]> {
    const sums = this.models.map(() => new TorchSum(this.numel));
    for await (const chunk of source.chunks()) {
      const { units, direction } = await this.load(chunk, 'direction');
      const length = chunk.length;
      for (let i = 0; i < length; ) {
        let count = Math.min(sums[0]!.bulkRows(), Math.floor((length - i) / CASCADE_ROW)) * CASCADE_ROW;
        if (count >= MIN_BULK) {
          for (let j = 0; j < sums.length; j++) {
            const state = sums[j]!.cascade();
            await this.backend.dotRows(sliceHost(units[j]!, i, count), sliceHost(direction, i, count), 1, 1, state, this.step);
            sums[j]!.rowsAdded(state);
          }
        } else {
          count = 1;
          for (let j = 0; j < sums.length; j++) sums[j]!.add(stepRounding(this.step)(f(hostValue(units[j]!, i) * hostValue(direction, i))));
        }
        i += count;
      }
    }
    return sums.map((sum) => sum.result());
  }

  /** r(r(r(dir·cos) + r(tangent·sinc))·averageNorm) (+ base), or the weighted pair where the units cancel. */
  async write(source: TensorSource, sink: TensorSink, { degenerate, cos, sinc, averageNorm }: HalfStepFinish): Promise<void> {
    const step = { step: this.step, signedZeros: true };
    const output = new OutputBuffer(sink);
    for await (const chunk of source.chunks()) {
      const a = await this.load(chunk, degenerate ? 'values' : 'tangent');
      const out = output.take(chunk.length);
      const slerped = this.base === undefined ? out : this.array('slerped', chunk.length);
      if (degenerate) await this.backend.blend2(this.weights[0]!, a.values[0]!, this.weights[1]!, a.values[1]!, slerped, this.step);
      else {
        const blended = this.array('blended', chunk.length);
        await this.backend.blend2(cos, a.direction, sinc, a.tangent, blended, this.step);
        await this.backend.unitSum([blended], [1], [averageNorm], slerped, step);
      }
      if (this.base !== undefined) await this.backend.blend2(1, slerped, 1, (chunk.raw ?? chunk.inputs.map(f32Host))[this.base]!, out, this.step);
      await output.write(chunk.start, out);
    }
  }

  private array(name: string, length: number): HostArray {
    return this.scratch.stepArray(name, this.step, length);
  }

  private async load(chunk: Chunk, stage: Stage): Promise<HalfStepArrays> {
    const { length } = chunk;
    const n = this.models.length;
    const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
    const a: HalfStepArrays = {
      values: this.base === undefined ? this.models.map((m) => inputs[m]!) : this.models.map((_, j) => this.array(`value ${j}`, length)),
      units: this.models.map((_, j) => this.array(`unit ${j}`, length)),
      mean: this.array('mean', length),
      direction: this.array('direction', length),
      tangent: this.array('tangent', length),
    };
    const wholeTensor = chunk.start === 0 && length === this.numel;
    const to = STAGES.indexOf(stage);
    const step = { step: this.step };
    const lone = { step: this.step, signedZeros: true };
    for (let s = wholeTensor ? this.kept + 1 : 0; s <= to; s++) {
      const stageName = STAGES[s]!;
      if (stageName === 'values') {
        if (this.base !== undefined) for (let j = 0; j < n; j++) await this.backend.blend2(1, inputs[this.models[j]!]!, -1, inputs[this.base]!, a.values[j]!, this.step);
      } else if (stageName === 'mean') {
        for (let j = 0; j < n; j++) await this.backend.unitSum([a.values[j]!], [this.denominators[j]!], [1], a.units[j]!, lone);
        await this.backend.unitSum(a.units, a.units.map(() => 1), this.weights, a.mean, step);
      } else if (stageName === 'direction') {
        await this.backend.unitSum([a.mean], [this.meanNorm], [1], a.direction, lone);
      } else {
        const offsets = this.models.map((_, j) => this.array(`offset ${j}`, length));
        for (let j = 0; j < n; j++) await this.backend.blend2(1, a.units[j]!, -this.dots[j]!, a.direction, offsets[j]!, this.step);
        await this.backend.unitSum(offsets, offsets.map(() => 1), this.weights, a.tangent, step);
      }
    }
    this.kept = wholeTensor ? Math.max(this.kept, to) : -1;
    return a;
  }
}

/**
 * torch's norm of a 16-bit array: the task vectors' norms are rows of one [models, numel] tensor
 * (torch reduces each on one thread), the mean's and the tangent's whole tensors (split across
 * `threads` in f16).
 */
function halfStepNorm(numel: number, step: HalfStep, of: 'values' | 'mean' | 'tangent', threads: number): NormRun {
  return torchNormOf(numel, step, of === 'values' ? 1 : threads);
}

const STAGES = ['values', 'mean', 'direction', 'tangent'] as const;
type Stage = (typeof STAGES)[number];

/**
 * A chunk's arrays for multislerp in 16-bit steps, each step an f32 array operation (a Float32Array
 * store rounds to f32 as the f32 op does) followed by `roundStepArray`. A tensor read in one chunk
 * keeps what it computed from pass to pass: each stage's inputs (denominators, mean norm, dots) are
 * known before it is first computed.
 */
class HalfStepChunk implements HalfStepWork {
  values: Float32Array[] = [];
  units: Float32Array[] = [];
  mean = new Float32Array(0);
  direction = new Float32Array(0);
  tangent = new Float32Array(0);
  private term = new Float32Array(0);
  denominators: number[] = [];
  meanNorm = 1;
  dots: number[] = [];
  /** How far the whole tensor, read as one chunk, has been computed (-1: nothing kept). */
  private kept = -1;

  constructor(
    readonly step: HalfStep,
    private readonly models: number[],
    private readonly base: number | undefined,
    private readonly weights: number[],
    private readonly numel: number,
    private readonly threads: number,
  ) {}

  /** Fills the arrays of the chunk's `length` elements, up to `stage`. */
  load(inputs: Float32Array[], start: number, length: number, stage: Stage): void {
    const wholeTensor = start === 0 && length === this.numel;
    const from = wholeTensor ? this.kept + 1 : 0;
    const to = STAGES.indexOf(stage);
    if (this.mean.length < length) this.allocate(length);
    for (let s = from; s <= to; s++) this.compute(STAGES[s]!, inputs, length);
    this.kept = wholeTensor ? Math.max(this.kept, to) : -1;
  }

  /** `out` = r(r(v_0·w_0) + r(v_1·w_1)): two models whose units cancel. */
  weightedPair(out: Float32Array, length: number): void {
    this.scaled(this.values[0]!, this.weights[0]!, out, length);
    this.scaled(this.values[1]!, this.weights[1]!, this.term, length);
    this.sumInto(out, this.term, length);
  }

  /** `out` = r(r(r(direction·cos) + r(tangent·sinc))·averageNorm). */
  slerped(out: Float32Array, length: number, cos: number, sinc: number, averageNorm: number): void {
    this.scaled(this.direction, cos, out, length);
    this.scaled(this.tangent, sinc, this.term, length);
    this.sumInto(out, this.term, length);
    this.scaled(out, averageNorm, out, length);
  }

  /** Per model, r(u_j·direction): the terms of the dots. */
  unitsTimesDirection(length: number): Float32Array[] {
    return this.units.map((u) => {
      const product = new Float32Array(length);
      for (let i = 0; i < length; i++) product[i] = u[i]! * this.direction[i]!;
      roundStepArray(this.step, product, length);
      return product;
    });
  }

  norms(source: TensorSource, of: 'values' | 'mean' | 'tangent'): Promise<number[]> {
    return this.reduce(source, of, () => halfStepNorm(this.numel, this.step, of, this.threads), (c) => (of === 'values' ? c.values : [c[of]]));
  }

  dotProducts(source: TensorSource): Promise<number[]> {
    return this.reduce(source, 'direction', () => new TorchSum(this.numel), (c, length) => c.unitsTimesDirection(length));
  }

  /** r(r(r(dir·cos) + r(tangent·sinc))·averageNorm) (+ base, then r), or the weighted pair where the units cancel. */
  async write(source: TensorSource, sink: TensorSink, { degenerate, cos, sinc, averageNorm }: HalfStepFinish): Promise<void> {
    let buffer = new Float32Array(0);
    for await (const { start, length, inputs } of source.chunks()) {
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      this.load(inputs, start, length, degenerate ? 'values' : 'tangent');
      if (degenerate) this.weightedPair(out, length);
      else this.slerped(out, length, cos, sinc, averageNorm);
      if (this.base !== undefined) {
        const b = inputs[this.base]!;
        for (let i = 0; i < length; i++) out[i] = out[i]! + b[i]!;
        roundStepArray(this.step, out, length);
      }
      await sink.write(start, out);
    }
  }

  /** One pass: a reduction per array `arrays` gives for each chunk (loaded up to `stage`), fed in order. */
  private async reduce(
    source: TensorSource,
    stage: Stage,
    make: () => { add(x: number): void; result(): number },
    arrays: (c: HalfStepChunk, length: number) => Float32Array[],
  ): Promise<number[]> {
    let runs: { add(x: number): void; result(): number }[] | undefined;
    for await (const { start, length, inputs } of source.chunks()) {
      this.load(inputs, start, length, stage);
      const feeds = arrays(this, length);
      runs ??= feeds.map(make);
      feeds.forEach((values, j) => {
        const run = runs![j]!;
        for (let i = 0; i < length; i++) run.add(values[i]!);
      });
    }
    return runs!.map((run) => run.result());
  }

  private allocate(length: number): void {
    this.values = this.models.map(() => new Float32Array(length));
    this.units = this.models.map(() => new Float32Array(length));
    this.mean = new Float32Array(length);
    this.direction = new Float32Array(length);
    this.tangent = new Float32Array(length);
    this.term = new Float32Array(length);
  }

  private compute(stage: Stage, inputs: Float32Array[], length: number): void {
    const n = this.models.length;
    if (stage === 'values') {
      for (let j = 0; j < n; j++) {
        const x = inputs[this.models[j]!]!;
        const v = this.values[j]!;
        if (this.base === undefined) v.set(x.subarray(0, length));
        else {
          const b = inputs[this.base]!;
          for (let i = 0; i < length; i++) v[i] = x[i]! - b[i]!;
          roundStepArray(this.step, v, length);
        }
      }
    } else if (stage === 'mean') {
      // Σ_j r(u_j·w_j) over the models, accumulated in f32 from 0, rounded once (a 16-bit sum over dim 0).
      this.mean.fill(0, 0, length);
      for (let j = 0; j < n; j++) {
        const v = this.values[j]!;
        const u = this.units[j]!;
        const d = this.denominators[j]!;
        for (let i = 0; i < length; i++) u[i] = v[i]! / d;
        roundStepArray(this.step, u, length);
        this.scaled(u, this.weights[j]!, this.term, length);
        for (let i = 0; i < length; i++) this.mean[i] = this.mean[i]! + this.term[i]!;
      }
      roundStepArray(this.step, this.mean, length);
    } else if (stage === 'direction') {
      for (let i = 0; i < length; i++) this.direction[i] = this.mean[i]! / this.meanNorm;
      roundStepArray(this.step, this.direction, length);
    } else {
      // Σ_j r(r(u_j − r(dot_j·direction))·w_j), accumulated as the mean is.
      this.tangent.fill(0, 0, length);
      for (let j = 0; j < n; j++) {
        const u = this.units[j]!;
        this.scaled(this.direction, this.dots[j]!, this.term, length);
        for (let i = 0; i < length; i++) this.term[i] = u[i]! - this.term[i]!;
        roundStepArray(this.step, this.term, length);
        this.scaled(this.term, this.weights[j]!, this.term, length);
        for (let i = 0; i < length; i++) this.tangent[i] = this.tangent[i]! + this.term[i]!;
      }
      roundStepArray(this.step, this.tangent, length);
    }
  }

  /** `out` = r(a·c). */
  private scaled(a: Float32Array, c: number, out: Float32Array, length: number): void {
    for (let i = 0; i < length; i++) out[i] = a[i]! * c;
    roundStepArray(this.step, out, length);
  }

  /** `out` = r(out + b). */
  private sumInto(out: Float32Array, b: Float32Array, length: number): void {
    for (let i = 0; i < length; i++) out[i] = out[i]! + b[i]!;
    roundStepArray(this.step, out, length);
  }
}

/** Bulk calls shorter than this go through the reductions' own `add`. */
const MIN_BULK = 64;

/**
 * multislerp with its reductions and its mean on a backend, the same values in the same order as the
 * TypeScript above: the task vectors v_j = f(x_j − base) by `blend2` (f(f(1·x) + f(−1·base))), their
 * norms' lanes by `normLanes`, the weighted mean of the units Σ f(f(v_j / d_j)·w_j) by `unitSum`, its
 * norm by `normLanes`, the dots f(f(v_j / d_j)·f(mean / |mean|)) by `dotRows`; only the runs' tails go
 * through `add`. The last pass (the tangent residue, a few f32 steps per model) is `unitTangent` over
 * the mean and task vectors the backend computed.
 */
async function multislerpOnBackend(
  source: TensorSource,
  sink: TensorSink,
  backend: ComputeBackend,
  base: number | undefined,
  models: number[],
  weights: number[],
  eps: number,
  numel: number,
): Promise<void> {
  // In the backend's own memory, so its kernels read and write them where they are.
  const scratch = new HostScratch(backend);
  try {
    const n = models.length;
    // A tensor read in one chunk has its task vectors and its mean computed once for all the passes
    // (the denominators, and so the mean, are the same in every pass that asks for them).
    let valuesDone = false;
    let meanDone = false;
    /** The chunk's task vectors (or models) and, once the denominators are known, their weighted mean of units. */
    const prepare = async (chunk: Chunk, denominators?: number[]): Promise<{ values: HostArray[]; mean?: { dtype: 'F32'; data: Float32Array } }> => {
      const length = chunk.length;
      const wholeTensor = chunk.start === 0 && length === numel;
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      let values: HostArray[];
      if (base === undefined) {
        values = models.map((m) => inputs[m]!);
      } else {
        values = models.map((_, j) => scratch.host(`offset ${j}`, 'F32', length));
        if (!(wholeTensor && valuesDone)) {
          for (let j = 0; j < n; j++) await backend.blend2(1, inputs[models[j]!]!, -1, inputs[base]!, values[j]!);
          valuesDone = wholeTensor;
        }
      }
      if (!denominators) return { values };
      const mean = { dtype: 'F32' as const, data: scratch.f32('mean', length) };
      if (!(wholeTensor && meanDone)) {
        await backend.unitSum(values, denominators, weights, mean);
        meanDone = wholeTensor;
      }
      return { values, mean };
    };
    const norms = models.map(() => new TorchNorm(numel));
    for await (const chunk of source.chunks()) await addNorms(backend, norms, (await prepare(chunk)).values, chunk.length);
    const normValues = norms.map((r) => r.result());
    const denominators = normValues.map((x) => f(x + eps));
    const meanRun = new TorchNorm(numel);
    for await (const chunk of source.chunks()) await addNorms(backend, [meanRun], [(await prepare(chunk, denominators)).mean!], chunk.length);
    const meanNorm = meanRun.result();
    if (meanNorm < eps && n !== 2) {
      throw new Error('the weighted sum of the models on the unit sphere is zero (antipodal models with balancing weights); try other weights');
    }
    const dots: number[] = [];
    if (meanNorm >= eps) {
      const sums = models.map(() => new TorchSum(numel));
      for await (const chunk of source.chunks()) {
        const { values, mean } = await prepare(chunk, denominators);
        const length = chunk.length;
        for (let i = 0; i < length; ) {
          let count = Math.min(sums[0]!.bulkRows(), Math.floor((length - i) / CASCADE_ROW)) * CASCADE_ROW;
          if (count >= MIN_BULK) {
            for (let j = 0; j < n; j++) {
              const state = sums[j]!.cascade();
              await backend.dotRows(sliceHost(values[j]!, i, count), sliceHost(mean!, i, count), denominators[j]!, meanNorm, state);
              sums[j]!.rowsAdded(state);
            }
          } else {
            count = 1;
            const direction = f(mean!.data[i]! / meanNorm);
            for (let j = 0; j < n; j++) sums[j]!.add(f(f(hostValue(values[j]!, i) / denominators[j]!) * direction));
          }
          i += count;
        }
      }
      for (const sum of sums) dots.push(sum.result());
    }
    const averageNorm = torchSum(normValues.map((x, j) => f(x * weights[j]!)));
    if (meanNorm >= eps) {
      // The tangent's norm: unitTangent's residue alone (f(f(dir · 0) + f(t · 1)) · 1 is t, up to a zero's sign).
      const tangentRun = new TorchNorm(numel);
      for await (const chunk of source.chunks()) {
        const { values, mean } = await prepare(chunk, denominators);
        const t = { dtype: 'F32' as const, data: scratch.f32('tangent', chunk.length) };
        await backend.unitTangent(values, mean!, undefined, { divisors: denominators, weights, dots, meanNorm, averageNorm: 1, cos: 0, sinc: 1 }, t);
        await addNorms(backend, [tangentRun], [t], chunk.length);
      }
      const step = exponentialMap(tangentRun.result(), eps);
      const output = new OutputBuffer(sink);
      for await (const chunk of source.chunks()) {
        const { values, mean } = await prepare(chunk, denominators);
        const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
        const out = output.take(chunk.length);
        await backend.unitTangent(values, mean!, base === undefined ? undefined : inputs[base], { divisors: denominators, weights, dots, meanNorm, averageNorm, ...step }, out);
        await output.write(chunk.start, out);
      }
      return;
    }
    // Two models whose weighted units cancel: mergekit's linear fallback.
    let buffer = new Float32Array(0);
    for await (const chunk of source.chunks()) {
      const { start, length } = chunk;
      const { values } = await prepare(chunk);
      const vs = values.map((v) => (v.dtype === 'F32' ? v.data : undefined));
      const at = (j: number, i: number) => vs[j]?.[i] ?? hostValue(values[j]!, i);
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      const b = base === undefined ? undefined : chunk.inputs[base]!;
      for (let i = 0; i < length; i++) {
        const r = f(f(at(0, i) * weights[0]!) + f(at(1, i) * weights[1]!));
        out[i] = b === undefined ? r : f(r + b[i]!);
      }
      await sink.write(start, out);
    }
  } finally {
    scratch.release();
  }
}

/**
 * mergekit's step back onto the sphere: with |t| = f(‖tangent‖ + eps), the direction is scaled by
 * f(cos |t|) and the tangent by f(f(sin |t|) / |t|) (torch's f32 0-d cos and sin).
 */
function exponentialMap(tangentNorm: number, eps: number): { cos: number; sinc: number } {
  const t = f(tangentNorm + eps);
  return { cos: f(Math.cos(t)), sinc: f(f(Math.sin(t)) / t) };
}

/** One pass: `count` reductions, the j-th fed value(inputs, j, i) for every element in order. */
async function reducePerModel(
  source: TensorSource,
  count: number,
  make: () => { add(x: number): void; result(): number },
  value: (inputs: Float32Array[], j: number, i: number) => number,
): Promise<number[]> {
  const runs = Array.from({ length: count }, make);
  for await (const { length, inputs } of source.chunks()) {
    for (let i = 0; i < length; i++) for (let j = 0; j < count; j++) runs[j]!.add(value(inputs, j, i));
  }
  return runs.map((r) => r.result());
}
