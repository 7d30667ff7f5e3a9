import type { FloatDtype } from '../safetensors/dtype';
import { dellaProbabilities } from '../methods/sparsify';
import { checkRowRanks, checkTaskArithmetic, checkUnitSum, checkUnitTangent, toF32, weightSum } from './reference';
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
  type CascadeState,
  type SceDeltaParams,
  type RamParams,
  type SceMergeParams,
  type StepDtype,
  type UnitSumOptions,
} from './types';
import { WasmBackend } from './wasm-backend';
import {
  COUNT_BF16_STEP,
  COUNT_FIND,
  COUNT_FIRST_PASS,
  COUNT_PARAMS_BYTES,
  countShader,
  elementwiseShader,
  MAX_LINEAR_INPUTS,
  PARAMS_BYTES,
  RANK_BINS,
  RANK_PARAMS_BYTES,
  rankShader,
  TASK_MASK_ALL,
  TASK_MASK_MAGNITUDE,
  TASK_MASK_MAGNITUDE_TIES,
  TASK_MASK_RANDOM,
  TASK_MASK_SEGMENT,
  TASK_PARAMS_BYTES,
  taskShader,
  UNIT_DIVISORS,
  UNIT_DOTS,
  UNIT_EXP,
  UNIT_WEIGHTS,
  type ElementwiseOp,
} from './wgsl';

// WebGPU's flag values (fixed by the spec), so nothing here depends on globals being installed.
const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
const MAP_READ = 0x1;
const COMPUTE_STAGE = 0x4;
const MAX_GROUPS_PER_DIMENSION = 65535;

/** `groups` workgroups as x·y, x within the per-dimension limit (kernels fold y back into an index). */
function dispatchGrid(groups: number): [number, number] {
  const x = Math.min(groups, MAX_GROUPS_PER_DIMENSION);
  return [x, Math.ceil(groups / x)];
}
/** The uniform buffer of every kernel: the larger of their parameter blocks. */
const UNIFORM_BYTES = Math.max(PARAMS_BYTES, TASK_PARAMS_BYTES, COUNT_PARAMS_BYTES, RANK_PARAMS_BYTES);
/** Default cap on one window's input or output binding: keeps each submit to tens of milliseconds. */
const DEFAULT_WINDOW_BYTES = 64 << 20;
/**
 * Most elements in one window of DELLA's row sort (unless one row is longer): a submit sorts a
 * window's rows, so this keeps it short (about 0.25 s on llvmpipe for rows of 2,048). Scratch: 12
 * bytes an element (keys, two position arrays).
 */
const RANK_WINDOW_ELEMENTS = 1 << 18;
const RANK_SCRATCH_BYTES = 12;

/** Raised by a GPU call once the device is gone; the caller may rerun the call elsewhere. */
export class GpuDeviceLostError extends Error {
  constructor(message: string) {
    super(`GPU device lost: ${message}`);
    this.name = 'GpuDeviceLostError';
  }
}

export interface WebGpuOptions {
  /**
   * Dawn backends to try in order (`create(['backend=…'])`); '' is the platform default (Vulkan on
   * Linux, D3D12 on Windows, Metal on macOS). Default: the platform default, then OpenGL ES, where
   * Linux machines without a Vulkan driver have Mesa's llvmpipe.
   */
  dawnBackends?: string[];
  /** Most elements in one window (one upload, one dispatch, one readback). Default: 64 MiB bindings. */
  windowElements?: number;
  /** Windows in flight at once: uploads, kernels and readbacks of neighbouring windows overlap. Default 3. */
  slots?: number;
  /**
   * Most elements a slot's u32 counters (deltaHistogram) take before they are read back and
   * cleared. Default 2^32 − 1, so no counter can wrap; lower only to test that path.
   */
  countLimit?: number;
  /**
   * Where the reductions that must run in one sequential order compute (deltaSums, normLanes,
   * dotRows, gramSums, unitMix: f64 or torch-ordered sums; DELLA's ranks of a row longer than a window), and deltaFind's scan of
   * the one window that holds the wanted tie: default, the WebAssembly CPU backend, started on first use.
   */
  host?: () => ComputeBackend;
}

export interface GpuAdapterDescription {
  /** "llvmpipe (LLVM 15.0.6, 256 bits) — OpenGL ES 3.2 Mesa 22.3.6", or as much of it as the adapter tells. */
  name: string;
  /** A CPU rasterizer pretending to be a GPU (llvmpipe, lavapipe, SwiftShader): slower than the WASM backend. */
  software: boolean;
  backend: string;
}

interface Slot {
  params: GPUBuffer;
  input: GPUBuffer;
  output: GPUBuffer;
  readback: GPUBuffer;
  bindGroup: GPUBindGroup;
  /** The readback of the window last run in this slot: resolves once its results are copied out. */
  pending: Promise<void> | undefined;
  /** Count kernels: elements counted into `output` since it was last cleared (kept below 2^32). */
  held: number;
}

type GpuEnvironment = { create: (flags: string[]) => GPU };

/**
 * Finds a WebGPU adapter and opens a device with the adapter's own limits (dawn.node otherwise
 * gives the WebGPU defaults: 128 MiB bindings, 256 MiB buffers). Resolves to a reason, not an error,
 * when there is none: no adapter is an ordinary situation.
 */
export async function openWebGpu(options: WebGpuOptions = {}): Promise<{ backend: WebGpuBackend } | { reason: string }> {
  let env: GpuEnvironment;
  try {
    env = (await import('webgpu')) as unknown as GpuEnvironment;
  } catch (error) {
    return { reason: `the webgpu package could not be loaded (${(error as Error).message})` };
  }
  // Mesa's EGL needs this to start without a display (a headless server, a test run).
  if (process.platform === 'linux' && !process.env['DISPLAY'] && !process.env['WAYLAND_DISPLAY']) process.env['EGL_PLATFORM'] ??= 'surfaceless';
  const tried: string[] = [];
  for (const dawnBackend of options.dawnBackends ?? ['', 'opengles']) {
    try {
      const gpu = env.create(dawnBackend ? [`backend=${dawnBackend}`] : []);
      const compat = dawnBackend === 'opengles' || dawnBackend === 'opengl';
      const adapter = await gpu.requestAdapter(compat ? { featureLevel: 'compatibility' } : { powerPreference: 'high-performance' });
      if (!adapter) {
        tried.push(dawnBackend || 'default');
        continue;
      }
      const limits = adapter.limits;
      const device = await adapter.requestDevice({
        requiredLimits: {
          maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
          maxBufferSize: limits.maxBufferSize,
          maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
          maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
        },
      });
      return { backend: new WebGpuBackend(gpu, device, describeAdapter(adapter, dawnBackend || 'default'), options) };
    } catch (error) {
      tried.push(`${dawnBackend || 'default'}: ${(error as Error).message.replace(/\s+/g, ' ').trim()}`);
    }
  }
  return { reason: `no WebGPU adapter (tried ${tried.join('; ')})` };
}

function describeAdapter(adapter: GPUAdapter, backend: string): GpuAdapterDescription {
  const info = adapter.info;
  const parts = [info.device, info.description, info.vendor, info.architecture].map((s) => s?.trim()).filter((s): s is string => !!s);
  const name = [...new Set(parts)].join(' — ') || 'unnamed adapter';
  const software = (info as { isFallbackAdapter?: boolean }).isFallbackAdapter === true || /llvmpipe|lavapipe|softpipe|swiftshader|microsoft basic render/i.test(name);
  return { name, software, backend };
}

/**
 * The kernels on a WebGPU device (dawn.node, in the engine's own Node process).
 *
 * A call is cut into windows no larger than the device's largest binding (and `windowElements`);
 * each window is one upload of its inputs, one dispatch (a 2-D grid, never more than 65535 groups a
 * side) and one readback, in a slot of a small ring, so window i+1 uploads while window i computes
 * and window i−1 is read back. bf16 and f16 stay packed two to a u32 on the device.
 *
 * On the device: the elementwise kernels (linear, nearswap, blend2, taskArithmetic, and unitSum and
 * unitTangent, whose f32 quotients come from the integer division div_ieee), the
 * magnitude histograms (u32 atomics, exact in any order), deltaFind's per-window tallies and DELLA's
 * row ranks (a stable radix sort per row, rowRankMasks). On the host's CPU backend: the sums that
 * follow one sequential order in f64 or in torch's order (WGSL has no f64, and a parallel sum would
 * round differently), and DELLA's rows longer than a window.
 *
 * Dawn keeps Node alive while it has work; `dispose()` destroys the device so the process can exit.
 */
export class WebGpuBackend implements ComputeBackend {
  readonly kind = 'gpu';
  readonly description: string;
  private readonly workgroupSize: number;
  /** Invocations a workgroup of the row sort (wgsl.ts rankShader): 128, compatibility's limit, or fewer. */
  private readonly rankGroup: number;
  private readonly windowBytes: number;
  private readonly layout: GPUBindGroupLayout;
  private readonly pipelineLayout: GPUPipelineLayout;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly slots: Slot[] = [];
  private staging = new Uint8Array(0);
  private lost: string | undefined;
  private validationError: string | undefined;
  private disposed = false;
  private queue: Promise<unknown> = Promise.resolve();
  private hostBackend: ComputeBackend | undefined;

  constructor(
    /** Held for the device's lifetime: Dawn must not collect the instance before the device's objects. */
    private readonly gpu: GPU,
    private readonly device: GPUDevice,
    readonly adapter: GpuAdapterDescription,
    private readonly options: WebGpuOptions,
  ) {
    this.description = `WebGPU: ${adapter.name}${adapter.software ? ' (software)' : ''}`;
    const limits = device.limits;
    this.workgroupSize = Math.min(256, limits.maxComputeInvocationsPerWorkgroup, limits.maxComputeWorkgroupSizeX);
    this.rankGroup = Math.min(128, this.workgroupSize);
    this.windowBytes = Math.floor(Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize, DEFAULT_WINDOW_BYTES) / 256) * 256;
    void device.lost.then((info) => {
      if (!this.disposed) this.lost = info.message || info.reason || 'unknown reason';
    });
    device.addEventListener('uncapturederror', (event) => {
      this.validationError ??= (event as GPUUncapturedErrorEvent).error.message;
    });
    this.layout = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: COMPUTE_STAGE, buffer: { type: 'uniform' } },
        { binding: 1, visibility: COMPUTE_STAGE, buffer: { type: 'read-only-storage' } },
        { binding: 2, visibility: COMPUTE_STAGE, buffer: { type: 'storage' } },
      ],
    });
    this.pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [this.layout] });
  }

  /** The device's limits as granted, for tests and the bench. */
  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  linear(inputs: readonly HostArray[], weights: readonly number[], normalize: boolean, out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    // 16-bit steps (model_stock's mean in bf16): on the host, as nearswap's (the WGSL kernel rounds each step to f32).
    if (step !== 'F32') return this.host().linear(inputs, weights, normalize, out, step);
    if (weights.length !== inputs.length) return Promise.reject(new RangeError(`linear: ${weights.length} weights for ${inputs.length} inputs`));
    if (inputs.length > MAX_LINEAR_INPUTS) return Promise.reject(new RangeError(`linear on the GPU takes at most ${MAX_LINEAR_INPUTS} models`));
    const w = weights.map((x) => Math.fround(x));
    return this.serial(() => this.run('linear', inputs, out, elementwiseHeader(inputs.length, { p0: weightSum(w), flags: normalize ? 1 : 0, weights: w })));
  }

  nearswap(base: HostArray, other: HostArray, t: number, out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    // 16-bit steps: on the host (the WGSL kernel rounds each step to f32).
    if (step !== 'F32') return this.host().nearswap(base, other, t, out, step);
    return this.serial(() => this.run('nearswap', [base, other], out, elementwiseHeader(2, { p0: t })));
  }

  blend2(c0: number, a: HostArray, c1: number, b: HostArray, out: HostArray, step: StepDtype = 'F32'): Promise<void> {
    // 16-bit steps (model_stock's last pass in bf16): on the host, as nearswap's.
    if (step !== 'F32') return this.host().blend2(c0, a, c1, b, out, step);
    return this.serial(() => this.run('blend2', [a, b], out, elementwiseHeader(2, { p0: c0, p1: c1 })));
  }

  taskArithmetic(base: HostArray, models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray): Promise<void> {
    try {
      checkTaskArithmetic(models, params, out);
    } catch (error) {
      return Promise.reject(error);
    }
    // f16 steps (WGSL rounds to bf16 only): on the host.
    if (params.step === 'F16') return this.host().taskArithmetic(base, models, params, out);
    const header = new ArrayBuffer(TASK_PARAMS_BYTES);
    const view = new DataView(header);
    const count = models.length;
    const flags = (params.consensus ? 1 : 0) | (params.normalize ? 2 : 0) | (Math.fround(params.lambda) !== 1 ? 4 : 0) | (params.step === 'BF16' ? 8 : 0);
    view.setUint32(8, count, true);
    view.setUint32(24, flags, true);
    view.setFloat32(28, params.divisor, true);
    view.setFloat32(32, params.lambda, true);
    const at = (array: number, j: number) => 48 + array * (16 * 4) + 4 * j;
    const masks: Uint8Array[] = [];
    // Magnitude cuts are tensor indices; the kernel compares window indices (set per window).
    const cuts: { j: number; keep: number; skip: number }[] = [];
    params.masks.forEach((mask, j) => {
      view.setFloat32(at(0, j), params.weights[j]!, true);
      view.setFloat32(at(1, j), params.scales[j]!, true);
      let kind = TASK_MASK_ALL;
      if (mask.kind === 'keep') {
        kind = TASK_MASK_SEGMENT + masks.length;
        masks.push(mask.keep);
      } else if (mask.kind === 'random') {
        // uniformAt(key, i) < density ⇔ z < ceil(density · 2^32) for the integer z it divides by 2^32.
        const threshold = Math.ceil(mask.density * 2 ** 32);
        if (threshold < 2 ** 32) {
          kind = TASK_MASK_RANDOM;
          view.setUint32(at(2, j), mask.key >>> 0, true);
          view.setUint32(at(3, j), Math.max(0, threshold), true);
        }
      } else if (mask.kind === 'magnitude') {
        kind = TASK_MASK_MAGNITUDE;
        if (mask.ties) {
          kind = TASK_MASK_MAGNITUDE_TIES;
          view.setUint32(at(2, j), masks.length, true);
          masks.push(mask.ties);
        }
        view.setUint32(at(5, j), mask.keep.bits >>> 0, true);
        // No outliers skipped: bits above every |δ|'s.
        view.setUint32(at(7, j), mask.skip ? mask.skip.bits >>> 0 : 0x7fffffff, true);
        cuts.push({ j, keep: mask.keep.before, skip: mask.skip ? mask.skip.before : 0 });
      }
      view.setUint32(at(4, j), kind, true);
    });
    return this.serial(() =>
      this.run('task', [base, ...models], out, header, masks, (v, start) => {
        const index = params.start + start;
        v.setUint32(16, index >>> 0, true);
        v.setUint32(20, Math.floor(index / 2 ** 32), true);
        const windowIndex = (before: number) => Math.max(0, Math.min(0xffffffff, before - index));
        for (const cut of cuts) {
          v.setUint32(at(6, cut.j), windowIndex(cut.keep), true);
          v.setUint32(at(8, cut.j), windowIndex(cut.skip), true);
        }
      }),
    );
  }

  // The magnitude histograms: u32 atomic counts on the device (exact in any order), read back and
  // added to `counts` once per call (or sooner, before a slot's counters could pass 2^32 − 1).
  deltaHistogram(base: HostArray, selections: readonly HostArray[], params: DeltaHistogramParams, counts: readonly Float64Array[]): Promise<void> {
    const count = selections.length;
    if (count > MAX_TASK_MODELS || params.prefixes.length !== count || counts.length !== count || counts.some((c) => c.length < HISTOGRAM_BINS)) {
      return Promise.reject(new RangeError(`deltaHistogram: ${count} selections (at most ${MAX_TASK_MODELS}), ${params.prefixes.length} prefixes, ${counts.length} histograms of ${HISTOGRAM_BINS} bins`));
    }
    if (count === 0) return Promise.resolve();
    if (params.step === 'F16') return this.host().deltaHistogram(base, selections, params, counts);
    const header = countHeader(params.step, params.prefixes.map((p) => (p === undefined ? COUNT_FIRST_PASS : p)), false);
    return this.serial(() =>
      this.runCounts([base, ...selections], header, count * HISTOGRAM_BINS, false, (bins) => {
        counts.forEach((total, j) => {
          for (let b = 0, at = j * HISTOGRAM_BINS; b < HISTOGRAM_BINS; b++, at++) if (bins[at]) total[b]! += bins[at]!;
        });
      }),
    );
  }

  // Where the ties at a threshold stop being kept: the device counts each window's elements at the
  // threshold's bits (order-free); the host then scans, in index order, only the window in which
  // the wanted one lies (its CPU backend's deltaFind on that window), so the answer is the same.
  deltaFind(base: HostArray, selections: readonly HostArray[], params: DeltaFindParams): Promise<DeltaFound[]> {
    const count = selections.length;
    if (count > MAX_TASK_MODELS || params.bits.length !== count || params.ranks.length !== count) {
      return Promise.reject(new RangeError(`deltaFind: ${count} selections (at most ${MAX_TASK_MODELS}), ${params.bits.length} bits, ${params.ranks.length} ranks`));
    }
    if (count === 0) return Promise.resolve([]);
    if (params.step === 'F16') return this.host().deltaFind(base, selections, params);
    const header = countHeader(params.step, params.bits, true);
    return this.serial(async () => {
      const windows: { start: number; length: number; counts: Uint32Array }[] = [];
      await this.runCounts([base, ...selections], header, count, true, (tally, start, length) => windows.push({ start, length, counts: tally.slice(0, count) }));
      windows.sort((a, b) => a.start - b.start);
      const found: DeltaFound[] = [];
      for (let j = 0; j < count; j++) {
        const rank = params.ranks[j]!;
        let before = 0;
        const at = windows.find((w) => {
          if (before + w.counts[j]! > rank) return true;
          before += w.counts[j]!;
          return false;
        });
        if (!at) {
          found.push({ count: before, index: -1 });
          continue;
        }
        const [one] = await this.host().deltaFind(sliceHost(base, at.start, at.length), [sliceHost(selections[j]!, at.start, at.length)], {
          step: params.step,
          bits: [params.bits[j]!],
          ranks: [rank - before],
        });
        if (!one || one.index < 0) throw new Error(`deltaFind: the device counted ${at.counts[j]} elements at 0x${(params.bits[j]! >>> 0).toString(16)} in a window where the host finds ${one?.count ?? 0}`);
        found.push({ count: before + one.count, index: at.start + one.index });
      }
      return found;
    });
  }

  // mergekit's L1 sums: f64, added in index order (WGSL has no f64; a parallel sum rounds otherwise).
  deltaSums(base: HostArray, models: readonly HostArray[], params: DeltaSumsParams, sums: Float64Array): Promise<void> {
    return this.host().deltaSums(base, models, params, sums);
  }

  // DELLA's per-row ranks on the device (wgsl.ts rankShader): a workgroup per row computes the
  // row's |δ| bits and sorts its positions with a stable radix sort (exact integer ranks, one
  // dispatch a digit), then a last dispatch draws the keep bytes. One model at a time, every window
  // of the call, so the longest row (4,194,304 elements, 48 MiB of scratch) fits one window. A row
  // longer than a window (`windowElements` set below it, or a device whose largest binding cannot
  // hold its scratch) is ranked by the host's CPU backend instead: the same exact ranks, so the
  // same bytes.
  rowRankMasks(base: HostArray, models: readonly HostArray[], params: RowRankParams, keeps: readonly Uint8Array[]): Promise<void> {
    const count = models.length;
    try {
      checkRowRanks(base, models, params, keeps);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const length = base.data.length;
    if (length === 0 || count === 0) return Promise.resolve();
    if (params.step === 'F16') return this.host().rowRankMasks(base, models, params, keeps);
    const n = params.rowLength;
    const mixed = models.some((m) => m.dtype !== base.dtype);
    const inSize = mixed ? 4 : bytesPerElement(base.dtype);
    const capacity = Math.min(
      Math.floor(this.windowBytes / RANK_SCRATCH_BYTES),
      Math.floor((this.windowBytes / 2 - 256) / inSize),
      this.options.windowElements ?? Infinity,
      Math.max(n, RANK_WINDOW_ELEMENTS),
    );
    const rows = Math.floor(capacity / n);
    // llvmpipe ends a loop after 65,535 iterations counted over the whole invocation: the most a
    // digit pass's invocation takes (wgsl.ts rankOp; 49,300 for the longest row in groups of 128,
    // so only a device with smaller workgroups would send long rows to the host).
    const wg = this.rankGroup;
    const iterations = 1.5 * Math.ceil(n / wg) + (3 * RANK_BINS) / wg + wg + 16;
    if (rows < 1 || RANK_BINS % wg !== 0 || iterations > 65_000) return this.host().rowRankMasks(base, models, params, keeps);
    return this.serial(async () => {
      const inputs: HostArray[] = mixed ? [base, ...models].map((i) => ({ dtype: 'F32', data: toF32(i) })) : [base, ...models];
      for (let j = 0; j < count; j++) await this.runRanks(inputs[0]!, inputs[j + 1]!, params, j, rows * n, keeps[j]!);
    });
  }

  // torch's own summation orders are sequential chains: the host computes them as it computes them.
  normLanes(inputs: readonly HostArray[], lanes: Float32Array): Promise<void> {
    return this.host().normLanes(inputs, lanes);
  }

  dotRows(a: HostArray, b: HostArray, n0: number, n1: number, state: CascadeState, step: StepDtype = 'F32'): Promise<void> {
    return this.host().dotRows(a, b, n0, n1, state, step);
  }

  // karcher's Gram sums: f64 products added in index order; WGSL has no f64.
  gramSums(inputs: readonly HostArray[], sums: Float64Array): Promise<void> {
    return this.host().gramSums(inputs, sums);
  }

  // multislerp's last pass and mean of units: f32 steps, the divisions by div_ieee (wgsl.ts), so
  // the quotients are rounded as the CPU rounds them.
  unitTangent(values: readonly HostArray[], mean: HostArray, base: HostArray | undefined, params: UnitTangentParams, out: HostArray): Promise<void> {
    try {
      checkUnitTangent(values, params);
    } catch (error) {
      return Promise.reject(error);
    }
    const header = elementwiseHeader(values.length, {
      p0: params.meanNorm,
      p1: params.averageNorm,
      flags: base ? 1 : 0,
      weights: unitSlots({ [UNIT_DIVISORS]: params.divisors, [UNIT_WEIGHTS]: params.weights, [UNIT_DOTS]: params.dots, [UNIT_EXP]: [params.cos ?? 1, params.sinc ?? 1] }),
    });
    return this.serial(() => this.run('unitTangent', [...values, mean, ...(base ? [base] : [])], out, header));
  }

  unitSum(inputs: readonly HostArray[], divisors: readonly number[], weights: readonly number[], out: HostArray, options?: UnitSumOptions): Promise<void> {
    try {
      checkUnitSum(inputs, divisors, weights);
    } catch (error) {
      return Promise.reject(error);
    }
    // No input: nothing to read on the device (the sum of nothing, on the host); 16-bit steps on the host, as nearswap's.
    if (inputs.length === 0 || (options?.step ?? 'F32') !== 'F32') return this.host().unitSum(inputs, divisors, weights, out, options);
    const header = elementwiseHeader(inputs.length, {
      flags: options?.signedZeros ? 1 : 0,
      weights: unitSlots({ [UNIT_DIVISORS]: divisors, [UNIT_WEIGHTS]: weights }),
    });
    return this.serial(() => this.run('unitSum', inputs, out, header));
  }

  // karcher's merge pass: Σ coefficient·quotient in f64 (53-bit products and sums), which WGSL does not have.
  unitMix(inputs: readonly HostArray[], divisors: readonly number[], coefficients: readonly number[], scale: number, out: HostArray): Promise<void> {
    return this.host().unitMix(inputs, divisors, coefficients, scale, out);
  }

  // sce's variance: Welford's update in f64, which WGSL does not have; on the host.
  /** Sort keys are built and sorted on the host's threads (TIES' and sce's ties). */
  keySorter(): ComputeBackend | undefined {
    return this.host().keySorter?.();
  }

  deltaVariance(base: HostArray, models: readonly HostArray[], out: HostArray, step?: StepDtype): Promise<void> {
    return this.host().deltaVariance(base, models, out, step);
  }

  // sce's merge pass: f32 division, which WGSL does not round correctly; on the host.
  sceMerge(base: HostArray, models: readonly HostArray[], params: SceMergeParams, out: HostArray): Promise<void> {
    return this.host().sceMerge(base, models, params, out);
  }

  sceDelta(base: HostArray, model: HostArray, params: SceDeltaParams, out: HostArray): Promise<void> {
    return this.host().sceDelta(base, model, params, out);
  }

  // ramplus_tl's counts: few and integer; on the host, with the merge pass that follows them.
  ramCounts(base: HostArray, models: readonly HostArray[], params: RamParams, counts: Float64Array): Promise<void> {
    return this.host().ramCounts(base, models, params, counts);
  }

  // ram's merge pass: f32 division (the mean of the changed δ), which WGSL does not round correctly; on the host.
  ramMerge(base: HostArray, models: readonly HostArray[], params: RamParams, out: HostArray): Promise<void> {
    return this.host().ramMerge(base, models, params, out);
  }

  private host(): ComputeBackend {
    if (this.disposed) throw new Error('the GPU backend was disposed');
    this.hostBackend ??= this.options.host?.() ?? new WasmBackend();
    return this.hostBackend;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue.catch(() => undefined);
    for (const slot of this.slots) for (const b of [slot.params, slot.input, slot.output, slot.readback]) b.destroy();
    this.slots.length = 0;
    this.device.destroy();
    await this.hostBackend?.dispose();
  }

  /** For tests: destroys the device as a driver reset would, without disposing the backend. */
  simulateDeviceLoss(): void {
    this.device.destroy();
  }

  /**
   * Copies the slot's output to its readback buffer at the end of `encoder`, submits, and sets the
   * slot's `pending` to the mapping, which hands `take` the first `bytes` of it before unmapping.
   */
  private submitReadback(slot: Slot, encoder: GPUCommandEncoder, bytes: number, take: (mapped: ArrayBuffer) => void): void {
    encoder.copyBufferToBuffer(slot.output, 0, slot.readback, 0, bytes);
    this.device.queue.submit([encoder.finish()]);
    slot.pending = slot.readback.mapAsync(MAP_READ, 0, bytes).then(() => {
      take(slot.readback.getMappedRange(0, bytes));
      slot.readback.unmap();
    });
    slot.pending.catch(() => undefined);
  }

  /** The k-th slot of the ring (mod its length), once its previous window is read back. */
  private async readySlot(k: number): Promise<Slot> {
    const slot = this.slots[k % this.slots.length]!;
    if (slot.pending) await slot.pending;
    this.check();
    return slot;
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Runs kernel `op` over `inputs` window by window. `header` is its uniform block (word 0, the
   * window's length, and word 1, the segment stride, are set here; `perWindow` sets the rest that
   * changes); `masks` (one byte per element) follow the inputs as extra segments.
   */
  private async run(
    op: ElementwiseOp | 'task',
    inputs: readonly HostArray[],
    out: HostArray,
    header: ArrayBuffer,
    masks: readonly Uint8Array[] = [],
    perWindow?: (view: DataView, start: number) => void,
  ): Promise<void> {
    if (this.disposed) throw new Error('the GPU backend was disposed');
    if (this.lost) throw new GpuDeviceLostError(this.lost);
    checkLengths(inputs, out);
    const n = out.data.length;
    if (n === 0) return;
    // A shader reads one input dtype, or f32 and one 16-bit dtype (multislerp's f32 mean or task
    // vectors beside the raw models: `Params.wide` marks the f32 inputs, every segment as wide as
    // theirs). Anything else (bf16 with f16; the task kernel, whose block has no such word) goes up
    // to f32 on the host.
    const dtypes = new Set(inputs.map((i) => i.dtype));
    const narrow = [...dtypes].filter((d) => d !== 'F32');
    const wide = op !== 'task' && dtypes.size === 2 && narrow.length === 1 && inputs.length <= 32;
    const ins: HostArray[] = dtypes.size > 1 && !wide ? inputs.map((i) => ({ dtype: 'F32', data: toF32(i) })) : [...inputs];
    const inDtype = wide ? narrow[0]! : ins[0]!.dtype;
    const inSize = wide ? 4 : bytesPerElement(inDtype);
    const outSize = bytesPerElement(out.dtype);
    let window = Math.floor(this.windowBytes / ((ins.length + masks.length) * inSize));
    window = Math.min(window, Math.floor(this.windowBytes / outSize), this.options.windowElements ?? Infinity);
    window = Math.max(2, window - (window % 2));
    const segBytes = align(window * inSize, 256);
    const pipeline = this.pipeline(op, inDtype, out.dtype, wide);
    this.ensureSlots((ins.length + masks.length) * segBytes, window * outSize);
    const view = new DataView(header);
    view.setUint32(4, segBytes / 4, true);
    if (wide) view.setUint32(24, ins.reduce((bits, input, m) => (input.dtype === 'F32' ? bits | (1 << m) : bits), 0) >>> 0, true);

    let turn = 0;
    await this.overSlots(async () => {
      for (let start = 0; start < n; start += window) {
        const length = Math.min(window, n - start);
        const slot = await this.readySlot(turn++);
        view.setUint32(0, length, true);
        perWindow?.(view, start);
        this.device.queue.writeBuffer(slot.params, 0, header);
        ins.forEach((input, m) => this.upload(slot.input, m * segBytes, hostBytes(sliceHost(input, start, length))));
        masks.forEach((mask, k) => this.upload(slot.input, (ins.length + k) * segBytes, mask.subarray(start, start + length)));
        const encoder = this.device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, slot.bindGroup);
        pass.dispatchWorkgroups(...dispatchGrid(Math.ceil(Math.ceil(length / 2) / this.workgroupSize)));
        pass.end();
        const outBytes = align(length * outSize, 4);
        const target = hostBytes(sliceHost(out, start, length));
        this.submitReadback(slot, encoder, outBytes, (mapped) => target.set(new Uint8Array(mapped, 0, target.byteLength)));
      }
    });
  }

  /**
   * DELLA's masks of one model (`rowRankMasks`) window by window, `window` elements (whole rows) at
   * most: one upload of the base's and the model's rows, the key and three digit dispatches (a
   * workgroup per row), the keep dispatch (4 elements an invocation), one readback of the keep bytes.
   */
  private async runRanks(base: HostArray, model: HostArray, params: RowRankParams, j: number, window: number, keep: Uint8Array): Promise<void> {
    if (this.disposed) throw new Error('the GPU backend was disposed');
    if (this.lost) throw new GpuDeviceLostError(this.lost);
    const total = base.data.length;
    const n = params.rowLength;
    const inDtype = base.dtype;
    const segBytes = align(window * bytesPerElement(inDtype), 256);
    const pipelines = this.rankPipelines(inDtype);
    const sort = pipelines.slice(0, 4);
    const draw = pipelines[4]!;
    this.ensureSlots(2 * segBytes, RANK_SCRATCH_BYTES * window);
    const header = new ArrayBuffer(RANK_PARAMS_BYTES);
    const view = new DataView(header);
    const { low, span } = dellaProbabilities(params.densities[j]!, params.epsilons[j]!);
    view.setUint32(4, segBytes / 4, true);
    view.setUint32(8, n, true);
    view.setUint32(24, params.step === 'BF16' ? 8 : 0, true);
    view.setUint32(28, params.keys[j]! >>> 0, true);
    view.setFloat32(32, low, true);
    view.setFloat32(36, span, true);
    view.setFloat32(40, n - 1, true);
    view.setUint32(48, window, true);
    let turn = 0;
    await this.overSlots(async () => {
      for (let start = 0; start < total; start += window) {
        const length = Math.min(window, total - start);
        const slot = await this.readySlot(turn++);
        const index = params.start + start;
        view.setUint32(0, length, true);
        view.setUint32(16, index >>> 0, true);
        view.setUint32(20, Math.floor(index / 2 ** 32), true);
        view.setUint32(44, length / n, true);
        this.device.queue.writeBuffer(slot.params, 0, header);
        this.upload(slot.input, 0, hostBytes(sliceHost(base, start, length)));
        this.upload(slot.input, segBytes, hostBytes(sliceHost(model, start, length)));
        const encoder = this.device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        pass.setBindGroup(0, slot.bindGroup);
        // One dispatch a step (WebGPU orders their storage writes); the keep draw 4 elements an invocation.
        for (const pipeline of sort) {
          pass.setPipeline(pipeline);
          pass.dispatchWorkgroups(...dispatchGrid(length / n));
        }
        pass.setPipeline(draw);
        pass.dispatchWorkgroups(...dispatchGrid(Math.ceil(Math.ceil(length / 4) / this.rankGroup)));
        pass.end();
        const outBytes = align(length, 4);
        const target = keep.subarray(start, start + length);
        this.submitReadback(slot, encoder, outBytes, (mapped) => target.set(new Uint8Array(mapped, 0, length)));
      }
    });
  }

  /** The row-rank entry points for one input dtype (wgsl.ts rankShader), in dispatch order: keys, the three digit passes, keep. */
  private rankPipelines(input: FloatDtype): GPUComputePipeline[] {
    const key = `rank:${input}`;
    const entries = ['keys', 'digit0', 'digit1', 'digit2', 'keep'];
    if (!this.pipelines.has(`${key}:keep`)) {
      const module = this.device.createShaderModule({ code: rankShader(input, this.rankGroup), label: key });
      for (const entryPoint of entries) this.pipelines.set(`${key}:${entryPoint}`, this.device.createComputePipeline({ layout: this.pipelineLayout, compute: { module, entryPoint }, label: `${key}:${entryPoint}` }));
    }
    return entries.map((e) => this.pipelines.get(`${key}:${e}`)!);
  }

  /**
   * Runs the count kernel over `inputs` (the base, then the selections) window by window, windows cut
   * as run() cuts them. Its counters (`words` u32s) live in each slot's output buffer, cleared before
   * the first window counted into them. `perWindow`: read back after each window and handed to
   * `collect` with the window's place; else read back once at the end (or when a slot's counters
   * hold nearly 2^32 elements) with start -1. `collect` sees a mapped view: copy what it keeps.
   */
  private async runCounts(
    inputs: readonly HostArray[],
    header: ArrayBuffer,
    words: number,
    perWindow: boolean,
    collect: (counts: Uint32Array, start: number, length: number) => void,
  ): Promise<void> {
    if (this.disposed) throw new Error('the GPU backend was disposed');
    if (this.lost) throw new GpuDeviceLostError(this.lost);
    checkLengths(inputs.slice(1), inputs[0]!);
    const n = inputs[0]!.data.length;
    if (n === 0) return;
    const mixed = inputs.some((i) => i.dtype !== inputs[0]!.dtype);
    const ins: HostArray[] = mixed ? inputs.map((i) => ({ dtype: 'F32', data: toF32(i) })) : [...inputs];
    const inDtype = ins[0]!.dtype;
    const inSize = bytesPerElement(inDtype);
    let window = Math.min(Math.floor(this.windowBytes / (ins.length * inSize)), this.options.windowElements ?? Infinity);
    window = Math.max(2, window - (window % 2));
    const segBytes = align(window * inSize, 256);
    const outBytes = words * 4;
    const pipeline = this.pipeline('count', inDtype, inDtype);
    this.ensureSlots(ins.length * segBytes, outBytes);
    const view = new DataView(header);
    view.setUint32(4, segBytes / 4, true);
    // A window is at most 64 MiB of one input (< 2^32 elements), so one window's counts fit a u32;
    // a slot counting several windows is read back before its elements could reach 2^32.
    const limit = Math.min(this.options.countLimit ?? 0xffffffff, 0xffffffff);
    // Once the call has failed, a readback that lands late adds nothing: the caller may be
    // restoring its counts to rerun the call elsewhere.
    let ended = false;
    const readBack = (slot: Slot, start: number, length: number) => {
      slot.held = 0;
      this.submitReadback(slot, this.device.createCommandEncoder(), outBytes, (mapped) => {
        if (!ended) collect(new Uint32Array(mapped), start, length);
      });
    };

    let turn = 0;
    await this.overSlots(async () => {
      for (const slot of this.slots) slot.held = 0;
      for (let start = 0; start < n; start += window) {
        const length = Math.min(window, n - start);
        const slot = await this.readySlot(turn++);
        if (slot.held > 0 && slot.held + length > limit) {
          readBack(slot, -1, 0);
          await slot.pending;
        }
        view.setUint32(0, length, true);
        this.device.queue.writeBuffer(slot.params, 0, header);
        ins.forEach((input, m) => this.upload(slot.input, m * segBytes, hostBytes(sliceHost(input, start, length))));
        const encoder = this.device.createCommandEncoder();
        if (slot.held === 0) encoder.clearBuffer(slot.output, 0, outBytes);
        const pass = encoder.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, slot.bindGroup);
        pass.dispatchWorkgroups(...dispatchGrid(Math.ceil(Math.ceil(length / 2) / this.workgroupSize)));
        pass.end();
        this.device.queue.submit([encoder.finish()]);
        slot.held += length;
        if (perWindow) {
          readBack(slot, start, length);
        } else {
          // No readback to wait for: the ring still keeps at most one window per slot in flight.
          slot.pending = this.device.queue.onSubmittedWorkDone();
          slot.pending.catch(() => undefined);
        }
      }
      for (const slot of this.slots) {
        if (slot.held === 0) continue;
        if (slot.pending) await slot.pending;
        readBack(slot, -1, 0);
      }
    }, () => {
      ended = true;
      for (const s of this.slots) s.held = 0;
    });
  }

  /**
   * Runs `work` (windows sent round the slot ring), then waits for every slot's last readback; a
   * failure becomes GpuDeviceLostError when the device is gone. The slots are left idle whatever
   * happens (`settle` clears what else the caller keeps in them).
   */
  private async overSlots(work: () => Promise<void>, settle?: () => void): Promise<void> {
    try {
      await work();
      await Promise.all(this.slots.map((s) => s.pending));
    } catch (error) {
      throw this.lost ? new GpuDeviceLostError(this.lost) : asLoss(error);
    } finally {
      settle?.();
      for (const s of this.slots) s.pending = undefined;
    }
    this.check();
  }

  private check(): void {
    if (this.lost) throw new GpuDeviceLostError(this.lost);
    if (this.validationError) throw new Error(`WebGPU error: ${this.validationError}`);
  }

  /** writeBuffer needs a size that is a multiple of 4 and rejects SharedArrayBuffer views: copy those. */
  private upload(buffer: GPUBuffer, offset: number, bytes: Uint8Array): void {
    if (bytes.byteLength % 4 === 0 && !(bytes.buffer instanceof SharedArrayBuffer)) {
      this.device.queue.writeBuffer(buffer, offset, bytes as Uint8Array<ArrayBuffer>);
      return;
    }
    const size = align(bytes.byteLength, 4);
    if (this.staging.byteLength < size) this.staging = new Uint8Array(size);
    this.staging.set(bytes);
    this.staging.fill(0, bytes.byteLength, size);
    this.device.queue.writeBuffer(buffer, offset, this.staging, 0, size);
  }

  private pipeline(op: ElementwiseOp | 'task' | 'count', input: FloatDtype, output: FloatDtype, wide = false): GPUComputePipeline {
    const key = `${op}:${wide ? 'F32+' : ''}${input}:${output}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      const code =
        op === 'task'
          ? taskShader(input, output, this.workgroupSize)
          : op === 'count'
            ? countShader(input, this.workgroupSize)
            : elementwiseShader(op, input, output, this.workgroupSize, wide);
      const module = this.device.createShaderModule({ code, label: key });
      pipeline = this.device.createComputePipeline({ layout: this.pipelineLayout, compute: { module, entryPoint: 'main' }, label: key });
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /** Grows the ring's buffers when a call needs more than they hold. */
  private ensureSlots(inputBytes: number, outputBytes: number): void {
    const first = this.slots[0];
    if (first && first.input.size >= inputBytes && first.output.size >= align(outputBytes, 4)) return;
    const inSize = Math.max(inputBytes, first?.input.size ?? 0);
    const outSize = align(Math.max(outputBytes, first?.output.size ?? 0), 4);
    for (const slot of this.slots) for (const b of [slot.params, slot.input, slot.output, slot.readback]) b.destroy();
    this.slots.length = 0;
    for (let i = 0; i < (this.options.slots ?? 3); i++) {
      const params = this.device.createBuffer({ size: UNIFORM_BYTES, usage: USAGE.UNIFORM | USAGE.COPY_DST });
      const input = this.device.createBuffer({ size: inSize, usage: USAGE.STORAGE | USAGE.COPY_DST });
      // COPY_DST: the count kernels clear their counters with clearBuffer.
      const output = this.device.createBuffer({ size: outSize, usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST });
      const readback = this.device.createBuffer({ size: outSize, usage: USAGE.MAP_READ | USAGE.COPY_DST });
      const bindGroup = this.device.createBindGroup({
        layout: this.layout,
        entries: [
          { binding: 0, resource: { buffer: params } },
          { binding: 1, resource: { buffer: input } },
          { binding: 2, resource: { buffer: output } },
        ],
      });
      this.slots.push({ params, input, output, readback, bindGroup, pending: undefined, held: 0 });
    }
  }
}

/** The uniform block of the elementwise kernels (wgsl.ts `Params`). */
function elementwiseHeader(count: number, params: { p0?: number; p1?: number; flags?: number; weights?: number[] }): ArrayBuffer {
  const header = new ArrayBuffer(PARAMS_BYTES);
  const view = new DataView(header);
  view.setUint32(8, count, true);
  view.setFloat32(16, params.p0 ?? 0, true);
  view.setFloat32(20, params.p1 ?? 0, true);
  view.setUint32(28, params.flags ?? 0, true);
  params.weights?.forEach((w, i) => view.setFloat32(32 + 4 * i, w, true));
  return header;
}

/** unitSum's and unitTangent's per-input constants in the f32 slots of `Params.w` (wgsl.ts UNIT_*). */
function unitSlots(at: Record<number, readonly number[]>): number[] {
  const slots = new Array<number>(UNIT_EXP + 2).fill(0);
  for (const [offset, values] of Object.entries(at)) values.forEach((v, j) => (slots[Number(offset) + j] = v));
  return slots;
}

/** The uniform block of the count kernel (wgsl.ts COUNT_HEADER): step, mode and one target per selection. */
function countHeader(step: StepDtype, picks: readonly number[], find: boolean): ArrayBuffer {
  const header = new ArrayBuffer(COUNT_PARAMS_BYTES);
  const view = new DataView(header);
  view.setUint32(8, picks.length, true);
  view.setUint32(16, (step === 'BF16' ? COUNT_BF16_STEP : 0) | (find ? COUNT_FIND : 0), true);
  picks.forEach((p, j) => view.setUint32(32 + 4 * j, p >>> 0, true));
  return header;
}

function align(value: number, to: number): number {
  return Math.ceil(value / to) * to;
}

/** A failed mapAsync after the device is gone reads as an abort; anything else stays what it is. */
function asLoss(error: unknown): unknown {
  const name = (error as Error | undefined)?.name;
  return name === 'AbortError' || name === 'OperationError' ? new GpuDeviceLostError((error as Error).message) : error;
}
