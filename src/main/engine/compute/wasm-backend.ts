import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { dellaProbabilities } from '../methods/sparsify';
import { f32BitsRoundedToF16 } from '../safetensors/convert';
import { checkDeltaVariance, checkRam, checkRowRanks, checkSceDelta, checkSceMerge, checkTaskArithmetic, checkUnitMix, checkUnitSum, checkUnitTangent, ramSteps, weightSum } from './reference';
import {
  bytesPerElement,
  checkLengths,
  HISTOGRAM_BINS,
  hostBytes,
  MAX_TASK_MODELS,
  sliceHost,
  type ComputeBackend,
  type DeltaFindParams,
  type DeltaFound,
  type DeltaHistogramParams,
  type DeltaSumsParams,
  type HostArray,
  type RowRankParams,
  type TaskArithmeticParams,
  type UnitTangentParams,
  type TaskVectorMask,
  type CascadeState,
  type SceDeltaParams,
  type SceMergeParams,
  type RamParams,
  type SortKeysJob,
  type DeltaKeysParams,
  type StepDtype,
  type UnitSumOptions,
  CASCADE_ROW,
} from './types';
import { HostHeap } from './host-heap';
import { KERNELS_WASM_BASE64 } from './wasm/kernels-wasm';

/** Bytes of the task kernel's per-model table (kernels.wat "task"), at the start of memory. */
const TASK_TABLE_BYTES = 704;
/** Bytes at the start of memory for linear's weights (f32) or the task kernel's table, then results. */
const WEIGHTS_BYTES = 4096;
const MAX_WEIGHTS = WEIGHTS_BYTES / 4;
/** Where dfind and dsums keep what they find and sum, beside the table (kernels.wat). */
const RESULTS_AT = 2048;
/** Each thread's scratch: 22 tiles of 1,024 f32 (kernels.wat), then (dhist) its histograms. */
const SCRATCH_BYTES = 22 * 4096;
const HISTOGRAM_BYTES = HISTOGRAM_BINS * 4;
/** Default size of each of the two arenas (one is filled while the other is computed). */
const DEFAULT_ARENA_BYTES = 64 << 20;
const MAX_PAGES = 65536; // 4 GiB, as declared in kernels.wat
const PAGE = 65536;
/** The two tables of input addresses (one per arena), in the first page. */
const POINTER_TABLES_AT = 3072;
const POINTER_TABLE_BYTES = 256;
/** Most elements one window of arrays kept in the kernels' memory takes (no copy, no arena). */
const MAX_IN_PLACE_WINDOW = 1 << 26;
/** Each arena's room: the default window's copies, and alignment. */
const MAX_ARENA_BYTES = DEFAULT_ARENA_BYTES + (1 << 20);
/** Counts of DELLA's radix sort (kernels.wat drank): up to 3 digits of 2,048 u32. */
const RANK_COUNT_BYTES = 3 * 8192;
/** A sort scratch larger than this (rows of over ~0.5 M elements, on two threads) is given back after its call. */
const KEEP_SORT_BYTES = 16 << 20;
/** Windows smaller than this run on the calling thread: a round trip to the workers costs more. */
const MIN_PARALLEL_ELEMENTS = 1 << 16;

/**
 * What each worker runs: it instantiates the kernels over the shared memory and calls the export a
 * message names. Plain CommonJS text (`eval: true`), so no bundler has to find a worker file.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { exports } = new WebAssembly.Instance(workerData.module, { env: { memory: workerData.memory } });
parentPort.on('message', ({ fn, args }) => {
  try { exports[fn](...args); parentPort.postMessage(null); }
  catch (error) { parentPort.postMessage(String(error && error.stack || error)); }
});
`;

/** The part of the WebAssembly JS API used here (the engine's TypeScript lib has no DOM types). */
interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  validate(bytes: Uint8Array): boolean;
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface Kernels {
  linear(input: number, seg: number, count: number, weights: number, start: number, end: number, out: number, bfIn: number, bfOut: number, normalize: number, divisor: number, step: number, scratch: number): void;
  nearswap(input: number, seg: number, start: number, end: number, out: number, bfIn: number, bfOut: number, t: number, scratch: number): void;
  nearswap_bf(input: number, seg: number, start: number, end: number, out: number, bfIn: number, bfOut: number, t: number, mode: number, scratch: number): void;
  blend2(input: number, seg: number, start: number, end: number, out: number, bfIn: number, bfOut: number, c0: number, c1: number, step: number, scratch: number): void;
  task(input: number, seg: number, count: number, params: number, start: number, end: number, out: number, bfIn: number, bfOut: number, idxLo: number, idxHi: number, flags: number, divisor: number, lambda: number, scratch: number): void;
  dhist(input: number, seg: number, count: number, params: number, start: number, end: number, bfIn: number, flags: number, scratch: number): void;
  dfind(input: number, seg: number, count: number, params: number, start: number, end: number, result: number, bfIn: number, flags: number, models: number, scratch: number): void;
  dsums(input: number, seg: number, count: number, params: number, start: number, end: number, sums: number, bfIn: number, flags: number, idxLo: number, idxHi: number, models: number, scratch: number): void;
  normsq(input: number, seg: number, count: number, start: number, end: number, bfIn: number, state: number, models: number, scratch: number): void;
  cdot(input: number, seg: number, start: number, end: number, bfIn: number, n0: number, n1: number, state: number, step: number, scratch: number): void;
  gram(input: number, seg: number, count: number, start: number, end: number, bfIn: number, sums: number, models: number, scratch: number): void;
  utan(input: number, seg: number, count: number, params: number, start: number, end: number, out: number, bfIn: number, bfOut: number, meanNorm: number, averageNorm: number, hasBase: number, scratch: number): void;
  umix(input: number, seg: number, count: number, params: number, start: number, end: number, out: number, bfIn: number, bfOut: number, scale: number, scratch: number): void;
  dvar(input: number, seg: number, count: number, start: number, end: number, out: number, bfIn: number, bfOut: number, scratch: number): void;
  usum(input: number, seg: number, count: number, params: number, start: number, end: number, out: number, bfIn: number, bfOut: number, step: number, scratch: number): void;
  drank(input: number, count: number, params: number, rows: number, n: number, u0: number, u1: number, bfIn: number, flags: number, idxLo: number, idxHi: number, sort: number): void;
  sce(input: number, seg: number, count: number, params: number, start: number, end: number, out: number, bfIn: number, bfOut: number, idxLo: number, idxHi: number, select: number, cutBits: number, only: number, step: number, scratch: number): void;
  ram(input: number, seg: number, count: number, params: number, start: number, end: number, out: number, bfIn: number, bfOut: number, threshold: number, step: number, scratch: number): void;
  ramc(input: number, seg: number, count: number, start: number, end: number, bfIn: number, threshold: number, step: number, scratch: number): void;
  lora(input: number, seg: number, start: number, end: number, out: number, bfIn: number, bfOut: number, idx: number, cols: number, rows: number, rank: number, left: number, right: number, scale: number, scratch: number): void;
  tkeys(input: number, seg: number, start: number, end: number, out: number, bfIn: number, t0: number, t1: number, flip: number, idx: number, step: number, scratch: number): void;
}
type KernelName = keyof Kernels;

/** torch's sort steps (kernels.wat "torch's order among ties"): whole calls, one per thread. */
interface SortKernels {
  tsort(keys: number, n: number, t0: number, t1: number, from: number, to: number, kept: number, scratch: number): void;
  tselect(keys: number, n: number, t0: number, t1: number, k: number, kept: number, scratch: number): void;
}

/** Kernels' helpers called from the host. */
interface Helpers {
  widen(src: number, dst: number, n: number): void;
  widen16(src: number, dst: number, n: number): void;
  narrow16(src: number, dst: number, n: number): void;
  bf16_as_f16(src: number, dst: number, n: number): void;
}

/** A LoRA delta's factors for `WasmBackend.loraApply`: delta[o][c] = Σ_k left[o, k] · right[k, c], times `scale`. */
export interface LoraApplyParams {
  cols: number;
  rank: number;
  /** rows × rank, row-major. */
  left: Float32Array;
  /** rank × cols, row-major. */
  right: Float32Array;
  scale: number;
}

export interface WasmBackendOptions {
  /** Worker threads. Default: one per core but one (none on one core: the calling thread computes). */
  workers?: number;
  /** Most elements in one window, for tests. Default: what fits a 64 MiB arena. */
  windowElements?: number;
}

/** Whether this JavaScript engine runs WebAssembly SIMD with shared memory (every current Node does). */
export function wasmSimdAvailable(): boolean {
  try {
    new Wasm.Memory({ initial: 1, maximum: 1, shared: true });
    return Wasm.validate(wasmBytes());
  } catch {
    return false;
  }
}

function wasmBytes(): Uint8Array {
  return new Uint8Array(Buffer.from(KERNELS_WASM_BASE64, 'base64'));
}

/** The kernels on a small shared memory of their own (`pages` of 64 KiB), for work that is not a backend's (the journal's digests). */
export function kernelsOnOwnMemory(pages: number): { exports: Record<string, unknown>; buffer: SharedArrayBuffer } {
  const memory = new Wasm.Memory({ initial: pages, maximum: pages, shared: true });
  const { exports } = new Wasm.Instance(new Wasm.Module(wasmBytes()), { env: { memory } });
  return { exports: exports as Record<string, unknown>, buffer: memory.buffer };
}

class KernelWorker {
  private waiting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on('message', (message: string | null) => this.settle(message === null ? undefined : new Error(`CPU kernel failed: ${message}`)));
    worker.on('error', (error) => this.settle((this.failure = error)));
    worker.on('exit', (code) => this.settle((this.failure ??= new Error(`CPU worker exited (${code})`))));
  }

  run(fn: KernelName | keyof SortKernels, args: number[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    // Keep Node alive only while a kernel is running: an idle pool must not hold the process open.
    this.worker.ref();
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.worker.postMessage({ fn, args });
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }

  private settle(error: Error | undefined): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    this.worker.unref();
    if (error) waiting?.reject(error);
    else waiting?.resolve();
  }
}

/**
 * The kernels in WebAssembly SIMD128 (kernels.wat), on worker threads sharing one memory.
 *
 * A call is cut into windows that fit an arena of that memory. Two arenas alternate: while the
 * workers compute window k in one, the calling thread copies window k+1's inputs into the other,
 * then copies window k's results out. bf16 stays bf16 into the kernels; f16 and mixed dtypes are
 * converted to f32 on the way in, and an f16 output on the way out.
 */
export class WasmBackend implements ComputeBackend {
  readonly kind = 'cpu';
  readonly description: string;
  private readonly memory: WasmMemory;
  private readonly local: Kernels & Helpers & SortKernels;
  /** Started on the first window large enough to share out: a merge of small tensors never pays for them. */
  private workerPool: KernelWorker[] | undefined;
  private readonly workerCount: number;
  private readonly module: object;
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  /** Every SharedArrayBuffer the memory has shown (one per size it grew to): arrays on them are ours. */
  private readonly buffers = new WeakSet<SharedArrayBuffer>();
  /** `allocateHost`'s blocks, after the kernels' own areas. */
  private readonly heap: HostHeap;
  /** Each thread's scratch for DELLA's per-row sort (`rowRankMasks`), sized from the longest row so far. */
  private sortBlock: Uint8Array | undefined;

  constructor(private readonly options: WasmBackendOptions = {}) {
    this.module = new Wasm.Module(wasmBytes());
    this.memory = new Wasm.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    this.buffers.add(this.memory.buffer);
    this.local = new Wasm.Instance(this.module, { env: { memory: this.memory } }).exports as unknown as Kernels & Helpers & SortKernels;
    const count = options.workers ?? Math.max(0, availableParallelism() - 1);
    this.workerCount = count;
    this.description = `CPU: WebAssembly SIMD, ${count === 0 ? 'on the calling thread' : `${count} worker thread${count === 1 ? '' : 's'}`}`;
    // [0, 4 KiB): tables and results; then each thread's scratch (and histograms); then the two
    // arenas; then the heap. Pages are committed as they are first used.
    this.heap = new HostHeap(align(this.arenasAt() + 2 * MAX_ARENA_BYTES, PAGE), (end) => this.grow(end), () => this.currentBuffer());
  }

  /**
   * `bytes` of the kernels' own memory, for arrays that callers fill and reuse (the engine reads
   * model chunks into them and takes outputs from them): the kernels read and write those where they
   * are, with no copy. Aligned to 64 KiB. Give it back with `releaseHost`.
   */
  allocateHost(bytes: number): Uint8Array {
    return this.heap.allocate(bytes);
  }

  releaseHost(bytes: Uint8Array): void {
    if (!this.owns(bytes) || !this.heap.release(bytes)) throw new Error('releaseHost: not a block of this backend');
  }

  /** Whether `array` lies in the kernels' memory (so they can read or write it where it is). */
  private owns(array: ArrayBufferView): boolean {
    return array.buffer instanceof SharedArrayBuffer && (this.buffers.has(array.buffer) || array.buffer === this.currentBuffer());
  }

  /**
   * The memory's buffer, remembered as ours. After a grow V8 may give the same memory a new buffer
   * object more than once (again when the worker threads see the grow), so views are made on the one
   * it gives now and that one is added to the set.
   */
  private currentBuffer(): SharedArrayBuffer {
    const buffer = this.memory.buffer;
    this.buffers.add(buffer);
    return buffer;
  }

  private threadBytes(): number {
    return align(SCRATCH_BYTES + MAX_TASK_MODELS * HISTOGRAM_BYTES, 64);
  }

  private arenasAt(): number {
    return align(WEIGHTS_BYTES + (this.workerCount + 1) * this.threadBytes(), 64);
  }

  linear(inputs: readonly HostArray[], weights: readonly number[], normalize: boolean, out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    if (weights.length !== inputs.length) return Promise.reject(new RangeError(`linear: ${weights.length} weights for ${inputs.length} inputs`));
    if (inputs.length > MAX_WEIGHTS) return Promise.reject(new RangeError(`linear takes at most ${MAX_WEIGHTS} models`));
    const w = weights.map((x) => Math.fround(x));
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Float32Array(this.memory.buffer, 0, w.length).set(w);
      const divisor = weightSum(w);
      await this.run({ inputs, out, call: (input, seg, start, end, output, bfIn, bfOut) => ['linear', [input, seg, inputs.length, 0, start, end, output, bfIn, bfOut, normalize ? 1 : 0, divisor, stepMode(step)]] });
    });
  }

  nearswap(base: HostArray, other: HostArray, t: number, out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    return this.serial(() =>
      this.run({
        inputs: [base, other],
        out,
        call: (input, seg, start, end, output, bfIn, bfOut) =>
          step === 'F32' ? ['nearswap', [input, seg, start, end, output, bfIn, bfOut, t]] : ['nearswap_bf', [input, seg, start, end, output, bfIn, bfOut, t, stepMode(step)]],
      }),
    );
  }

  /**
   * A LoRA delta added to rows of a weight (`lora/merge-lora.ts` loraApplyF32, the same bits):
   * out = f(w + f(d · scale)), d the FMA chain over k of left[o, k] · right[k, c] from +0, rounded
   * to the weight's dtype once. `weight` and `out` are F32 or BF16, whole rows of `cols`
   * (a multiple of 4) elements, `left` one row of `rank` per weight row.
   */
  loraApply(weight: HostArray, params: LoraApplyParams, out: HostArray): Promise<void> {
    const { cols, rank, left, right } = params;
    const rows = weight.data.length / cols;
    if (weight.dtype === 'F16' || cols % 4 !== 0 || !Number.isInteger(rows) || left.length !== rows * rank || right.length !== rank * cols || weight.dtype !== out.dtype) {
      return Promise.reject(new RangeError(`loraApply: a ${weight.dtype} weight of ${weight.data.length} elements in rows of ${cols} (a multiple of 4), ${left.length} and ${right.length} factors of rank ${rank}, a ${out.dtype} output`));
    }
    return this.serial(async () => {
      const factors = this.allocateHost(4 * (left.length + right.length));
      try {
        const view = new Float32Array(factors.buffer, factors.byteOffset, left.length + right.length);
        view.set(left);
        view.set(right, left.length);
        const [leftAt, rightAt] = [factors.byteOffset, factors.byteOffset + 4 * left.length];
        await this.run({
          inputs: [weight],
          out,
          call: (input, seg, start, end, output, bfIn, bfOut, first) => ['lora', [input, seg, start, end, output, bfIn, bfOut, first, cols, rows, rank, leftAt, rightAt, Math.fround(params.scale)]],
        });
      } finally {
        this.releaseHost(factors);
      }
    });
  }

  blend2(c0: number, a: HostArray, c1: number, b: HostArray, out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    const bf = stepMode(step);
    return this.serial(() => this.run({ inputs: [a, b], out, call: (input, seg, start, end, output, bfIn, bfOut) => ['blend2', [input, seg, start, end, output, bfIn, bfOut, c0, c1, bf]] }));
  }

  taskArithmetic(base: HostArray, models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray): Promise<void> {
    try {
      checkTaskArithmetic(models, params, out);
    } catch (error) {
      return Promise.reject(error);
    }
    const count = models.length;
    const flags = (params.consensus ? 1 : 0) | (params.normalize ? 2 : 0) | (Math.fround(params.lambda) !== 1 ? 4 : 0) | stepFlag(params.step);
    const { table, masks } = taskTable(params.masks, params.weights, params.scales);
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Uint8Array(this.memory.buffer, 0, TASK_TABLE_BYTES).set(table);
      await this.run({
        inputs: [base, ...models],
        out,
        sides: masks,
        call: (input, seg, start, end, output, bfIn, bfOut, first) => {
          const index = params.start + first;
          return ['task', [input, seg, count, 0, start, end, output, bfIn, bfOut, index >>> 0, Math.floor(index / 2 ** 32), flags, params.divisor, params.lambda]];
        },
      });
    });
  }

  deltaHistogram(base: HostArray, selections: readonly HostArray[], params: DeltaHistogramParams, counts: readonly Float64Array[]): Promise<void> {
    const count = selections.length;
    if (count > MAX_TASK_MODELS || params.prefixes.length !== count || counts.length !== count) {
      return Promise.reject(new RangeError(`deltaHistogram: ${count} selections (at most ${MAX_TASK_MODELS}), ${params.prefixes.length} prefixes, ${counts.length} histograms`));
    }
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Int32Array(this.memory.buffer, 0, count).set(params.prefixes.map((p) => (p === undefined ? -1 : p)));
      await this.run({
        inputs: [base, ...selections],
        call: (input, seg, start, end, _output, bfIn) => ['dhist', [input, seg, count, 0, start, end, bfIn, stepFlag(params.step)]],
        // Each thread counts into its own histograms; they are added up and cleared after each window.
        before: (_first, _length, scratch) => {
          for (let thread = 0; thread <= this.workerCount; thread++) new Uint8Array(this.memory.buffer, scratch(thread) + SCRATCH_BYTES, count * HISTOGRAM_BYTES).fill(0);
        },
        after: (_first, length, scratch) => {
          for (let thread = 0; thread <= this.workerCount; thread++) {
            const bins = new Uint32Array(this.memory.buffer, scratch(thread) + SCRATCH_BYTES, count * HISTOGRAM_BINS);
            counts.forEach((total, j) => {
              for (let b = 0, at = j * HISTOGRAM_BINS; b < HISTOGRAM_BINS; b++, at++) if (bins[at]) total[b]! += bins[at]!;
            });
          }
          // The zeros that pad the last window to whole vectors were counted too (|δ| = 0: bin 0).
          const pad = align(length, 16) - length;
          counts.forEach((total, j) => {
            if (params.prefixes[j] === undefined || params.prefixes[j] === 0) total[0]! -= pad;
          });
        },
      });
    });
  }

  deltaFind(base: HostArray, selections: readonly HostArray[], params: DeltaFindParams): Promise<DeltaFound[]> {
    const count = selections.length;
    if (count > MAX_TASK_MODELS || params.bits.length !== count || params.ranks.length !== count) {
      return Promise.reject(new RangeError(`deltaFind: ${count} selections (at most ${MAX_TASK_MODELS}), ${params.bits.length} thresholds, ${params.ranks.length} ranks`));
    }
    const found: DeltaFound[] = selections.map(() => ({ count: 0, index: -1 }));
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      await this.run({
        inputs: [base, ...selections],
        split: 'selections',
        call: (input, seg, start, end, _output, bfIn) => ['dfind', [input, seg, count, 0, start, end, RESULTS_AT, bfIn, stepFlag(params.step), ALL_SELECTIONS]],
        before: () => {
          const table = new Int32Array(this.memory.buffer, 0, 32);
          const results = new Int32Array(this.memory.buffer, RESULTS_AT, 2 * count);
          found.forEach((f, j) => {
            table[j] = params.bits[j]! | 0;
            // Ranks past 2^31 - 1 cannot be reached in one window: the wanted one is not in it.
            table[16 + j] = Math.min(0x7fffffff, Math.max(-1, params.ranks[j]! - f.count));
            results[2 * j] = 0;
            results[2 * j + 1] = f.index >= 0 || params.ranks[j]! < f.count ? 0 : -1;
          });
        },
        after: (first, length) => {
          const results = new Int32Array(this.memory.buffer, RESULTS_AT, 2 * count);
          const pad = align(length, 16) - length;
          found.forEach((f, j) => {
            if (f.index >= 0 || params.ranks[j]! < f.count) return;
            let seen = results[2 * j]!;
            let at = results[2 * j + 1]!;
            // The zeros padding the window to whole vectors come last, and have |δ| = 0.
            if (params.bits[j] === 0 && pad > 0) {
              if (at >= length) {
                seen -= at - length + 1;
                at = -1;
              } else if (at < 0) seen -= pad;
            }
            if (at >= 0) f.index = first + at;
            f.count += seen;
          });
        },
      });
      return found;
    });
  }

  deltaSums(base: HostArray, models: readonly HostArray[], params: DeltaSumsParams, sums: Float64Array): Promise<void> {
    const count = models.length;
    if (count > MAX_TASK_MODELS || params.masks.length !== count || sums.length < 2 * count) {
      return Promise.reject(new RangeError(`deltaSums: ${count} models (at most ${MAX_TASK_MODELS}), ${params.masks.length} masks, ${sums.length} sums`));
    }
    const { table, masks } = taskTable(params.masks, models.map(() => 1), models.map(() => 1));
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Uint8Array(this.memory.buffer, 0, TASK_TABLE_BYTES).set(table);
      new Float64Array(this.memory.buffer, RESULTS_AT, 2 * count).set(sums.subarray(0, 2 * count));
      await this.run({
        inputs: [base, ...models],
        sides: masks,
        split: 'selections',
        call: (input, seg, start, end, _output, bfIn, _bfOut, first) => {
          const index = params.start + first;
          return ['dsums', [input, seg, count, 0, start, end, RESULTS_AT, bfIn, stepFlag(params.step), index >>> 0, Math.floor(index / 2 ** 32), ALL_SELECTIONS]];
        },
      });
      sums.set(new Float64Array(this.memory.buffer, RESULTS_AT, 2 * count));
    });
  }

  /**
   * DELLA's masks (kernels.wat drank): whole rows of one model per unit of work, the units of a
   * window shared out among the threads, each sorting in its own scratch (taken from the heap, sized
   * from the row length). Arrays in the kernels' memory are read and written where they are; the
   * others are copied through one arena, window by window of whole rows (models in groups when a
   * row of them all would not fit).
   */
  rowRankMasks(base: HostArray, models: readonly HostArray[], params: RowRankParams, keeps: readonly Uint8Array[]): Promise<void> {
    const count = models.length;
    try {
      checkRowRanks(base, models, params, keeps);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const length = base.data.length;
    if (length === 0 || count === 0) return Promise.resolve();
    return this.serial(async () => {
      const n = params.rowLength;
      const rows = length / n;
      const inputs = [base, ...models];
      const bf16In = inputs.every((i) => i.dtype === 'BF16');
      const inSize = bf16In ? 2 : 4;
      const inPlace = inputs.map((i) => this.owns(i.data) && (bf16In || i.dtype === 'F32'));
      const keepInPlace = keeps.map((k) => this.owns(k));
      const threads = this.workerCount + 1;
      // The sort's keys and two orders, the radix counts, then the keep thresholds by rank.
      const perThread = align(4 * align(4 * n, 16) + RANK_COUNT_BYTES, 64);
      if (!this.sortBlock || this.sortBlock.byteLength < threads * perThread) {
        if (this.sortBlock) this.releaseHost(this.sortBlock);
        this.sortBlock = undefined;
        this.sortBlock = this.allocateHost(threads * perThread);
      }
      const sortAt = (thread: number) => this.sortBlock!.byteOffset + thread * perThread;
      this.grow(WEIGHTS_BYTES);
      const arena = this.arenasAt();
      if (!inPlace.every(Boolean) || !keepInPlace.every(Boolean)) this.grow(arena + MAX_ARENA_BYTES);
      // Bytes one row of a group takes in the arena (its copies), and the rows a window takes.
      const rowBytes = (group: number[]) => n * ((inPlace[0] ? 0 : inSize) + group.reduce((sum, j) => sum + (inPlace[j + 1] ? 0 : inSize) + (keepInPlace[j] ? 0 : 1), 0));
      const windowRows = (group: number[]) => {
        const room = MAX_ARENA_BYTES - 64 * (1 + 2 * group.length);
        const most = Math.max(1, Math.floor(Math.min(MAX_IN_PLACE_WINDOW, this.options.windowElements ?? Infinity) / n));
        const bytes = rowBytes(group);
        return bytes === 0 ? most : Math.min(most, Math.floor(room / bytes));
      };
      const all = models.map((_, j) => j);
      const groupSize = windowRows(all) >= 1 ? count : 1;
      for (let g0 = 0; g0 < count; g0 += groupSize) {
        const group = all.slice(g0, g0 + groupSize);
        const g = group.length;
        const table = new DataView(this.memory.buffer, 0, 192);
        group.forEach((j, k) => {
          const { low, span } = dellaProbabilities(params.densities[j]!, params.epsilons[j]!);
          table.setUint32(4 * k, params.keys[j]! >>> 0, true);
          table.setFloat32(64 + 4 * k, low, true);
          table.setFloat32(128 + 4 * k, span, true);
        });
        const perWindow = windowRows(group);
        for (let r0 = 0; r0 < rows; r0 += perWindow) {
          const windowRowCount = Math.min(perWindow, rows - r0);
          const first = r0 * n;
          const size = windowRowCount * n;
          const buffer = this.memory.buffer;
          const words = new Uint32Array(buffer, POINTER_TABLES_AT, 1 + 2 * g);
          let at = arena;
          const copied: { keep: Uint8Array; at: number }[] = [];
          [0, ...group.map((j) => j + 1)].forEach((m, slot) => {
            const input = inputs[m]!;
            if (inPlace[m]) {
              words[slot] = input.data.byteOffset + first * inSize;
              return;
            }
            this.copyToArena(sliceHost(input, first, size), at, bf16In);
            words[slot] = at;
            at += align(size * inSize, 64);
          });
          group.forEach((j, k) => {
            const keep = keeps[j]!;
            if (keepInPlace[j]) {
              words[1 + g + k] = keep.byteOffset + first;
              return;
            }
            words[1 + g + k] = at;
            copied.push({ keep: keep.subarray(first, first + size), at });
            at += align(size, 64);
          });
          const index = params.start + first;
          const args = [POINTER_TABLES_AT, g, 0, windowRowCount, n, 0, windowRowCount * g, bf16In ? 1 : 0, stepFlag(params.step), index >>> 0, Math.floor(index / 2 ** 32)];
          const units = windowRowCount * g;
          if (this.workerCount === 0 || units < 2 || size * g < MIN_PARALLEL_ELEMENTS) (this.local.drank as (...a: number[]) => void)(...args, sortAt(0));
          else {
            // Whole rows of one model per unit, the units in equal runs: one per worker, and the first
            // run on the calling thread, which would otherwise only wait.
            const parts = Math.min(threads, units);
            const part = (t: number) => {
              const a = [...args, sortAt(t)];
              a[5] = Math.floor((t * units) / parts);
              a[6] = Math.floor(((t + 1) * units) / parts);
              return a;
            };
            const running = Promise.all(this.workers.slice(0, parts - 1).map((worker, i) => worker.run('drank', part(i + 1))));
            (this.local.drank as (...a: number[]) => void)(...part(0));
            await running;
          }
          for (const { keep, at: from } of copied) keep.set(new Uint8Array(this.memory.buffer, from, keep.length));
        }
      }
      if (this.sortBlock && this.sortBlock.byteLength > KEEP_SORT_BYTES) {
        this.releaseHost(this.sortBlock);
        this.sortBlock = undefined;
      }
    });
  }

  normLanes(inputs: readonly HostArray[], lanes: Float32Array): Promise<void> {
    const count = inputs.length;
    if (count > MAX_TASK_MODELS || lanes.length < 8 * count || (inputs[0]?.data.length ?? 0) % 8 !== 0) {
      return Promise.reject(new RangeError(`normLanes: ${count} inputs (at most ${MAX_TASK_MODELS}) of ${inputs[0]?.data.length} elements (whole groups of 8), ${lanes.length} lanes`));
    }
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Float32Array(this.memory.buffer, RESULTS_AT, 8 * count).set(lanes.subarray(0, 8 * count));
      await this.run({
        inputs,
        split: 'selections',
        call: (input, seg, start, end, _output, bfIn) => ['normsq', [input, seg, count, start, end, bfIn, RESULTS_AT, ALL_SELECTIONS]],
      });
      lanes.set(new Float32Array(this.memory.buffer, RESULTS_AT, 8 * count));
    });
  }

  unitTangent(values: readonly HostArray[], mean: HostArray, base: HostArray | undefined, params: UnitTangentParams, out: HostArray): Promise<void> {
    const count = values.length;
    try {
      checkUnitTangent(values, params);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const inputs = [...values, mean, ...(base ? [base] : [])];
    const meanNorm = Math.fround(params.meanNorm);
    const averageNorm = Math.fround(params.averageNorm);
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Float32Array(this.memory.buffer, 0, count).set(params.divisors.map((x) => Math.fround(x)));
      new Float32Array(this.memory.buffer, 64, count).set(params.weights.map((x) => Math.fround(x)));
      new Float32Array(this.memory.buffer, 128, count).set(params.dots.map((x) => Math.fround(x)));
      new Float32Array(this.memory.buffer, 192, 2).set([Math.fround(params.cos ?? 1), Math.fround(params.sinc ?? 1)]);
      await this.run({
        inputs,
        out,
        call: (input, seg, start, end, output, bfIn, bfOut) => ['utan', [input, seg, count, 0, start, end, output, bfIn, bfOut, meanNorm, averageNorm, base ? 1 : 0]],
      });
    });
  }

  unitMix(inputs: readonly HostArray[], divisors: readonly number[], coefficients: readonly number[], scale: number, out: HostArray): Promise<void> {
    const count = inputs.length;
    try {
      checkUnitMix(inputs, divisors, coefficients);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Float64Array(this.memory.buffer, 0, count).set(coefficients);
      new Float32Array(this.memory.buffer, 128, count).set(divisors.map((x) => Math.fround(x)));
      await this.run({ inputs, out, call: (input, seg, start, end, output, bfIn, bfOut) => ['umix', [input, seg, count, 0, start, end, output, bfIn, bfOut, scale]] });
    });
  }

  deltaVariance(base: HostArray, models: readonly HostArray[], out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    try {
      checkDeltaVariance(models);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const mode = stepMode(step);
    return this.serial(() => this.run({ inputs: [base, ...models], out, call: (input, seg, start, end, output, bfIn, bfOut) => ['dvar', [input, seg, models.length, start, end, output, bfIn, bfOut, mode]] }));
  }

  sceMerge(base: HostArray, models: readonly HostArray[], params: SceMergeParams, out: HostArray): Promise<void> {
    try {
      checkSceMerge(base, models, params);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.sce(base, models, params, -1, out);
  }

  sceDelta(base: HostArray, model: HostArray, params: SceDeltaParams, out: HostArray): Promise<void> {
    try {
      checkSceDelta(base, params);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    // The kept δ, whatever else the caller's object carries.
    return this.sce(base, [model], { start: params.start, weights: [0], ...(params.select ? { select: params.select } : {}), ...(params.step ? { step: params.step } : {}) }, 0, out);
  }

  /** kernels.wat "sce": the merge pass, or (`only` ≥ 0) that model's kept δ; the variances beside the inputs. */
  private sce(base: HostArray, models: readonly HostArray[], params: SceMergeParams, only: number, out: HostArray): Promise<void> {
    const count = models.length;
    const cut = params.select?.cut;
    const variances = params.select?.variances.data as Float32Array | undefined;
    const step = stepMode(params.step ?? 'F32');
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Float32Array(this.memory.buffer, 0, count).set(params.weights.map((x) => Math.fround(x)));
      new BigInt64Array(this.memory.buffer, 64, 1)[0] = BigInt(Math.max(0, Math.min(2 ** 62, cut ? cut.before : 0)));
      await this.run({
        inputs: [base, ...models],
        out,
        ...(variances ? { sides: [variances] } : {}),
        call: (input, seg, start, end, output, bfIn, bfOut, first) => {
          const index = params.start + first;
          return ['sce', [input, seg, count, 0, start, end, output, bfIn, bfOut, index >>> 0, Math.floor(index / 2 ** 32), cut ? 1 : 0, cut ? cut.bits >>> 0 : 0, only, step]];
        },
      });
    });
  }

  ramCounts(base: HostArray, models: readonly HostArray[], params: RamParams, counts: Float64Array): Promise<void> {
    const count = models.length;
    try {
      checkRam(models, params, counts);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const { threshold } = ramSteps(params);
    const step = stepMode(params.step ?? 'F32');
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      await this.run({
        inputs: [base, ...models],
        call: (input, seg, start, end, _output, bfIn) => ['ramc', [input, seg, count, start, end, bfIn, threshold, step]],
        // Each thread counts into its own (shared, unique) pairs; they are added up and cleared after each window.
        before: (_first, _length, scratch) => {
          for (let thread = 0; thread <= this.workerCount; thread++) new Uint32Array(this.memory.buffer, scratch(thread) + SCRATCH_BYTES, 2 * count).fill(0);
        },
        after: (_first, length, scratch) => {
          for (let thread = 0; thread <= this.workerCount; thread++) {
            const pairs = new Uint32Array(this.memory.buffer, scratch(thread) + SCRATCH_BYTES, 2 * count);
            for (let k = 0; k < 2 * count; k++) counts[k]! += pairs[k]!;
          }
          // The zeros that pad the last window to whole vectors were counted too where |0| > threshold.
          const pad = align(length, 16) - length;
          if (pad > 0 && 0 > threshold) for (let j = 0; j < count; j++) counts[count > 1 ? 2 * j : 2 * j + 1]! -= pad;
        },
      });
    });
  }

  ramMerge(base: HostArray, models: readonly HostArray[], params: RamParams, out: HostArray): Promise<void> {
    const count = models.length;
    try {
      checkRam(models, params);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const { threshold } = ramSteps(params);
    // 16-bit steps: bit 0; their rounded sum and output (ram's; ramplus_tl's boosted ones stay f32): bit 1; f16: bit 2.
    const step = params.step === 'BF16' || params.step === 'F16' ? (params.boosts ? 1 : 3) | (params.step === 'F16' ? 4 : 0) : 0;
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      // Plain ram's unique changes are taken whole: f(d · 1) is d.
      new Float32Array(this.memory.buffer, 0, count).set(params.boosts ? params.boosts.map((x) => Math.fround(x)) : models.map(() => 1));
      await this.run({ inputs: [base, ...models], out, call: (input, seg, start, end, output, bfIn, bfOut) => ['ram', [input, seg, count, 0, start, end, output, bfIn, bfOut, threshold, step]] });
    });
  }

  unitSum(inputs: readonly HostArray[], divisors: readonly number[], weights: readonly number[], out: HostArray, options?: UnitSumOptions): Promise<void> {
    const count = inputs.length;
    try {
      checkUnitSum(inputs, divisors, weights);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Float32Array(this.memory.buffer, 0, count).set(divisors.map((x) => Math.fround(x)));
      new Float32Array(this.memory.buffer, 64, count).set(weights.map((x) => Math.fround(x)));
      new Float32Array(this.memory.buffer, 128, 1)[0] = options?.signedZeros ? -0 : 0;
      const step = stepMode(options?.step ?? 'F32');
      await this.run({ inputs, out, call: (input, seg, start, end, output, bfIn, bfOut) => ['usum', [input, seg, count, 0, start, end, output, bfIn, bfOut, step]] });
    });
  }

  gramSums(inputs: readonly HostArray[], sums: Float64Array): Promise<void> {
    const count = inputs.length;
    if (count > MAX_TASK_MODELS || sums.length < count * count) {
      return Promise.reject(new RangeError(`gramSums: ${count} inputs (at most ${MAX_TASK_MODELS}), ${sums.length} sums`));
    }
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Float64Array(this.memory.buffer, RESULTS_AT, count * count).set(sums.subarray(0, count * count));
      await this.run({
        inputs,
        split: 'selections',
        call: (input, seg, start, end, _output, bfIn) => ['gram', [input, seg, count, start, end, bfIn, RESULTS_AT, ALL_SELECTIONS]],
      });
      sums.set(new Float64Array(this.memory.buffer, RESULTS_AT, count * count));
    });
  }

  dotRows(a: HostArray, b: HostArray, n0: number, n1: number, state: CascadeState, step: StepDtype = 'F32'): Promise<void> {
    if (a.data.length % CASCADE_ROW !== 0) return Promise.reject(new RangeError(`dotRows: ${a.data.length} elements, not whole rows of ${CASCADE_ROW}`));
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      const words = new Int32Array(this.memory.buffer, RESULTS_AT, 131);
      new Float32Array(this.memory.buffer, RESULTS_AT, 128).set(state.acc);
      words[128] = state.rowsDone;
      words[129] = state.levelPower;
      words[130] = Math.min(0x7fffffff, state.fullBlockRows);
      // Windows are whole rows, so a row never straddles two (the padding to 16 never happens).
      await this.run({
        inputs: [a, b],
        split: 'none',
        call: (input, seg, start, end, _output, bfIn) => ['cdot', [input, seg, start, end, bfIn, n0, n1, RESULTS_AT, stepMode(step)]],
      });
      state.acc.set(new Float32Array(this.memory.buffer, RESULTS_AT, 128));
      state.rowsDone = new Int32Array(this.memory.buffer, RESULTS_AT, 131)[128]!;
    });
  }

  keySorter(): ComputeBackend {
    return this;
  }

  bf16AsF16(src: Uint16Array, dst: Float32Array): boolean {
    if (src.length !== dst.length || !this.owns(src) || !this.owns(dst)) return false;
    const whole = src.length - (src.length % 4);
    this.local.bf16_as_f16(src.byteOffset, dst.byteOffset, whole);
    const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
    for (let i = whole; i < src.length; i++) bits[i] = f32BitsRoundedToF16((src[i]! << 16) >>> 0);
    return true;
  }

  deltaKeys(base: HostArray, model: HostArray, params: DeltaKeysParams, keys: Int32Array): Promise<void> {
    const { tied, descending, start } = params;
    if (tied.length < 1 || tied.length > 2 || keys.length !== base.data.length || !this.owns(keys)) {
      return Promise.reject(new RangeError(`deltaKeys: ${tied.length} tied values (1 or 2), ${keys.length} keys for ${base.data.length} elements, in the kernels' memory: ${this.owns(keys)}`));
    }
    const out: HostArray = { dtype: 'F32', data: new Float32Array(keys.buffer, keys.byteOffset, keys.length) };
    const args = [tied[0]!, tied[tied.length - 1]!, descending ? 0x7fffffff : 0];
    return this.serial(() =>
      this.run({
        inputs: [base, model],
        out,
        call: (input, seg, from, to, output, bfIn, _bfOut, first) => ['tkeys', [input, seg, from, to, output, bfIn, ...args, start + first, stepMode(params.step ?? 'F32')]],
      }),
    );
  }

  /**
   * torch's sort steps over each job's keys, then the tied elements kept as a bitset (kernels.wat
   * tsort, tselect): job i on thread i mod the threads, the calling thread's share after the workers
   * have theirs, so the arrays are sorted side by side. Each thread's partition blocks in its scratch;
   * the bitsets in the heap, copied out.
   */
  sortKeys(jobs: readonly SortKeysJob[]): Promise<Uint8Array[]> {
    const foreign = jobs.find((job) => !this.owns(job.keys));
    if (foreign) return Promise.reject(new RangeError(`sortKeys: ${foreign.keys.length} keys outside the kernels' memory (allocateHost)`));
    if (jobs.length === 0) return Promise.resolve([]);
    return this.serial(async () => {
      this.grow(this.arenasAt());
      const threads = this.workerCount + 1;
      const scratch = (thread: number) => WEIGHTS_BYTES + thread * this.threadBytes();
      const kept: Uint8Array[] = [];
      const call = (i: number, thread: number): [keyof SortKernels, number[]] => {
        const { keys, tiedValues: [t0, t1], steps } = jobs[i]!;
        return 'sort' in steps
          ? ['tsort', [keys.byteOffset, keys.length, t0, t1, steps.sort[0], steps.sort[1], kept[i]!.byteOffset, scratch(thread)]]
          : ['tselect', [keys.byteOffset, keys.length, t0, t1, steps.topk, kept[i]!.byteOffset, scratch(thread)]];
      };
      const share = (thread: number) => jobs.flatMap((_, i) => (i % threads === thread ? [i] : []));
      try {
        for (const job of jobs) kept.push(this.allocateHost(Math.ceil(job.keys.length / 8)));
        const running = Promise.all(
          this.workers.slice(0, Math.min(threads, jobs.length) - 1).map(async (worker, w) => {
            for (const i of share(w + 1)) await worker.run(...call(i, w + 1));
          }),
        );
        try {
          for (const i of share(0)) {
            const [fn, args] = call(i, 0);
            (this.local[fn] as (...a: number[]) => void)(...args);
          }
        } finally {
          await running.catch(() => undefined);
        }
        await running;
        return kept.map((bits) => bits.slice());
      } finally {
        kept.forEach((bits) => this.releaseHost(bits));
      }
    });
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue.catch(() => undefined);
    await Promise.all((this.workerPool ?? []).map((w) => w.terminate()));
  }

  private get workers(): KernelWorker[] {
    this.workerPool ??= Array.from({ length: this.workerCount }, () => new KernelWorker(new Worker(WORKER_SOURCE, { eval: true, workerData: { module: this.module, memory: this.memory } })));
    return this.workerPool;
  }

  /**
   * `slice` into an arena slot at `at`: as stored where the call reads bf16 (or the slice is f32),
   * else widened to f32 by the kernels' own `widen` (bf16) or `widen16` (f16) in place (the codes put
   * in the slot's upper half; they write up to 7 elements past the slice, inside a slot aligned to 64 bytes).
   */
  private copyToArena(slice: HostArray, at: number, bf16In: boolean): void {
    const buffer = this.memory.buffer;
    const n = slice.data.length;
    if (bf16In || slice.dtype === 'F32') {
      new Uint8Array(buffer, at, slice.data.byteLength).set(hostBytes(slice));
      return;
    }
    new Uint8Array(buffer, at + n * 2, n * 2).set(hostBytes(slice));
    if (slice.dtype === 'BF16') this.local.widen(at + n * 2, at, align(n, 8));
    else this.local.widen16(at + n * 2, at, align(n, 8));
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    if (this.disposed) return Promise.reject(new Error('the CPU backend was disposed'));
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private grow(bytes: number): void {
    const pages = Math.ceil(bytes / PAGE);
    const have = this.memory.buffer.byteLength / PAGE;
    if (pages > MAX_PAGES) throw new RangeError(`CPU kernels need ${bytes} bytes of memory; the most is ${MAX_PAGES * PAGE}`);
    if (pages > have) {
      this.memory.grow(pages - have);
      this.buffers.add(this.memory.buffer);
    }
  }

  /**
   * Runs a kernel over `inputs` (see RunSpec). Arrays in the kernels' own memory (`allocateHost`)
   * are read and written where they are; the others are copied window by window into one of two
   * arenas, the next window's copy made while the workers compute the current one. Where any array
   * is in place, the last < 32 elements go through the arenas, so no kernel reads or writes past an
   * array's end.
   */
  private async run(spec: RunSpec): Promise<void> {
    const { inputs, out, sides = [] } = spec;
    const n = inputs[0]?.data.length ?? 0;
    checkLengths(inputs, out ?? inputs[0]!);
    if (sides.some((side) => side.length !== n)) throw new RangeError(`compute: a side array of ${sides.find((side) => side.length !== n)!.length} elements for ${n}`);
    if (n === 0) return;
    const bf16In = inputs.every((i) => i.dtype === 'BF16');
    const inPlace = inputs.map((i) => !spec.copy && this.owns(i.data) && (bf16In || i.dtype === 'F32'));
    const place: Placement = {
      inputs: inPlace,
      sides: sides.map((m) => !spec.copy && this.owns(m)),
      // An output that is also an input read where it is (x = f(x)) is written to the arena and copied
      // back: a kernel may clear its output tile before it reads its inputs (usum, linear).
      out: !spec.copy && out !== undefined && out.dtype !== 'F16' && this.owns(out.data) && !inputs.some((i, k) => inPlace[k] && overlaps(i.data, out.data)),
    };
    const body = place.inputs.some(Boolean) || place.sides.some(Boolean) || place.out ? n - (n % CASCADE_ROW) : n;
    if (body > 0) await this.runWindows(spec, body, place, bf16In);
    if (body < n) {
      const tail = n - body;
      await this.runWindows(
        {
          ...spec,
          inputs: inputs.map((i) => sliceHost(i, body, tail)),
          ...(out ? { out: sliceHost(out, body, tail) } : {}),
          sides: sides.map((m) => m.subarray(body, n)),
          offset: (spec.offset ?? 0) + body,
        },
        tail,
        { inputs: inputs.map(() => false), sides: sides.map(() => false), out: false },
        bf16In,
      );
    }
  }

  private async runWindows(spec: RunSpec, n: number, place: Placement, bf16In: boolean): Promise<void> {
    const { inputs, out, sides = [], call } = spec;
    const offset = spec.offset ?? 0;
    const inSize = bf16In ? 2 : 4;
    const bf16Out = out?.dtype === 'BF16';
    const outSize = out && !place.out ? 4 : 0;
    // Only what is copied takes room in an arena, each in a slot of the widest element.
    const slotSize = Math.max(inSize, ...sides.map((side) => side.BYTES_PER_ELEMENT));
    const copied = place.inputs.filter((inPlace) => !inPlace).length + place.sides.filter((inPlace) => !inPlace).length;
    const perElement = copied * slotSize + outSize;
    let window = perElement === 0 ? MAX_IN_PLACE_WINDOW : Math.floor(DEFAULT_ARENA_BYTES / perElement);
    window = Math.min(window, this.options.windowElements ?? Infinity);
    // Whole vectors of 16, and whole rows of 32 for the cascade sums.
    window = Math.max(CASCADE_ROW, window - (window % CASCADE_ROW));
    const seg = align(Math.min(window, n + CASCADE_ROW) * slotSize, 64);
    const segments = inputs.length + sides.length;
    // Arena slots for what is copied only: inputs, then sides, then the output.
    const slots: number[] = [];
    let used = 0;
    for (let m = 0; m < segments; m++) slots.push(m < inputs.length ? (place.inputs[m] ? -1 : used++) : place.sides[m - inputs.length] ? -1 : used++);
    const arena = used * seg + (outSize > 0 ? align(Math.min(window, n + CASCADE_ROW) * outSize, 64) : 0);
    if (arena > MAX_ARENA_BYTES) throw new RangeError(`CPU kernels: a window of ${arena} bytes is over ${MAX_ARENA_BYTES}`);
    const arenasAt = this.arenasAt();
    this.grow(arenasAt + 2 * MAX_ARENA_BYTES);
    const base = (k: number) => arenasAt + (k % 2) * MAX_ARENA_BYTES;
    const scratch = (thread: number) => WEIGHTS_BYTES + thread * this.threadBytes();
    const split = spec.split ?? 'elements';
    const where = (array: ArrayBufferView, first: number, size: number) => array.byteOffset + first * size;

    const copyIn = (k: number): void => {
      const start = k * window;
      const length = Math.min(window, n - start);
      const buffer = this.memory.buffer;
      inputs.forEach((input, m) => {
        if (place.inputs[m]) return;
        const at = base(k) + slots[m]! * seg;
        this.copyToArena(sliceHost(input, start, length), at, bf16In);
        // The kernels compute whole vectors of 16: the padding past the end holds zeros, not stale values.
        const padded = align(length, 16);
        if (padded > length) new Uint8Array(buffer, at + length * inSize, (padded - length) * inSize).fill(0);
      });
      sides.forEach((side, m) => {
        if (place.sides[m]) return;
        const size = side.BYTES_PER_ELEMENT;
        const at = base(k) + slots[inputs.length + m]! * seg;
        new Uint8Array(buffer, at, length * size).set(new Uint8Array(side.buffer, side.byteOffset + start * size, length * size));
        const padded = align(length, 16);
        if (padded > length) new Uint8Array(buffer, at + length * size, (padded - length) * size).fill(0);
      });
    };
    const copyOut = (k: number): void => {
      if (!out || place.out) return;
      const start = k * window;
      const length = Math.min(window, n - start);
      const at = base(k) + used * seg;
      const target = hostBytes(sliceHost(out, start, length));
      // f16 narrowed in place by the kernels' `narrow16` (it reads up to 7 elements past the window, inside its slot).
      if (out.dtype === 'F16') this.local.narrow16(at, at, align(length, 8));
      target.set(new Uint8Array(this.memory.buffer, at, target.byteLength));
    };
    /** Window k's table of addresses: each input (then side) where it is, or its copy. */
    const pointers = (k: number): number => {
      const table = POINTER_TABLES_AT + (k % 2) * POINTER_TABLE_BYTES;
      const first = k * window;
      const words = new Uint32Array(this.memory.buffer, table, segments);
      inputs.forEach((input, m) => (words[m] = place.inputs[m] ? where(input.data, first, inSize) : base(k) + slots[m]! * seg));
      sides.forEach((side, m) => (words[inputs.length + m] = place.sides[m] ? where(side, first, side.BYTES_PER_ELEMENT) : base(k) + slots[inputs.length + m]! * seg));
      return table;
    };
    const compute = (k: number): Promise<void> => {
      const first = k * window;
      const length = Math.min(window, n - first);
      const end = align(length, 16);
      spec.before?.(offset + first, length, scratch);
      const output = out && place.out ? where(out.data, first, bytesPerElement(out.dtype)) : base(k) + used * seg;
      const [fn, args] = call(pointers(k), 0, 0, end, output, bf16In ? 1 : 0, bf16Out ? 1 : 0, offset + first);
      const done = (): void => spec.after?.(offset + first, length, scratch);
      const selections = split === 'selections' ? spec.inputs.length - (fn === 'normsq' || fn === 'gram' ? 0 : 1) : 1;
      if (this.workerCount === 0 || end < MIN_PARALLEL_ELEMENTS || (split === 'selections' && selections < 2)) {
        (this.local[fn] as (...a: number[]) => void)(...args, scratch(0));
        done();
        return Promise.resolve();
      }
      // One thread (the first worker) where the kernel must see the window in order.
      if (split === 'none') return this.workers[0]!.run(fn, [...args, scratch(1)]).then(done);
      if (split === 'selections') {
        // Whole selections per thread, each in its own order: selection j on thread j mod threads.
        const threads = Math.min(this.workers.length + 1, selections);
        const mask = (thread: number) => {
          let bits = 0;
          for (let j = thread; j < selections; j += threads) bits |= 1 << j;
          return bits;
        };
        const withMask = (thread: number) => [...args.slice(0, -1), mask(thread), scratch(thread)];
        const running = Promise.all(this.workers.slice(0, threads - 1).map((worker, i) => worker.run(fn, withMask(i + 1))));
        (this.local[fn] as (...a: number[]) => void)(...withMask(0));
        return running.then(done);
      }
      // The window's elements in equal parts, whole vectors of 16: one per worker, and the last one
      // on the calling thread, which would otherwise only wait.
      const threads = this.workers.length + 1;
      const part = align(Math.ceil(end / threads), 16);
      const startAt = KERNEL_START_ARG[fn];
      const partArgs = (thread: number): number[] | undefined => {
        const from = Math.min(end, thread * part);
        const to = Math.min(end, from + part);
        if (from >= to) return undefined;
        const a = [...args, scratch(thread)];
        a[startAt] = from;
        a[startAt + 1] = to;
        return a;
      };
      const running = Promise.all(
        this.workers.map((worker, i) => {
          const a = partArgs(i + 1);
          return a ? worker.run(fn, a) : undefined;
        }),
      );
      const mine = partArgs(0);
      if (mine) (this.local[fn] as (...a: number[]) => void)(...mine);
      return running.then(done);
    };

    const windows = Math.ceil(n / window);
    copyIn(0);
    for (let k = 0; k < windows; k++) {
      const running = compute(k);
      if (k + 1 < windows) copyIn(k + 1);
      await running;
      copyOut(k);
    }
  }
}

interface Placement {
  inputs: boolean[];
  sides: boolean[];
  out: boolean;
}

/** Where each kernel's `start` argument is (`end` follows it). */
const KERNEL_START_ARG: Record<KernelName, number> = { linear: 4, nearswap: 2, blend2: 2, task: 4, dhist: 4, dfind: 4, dsums: 4, normsq: 3, cdot: 2, gram: 3, usum: 4, utan: 4, umix: 4, dvar: 3, drank: 5, sce: 4, ram: 4, ramc: 3, nearswap_bf: 2, lora: 2, tkeys: 2 };

interface RunSpec {
  inputs: readonly HostArray[];
  /** The output, for elementwise kernels; reductions leave theirs in memory (`after` reads it). */
  out?: HostArray;
  /**
   * Arrays beside the inputs, one element per input element, read as they are (byte masks, f32
   * variances): extra segments after the inputs'.
   */
  sides?: readonly (Uint8Array | Float32Array)[];
  /** The kernel's arguments (but the thread's scratch) for a window; `first` is its first element. */
  call: (input: number, seg: number, start: number, end: number, output: number, bfIn: number, bfOut: number, first: number) => [KernelName, number[]];
  /**
   * How a window is shared among the threads: `elements`, equal parts of it (the default);
   * `selections`, whole selections (models, inputs: the kernel's last argument before the scratch is
   * the mask of those it takes), each seen in order; `none`, the window whole on one thread.
   */
  split?: 'elements' | 'selections' | 'none';
  /** Copy every array into the arenas, even those in the kernels' memory (the last few elements). */
  copy?: boolean;
  /** Index of the first element within the caller's call (`first` counts from the call's start). */
  offset?: number;
  /** Called before and after each window is computed, with where each thread's scratch is. */
  before?: (first: number, length: number, scratch: (thread: number) => number) => void;
  after?: (first: number, length: number, scratch: (thread: number) => number) => void;
}

/** The selection mask that takes them all. */
const ALL_SELECTIONS = -1;

/** Whether two views share any byte of the same buffer. */
function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

/** The 16-bit-steps flag of the task-family kernels: 8 bf16, 16 f16. */
function stepFlag(step: StepDtype): number {
  return stepMode(step) << 3;
}

/** kernels.wat's step modes: 0 f32, 1 bf16, 2 f16. */
function stepMode(step: StepDtype): number {
  return step === 'BF16' ? 1 : step === 'F16' ? 2 : 0;
}

/**
 * The per-model table of kernels.wat's task family: weights, scales, DARE keys and thresholds, mask
 * kinds (0 all, 1 DARE, 2 magnitude, 3 magnitude with its ties' bytes, 4 + k byte mask k), magnitude
 * bits and where their ties stop.
 */
function taskTable(masks: readonly TaskVectorMask[], weights: readonly number[], scales: readonly number[]): { table: Uint8Array; masks: Uint8Array[] } {
  const table = new ArrayBuffer(TASK_TABLE_BYTES);
  const view = new DataView(table);
  const segments: Uint8Array[] = [];
  const index = (x: number) => BigInt(Math.max(0, Math.min(2 ** 62, x)));
  masks.forEach((mask, j) => {
    view.setFloat32(4 * j, weights[j]!, true);
    view.setFloat32(64 + 4 * j, scales[j]!, true);
    let kind = 0;
    if (mask.kind === 'keep') {
      kind = 4 + segments.length;
      segments.push(mask.keep);
    } else if (mask.kind === 'random') {
      // uniformAt(key, i) < density ⇔ z < ceil(density · 2^32) for the integer z it divides by 2^32.
      const threshold = Math.ceil(mask.density * 2 ** 32);
      if (threshold < 2 ** 32) {
        kind = 1;
        view.setUint32(128 + 4 * j, mask.key >>> 0, true);
        view.setUint32(192 + 4 * j, Math.max(0, threshold), true);
      }
    } else if (mask.kind === 'magnitude') {
      kind = 2;
      if (mask.ties) {
        kind = 3;
        view.setUint32(128 + 4 * j, segments.length, true);
        segments.push(mask.ties);
      }
      view.setUint32(320 + 4 * j, mask.keep.bits >>> 0, true);
      view.setBigInt64(448 + 8 * j, index(mask.keep.before), true);
      // No outliers skipped: bits above every |δ|'s.
      view.setUint32(384 + 4 * j, mask.skip ? mask.skip.bits >>> 0 : 0x7fffffff, true);
      view.setBigInt64(576 + 8 * j, index(mask.skip ? mask.skip.before : 0), true);
    }
    view.setUint32(256 + 4 * j, kind, true);
  });
  return { table: new Uint8Array(table), masks: segments };
}

function align(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}
