import { f32Bits } from '../safetensors/convert';
import { kthLargestBits, lowPick, pick, sortKeysMemory, type MagnitudeThreshold } from './magnitude-select';
import { keptTies, SortKeys, SORT_TIES_MAX_ELEMENTS } from './torch-sort-ties';
import { TorchSum, torchSum } from './torch-reductions';
import { stepRounding } from './numerics';
import { absBits, CASCADE_ROW, HISTOGRAM_BINS, magnitudeKeeps, MAX_TASK_MODELS, type ComputeBackend, type HalfStep, type HostArray, type MagnitudeCut, type SceSelect, type StepDtype } from '../compute/types';
import { f32Host, OutputBuffer, type Chunk, type MergeMethod, type TensorMergeContext, type TensorSink, type TensorSource } from './types';
import { HostScratch } from './host-scratch';
import { deltaVarianceF32, sceMergeF32 } from '../compute/reference';

const f = Math.fround;

/**
 * mergekit's sce: Select the entries whose task vectors vary most across models (top `select_topk` of
 * the variance), Calculate each model's weight as its mean squared task vector, Erase the entries
 * whose sign disagrees with the elected one, and average what remains by those weights. The mean
 * squares are reduced as torch reduces them (`torch-reductions.ts`).
 */
export const sce: MergeMethod = {
  name: 'sce',
  prettyName: 'SCE',
  description: 'Keeps the entries where the models disagree most, weights each model by the size of its change, and averages the sign-agreeing changes.',
  paper: 'https://arxiv.org/abs/2408.07990',
  base: 'required',
  parameters: [
    { name: 'select_topk', scope: 'global', type: 'number', required: false, default: 1, min: 0, max: 1, description: 'Fraction of entries kept, those whose task vectors vary most across the models.' },
    { name: 'int8_mask', scope: 'global', type: 'boolean', required: false, default: false, description: 'Store masks as int8 (memory only; results are the same).' },
  ],
  divergence: ({ numel, global }) => {
    const topk = global['select_topk'] as number;
    if (topk <= 0 || topk >= 1 || numel <= SORT_TIES_MAX_ELEMENTS) return undefined;
    return `sce: tensors of more than ${SORT_TIES_MAX_ELEMENTS} elements keep the variances tied at the select_topk cut in index order, not in torch.topk's order as mergekit does, so a few of their elements may differ from mergekit's`;
  },
  async kernel(source, sink, ctx) {
    const others = ctx.perModel.map((_, i) => i).filter((i) => i !== ctx.baseIndex);
    const base = ctx.baseIndex!;
    // In bf16 or f16: each step rounded to it.
    const step = ctx.computeDtype;
    if (step === 'BF16' || step === 'F16') return sceHalfSteps(source, sink, ctx, base, others, step);
    if (ctx.backend && others.length <= MAX_TASK_MODELS) return kernelOnBackend(source, sink, ctx, ctx.backend, base, others);
    const selection = await varianceSelection(source, ctx, chunkVariances(ctx.backend, base, others, 'F32'));
    const weights = await modelWeights(source, base, others, selection, ctx.numel);
    const tv = new Float64Array(others.length);
    let buffer = new Float32Array(0);
    const select = selection && { cut: selection.cut, variances: selection.variances };
    for await (const chunk of source.chunks()) {
      const { start, length, inputs } = chunk;
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      const b = inputs[base]!;
      const v = select ? await select.variances(chunk) : undefined;
      for (let i = 0; i < length; i++) {
        const keep = !select || selects(select.cut, v![i]!, start + i);
        let vote = 0;
        others.forEach((m, j) => {
          tv[j] = keep ? f(inputs[m]![i]! - b[i]!) : 0;
          vote = f(vote + tv[j]!);
        });
        const majority = vote >= 0 ? 1 : -1;
        let merged = 0;
        let total = 0;
        for (let j = 0; j < others.length; j++) {
          const w = Math.sign(tv[j]!) === majority ? weights[j]! : 0;
          merged = f(merged + f(tv[j]! * w));
          total = f(total + w);
        }
        const r = f(b[i]! + f(merged / Math.max(total, f(1e-6))));
        // Every NaN as 0x7fc00000 (which of two NaNs a sum returns is up to the hardware and the JIT).
        out[i] = Number.isNaN(r) ? NaN : r;
      }
      await sink.write(start, out);
    }
  },
};

type ChunkVariances = (chunk: Chunk) => Promise<Float32Array>;

/**
 * Each chunk's variances (torch.var's, `ComputeBackend.deltaVariance`), in one array reused from
 * chunk to chunk: on the backend where there is one, else by the reference.
 */
function chunkVariances(backend: ComputeBackend | undefined, base: number, others: number[], step: StepDtype): ChunkVariances {
  let buffer = new Float32Array(0);
  return async (chunk) => {
    if (buffer.length < chunk.length) buffer = new Float32Array(chunk.length);
    const v = buffer.subarray(0, chunk.length);
    if (backend && others.length <= MAX_TASK_MODELS) {
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      await backend.deltaVariance(inputs[base]!, others.map((m) => inputs[m]!), { dtype: 'F32', data: v }, step);
    } else {
      deltaVarianceF32(chunk.inputs[base]!, others.map((m) => chunk.inputs[m]!), v, step);
    }
    return v;
  };
}

/**
 * How many variances sce keeps: mergekit's `int(count_nonzero(var) * select_topk)`, where the count
 * is an int64 tensor, so the product is an f32 tensor, f32(count)·f32(select_topk) rounded to f32,
 * then truncated (0.300781249 of 768 keeps 231, where the exact product would give 230).
 */
export function selectCount(nonzero: number, density: number): number {
  return Math.trunc(f(f(nonzero) * f(density)));
}

/**
 * sce's selection: a cut over the variances' bits, and the variances it applies to, whose values tied
 * at the cut are moved to either side of it as torch.topk chooses among them (`settleTies`).
 */
interface VarianceSelection {
  cut: MagnitudeCut;
  variances: ChunkVariances;
}

/** Whether the cut selects the element at tensor index `index`, whose variance is `variance`. */
function selects(cut: MagnitudeCut, variance: number, index: number): boolean {
  return magnitudeKeeps({ keep: cut }, absBits(variance), index);
}

/** The top `select_topk` of the nonzero variances, or undefined to keep all. */
async function varianceSelection(source: TensorSource, ctx: TensorMergeContext, variances: ChunkVariances): Promise<VarianceSelection | undefined> {
  const density = ctx.global['select_topk'] as number;
  if (density >= 1) return undefined;
  if (density <= 0) return { cut: NOTHING_KEPT, variances };
  let nonzero = 0;
  for await (const chunk of source.chunks()) {
    const v = await variances(chunk);
    for (let i = 0; i < chunk.length; i++) if (v[i] !== 0) nonzero++;
  }
  const k = selectCount(nonzero, density);
  if (k === 0) return { cut: NOTHING_KEPT, variances };
  const bits = new Uint32Array(1);
  const asF32 = new Float32Array(bits.buffer);
  const [threshold] = await kthLargestBits(async (visit) => {
    for await (const chunk of source.chunks()) {
      const v = await variances(chunk);
      const vb = new Uint32Array(v.buffer, v.byteOffset, v.length);
      for (let i = 0; i < chunk.length; i++) {
        // f32Bits, whose NaNs all read 0x7fc00000.
        asF32[0] = v[i]!;
        visit(0, Number.isNaN(asF32[0]) ? f32Bits(NaN) : vb[i]!);
      }
    }
  }, [k]);
  return settleTies(source, variances, ctx.numel, k, threshold!);
}

/**
 * The cut at the k-th largest variance, `threshold`. Where only some of the variances tied at it are
 * kept, the ones torch.topk keeps (`SortKeys.topkWithin`, from one pass that builds the sort keys;
 * index order past SORT_TIES_MAX_ELEMENTS or at a NaN threshold) are moved one bit above it in each
 * chunk's variances, the others one bit below, so the cut needs no ties: the variances serve only
 * the selection.
 */
async function settleTies(source: TensorSource, variances: ChunkVariances, numel: number, k: number, threshold: MagnitudeThreshold, backend?: ComputeBackend): Promise<VarianceSelection> {
  const { bits } = threshold;
  if (threshold.ties >= threshold.count) return { cut: { bits, before: Infinity }, variances };
  const keeps = bits < 0x7f800000 && numel <= SORT_TIES_MAX_ELEMENTS ? await topkTies(source, variances, numel, k, bits, backend) : await firstTies(source, variances, bits, threshold.ties);
  const settled: ChunkVariances = async (chunk) => {
    const v = await variances(chunk);
    settle(new Uint32Array(v.buffer, v.byteOffset, chunk.length), chunk.start, bits, keeps);
    return v;
  };
  return { cut: { bits, before: 0 }, variances: settled };
}

/** The variances kept among those tied: a bitset over the tensor, or those before a tensor index. */
type KeptTies = { kept: Uint8Array } | { before: number };

/** Moves the variances (bits, the chunk's first at tensor index `start`) tied at `bits` one bit up where kept, else down. */
function settle(vb: Uint32Array, start: number, bits: number, keeps: KeptTies): void {
  const [up, down] = [bits + 1, bits - 1];
  if ('before' in keeps) {
    const before = keeps.before - start;
    for (let i = 0; i < vb.length; i++) if (vb[i] === bits) vb[i] = i < before ? up : down;
    return;
  }
  const kept = keeps.kept;
  for (let i = 0; i < vb.length; i++) {
    if (vb[i] !== bits) continue;
    const index = start + i;
    vb[i] = (kept[index >> 3]! >> (index & 7)) & 1 ? up : down;
  }
}

/** Which variances tied at `bits` torch.topk(k) keeps (the selection on the backend's threads where it sorts). */
async function topkTies(source: TensorSource, variances: ChunkVariances, numel: number, k: number, bits: number, backend?: ComputeBackend): Promise<KeptTies> {
  const memory = sortKeysMemory(backend, numel, 1);
  try {
    const keys = new SortKeys(numel, true, [bits], memory.arrays[0]);
    const sorter = memory.sorter;
    let zeros = new Float32Array(0);
    for await (const chunk of source.chunks()) {
      const { start, length } = chunk;
      const v = await variances(chunk);
      if (sorter?.deltaKeys) {
        // The keys of |v − 0|, whose bits are v's (v ≥ 0, or NaN).
        if (zeros.length < length) zeros = new Float32Array(length);
        await sorter.deltaKeys(f32Host(zeros.subarray(0, length)), f32Host(v), { tied: [bits], descending: true, start }, keys.keys.subarray(start, start + length));
      } else keys.setDeltas(start, new Int32Array(v.buffer, v.byteOffset, length));
    }
    const [kept] = await keptTies([{ keys, steps: { topk: k } }], memory.sorter);
    return { kept: kept! };
  } finally {
    memory.release();
  }
}

/** The first `ties` variances tied at `bits`, in index order. */
async function firstTies(source: TensorSource, variances: ChunkVariances, bits: number, ties: number): Promise<KeptTies> {
  let seen = 0;
  for await (const chunk of source.chunks()) {
    const v = await variances(chunk);
    const vb = new Uint32Array(v.buffer, v.byteOffset, chunk.length);
    for (let i = 0; i < chunk.length; i++) {
      if (vb[i] !== bits) continue;
      if (seen === ties) return { before: chunk.start + i };
      seen++;
    }
  }
  return { before: Infinity };
}

/** Each model's mean squared (selected) task vector, divided by their sum; equal weights when that is ~0. */
async function modelWeights(source: TensorSource, base: number, others: number[], selection: VarianceSelection | undefined, numel: number): Promise<number[]> {
  const squares = others.map(() => new TorchSum(numel));
  for await (const chunk of source.chunks()) {
    const { start, length, inputs } = chunk;
    const b = inputs[base]!;
    const v = selection ? await selection.variances(chunk) : undefined;
    for (let i = 0; i < length; i++) {
      const keep = !selection || selects(selection.cut, v![i]!, start + i);
      others.forEach((m, j) => {
        const d = keep ? f(inputs[m]![i]! - b[i]!) : 0;
        squares[j]!.add(f(d * d));
      });
    }
  }
  return weightsFromSquares(squares, numel);
}

/** Each model's mean square (its sum over `numel`) divided by their sum; equal weights when that is ~0. */
function weightsFromSquares(squares: TorchSum[], numel: number): number[] {
  const means = squares.map((s) => f(s.result() / numel));
  const sum = new TorchSum(means.length);
  means.forEach((m) => sum.add(m));
  const total = sum.result();
  if (Math.abs(total) < 1e-6) return squares.map(() => f(1 / squares.length));
  return means.map((m) => f(m / total));
}

/**
 * mergekit's sce computing in bf16 (or f16), step by step as torch does it on such tensors: task
 * vectors r(x − base), the selection over their variances (torch.var's, rounded to the step; all
 * zero when select_topk ≤ 0 keeps nothing), the elected sign from their sum over the models, each
 * model's weight its mean square over the sum of those, the erased weights' sums and the weighted sum
 * of the task vectors over the models (each accumulated in f32 and rounded once), their quotient, the
 * base added back; every op rounded to the step.
 */
async function sceHalfSteps(source: TensorSource, sink: TensorSink, ctx: TensorMergeContext, base: number, others: number[], step: HalfStep): Promise<void> {
  if (ctx.backend && others.length <= MAX_TASK_MODELS) {
    const scratch = new HostScratch(ctx.backend);
    try {
      await sceHalfStepsOnBackend(source, sink, ctx, ctx.backend, base, others, step, scratch);
    } finally {
      scratch.release();
    }
    return;
  }
  const r = stepRounding(step);
  const n = others.length;
  const selection = await varianceSelection(source, ctx, chunkVariances(undefined, base, others, step));
  let vectors: Float32Array[] = [];
  /** The chunk's selected task vectors r(x − base), one array per model. */
  const load = async (chunk: Chunk): Promise<Float32Array[]> => {
    const { start, length, inputs } = chunk;
    if (!vectors[0] || vectors[0].length < length) vectors = others.map(() => new Float32Array(length));
    const v = selection ? await selection.variances(chunk) : undefined;
    for (let j = 0; j < n; j++) {
      const tv = vectors[j]!;
      const x = inputs[others[j]!]!;
      const b = inputs[base]!;
      for (let i = 0; i < length; i++) tv[i] = !selection || selects(selection.cut, v![i]!, start + i) ? r(x[i]! - b[i]!) : 0;
    }
    return vectors;
  };
  const squares = others.map(() => new TorchSum(ctx.numel));
  for await (const chunk of source.chunks()) {
    const tv = await load(chunk);
    for (let i = 0; i < chunk.length; i++) for (let j = 0; j < n; j++) squares[j]!.add(r(tv[j]![i]! ** 2));
  }
  const weights = halfStepWeights(squares, ctx.numel, step);
  let buffer = new Float32Array(0);
  for await (const chunk of source.chunks()) {
    const { start, length, inputs } = chunk;
    if (buffer.length < length) buffer = new Float32Array(length);
    const out = buffer.subarray(0, length);
    const select = selection ? { cut: selection.cut, variances: f32Host(await selection.variances(chunk)) } : undefined;
    sceMergeF32(inputs[base]!, others.map((m) => inputs[m]!), { start, weights, step, ...(select ? { select } : {}) }, out);
    await sink.write(start, out);
  }
}

/** Each model's weight in bf16 or f16 steps: its mean square r(Σ r(tv²) / numel) over their sum (equal weights when that is near 0). */
function halfStepWeights(squares: TorchSum[], numel: number, step: HalfStep): number[] {
  const r = stepRounding(step);
  const means = squares.map((sq) => r(f(sq.result() / numel)));
  const total = r(torchSum(means));
  return Math.abs(total) < 1e-6 ? squares.map(() => r(1 / squares.length)) : means.map((m) => r(m / f(total)));
}

/**
 * `sceHalfSteps`' passes on a backend, the same bits: the variances by `deltaVariance` in 16-bit
 * steps and their cut as `varianceCut` finds it, the selected task vectors r(x − base) by `sceDelta`
 * in 16-bit steps, their squares by `dotRows` (each square rounded
 * to the step, torch's cascade), the merge by `sceMerge` in 16-bit steps.
 */
async function sceHalfStepsOnBackend(
  source: TensorSource,
  sink: TensorSink,
  ctx: TensorMergeContext,
  backend: ComputeBackend,
  base: number,
  others: number[],
  step: HalfStep,
  scratch: HostScratch,
): Promise<void> {
  const selection = await varianceCut(source, ctx, backend, backendVariances(ctx.numel, backend, base, others, scratch, step), scratch);
  const squares = others.map(() => new TorchSum(ctx.numel));
  for await (const chunk of source.chunks()) {
    const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
    const tv = scratch.f32('task vector', chunk.length);
    const select = selection ? { cut: selection.cut, variances: await selection.variances(chunk) } : undefined;
    for (let j = 0; j < others.length; j++) {
      await backend.sceDelta(inputs[base]!, inputs[others[j]!]!, { start: chunk.start, step, ...(select ? { select } : {}) }, f32Host(tv));
      await addSquares(squares[j]!, tv, backend, step);
    }
  }
  const weights = halfStepWeights(squares, ctx.numel, step);
  const output = new OutputBuffer(sink);
  for await (const chunk of source.chunks()) {
    const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
    const out = output.take(chunk.length);
    const select = selection ? { cut: selection.cut, variances: await selection.variances(chunk) } : undefined;
    await backend.sceMerge(inputs[base]!, others.map((m) => inputs[m]!), { start: chunk.start, weights, step, ...(select ? { select } : {}) }, out);
    await output.write(chunk.start, out);
  }
}

// ---- sce on a compute backend: the same bits as the TypeScript above ----

/** A cut that keeps nothing (no variance's bits are above it). */
const NOTHING_KEPT: MagnitudeCut = { bits: 0xffffffff, before: 0 };

/**
 * sce with every pass over the elements on `backend`: the variances by `deltaVariance`, their top-k
 * as a cut over their bits (`varianceCut`), the mean squares by `sceDelta` and `dotRows` (torch's
 * cascade, as `TorchSum` adds), and the merge by `sceMerge`, the last two given each chunk's variances.
 */
async function kernelOnBackend(source: TensorSource, sink: TensorSink, ctx: TensorMergeContext, backend: ComputeBackend, base: number, others: number[]): Promise<void> {
  const scratch = new HostScratch(backend);
  try {
    const selection = await varianceCut(source, ctx, backend, backendVariances(ctx.numel, backend, base, others, scratch, 'F32'), scratch);
    const select = async (chunk: Chunk): Promise<SceSelect | undefined> => (selection ? { cut: selection.cut, variances: await selection.variances(chunk) } : undefined);
    const weights = await modelWeightsOnBackend(source, ctx.numel, backend, base, others, select, scratch);
    const output = new OutputBuffer(sink);
    for await (const chunk of source.chunks()) {
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      const out = output.take(chunk.length);
      const kept = await select(chunk);
      await backend.sceMerge(inputs[base]!, others.map((m) => inputs[m]!), { start: chunk.start, weights, ...(kept ? { select: kept } : {}) }, out);
      await output.write(chunk.start, out);
    }
  } finally {
    scratch.release();
  }
}

type BackendVariances = (chunk: Chunk) => Promise<HostArray>;

/**
 * Each chunk's variances by `deltaVariance` (r(x − base) rounded to `step`), in scratch; a tensor read
 * in one chunk has them computed once for every pass.
 */
function backendVariances(numel: number, backend: ComputeBackend, base: number, others: number[], scratch: HostScratch, step: StepDtype): BackendVariances {
  let wholeTensorDone = false;
  return async (chunk) => {
    const v = f32Host(scratch.f32('variances', chunk.length));
    const wholeTensor = chunk.start === 0 && chunk.length === numel;
    if (!(wholeTensor && wholeTensorDone)) {
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      await backend.deltaVariance(inputs[base]!, others.map((m) => inputs[m]!), v, step);
      wholeTensorDone = wholeTensor;
    }
    return v;
  };
}

/**
 * `varianceSelection` on the backend, the same k and threshold: one pass counts the high 16 bits of
 * the variances' bits (`deltaHistogram`) and, beside them, the low 16 bits of bucket 0 (whose bin 0
 * is the zeros); one pass the low bits of the chosen bucket (unless it is 0); then the ties settled
 * as torch.topk keeps them (`settleTies`).
 */
async function varianceCut(
  source: TensorSource,
  ctx: TensorMergeContext,
  backend: ComputeBackend,
  variances: BackendVariances,
  scratch: HostScratch,
): Promise<{ cut: MagnitudeCut; variances: BackendVariances } | undefined> {
  const density = ctx.global['select_topk'] as number;
  if (density >= 1) return undefined;
  if (density <= 0) return { cut: NOTHING_KEPT, variances };
  // The variances as deltaHistogram sees them: |r(v − 0)|'s bits are v's (v ≥ 0 or NaN).
  const histogram = async (prefixes: (number | undefined)[]): Promise<Float64Array[]> => {
    const counts = prefixes.map(() => new Float64Array(HISTOGRAM_BINS));
    for await (const chunk of source.chunks()) {
      const v = await variances(chunk);
      await backend.deltaHistogram(f32Host(scratch.zeros(chunk.length)), prefixes.map(() => v), { step: 'F32', prefixes }, counts);
    }
    return counts;
  };
  const [high, bucketZero] = await histogram([undefined, 0]);
  const k = selectCount(ctx.numel - bucketZero![0]!, density);
  if (k === 0) return { cut: NOTHING_KEPT, variances };
  const bucket = pick(high!, k);
  const low = bucket.bucket === 0 ? bucketZero! : (await histogram([bucket.bucket]))[0]!;
  const asArrays: ChunkVariances = async (chunk) => (await variances(chunk)).data as Float32Array;
  const settled = await settleTies(source, asArrays, ctx.numel, k, lowPick(bucket, low), backend);
  return { cut: settled.cut, variances: async (chunk) => f32Host(await settled.variances(chunk)) };
}

/** `modelWeights` on the backend: each model's kept δ by `sceDelta`, its squares added as `TorchSum` adds them. */
async function modelWeightsOnBackend(source: TensorSource, numel: number, backend: ComputeBackend, base: number, others: number[], select: (chunk: Chunk) => Promise<SceSelect | undefined>, scratch: HostScratch): Promise<number[]> {
  const squares = others.map(() => new TorchSum(numel));
  for await (const chunk of source.chunks()) {
    const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
    const delta = scratch.f32('delta', chunk.length);
    const kept = await select(chunk);
    for (let j = 0; j < others.length; j++) {
      await backend.sceDelta(inputs[base]!, inputs[others[j]!]!, { start: chunk.start, ...(kept ? { select: kept } : {}) }, f32Host(delta));
      await addSquares(squares[j]!, delta, backend);
    }
  }
  return weightsFromSquares(squares, numel);
}
/**
 * sum.add(r(d_i · d_i)) for each element in order: whole rows of the cascade by `dotRows` (a/1 · b/1),
 * the rest one by one; each square rounded to `step` before it is added.
 */
async function addSquares(sum: TorchSum, d: Float32Array, backend: ComputeBackend, step: StepDtype = 'F32'): Promise<void> {
  const r = stepRounding(step);
  for (let i = 0; i < d.length; ) {
    const rows = Math.min(sum.bulkRows(), Math.floor((d.length - i) / CASCADE_ROW));
    if (rows > 0) {
      const rowsOf = f32Host(d.subarray(i, i + rows * CASCADE_ROW));
      const state = sum.cascade();
      await backend.dotRows(rowsOf, rowsOf, 1, 1, state, step);
      sum.rowsAdded(state);
      i += rows * CASCADE_ROW;
    } else {
      sum.add(r(d[i]! * d[i]!));
      i++;
    }
  }
}
