import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { decodeToF32, encodeFromF32 } from '../safetensors/convert';
import { checkTaskArithmetic, weightSum } from './reference';
import { checkLengths, hostBytes, sliceHost, type ComputeBackend, type HostArray, type TaskArithmeticParams } from './types';
import { KERNELS_WASM_BASE64 } from './wasm/kernels-wasm';

/** Bytes of the task kernel's per-model table (kernels.wat "task"), at the start of memory. */
const TASK_TABLE_BYTES = 5 * 64;
/** Bytes at the start of memory for linear's weights (f32) or the task kernel's table. */
const WEIGHTS_BYTES = 4096;
const MAX_WEIGHTS = WEIGHTS_BYTES / 4;
/** Each thread's scratch: three tiles of 1,024 f32 (kernels.wat). */
const SCRATCH_BYTES = 3 * 4096;
/** Default size of each of the two arenas (one is filled while the other is computed). */
const DEFAULT_ARENA_BYTES = 64 << 20;
const MAX_PAGES = 16384; // 1 GiB, as declared in kernels.wat
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
  linear(input: number, seg: number, count: number, weights: number, start: number, end: number, out: number, bfIn: number, bfOut: number, normalize: number, divisor: number, scratch: number): void;
  nearswap(input: number, seg: number, start: number, end: number, out: number, bfIn: number, bfOut: number, t: number, scratch: number): void;
  blend2(input: number, seg: number, start: number, end: number, out: number, bfIn: number, bfOut: number, c0: number, c1: number, scratch: number): void;
  task(input: number, seg: number, count: number, params: number, start: number, end: number, out: number, bfIn: number, bfOut: number, idxLo: number, idxHi: number, flags: number, divisor: number, lambda: number, scratch: number): void;
}
type KernelName = keyof Kernels;

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

class KernelWorker {
  private waiting: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on('message', (message: string | null) => this.settle(message === null ? undefined : new Error(`CPU kernel failed: ${message}`)));
    worker.on('error', (error) => this.settle((this.failure = error)));
    worker.on('exit', (code) => this.settle((this.failure ??= new Error(`CPU worker exited (${code})`))));
  }

  run(fn: KernelName, args: number[]): Promise<void> {
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
  private readonly local: Kernels;
  /** Started on the first window large enough to share out: a merge of small tensors never pays for them. */
  private workerPool: KernelWorker[] | undefined;
  private readonly workerCount: number;
  private readonly module: object;
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  constructor(private readonly options: WasmBackendOptions = {}) {
    this.module = new Wasm.Module(wasmBytes());
    this.memory = new Wasm.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    this.local = new Wasm.Instance(this.module, { env: { memory: this.memory } }).exports as unknown as Kernels;
    const count = options.workers ?? Math.max(0, availableParallelism() - 1);
    this.workerCount = count;
    this.description = `CPU: WebAssembly SIMD, ${count === 0 ? 'on the calling thread' : `${count} worker thread${count === 1 ? '' : 's'}`}`;
  }

  linear(inputs: readonly HostArray[], weights: readonly number[], normalize: boolean, out: HostArray): Promise<void> {
    if (weights.length !== inputs.length) return Promise.reject(new RangeError(`linear: ${weights.length} weights for ${inputs.length} inputs`));
    if (inputs.length > MAX_WEIGHTS) return Promise.reject(new RangeError(`linear takes at most ${MAX_WEIGHTS} models`));
    const w = weights.map((x) => Math.fround(x));
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Float32Array(this.memory.buffer, 0, w.length).set(w);
      const divisor = weightSum(w);
      await this.run(inputs, out, (input, seg, start, end, output, bfIn, bfOut) => ['linear', [input, seg, inputs.length, 0, start, end, output, bfIn, bfOut, normalize ? 1 : 0, divisor]]);
    });
  }

  nearswap(base: HostArray, other: HostArray, t: number, out: HostArray): Promise<void> {
    return this.serial(() => this.run([base, other], out, (input, seg, start, end, output, bfIn, bfOut) => ['nearswap', [input, seg, start, end, output, bfIn, bfOut, t]]));
  }

  blend2(c0: number, a: HostArray, c1: number, b: HostArray, out: HostArray): Promise<void> {
    return this.serial(() => this.run([a, b], out, (input, seg, start, end, output, bfIn, bfOut) => ['blend2', [input, seg, start, end, output, bfIn, bfOut, c0, c1]]));
  }

  taskArithmetic(base: HostArray, models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray): Promise<void> {
    try {
      checkTaskArithmetic(models, params, out);
    } catch (error) {
      return Promise.reject(error);
    }
    const count = models.length;
    const flags = (params.consensus ? 1 : 0) | (params.normalize ? 2 : 0) | (Math.fround(params.lambda) !== 1 ? 4 : 0) | (params.step === 'BF16' ? 8 : 0);
    const masks: Uint8Array[] = [];
    // Per model, as kernels.wat reads them: weights, scales, DARE keys and thresholds, mask kinds.
    const table = new ArrayBuffer(TASK_TABLE_BYTES);
    const view = new DataView(table);
    params.masks.forEach((mask, j) => {
      view.setFloat32(4 * j, params.weights[j]!, true);
      view.setFloat32(64 + 4 * j, params.scales[j]!, true);
      let kind = 0;
      if (mask.kind === 'keep') {
        kind = 2 + masks.length;
        masks.push(mask.keep);
      } else if (mask.kind === 'random') {
        // uniformAt(key, i) < density ⇔ z < ceil(density · 2^32) for the integer z it divides by 2^32.
        const threshold = Math.ceil(mask.density * 2 ** 32);
        if (threshold < 2 ** 32) {
          kind = 1;
          view.setUint32(128 + 4 * j, mask.key >>> 0, true);
          view.setUint32(192 + 4 * j, Math.max(0, threshold), true);
        }
      }
      view.setUint32(256 + 4 * j, kind, true);
    });
    return this.serial(async () => {
      this.grow(WEIGHTS_BYTES);
      new Uint8Array(this.memory.buffer, 0, TASK_TABLE_BYTES).set(new Uint8Array(table));
      await this.run(
        [base, ...models],
        out,
        (input, seg, start, end, output, bfIn, bfOut, first) => {
          const index = params.start + first;
          return ['task', [input, seg, count, 0, start, end, output, bfIn, bfOut, index >>> 0, Math.floor(index / 2 ** 32), flags, params.divisor, params.lambda]];
        },
        masks,
      );
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

  private serial<T>(task: () => Promise<T>): Promise<T> {
    if (this.disposed) return Promise.reject(new Error('the CPU backend was disposed'));
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private grow(bytes: number): void {
    const pages = Math.ceil(bytes / 65536);
    const have = this.memory.buffer.byteLength / 65536;
    if (pages > MAX_PAGES) throw new RangeError(`CPU kernels need ${bytes} bytes of memory; the most is ${MAX_PAGES * 65536}`);
    if (pages > have) this.memory.grow(pages - have);
  }

  /**
   * Runs a kernel over `inputs` window by window; `masks` (one byte per element) follow the inputs
   * as extra segments. `call` builds the kernel's arguments; `first` is the window's first element.
   */
  private async run(
    inputs: readonly HostArray[],
    out: HostArray,
    call: (input: number, seg: number, start: number, end: number, output: number, bfIn: number, bfOut: number, first: number) => [KernelName, number[]],
    masks: readonly Uint8Array[] = [],
  ): Promise<void> {
    checkLengths(inputs, out);
    const n = out.data.length;
    if (n === 0) return;
    const bf16In = inputs.every((i) => i.dtype === 'BF16');
    const inSize = bf16In ? 2 : 4;
    const bf16Out = out.dtype === 'BF16';
    const arenaBytes = this.options.windowElements ? Infinity : DEFAULT_ARENA_BYTES;
    let window = Math.min(Math.floor(arenaBytes / (inputs.length * inSize + masks.length + 4)), this.options.windowElements ?? Infinity);
    window = Math.max(16, window - (window % 16));
    const seg = align(window * inSize, 64);
    const outBytes = align(window * 4, 64);
    const segments = inputs.length + masks.length;
    const arena = segments * seg + outBytes;
    const arenas = align(WEIGHTS_BYTES + (this.workerCount + 1) * SCRATCH_BYTES, 64);
    this.grow(arenas + 2 * arena);
    const base = (k: number) => arenas + (k % 2) * arena;
    const scratch = (thread: number) => WEIGHTS_BYTES + thread * SCRATCH_BYTES;

    const copyIn = (k: number): void => {
      const start = k * window;
      const length = Math.min(window, n - start);
      const buffer = this.memory.buffer;
      inputs.forEach((input, m) => {
        const at = base(k) + m * seg;
        const slice = sliceHost(input, start, length);
        if (bf16In || input.dtype === 'F32') new Uint8Array(buffer, at, length * inSize).set(hostBytes(slice));
        else decodeToF32(hostBytes(slice), input.dtype, new Float32Array(buffer, at, length));
      });
      masks.forEach((mask, m) => new Uint8Array(buffer, base(k) + (inputs.length + m) * seg, length).set(mask.subarray(start, start + length)));
    };
    const copyOut = (k: number): void => {
      const start = k * window;
      const length = Math.min(window, n - start);
      const at = base(k) + segments * seg;
      const target = hostBytes(sliceHost(out, start, length));
      if (out.dtype === 'F16') encodeFromF32(new Float32Array(this.memory.buffer, at, length), 'F16', target);
      else target.set(new Uint8Array(this.memory.buffer, at, target.byteLength));
    };
    const compute = (k: number): Promise<void> => {
      const length = Math.min(window, n - k * window);
      const end = align(length, 16);
      const [fn, args] = call(base(k), seg, 0, end, base(k) + segments * seg, bf16In ? 1 : 0, bf16Out ? 1 : 0, k * window);
      if (this.workerCount === 0 || end < MIN_PARALLEL_ELEMENTS) {
        (this.local[fn] as (...a: number[]) => void)(...args, scratch(0));
        return Promise.resolve();
      }
      // The window's elements in equal parts, whole vectors of 16, one part per worker.
      const part = align(Math.ceil(end / this.workers.length), 16);
      const startAt = fn === 'linear' || fn === 'task' ? 4 : 2;
      return Promise.all(
        this.workers.map((worker, i) => {
          const from = Math.min(end, i * part);
          const to = Math.min(end, from + part);
          const partArgs = [...args, scratch(i + 1)];
          partArgs[startAt] = from;
          partArgs[startAt + 1] = to;
          return from < to ? worker.run(fn, partArgs) : undefined;
        }),
      ).then(() => undefined);
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

function align(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}
