import { f16ToF32Bits, f32Bits } from '../safetensors/convert';
import type { FloatDtype } from '../safetensors/dtype';

/**
 * A run of tensor elements in host memory, as stored: f32 values, or the raw 16-bit codes of bf16 or
 * f16 (little-endian, one code per element). Backends read these without decoding them first, so a
 * bf16 tensor travels as bf16 all the way to the kernel.
 */
export type HostArray = { dtype: 'F32'; data: Float32Array } | { dtype: 'BF16' | 'F16'; data: Uint16Array };

/**
 * The arithmetic every merge method is made of, on any device. Each call reads `inputs` element by
 * element, computes in f32 exactly as the TypeScript reference does (torch's evaluation order, each
 * step rounded to f32), and writes `out` in its own dtype with round-to-nearest-even. All arrays of a
 * call have the same length. Calls run one at a time; a caller may reuse its arrays once a call's
 * promise resolves.
 *
 * Every backend returns the same bits: the reference (`ReferenceBackend`) defines them, and the tests
 * hold the WebGPU and WASM backends to it bit for bit.
 */
export interface ComputeBackend {
  readonly kind: 'cpu' | 'gpu';
  /** What runs the kernels, for the user: "WebGPU: llvmpipe (…)", "CPU: WebAssembly SIMD, 1 worker". */
  readonly description: string;

  /**
   * mergekit's linear: acc = fma(x_m, w_m, acc) from 0 in recipe order (torch's fused `addcmul_`),
   * then acc / Σw (the weights summed in f32 in order) when `normalize`. With `step` BF16 each fma
   * (one f32 rounding) and the quotient are then rounded to bf16 (roundBf16), as model_stock's mean
   * in bf16 steps computes r(acc + x) (fma(x, 1, acc) is f32(acc + x)); the weights and Σw stay f32.
   * Default F32.
   */
  linear(inputs: readonly HostArray[], weights: readonly number[], normalize: boolean, out: HostArray, step?: StepDtype): Promise<void>;

  /**
   * mergekit's nearswap: w = clamp(t · (1 / max(|base − other|, 1e-6)), 0, 1), then
   * w·other + (1 − w)·base. With `step` BF16 (mergekit computing in bf16) every step is rounded
   * to bf16 (roundBf16: f32, then bf16), the floor too; t stays f32. Default F32.
   */
  nearswap(base: HostArray, other: HostArray, t: number, out: HostArray, step?: StepDtype): Promise<void>;

  /**
   * c0·a + c1·b, each product rounded to f32 before the sum: slerp's (and lerp's) final pass. With
   * `step` BF16, r(r(c0·a) + r(c1·b)) with r rounding each f32 step to bf16 (roundBf16); c0 and c1
   * are taken as f32 either way. Default F32.
   */
  blend2(c0: number, a: HostArray, c1: number, b: HostArray, out: HostArray, step?: StepDtype): Promise<void>;

  /**
   * The task-vector merge's elementwise pass (mergekit's GeneralizedTaskArithmetic once any magnitude
   * threshold is known; `methods/task-arithmetic.ts`), element by element:
   * δ_j = r(x_j − base), dropped to 0 where model j's mask drops it, r(δ_j·scale_j) when scale_j ≠ 1,
   * d_j = r(δ_j·w_j); with `consensus` (TIES) the sign of Σd_j (f32, in order; ≥ 0 is +) elects,
   * mixed = Σ of the agreeing d_j and the divisor r(Σ of their weights) (1 when 0); without, mixed =
   * Σd_j and the divisor is `divisor`; then mixed = r(mixed), r(mixed / divisor) if `normalize`,
   * r(mixed·lambda) if lambda ≠ 1, and out = r(base + mixed). r rounds to `step` (mergekit computes
   * in the recipe's dtype), sums are rounded to f32 at each term.
   */
  taskArithmetic(base: HostArray, models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray): Promise<void>;

  /**
   * multislerp's weighted mean of the unit vectors: out = Σ_j r(r(x_j / divisors[j]) · weights[j]),
   * added in f32 from +0 in input order, as torch sums (r rounds to f32; divisors and weights are
   * taken as f32), or from −0 with `signedZeros`. With `step` BF16 (mergekit computing in bf16)
   * each quotient, each product and the sum are then rounded to bf16 (roundBf16); the sum is still
   * added in f32. At most MAX_TASK_MODELS inputs.
   */
  unitSum(inputs: readonly HostArray[], divisors: readonly number[], weights: readonly number[], out: HostArray, options?: UnitSumOptions): Promise<void>;

  /**
   * multislerp's last pass (`methods/multislerp.ts`), r rounding to f32: dir = r(mean / meanNorm),
   * tangent = Σ_j r(r(r(values_j / divisors[j]) − r(dots[j]·dir))·weights[j]) (from 0, in order),
   * out = r(r(dir + tangent)·averageNorm), then r(out + base) when there is a base. At most
   * MAX_TASK_MODELS values.
   */
  unitTangent(values: readonly HostArray[], mean: HostArray, base: HostArray | undefined, params: UnitTangentParams, out: HostArray): Promise<void>;

  /**
   * karcher's merge pass (`methods/karcher.ts`): out = r(scale · Σ_j coefficients[j]·r(x_j / divisors[j])),
   * the products and the sum (from 0, in input order) and the scaling in f64, r rounding to f32
   * (divisors taken as f32). At most MAX_TASK_MODELS inputs.
   */
  unitMix(inputs: readonly HostArray[], divisors: readonly number[], coefficients: readonly number[], scale: number, out: HostArray): Promise<void>;

  /**
   * sce's variance of the task vectors, element by element, as torch.var(dim=0, unbiased=False)
   * computes it: δ_j = r(x_j − base) (r rounds to `step`, default F32), then Welford's update in f64
   * over j = 1..n (d = δ_j − mean, mean += d / j, m2 += d·(δ_j − mean)), out = r(f32(m2 / n)).
   * 1 to MAX_TASK_MODELS models.
   */
  deltaVariance(base: HostArray, models: readonly HostArray[], out: HostArray, step?: StepDtype): Promise<void>;

  /**
   * sce's merge pass (`methods/sce.ts`), element by element (r rounds to f32): where `select` is
   * given, the element is kept when its variance (`select.variances`, as `deltaVariance` gives them
   * for these inputs) passes the cut (`magnitudeKeeps` on its bits, at tensor index start + i);
   * tv_j = kept ? r(x_j − base) : 0,
   * vote = Σ_j tv_j (f32, from 0, in order; ≥ 0 elects +), w_j = weights[j] where tv_j has the
   * elected sign, else 0 (a zero or NaN agrees with neither), merged = Σ_j r(tv_j·w_j) and total =
   * Σ_j w_j (f32, from 0, in order), out = r(base + r(merged / max(total, r(1e-6)))), every NaN as
   * 0x7fc00000 (which of two NaNs a sum returns is up to the hardware and the JIT's operand order).
   * Weights are taken as f32. 1 to MAX_TASK_MODELS models.
   */
  sceMerge(base: HostArray, models: readonly HostArray[], params: SceMergeParams, out: HostArray): Promise<void>;

  /**
   * sce's kept task vector of one model, for its mean square (`methods/sce.ts` modelWeights):
   * out = kept ? r(model − base) : 0, kept as in `sceMerge` (the cut over the variances of all the
   * models, which `select` brings).
   */
  sceDelta(base: HostArray, model: HostArray, params: SceDeltaParams, out: HostArray): Promise<void>;

  /**
   * ramplus_tl's per-tensor counts (`methods/ram.ts`): per element, δ_j = r(x_j − base) (r rounds to
   * f32) is changed where |δ_j| > r(epsilon); each changed δ_j adds 1 to `counts[2j]` (shared) when
   * more than one model changed the element, else to `counts[2j + 1]` (unique). Counts are added to
   * and are integers, so any order gives the same. 1 to MAX_TASK_MODELS models.
   */
  ramCounts(base: HostArray, models: readonly HostArray[], params: RamParams, counts: Float64Array): Promise<void>;

  /**
   * ram's and ramplus_tl's merge pass (`methods/ram.ts`), element by element (r rounds to f32):
   * δ_j = r(x_j − base), kept as d_j = δ_j where |δ_j| > r(epsilon), else +0; c = how many d_j are
   * not 0; term_j = r(d_j · boosts[j]) (d_j without boosts) when c = 1, r(d_j / c) when c > 1, else
   * 0; merged = Σ_j term_j (f32, from +0, in order); out = r(base + merged), every NaN as 0x7fc00000.
   * Boosts are taken as f32. 1 to MAX_TASK_MODELS models.
   */
  ramMerge(base: HostArray, models: readonly HostArray[], params: RamParams, out: HostArray): Promise<void>;

  /**
   * The radix histograms of the magnitude ranks (TIES, breadcrumbs: `methods/magnitude-select.ts`).
   * For selection j, each element's b = absBits(r(x_j − base)) (r rounds to `step`) is counted in
   * `counts[j]` (65,536 entries, added to): at b >>> 16 when `prefixes[j]` is undefined, else at
   * b & 0xffff when b >>> 16 is `prefixes[j]`. Counts are integers, so any order gives the same.
   */
  deltaHistogram(base: HostArray, selections: readonly HostArray[], params: DeltaHistogramParams, counts: readonly Float64Array[]): Promise<void>;

  /**
   * Where the ties at a magnitude threshold stop being kept: for selection j, the index in the call
   * of the element ranked `ranks[j]` (0 is the first) in index order among those whose
   * absBits(r(x_j − base)) is `bits[j]`, or -1 when the call has no more than `ranks[j]` of them; and
   * `count`, how many of them it has up to that one (all of them when there are not that many).
   */
  deltaFind(base: HostArray, selections: readonly HostArray[], params: DeltaFindParams): Promise<DeltaFound[]>;

  /**
   * mergekit's L1 rescale sums: for model j, Σ|δ_j| and Σ|kept δ_j| (δ_j = r(x_j − base), kept as
   * `masks[j]` says), each added in f64 element by element in index order to `sums[2j]` and
   * `sums[2j + 1]`, which hold the sums so far (a call continues the previous chunk's).
   */
  deltaSums(base: HostArray, models: readonly HostArray[], params: DeltaSumsParams, sums: Float64Array): Promise<void>;

  /**
   * DELLA's masks (mergekit's `della_magprune`; `methods/sparsify.ts` DellaSparsifier): for model j,
   * δ = r(x_j − base) (r rounds to `step`), and within each row of `rowLength` elements (the call is
   * whole rows, at most MAX_DELLA_ROW each) the element ranked k by absBits(δ) (0 the smallest, every
   * NaN as 0x7fc00000, ±0 alike, ties in index order) is kept, keeps[j][i] = 1 (else 0), where
   * uniformAt(keys[j], start + i) < f(low + f(f(k / (n − 1))·span)), low = f(densities[j] −
   * epsilons[j]), span = f(2·epsilons[j]), f rounding to f32 (k / (n − 1) is 0 in one-element rows).
   */
  rowRankMasks(base: HostArray, models: readonly HostArray[], params: RowRankParams, keeps: readonly Uint8Array[]): Promise<void>;

  /**
   * torch's vector-norm lanes (`methods/torch-reductions.ts` TorchNorm) of each input: for the call's
   * elements i, lanes[8j + i mod 8] += r(x_j[i]²), in index order, in f32. The call's length is a
   * multiple of 8 and its first element sits on lane 0.
   */
  normLanes(inputs: readonly HostArray[], lanes: Float32Array): Promise<void>;

  /**
   * torch's cascade sum (`TorchSum`, 8 lanes × 4 a row) of the values r(r(a_i / n0) · r(b_i / n1)),
   * slerp's normalized dot: the call is whole rows of 32, added to `state` (updated in place). r
   * rounds to f32; with `step` BF16 each value (the product) is then rounded to bf16 (roundBf16)
   * before it is added, as model_stock in bf16 steps adds r(δ_a·δ_b); the sums stay f32. Default F32.
   */
  dotRows(a: HostArray, b: HostArray, n0: number, n1: number, state: CascadeState, step?: StepDtype): Promise<void>;

  /**
   * The Gram sums of karcher (`methods/gram.ts`): for inputs j ≤ k (at most MAX_TASK_MODELS),
   * sums[j·count + k] += x_j[i]·x_k[i] (the f64 product of the f32 values, exact), added in f64
   * element by element in index order; the entries below the diagonal are left as they are.
   */
  gramSums(inputs: readonly HostArray[], sums: Float64Array): Promise<void>;

  /**
   * Optional: torch's sort steps over arrays of sort keys (`methods/torch-sort-ties.ts` SortKeys),
   * each array on a thread of its own, side by side, the same steps as SortSteps takes; for each, the
   * tied elements the steps place in [from, to) (sort) or among the k first (topk), as a bitset over
   * the tensor (`SortKeys.keptBy`'s). The keys lie in the backend's memory (`allocateHost`).
   */
  sortKeys?(jobs: readonly SortKeysJob[]): Promise<Uint8Array[]>;

  /**
   * Optional: the backend that builds and sorts sort keys for this one (`deltaKeys`, `sortKeys`, in
   * memory from its `allocateHost`): the CPU backend itself; the GPU backend's host CPU backend.
   */
  keySorter?(): ComputeBackend | undefined;

  /**
   * Optional: `SortKeys.setDeltas`'s keys of δ = r(x − base) (r rounds to `step`) for the call's
   * elements, into `keys` (one per element; in the backend's memory).
   */
  deltaKeys?(base: HostArray, model: HostArray, params: DeltaKeysParams, keys: Int32Array): Promise<void>;

  /**
   * Optional: bf16 values as the f32 values of their f16 rounding (torch's `.to(float16)`, as
   * `f32BitsRoundedToF16`), on the calling thread, where both arrays lie in the backend's memory
   * (`allocateHost`): true when done, false to leave it to the caller.
   */
  bf16AsF16?(src: Uint16Array, dst: Float32Array): boolean;

  /**
   * Optional: `bytes` of memory the backend's kernels read and write where it is, with no copy (the
   * WASM backend's own), starting on a page boundary (direct reads land in it). Callers that fill and
   * reuse buffers (the engine's reads and outputs) take theirs from here when there is one, and give
   * them back with `releaseHost`.
   */
  allocateHost?(bytes: number): Uint8Array;
  releaseHost?(bytes: Uint8Array): void;

  /** Releases what the backend holds (a GPU device, worker threads). The backend is unusable after. */
  dispose(): Promise<void>;
}

/**
 * One array of sort keys for `sortKeys`: ascending i32 values, a negative key a tied element of
 * value tiedValues[0] or [1] (by bit 30 of −1 − key). `sort`: std::sort's steps inside the runs that
 * hold `from` or `to`; `topk`: torch.topk's (std::partial_sort's heap selection where k · 64 ≤ n,
 * else std::nth_element at k − 1).
 */
export interface SortKeysJob {
  keys: Int32Array;
  tiedValues: readonly [number, number];
  steps: { sort: readonly [from: number, to: number] } | { topk: number };
}

/** What `deltaKeys` builds: a descending or ascending sort's keys, `tied` (one or two |δ| bits) marked with the tensor index (`start` that of the call's element 0). */
export interface DeltaKeysParams {
  tied: readonly number[];
  descending: boolean;
  start: number;
  step?: StepDtype;
}

export type DeviceChoice = 'auto' | 'cpu' | 'gpu';

/** The state of one of torch's cascade sums (`TorchSum`) in the 8 × 4 layout: what `dotRows` adds to. */
export interface CascadeState {
  /** Four levels of 32 f32 accumulators. */
  acc: Float32Array;
  rowsDone: number;
  /** Each level takes 2^levelPower rows of the one below. */
  levelPower: number;
  /** Rows after which no level moves up any more. */
  fullBlockRows: number;
}

/** Elements in one row of a cascade sum (8 lanes × 4). */
export const CASCADE_ROW = 32;

/**
 * Which entries of one model's task vector a `taskArithmetic` call keeps: all; DARE's random draw
 * from the counter hash of `methods/random-mask.ts` (kept where uniformAt(key, start + i) < density);
 * or an explicit mask (1 = kept), one byte per element of the call.
 */
export type TaskVectorMask =
  | { kind: 'all' }
  | { kind: 'random'; key: number; density: number }
  | { kind: 'keep'; keep: Uint8Array }
  | MagnitudeTrimMask;

/**
 * TIES/breadcrumbs' trims as elementwise tests: what passes `keep` and not `skip` (breadcrumbs'
 * outliers, `magnitudeKeeps`). With `ties` (one byte per element of the call), the elements whose
 * absBits(δ) is `keep.bits` or `skip.bits` are kept where their byte is not 0 and the cuts' `before`
 * is not used (torch's sort order among ties, `methods/torch-sort-ties.ts`); every other byte is 0.
 */
export interface MagnitudeTrimMask {
  kind: 'magnitude';
  keep: MagnitudeCut;
  skip?: MagnitudeCut;
  ties?: Uint8Array;
}

/**
 * A magnitude threshold (TIES, breadcrumbs) as an elementwise test: an element passes where
 * absBits(δ) is above `bits`, or equal to it at a tensor index below `before` (the ties taken in
 * index order).
 */
export interface MagnitudeCut {
  bits: number;
  before: number;
}

/** The dtype each step is rounded to (mergekit computes in the recipe's dtype). */
export type StepDtype = 'F32' | 'BF16' | 'F16';

/** A step rounded to 16 bits. */
export type HalfStep = Exclude<StepDtype, 'F32'>;

export interface UnitTangentParams {
  divisors: readonly number[];
  weights: readonly number[];
  dots: readonly number[];
  meanNorm: number;
  averageNorm: number;
  /** The exponential map's f(cos |t|) and f(f(sin |t|) / |t|) (mergekit's last step), each default 1. */
  cos?: number;
  sinc?: number;
}

export interface DeltaHistogramParams {
  step: StepDtype;
  /** Per selection: undefined for the first pass (high 16 bits), else the high 16 bits chosen. */
  prefixes: readonly (number | undefined)[];
}

export interface DeltaFindParams {
  step: StepDtype;
  bits: readonly number[];
  ranks: readonly number[];
}

export interface DeltaFound {
  count: number;
  index: number;
}

export interface DeltaSumsParams {
  step: StepDtype;
  /** Index in the tensor of the call's first element (DARE's draws, magnitude cuts). */
  start: number;
  masks: readonly TaskVectorMask[];
}

export interface RowRankParams {
  step: StepDtype;
  /** Index in the tensor of the call's first element (the hash's counter). */
  start: number;
  /** Elements per row: the tensor's last axis (a 1-D tensor is one row). */
  rowLength: number;
  /** Per model: the hash's key (`methods/random-mask.ts` maskKey), density and epsilon. */
  keys: readonly number[];
  densities: readonly number[];
  epsilons: readonly number[];
}

/** The longest row DELLA ranks (`rowRankMasks`). */
export const MAX_DELLA_ROW = 4194304;

export interface TaskArithmeticParams {
  /** Index in the tensor of the call's first element: DARE's draws count from here. */
  start: number;
  /** Per model, already rounded to `step`. */
  weights: readonly number[];
  /** Per model: the L1 rescale factor, 1 for none. */
  scales: readonly number[];
  masks: readonly TaskVectorMask[];
  /** TIES sign election and disjoint mean. */
  consensus: boolean;
  normalize: boolean;
  /** The divisor without consensus: r(Σw) (1 when near 0), as the method computes it. */
  divisor: number;
  lambda: number;
  /** The dtype each step is rounded to: bf16 when mergekit computes in bf16, else f32. */
  step: StepDtype;
}

/** How `unitSum` adds. */
export interface UnitSumOptions {
  /**
   * Add from −0, the sum's true zero, instead of torch's +0: a sum whose terms are all −0 is −0, so
   * a lone quotient keeps its sign as torch's division does (nuslerp's division by sin θ).
   */
  signedZeros?: boolean;
  /** The dtype each step is rounded to. Default F32. */
  step?: StepDtype;
}

/** Most models one `taskArithmetic` call takes. */
export const MAX_TASK_MODELS = 16;

export function hostArray(dtype: FloatDtype, length: number): HostArray {
  return dtype === 'F32' ? { dtype, data: new Float32Array(length) } : { dtype, data: new Uint16Array(length) };
}

/** The elements [start, start + length) of `array`, sharing its memory. */
export function sliceHost(array: HostArray, start: number, length: number): HostArray {
  return array.dtype === 'F32'
    ? { dtype: 'F32', data: array.data.subarray(start, start + length) }
    : { dtype: array.dtype, data: array.data.subarray(start, start + length) };
}

/** The bytes of `array`'s elements, sharing its memory. */
export function hostBytes(array: HostArray): Uint8Array {
  return new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength);
}

export function bytesPerElement(dtype: FloatDtype): number {
  return dtype === 'F32' ? 4 : 2;
}

/** Bins of a radix histogram pass (16 bits). */
export const HISTOGRAM_BINS = 65536;

/**
 * The bits magnitude ranks compare: those of |x| as an f32, every NaN as 0x7fc00000. Non-negative
 * floats order as their bits do.
 */
export function absBits(x: number): number {
  return Number.isNaN(x) ? 0x7fc00000 : f32Bits(Math.abs(x));
}

/** Whether a `magnitude` mask keeps element i of a call that starts at tensor index `start`, whose δ has magnitude bits `bits`. */
export function magnitudeMaskKeeps(mask: Omit<MagnitudeTrimMask, 'kind'>, bits: number, start: number, i: number): boolean {
  if (!mask.ties) return magnitudeKeeps(mask, bits, start + i);
  return (bits > mask.keep.bits && bits < (mask.skip ? mask.skip.bits : 0x7fffffff)) || mask.ties[i] !== 0;
}

/** Whether cuts keep the element at tensor index `index` whose δ has magnitude bits `bits`, ties in index order. */
export function magnitudeKeeps(mask: { keep: MagnitudeCut; skip?: MagnitudeCut }, bits: number, index: number): boolean {
  const passes = (cut: MagnitudeCut) => bits > cut.bits || (bits === cut.bits && index < cut.before);
  return passes(mask.keep) && !(mask.skip && passes(mask.skip));
}

/** Element i of `array` as a number (bf16 and f16 widened exactly). */
export function hostValue(array: HostArray, i: number): number {
  if (array.dtype === 'F32') return array.data[i]!;
  const code = array.data[i]!;
  return array.dtype === 'BF16' ? bf16Value(code) : f16ToF32(code);
}

const widenScratch = new Uint32Array(1);
const widenF32 = new Float32Array(widenScratch.buffer);
function bf16Value(code: number): number {
  widenScratch[0] = code << 16;
  return widenF32[0]!;
}
function f16ToF32(code: number): number {
  widenScratch[0] = f16ToF32Bits(code);
  return widenF32[0]!;
}

/** Throws unless every array has `length` elements. */
export function checkLengths(arrays: readonly HostArray[], out: HostArray): void {
  for (const a of arrays) {
    if (a.data.length !== out.data.length) throw new RangeError(`compute: input of ${a.data.length} elements for an output of ${out.data.length}`);
  }
}

/** sce's merge pass (ComputeBackend.sceMerge). */
export interface SceMergeParams {
  /** Index in the tensor of the call's first element (the cut's ties are taken in index order). */
  start: number;
  /** Per model, its weight (mean squared task vector over their sum). */
  weights: readonly number[];
  /** The elements kept; undefined keeps every element. */
  select?: SceSelect;
  /**
   * BF16 (mergekit computing in bf16): tv_j, the vote before its sign is read, each r(tv_j·w_j),
   * merged, total, the floor r(1e-6), the quotient and the output are rounded to bf16 (roundBf16);
   * the sums are still added in f32. Default F32.
   */
  step?: StepDtype;
}

/**
 * sce's top-k of the variances of the task vectors: the variances themselves (F32, one per element
 * of the call, as `deltaVariance` gives them), and the cut as an elementwise test on their bits
 * (every NaN as 0x7fc00000): kept where they are above `cut.bits`, or equal to it at a tensor index
 * below `cut.before`.
 */
export interface SceSelect {
  variances: HostArray;
  cut: MagnitudeCut;
}

/** One model's kept task vector in sce (ComputeBackend.sceDelta). */
export interface SceDeltaParams {
  /** Index in the tensor of the call's first element. */
  start: number;
  /** As SceMergeParams.select: undefined keeps every element. */
  select?: SceSelect;
  /** The kept δ rounded to this (bf16 or f16 steps). Default F32. */
  step?: StepDtype;
}

/** ram's and ramplus_tl's passes (ComputeBackend.ramCounts, ramMerge). */
export interface RamParams {
  /** A task-vector entry counts as changed where its magnitude is above r(epsilon). */
  epsilon: number;
  /** ramplus_tl's per-model scales of the unique changes (ramMerge only); undefined for ram. */
  boosts?: readonly number[];
  /**
   * BF16 (mergekit computing in bf16): δ_j and r(d_j / c) are rounded to bf16, the threshold is
   * roundBf16(epsilon), and without boosts merged and the output are too (ramplus_tl's boosts are
   * f32 tensors, so its boosted terms, sum and output stay f32). Default F32.
   */
  step?: StepDtype;
}
