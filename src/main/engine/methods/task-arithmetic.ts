import { indexOrderCuts, MagnitudeMask, magnitudeThresholds, magnitudeThresholdsOnBackend, torchTiesWithin, type MagnitudeThreshold, type TieRequest } from './magnitude-select';
import { stepOf, stepRounding } from './numerics';
import { ParallelTorchSum } from './torch-reductions';
import { maskKey } from './random-mask';
import { CutSparsifier, DellaSparsifier, MagnitudeSparsifier, RandomSparsifier, TieBytes, keepEverything, type Sparsifier } from './sparsify';
import { SORT_TIES_MAX_ELEMENTS } from './torch-sort-ties';
import { f32Host, OutputBuffer, type Chunk, type MergeMethod, type ParameterDecl, type TensorMergeContext, type TensorSink, type TensorSource } from './types';
import { MAX_TASK_MODELS, type ComputeBackend, type HostArray, type MagnitudeCut, type StepDtype, type TaskArithmeticParams, type TaskVectorMask } from '../compute/types';

export type SparsificationMethod = 'magnitude' | 'magnitude_outliers' | 'random' | 'della_magprune';

export interface TaskArithmeticConfig {
  name: string;
  prettyName: string;
  paper: string;
  description: string;
  /** TIES sign election over the weighted deltas. */
  consensus: 'sum' | undefined;
  sparsification: SparsificationMethod | undefined;
  defaultNormalize: boolean;
  defaultRescale: boolean;
}

/**
 * mergekit's GeneralizedTaskArithmeticMerge: deltas from the base, each optionally sparsified
 * (density), weighted, optionally sign-elected (TIES), summed, divided by the summed weights
 * (normalize), times lambda, added back to the base. Each step is rounded to the compute dtype, as
 * torch rounds each op when mergekit computes in bf16.
 */
export function taskArithmeticMethod(config: TaskArithmeticConfig): MergeMethod {
  return {
    name: config.name,
    prettyName: config.prettyName,
    description: config.description,
    paper: config.paper,
    base: 'required',
    parameters: taskArithmeticParameters(config),
    ...(config.sparsification === 'della_magprune' ? { chunking: 'rows' as const } : {}),
    ...(config.sparsification === 'magnitude' || config.sparsification === 'magnitude_outliers' ? { divergence: tieOrderDivergence(config.name) } : {}),
    kernel: (source, sink, ctx) => mergeTaskVectors(config, source, sink, ctx),
  };
}

/** A trimmed tensor past SORT_TIES_MAX_ELEMENTS keeps its ties at the threshold in index order. */
function tieOrderDivergence(method: string): NonNullable<MergeMethod['divergence']> {
  return ({ numel, perModel, baseIndex }) => {
    const trimmed = perModel.some((p, m) => m !== baseIndex && ((p['density'] as number | undefined) ?? 1) < 1);
    if (!trimmed || numel <= SORT_TIES_MAX_ELEMENTS) return undefined;
    return `${method}: tensors of more than ${SORT_TIES_MAX_ELEMENTS} elements keep the |delta| tied at a trim threshold in index order, not in torch's sort order as mergekit does, so a few of their elements may differ from mergekit's`;
  };
}

function taskArithmeticParameters(config: TaskArithmeticConfig): ParameterDecl[] {
  const parameters: ParameterDecl[] = [
    { name: 'weight', scope: 'model', type: 'number', required: true, description: 'How much of this model\'s task vector (its difference from the base) is added.' },
    {
      name: 'density',
      scope: 'model',
      type: 'number',
      required: false,
      default: 1,
      min: 0,
      max: 1,
      // DARE's keep probability: torch.bernoulli refuses one below 0 (other methods keep nothing there).
      ...(config.sparsification === 'random' ? { refusedBelow: 0 } : {}),
      description: 'Fraction of the task vector kept.',
    },
    { name: 'normalize', scope: 'global', type: 'boolean', required: false, default: config.defaultNormalize, description: 'Divide by the sum of the weights that take part.' },
    { name: 'rescale', scope: 'global', type: 'boolean', required: false, default: config.defaultRescale, description: 'Rescale what is kept to the task vector\'s original L1 norm.' },
    { name: 'lambda', scope: 'global', type: 'number', required: false, default: 1, description: 'Scale of the merged task vector.' },
    { name: 'int8_mask', scope: 'global', type: 'boolean', required: false, default: false, description: 'Store masks as int8 (memory only; results are the same).' },
  ];
  if (config.sparsification === 'magnitude_outliers') {
    parameters.push({ name: 'gamma', scope: 'model', type: 'number', required: false, default: 0.01, min: 0, max: 1, description: 'Fraction of the largest task-vector entries dropped as outliers.' });
  }
  if (config.sparsification === 'della_magprune') {
    parameters.push({ name: 'epsilon', scope: 'model', type: 'number', required: false, default: 0.15, min: 0, max: 1, description: 'Spread of the keep probability by magnitude rank: density ± epsilon.' });
  }
  return parameters;
}

interface TaskVectors {
  base: number;
  others: number[];
  weights: number[];
  densities: number[];
  sparsifiers: Sparsifier[];
  round: (x: number) => number;
}

async function mergeTaskVectors(config: TaskArithmeticConfig, source: TensorSource, sink: TensorSink, ctx: TensorMergeContext): Promise<void> {
  const base = ctx.baseIndex!;
  const others = ctx.perModel.map((_, i) => i).filter((i) => i !== base);
  const round = stepRounding(ctx.computeDtype);
  const densities = others.map((m) => (ctx.perModel[m]!['density'] as number | undefined) ?? 1);
  // Where the backend takes the whole pass (up to MAX_TASK_MODELS models), it also ranks and sums.
  const backend = ctx.backend && others.length <= MAX_TASK_MODELS ? ctx.backend : undefined;
  const step: StepDtype = stepOf(ctx.computeDtype);
  const tv: TaskVectors = {
    base,
    others,
    weights: others.map((m) => round(ctx.perModel[m]!['weight'] as number)),
    densities,
    sparsifiers: await makeSparsifiers(config, source, ctx, others, densities, round, backend && { backend, step }),
    round,
  };
  // DELLA's masks, on a backend, come from its per-row ranks into buffers of its own memory.
  const ranked = backend ? new RowRankKeeps(backend, tv, step) : undefined;
  try {
    await mergeWith(config, source, sink, ctx, tv, backend, step, ranked);
  } finally {
    ranked?.release();
  }
}

async function mergeWith(
  config: TaskArithmeticConfig,
  source: TensorSource,
  sink: TensorSink,
  ctx: TensorMergeContext,
  tv: TaskVectors,
  backend: ComputeBackend | undefined,
  step: StepDtype,
  ranked: RowRankKeeps | undefined,
): Promise<void> {
  const { base, others, round } = tv;
  const rescale = (ctx.global['rescale'] as boolean) && config.sparsification !== undefined;
  // Magnitude masks are mergekit's own, so its f32 sums are matched bit for bit; random masks are Alloy's.
  const torchSums = (ctx.computeDtype === undefined || ctx.computeDtype === 'F32') && (config.sparsification === 'magnitude' || config.sparsification === 'magnitude_outliers');
  const scales = !rescale
    ? others.map(() => 1)
    : torchSums
      ? await torchRescaleFactors(source, tv, ctx.numel, ctx.torchThreads ?? 1)
      : await (backend ? rescaleFactorsOnBackend(source, tv, backend, step, ranked) : rescaleFactors(source, tv));
  const normalize = ctx.global['normalize'] as boolean;
  const lambda = Math.fround((ctx.global['lambda'] as number | undefined) ?? 1);
  let plainDivisor = 0;
  for (const w of tv.weights) plainDivisor = Math.fround(plainDivisor + w);
  plainDivisor = round(plainDivisor);
  // torch compares in the tensor's dtype: the 1e-8 is rounded to it (f32(1e-8) is just below 1e-8).
  if (Math.abs(plainDivisor) < round(1e-8)) plainDivisor = 1;
  const d = new Float64Array(others.length);
  const deltas = new ChunkDeltas(tv);
  if (backend) {
    const params = { weights: tv.weights, scales, consensus: config.consensus !== undefined, normalize, divisor: plainDivisor, lambda, step };
    const output = new OutputBuffer(sink);
    for await (const chunk of source.chunks()) await taskPassOnBackend(backend, chunk, sink, tv, deltas, params, output, ranked);
    return;
  }
  let buffer = new Float32Array(0);
  for await (const { start, length, inputs } of source.chunks()) {
    if (buffer.length < length) buffer = new Float32Array(length);
    const out = buffer.subarray(0, length);
    const b = inputs[base]!;
    deltas.load(start, inputs);
    for (let i = 0; i < length; i++) {
      for (let j = 0; j < others.length; j++) {
        let delta = deltas.kept(j, i);
        if (scales[j] !== 1) delta = round(delta * scales[j]!);
        d[j] = round(delta * tv.weights[j]!);
      }
      let mixed = 0;
      let divisor = plainDivisor;
      if (config.consensus) {
        let vote = 0;
        for (let j = 0; j < others.length; j++) vote = Math.fround(vote + d[j]!);
        const majority = vote >= 0 ? 1 : -1;
        divisor = 0;
        for (let j = 0; j < others.length; j++) {
          const agrees = Math.sign(d[j]!) === majority;
          mixed = Math.fround(mixed + (agrees ? d[j]! : 0));
          divisor = Math.fround(divisor + (agrees ? tv.weights[j]! : 0));
        }
        divisor = round(divisor);
        if (divisor === 0) divisor = 1;
      } else {
        for (let j = 0; j < others.length; j++) mixed = Math.fround(mixed + d[j]!);
      }
      mixed = round(mixed);
      if (normalize) mixed = round(mixed / divisor);
      if (lambda !== 1) mixed = round(mixed * lambda);
      out[i] = round(b[i]! + mixed);
    }
    await sink.write(start, out);
  }
}

/**
 * One chunk of the loop above on the run's backend (`ComputeBackend.taskArithmetic`, the same bits):
 * DARE masks are drawn there from the same hash and magnitude masks are tests against thresholds;
 * DELLA's come first from the backend's per-row ranks (`rowRankMasks`), as byte masks.
 */
async function taskPassOnBackend(
  backend: ComputeBackend,
  chunk: Chunk,
  sink: TensorSink,
  tv: TaskVectors,
  deltas: ChunkDeltas,
  params: Omit<TaskArithmeticParams, 'start' | 'masks'>,
  output: OutputBuffer,
  ranked: RowRankKeeps | undefined,
): Promise<void> {
  const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
  const masks = await chunkMasks(tv, deltas, chunk, inputs, ranked);
  const out = output.take(chunk.length);
  await backend.taskArithmetic(inputs[tv.base]!, tv.others.map((m) => inputs[m]!), { ...params, start: chunk.start, masks }, out);
  await output.write(chunk.start, out);
}

/**
 * Each model's mask for a backend call over `chunk` (`inputs`, as the backend takes them): DELLA's
 * from the backend's per-row ranks; any other the backend cannot draw, as bytes computed here.
 */
async function chunkMasks(tv: TaskVectors, deltas: ChunkDeltas, chunk: Chunk, inputs: HostArray[], ranked: RowRankKeeps | undefined): Promise<TaskVectorMask[]> {
  const keeps = ranked ? await ranked.compute(chunk, inputs) : new Map<number, Uint8Array>();
  const masks = tv.sparsifiers.map((s) => backendMask(s, chunk));
  if (masks.some((mask, j) => mask === undefined && !keeps.has(j))) deltas.load(chunk.start, chunk.inputs);
  return masks.map((mask, j) => mask ?? { kind: 'keep', keep: keeps.get(j) ?? deltas.keepMask(j, chunk.length) });
}

/**
 * DELLA's keep masks of a chunk from the backend (`ComputeBackend.rowRankMasks`: the same ranks,
 * probabilities and hash as DellaSparsifier), one byte per element and model, in a buffer of the
 * backend's own memory when it has some (`allocateHost`), so its kernels write and read them in
 * place. Grown to the largest chunk; `release` gives it back. The masks of the chunk last ranked
 * are kept: a tensor read in one chunk is ranked once for both passes (rescale sums and merge).
 */
class RowRankKeeps {
  private readonly models: number[];
  private buffer: Uint8Array | undefined;
  /** The chunk whose masks the buffer holds. */
  private held: { start: number; length: number } | undefined;

  constructor(
    private readonly backend: ComputeBackend,
    private readonly tv: TaskVectors,
    private readonly step: StepDtype,
  ) {
    this.models = tv.sparsifiers.flatMap((s, j) => (s instanceof DellaSparsifier ? [j] : []));
  }

  /** Model j's mask over `chunk`, for each DELLA model j. */
  async compute(chunk: Chunk, inputs: HostArray[]): Promise<Map<number, Uint8Array>> {
    const keeps = new Map<number, Uint8Array>();
    if (this.models.length === 0) return keeps;
    const length = chunk.length;
    const bytes = length * this.models.length;
    const masks = () => this.models.map((_, k) => this.buffer!.subarray(k * length, (k + 1) * length));
    if (this.held && this.held.start === chunk.start && this.held.length === length) {
      this.models.forEach((j, k) => keeps.set(j, masks()[k]!));
      return keeps;
    }
    if (!this.buffer || this.buffer.length < bytes) {
      this.release();
      this.buffer = this.backend.allocateHost?.(bytes) ?? new Uint8Array(bytes);
    }
    this.held = undefined;
    const della = this.models.map((j) => this.tv.sparsifiers[j] as DellaSparsifier);
    const ranked = masks();
    await this.backend.rowRankMasks(
      inputs[this.tv.base]!,
      this.models.map((j) => inputs[this.tv.others[j]!]!),
      {
        step: this.step,
        start: chunk.start,
        rowLength: della[0]!.rowLength,
        keys: della.map((s) => s.key),
        densities: della.map((s) => s.density),
        epsilons: della.map((s) => s.epsilon),
      },
      ranked,
    );
    this.held = { start: chunk.start, length };
    this.models.forEach((j, k) => keeps.set(j, ranked[k]!));
    return keeps;
  }

  release(): void {
    if (this.buffer && this.backend.allocateHost && this.backend.releaseHost) this.backend.releaseHost(this.buffer);
    this.buffer = undefined;
    this.held = undefined;
  }
}

function backendMask(s: Sparsifier, chunk: Chunk): TaskVectorMask | undefined {
  if (s === keepEverything) return { kind: 'all' };
  if (s instanceof RandomSparsifier) return { kind: 'random', key: s.key, density: s.density };
  if (s instanceof CutSparsifier) return s.backendMask(chunk.start, chunk.length);
  return undefined;
}

/** One chunk's task vectors, rounded to the compute dtype, with each model's keep mask. */
class ChunkDeltas {
  private readonly values: Float32Array[];
  private readonly keep: Uint8Array[];

  constructor(private readonly tv: TaskVectors) {
    this.values = tv.others.map(() => new Float32Array(0));
    this.keep = tv.others.map(() => new Uint8Array(0));
    tv.sparsifiers.forEach((s) => s.reset());
  }

  load(start: number, inputs: Float32Array[]): void {
    const b = inputs[this.tv.base]!;
    this.tv.others.forEach((m, j) => {
      const x = inputs[m]!;
      if (this.values[j]!.length < x.length) {
        this.values[j] = new Float32Array(x.length);
        this.keep[j] = new Uint8Array(x.length);
      }
      const delta = this.values[j]!.subarray(0, x.length);
      for (let i = 0; i < x.length; i++) delta[i] = this.tv.round(x[i]! - b[i]!);
      this.tv.sparsifiers[j]!.mask(start, delta, this.keep[j]!);
    });
  }

  delta(j: number, i: number): number {
    return this.values[j]![i]!;
  }

  kept(j: number, i: number): number {
    return this.keep[j]![i] ? this.values[j]![i]! : 0;
  }

  /** Model j's keep mask over the chunk last loaded (1 = kept). */
  keepMask(j: number, length: number): Uint8Array {
    return this.keep[j]!.subarray(0, length);
  }
}

/** rescaleFactors on a backend (`deltaSums`: the same f64 sums in the same order). */
async function rescaleFactorsOnBackend(source: TensorSource, tv: TaskVectors, backend: ComputeBackend, step: StepDtype, ranked: RowRankKeeps | undefined): Promise<number[]> {
  const summed = tv.others.flatMap((_, j) => (tv.densities[j]! < 1 ? [j] : []));
  const sums = new Float64Array(2 * summed.length);
  const deltas = new ChunkDeltas(tv);
  if (summed.length > 0) {
    for await (const chunk of source.chunks()) {
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      const masks = await chunkMasks(tv, deltas, chunk, inputs, ranked);
      await backend.deltaSums(inputs[tv.base]!, summed.map((j) => inputs[tv.others[j]!]!), { step, start: chunk.start, masks: summed.map((j) => masks[j]!) }, sums);
    }
  }
  return rescaleOf(tv, (j) => {
    const at = summed.indexOf(j);
    return [sums[2 * at]!, sums[2 * at + 1]!];
  });
}

/** The rescale factor per model from its sums Σ|delta| and Σ|kept delta| (1 when either is below 1e-7, in their dtype). */
function rescaleOf(tv: TaskVectors, sumsOf: (j: number) => [number, number]): number[] {
  return tv.others.map((_, j) => {
    if (tv.densities[j]! >= 1) return 1;
    const [before, after] = sumsOf(j);
    const a = tv.round(before);
    const k = tv.round(after);
    const eps = tv.round(1e-7);
    return a < eps || k < eps ? 1 : tv.round(a / k);
  });
}

/**
 * mergekit's L1 rescale with its sums as torch computes them in f32, `delta.abs().sum()` and
 * `(delta * mask).abs().sum()` over the whole tensor in torch's order (ParallelTorchSum): an f64 sum
 * rounded once differs from them in the last bit now and then, and the factor with it.
 */
async function torchRescaleFactors(source: TensorSource, tv: TaskVectors, numel: number, threads: number): Promise<number[]> {
  const summed = tv.others.flatMap((_, j) => (tv.densities[j]! < 1 ? [j] : []));
  const before = summed.map(() => new ParallelTorchSum(numel, threads));
  const after = summed.map(() => new ParallelTorchSum(numel, threads));
  const deltas = new ChunkDeltas(tv);
  if (summed.length > 0) {
    for await (const { start, length, inputs } of source.chunks()) {
      deltas.load(start, inputs);
      summed.forEach((j, s) => {
        for (let i = 0; i < length; i++) {
          before[s]!.add(Math.abs(deltas.delta(j, i)));
          after[s]!.add(Math.abs(deltas.kept(j, i)));
        }
      });
    }
  }
  return rescaleOf(tv, (j) => [before[summed.indexOf(j)]!.result(), after[summed.indexOf(j)]!.result()]);
}

/** mergekit's L1 rescale: Σ|delta| / Σ|kept delta| per model (1 when either is below 1e-7). */
async function rescaleFactors(source: TensorSource, tv: TaskVectors): Promise<number[]> {
  const before = tv.others.map(() => 0);
  const after = tv.others.map(() => 0);
  const deltas = new ChunkDeltas(tv);
  for await (const { start, length, inputs } of source.chunks()) {
    deltas.load(start, inputs);
    for (let j = 0; j < tv.others.length; j++) {
      if (tv.densities[j]! >= 1) continue;
      for (let i = 0; i < length; i++) {
        before[j] = before[j]! + Math.abs(deltas.delta(j, i));
        after[j] = after[j]! + Math.abs(deltas.kept(j, i));
      }
    }
  }
  return rescaleOf(tv, (j) => [before[j]!, after[j]!]);
}

async function makeSparsifiers(
  config: TaskArithmeticConfig,
  source: TensorSource,
  ctx: TensorMergeContext,
  others: number[],
  densities: number[],
  round: (x: number) => number,
  onBackend?: { backend: ComputeBackend; step: StepDtype },
): Promise<Sparsifier[]> {
  const method = config.sparsification;
  if (method === 'magnitude' || method === 'magnitude_outliers') return magnitudeSparsifiers(method, source, ctx, others, densities, round, onBackend);
  return others.map((m, j) => {
    const density = densities[j]!;
    if (!method || density >= 1) return keepEverything;
    const key = maskKey(ctx.seed, ctx.tensorName, m);
    if (method === 'random' || density <= 0) return new RandomSparsifier(key, density);
    const epsilon = (ctx.perModel[m]!['epsilon'] as number | undefined) ?? 0.15;
    const rowLength = ctx.shape.length > 1 ? ctx.shape[ctx.shape.length - 1]! : ctx.numel;
    return new DellaSparsifier(key, density, epsilon, rowLength);
  });
}

/**
 * mergekit's magnitude sparsifiers: exact ranks of |delta| over the whole tensor, found by radix
 * select. Where only some of the elements tied at a threshold are kept, the ones torch's sort keeps
 * (`torchTiesWithin`; index order for a tensor too large for its sort keys).
 */
async function magnitudeSparsifiers(
  method: 'magnitude' | 'magnitude_outliers',
  source: TensorSource,
  ctx: TensorMergeContext,
  others: number[],
  densities: number[],
  round: (x: number) => number,
  onBackend?: { backend: ComputeBackend; step: StepDtype },
): Promise<Sparsifier[]> {
  const n = ctx.numel;
  const base = ctx.baseIndex!;
  // Ranks counted from the largest |delta|: [skip, upTo) are kept; 'all' or 'none' needs no ranks.
  const ranks = others.map((m, j): { skip: number; upTo: number } | 'all' | 'none' => {
    const density = densities[j]!;
    if (density >= 1) return 'all';
    if (density <= 0 || n === 0) return 'none';
    if (method === 'magnitude') return { skip: 0, upTo: Math.max(1, Math.trunc(density * n)) };
    const rank = outlierRanks(n, density, (ctx.perModel[m]!['gamma'] as number | undefined) ?? 0.01);
    return rank.upTo > rank.skip ? rank : 'none';
  });
  const wanted = others.flatMap((m, j) => {
    const rank = ranks[j]!;
    return typeof rank === 'string' ? [] : [{ j, m, k: rank.upTo }, ...(rank.skip > 0 ? [{ j, m, k: rank.skip }] : [])];
  });
  const step = onBackend?.step ?? stepOf(ctx.computeDtype);
  const found = onBackend
    ? await magnitudeThresholdsOnBackend(source, onBackend.backend, base, wanted.map((w) => w.m), wanted.map((w) => w.k), step)
    : await magnitudeThresholds(source, base, wanted.map((w) => w.m), wanted.map((w) => w.k), round);
  const at = (j: number, k: number) => wanted.findIndex((w) => w.j === j && w.k === k);
  const sparsifiers: Sparsifier[] = [];
  const inIndexOrder: number[] = [];
  const inTorchOrder: (TieRequest & { j: number; cuts: { keep: MagnitudeCut; skip?: MagnitudeCut } })[] = [];
  for (const [j, rank] of ranks.entries()) {
    if (typeof rank === 'string') {
      sparsifiers.push(rank === 'none' ? new RandomSparsifier(0, 0) : keepEverything);
      continue;
    }
    const upTo = found[at(j, rank.upTo)]!;
    const skipAt = rank.skip > 0 ? found[at(j, rank.skip)] : undefined;
    const thresholds = skipAt ? [upTo, skipAt] : [upTo];
    const cut = (t: MagnitudeThreshold): MagnitudeCut => ({ bits: t.bits, before: t.ties >= t.count ? Infinity : 0 });
    const cuts = { keep: cut(upTo), ...(skipAt ? { skip: cut(skipAt) } : {}) };
    if (thresholds.every((t) => t.ties >= t.count)) {
      sparsifiers.push(new CutSparsifier(cuts));
    } else if (n <= SORT_TIES_MAX_ELEMENTS) {
      // magnitude: argsort(descending)[:k]; magnitude_outliers: sort(ascending)[n_bot : n_bot + target].
      const order = method === 'magnitude' ? { descending: true, from: 0, to: rank.upTo } : { descending: false, from: n - rank.upTo, to: n - rank.skip };
      inTorchOrder.push({ j, model: others[j]!, order, tied: [...new Set(thresholds.map((t) => t.bits))], cuts });
      sparsifiers.push(keepEverything);
    } else {
      sparsifiers.push(keepEverything);
      inIndexOrder.push(j);
    }
  }
  const kept = await torchTiesWithin(source, { base, step, backend: onBackend?.backend }, inTorchOrder, n);
  inTorchOrder.forEach(({ j, cuts }, i) => (sparsifiers[j] = new CutSparsifier(cuts, new TieBytes(kept[i]!))));
  if (inIndexOrder.length > 0) await indexOrderSparsifiers(source, base, others, ranks, wanted, found, inIndexOrder, sparsifiers, onBackend);
  return sparsifiers;
}

/** Models whose ties at a threshold are taken in index order (a tensor past SORT_TIES_MAX_ELEMENTS). */
async function indexOrderSparsifiers(
  source: TensorSource,
  base: number,
  others: number[],
  ranks: ({ skip: number; upTo: number } | 'all' | 'none')[],
  wanted: { j: number; m: number; k: number }[],
  found: MagnitudeThreshold[],
  models: number[],
  sparsifiers: Sparsifier[],
  onBackend?: { backend: ComputeBackend; step: StepDtype },
): Promise<void> {
  const listed = wanted.flatMap((w, at) => (models.includes(w.j) ? [{ ...w, at }] : []));
  const cuts = onBackend ? await indexOrderCuts(source, onBackend.backend, base, listed.map((w) => w.m), listed.map((w) => found[w.at]!), onBackend.step) : undefined;
  for (const j of models) {
    const rank = ranks[j] as { skip: number; upTo: number };
    const upTo = listed.findIndex((w) => w.j === j && w.k === rank.upTo);
    const skip = rank.skip > 0 ? listed.findIndex((w) => w.j === j && w.k === rank.skip) : -1;
    sparsifiers[j] = cuts
      ? new CutSparsifier(skip >= 0 ? { keep: cuts[upTo]!, skip: cuts[skip]! } : { keep: cuts[upTo]! })
      : new MagnitudeSparsifier(new MagnitudeMask(skip >= 0 ? found[listed[skip]!.at] : undefined, found[listed[upTo]!.at]!));
  }
}

/**
 * mergekit's magnitude_outliers keeps `indices[n_bot : n_bot + target]` of the ascending sort of
 * |delta|, with target = int(density·n), n_top = int(gamma·n) and n_bot = max(0, n − target − n_top):
 * a Python slice, so an end past n stops at n and a start at or past n keeps nothing (a negative gamma
 * moves the window up past the largest entries). As ranks from the largest: [n − end, n − start).
 */
export function outlierRanks(n: number, density: number, gamma: number): { skip: number; upTo: number } {
  const target = Math.trunc(density * n);
  const top = Math.trunc(gamma * n);
  const start = Math.min(n, Math.max(0, n - target - top));
  const end = Math.min(n, Math.max(start, start + target));
  return { skip: n - end, upTo: n - start };
}
