import { f32Bits } from '../safetensors/convert';
import { kthLargestBits, MagnitudeMask } from './magnitude-select';
import { TorchSum } from './torch-reductions';
import { MAX_TASK_MODELS, type ComputeBackend } from '../compute/types';
import { f32Host, type Chunk, type MergeMethod, type TensorMergeContext, type TensorSource } from './types';

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
  async kernel(source, sink, ctx) {
    const others = ctx.perModel.map((_, i) => i).filter((i) => i !== ctx.baseIndex);
    const base = ctx.baseIndex!;
    const variances = chunkVariances(ctx.backend, base, others);
    const select = await varianceSelection(source, ctx, variances);
    const weights = await modelWeights(source, base, others, select, ctx.numel, variances);
    const tv = new Float64Array(others.length);
    let buffer = new Float32Array(0);
    select?.reset();
    for await (const chunk of source.chunks()) {
      const { start, length, inputs } = chunk;
      if (buffer.length < length) buffer = new Float32Array(length);
      const out = buffer.subarray(0, length);
      const b = inputs[base]!;
      const v = select ? await variances(chunk) : undefined;
      for (let i = 0; i < length; i++) {
        const keep = !select || select.keeps(v![i]!);
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
        out[i] = f(b[i]! + f(merged / Math.max(total, f(1e-6))));
      }
      await sink.write(start, out);
    }
  },
};

/** The population variance of the models' task vectors at element i, in f32. */
function variance(inputs: Float32Array[], b: Float32Array, others: number[], i: number): number {
  let sum = 0;
  for (const m of others) sum = f(sum + f(inputs[m]![i]! - b[i]!));
  const mean = f(sum / others.length);
  let squares = 0;
  for (const m of others) {
    const d = f(f(inputs[m]![i]! - b[i]!) - mean);
    squares = f(squares + f(d * d));
  }
  return f(squares / others.length);
}

type ChunkVariances = (chunk: Chunk) => Promise<Float32Array>;

/**
 * Each chunk's variances, in one array reused from chunk to chunk: by the backend's `deltaVariance`
 * (the same f32 steps in the same order) where there is one, else by `variance`.
 */
function chunkVariances(backend: ComputeBackend | undefined, base: number, others: number[]): ChunkVariances {
  let buffer = new Float32Array(0);
  return async (chunk) => {
    if (buffer.length < chunk.length) buffer = new Float32Array(chunk.length);
    const v = buffer.subarray(0, chunk.length);
    if (backend && others.length <= MAX_TASK_MODELS) {
      const inputs = chunk.raw ?? chunk.inputs.map(f32Host);
      await backend.deltaVariance(inputs[base]!, others.map((m) => inputs[m]!), { dtype: 'F32', data: v });
    } else {
      for (let i = 0; i < chunk.length; i++) v[i] = variance(chunk.inputs, chunk.inputs[base]!, others, i);
    }
    return v;
  };
}

/** The top `select_topk` of the nonzero variances (ties in index order), or undefined to keep all. */
async function varianceSelection(source: TensorSource, ctx: TensorMergeContext, variances: ChunkVariances): Promise<MagnitudeMask | undefined> {
  const density = ctx.global['select_topk'] as number;
  if (density >= 1) return undefined;
  let nonzero = 0;
  for await (const chunk of source.chunks()) {
    const v = await variances(chunk);
    for (let i = 0; i < chunk.length; i++) if (v[i] !== 0) nonzero++;
  }
  const k = Math.trunc(nonzero * density);
  if (density <= 0 || k === 0) return new MagnitudeMask(undefined, { bits: 0xffffffff, ties: 0 });
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
  return new MagnitudeMask(undefined, threshold!);
}

/** Each model's mean squared (selected) task vector, divided by their sum; equal weights when that is ~0. */
async function modelWeights(source: TensorSource, base: number, others: number[], select: MagnitudeMask | undefined, numel: number, variances: ChunkVariances): Promise<number[]> {
  const squares = others.map(() => new TorchSum(numel));
  select?.reset();
  for await (const chunk of source.chunks()) {
    const { length, inputs } = chunk;
    const b = inputs[base]!;
    const v = select ? await variances(chunk) : undefined;
    for (let i = 0; i < length; i++) {
      const keep = !select || select.keeps(v![i]!);
      others.forEach((m, j) => {
        const d = keep ? f(inputs[m]![i]! - b[i]!) : 0;
        squares[j]!.add(f(d * d));
      });
    }
  }
  const means = squares.map((s) => f(s.result() / numel));
  const sum = new TorchSum(means.length);
  means.forEach((m) => sum.add(m));
  const total = sum.result();
  if (Math.abs(total) < 1e-6) return others.map(() => f(1 / others.length));
  return means.map((m) => f(m / total));
}
