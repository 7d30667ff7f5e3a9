import { ReferenceBackend } from './reference';
import type { CascadeState, ComputeBackend, DeltaFindParams, DeltaFound, DeltaHistogramParams, DeltaSumsParams, DeviceChoice, HostArray, RamParams, RowRankParams, SceDeltaParams, SceMergeParams, StepDtype, TaskArithmeticParams, UnitSumOptions, UnitTangentParams } from './types';
import { WasmBackend, wasmSimdAvailable, type WasmBackendOptions } from './wasm-backend';
import { GpuDeviceLostError, openWebGpu, type WebGpuOptions } from './webgpu-backend';

export interface SelectBackendParams {
  /**
   * `auto`: a hardware GPU when there is one, else the CPU (a software adapter such as llvmpipe is
   * slower than the CPU backend, so auto passes it by). `gpu`: the GPU, a software one too; with
   * none, the CPU, said loudly. `cpu`: the CPU.
   */
  device: DeviceChoice;
  /** Told which backend was chosen and why, and of a fallback to the CPU later in the run. */
  onNotice?: (message: string) => void;
  gpu?: WebGpuOptions;
  cpu?: WasmBackendOptions;
}

export interface SelectedBackend {
  backend: ComputeBackend;
  /** One line for the user: "GPU: NVIDIA GeForce RTX 4090 (WebGPU, vulkan)", "CPU: WebAssembly SIMD, 7 worker threads". */
  description: string;
}

/** Why `auto` found no hardware GPU in this process, once it has looked. */
let noHardwareGpu: string | undefined;

/**
 * Picks where a merge computes. The GPU backend comes wrapped so that a lost device (a driver reset,
 * an unplugged eGPU) moves the rest of the run to the CPU instead of failing it.
 */
export async function selectBackend({ device, onNotice, gpu, cpu }: SelectBackendParams): Promise<SelectedBackend> {
  const notice = onNotice ?? (() => undefined);
  const cpuBackend = (): ComputeBackend => {
    if (wasmSimdAvailable()) return new WasmBackend(cpu);
    notice('WARNING: WebAssembly SIMD is not available in this runtime; computing with the slow TypeScript reference');
    return new ReferenceBackend();
  };
  if (device === 'cpu') {
    const backend = cpuBackend();
    notice(`computing on the ${backend.description}`);
    return { backend, description: backend.description };
  }
  // Adapters do not come and go within a run: once auto has found no hardware one, it need not look again.
  const known = device === 'auto' && !gpu ? noHardwareGpu : undefined;
  if (known) {
    const backend = cpuBackend();
    notice(`${known}; computing on the ${backend.description}`);
    return { backend, description: backend.description };
  }
  const opened = await openWebGpu({ host: cpuBackend, ...gpu });
  if ('backend' in opened) {
    const { adapter } = opened.backend;
    if (!adapter.software || device === 'gpu') {
      const description = `GPU: ${adapter.name} (WebGPU, ${adapter.backend}${adapter.software ? ', software' : ''})`;
      notice(`computing on the ${description}${adapter.software ? '; a software adapter is slower than the CPU backend' : ''}`);
      return { backend: new FallbackBackend(opened.backend, cpuBackend, notice), description };
    }
    await opened.backend.dispose();
    const backend = cpuBackend();
    if (!gpu) noHardwareGpu = `the only GPU adapter is a software one (${adapter.name}), slower than the CPU here (--device gpu uses it anyway)`;
    notice(`the only GPU adapter is a software one (${adapter.name}), slower than the CPU here; computing on the ${backend.description} (--device gpu uses it anyway)`);
    return { backend, description: backend.description };
  }
  if (device === 'auto' && !gpu) noHardwareGpu = opened.reason;
  const backend = cpuBackend();
  notice(device === 'gpu' ? `WARNING: --device gpu, but ${opened.reason}; computing on the ${backend.description} instead` : `${opened.reason}; computing on the ${backend.description}`);
  return { backend, description: backend.description };
}

/**
 * The GPU until its device is lost, then the CPU for the rest of the run: the call that saw the loss
 * is run again on the CPU (its inputs are still in host memory), and every call after it.
 */
export class FallbackBackend implements ComputeBackend {
  private fallback: ComputeBackend | undefined;

  constructor(
    private readonly primary: ComputeBackend,
    private readonly makeFallback: () => ComputeBackend,
    private readonly notice: (message: string) => void,
  ) {}

  get kind(): 'cpu' | 'gpu' {
    return this.fallback ? this.fallback.kind : this.primary.kind;
  }

  get description(): string {
    return this.fallback ? this.fallback.description : this.primary.description;
  }

  linear(inputs: readonly HostArray[], weights: readonly number[], normalize: boolean, out: HostArray, step?: StepDtype): Promise<void> {
    return this.call((b) => b.linear(inputs, weights, normalize, out, step));
  }

  nearswap(base: HostArray, other: HostArray, t: number, out: HostArray, step?: StepDtype): Promise<void> {
    return this.call((b) => b.nearswap(base, other, t, out, step));
  }

  blend2(c0: number, a: HostArray, c1: number, b: HostArray, out: HostArray, step?: StepDtype): Promise<void> {
    return this.call((backend) => backend.blend2(c0, a, c1, b, out, step));
  }

  taskArithmetic(base: HostArray, models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray): Promise<void> {
    return this.call((backend) => backend.taskArithmetic(base, models, params, out));
  }

  deltaHistogram(base: HostArray, selections: readonly HostArray[], params: DeltaHistogramParams, counts: readonly Float64Array[]): Promise<void> {
    // A call that fails half way may have counted part of its elements: it reruns from a copy.
    const before = counts.map((c) => c.slice());
    return this.call((backend) => backend.deltaHistogram(base, selections, params, counts), () => counts.forEach((c, j) => c.set(before[j]!)));
  }

  deltaFind(base: HostArray, selections: readonly HostArray[], params: DeltaFindParams): Promise<DeltaFound[]> {
    return this.call((backend) => backend.deltaFind(base, selections, params));
  }

  deltaSums(base: HostArray, models: readonly HostArray[], params: DeltaSumsParams, sums: Float64Array): Promise<void> {
    const before = sums.slice();
    return this.call((backend) => backend.deltaSums(base, models, params, sums), () => sums.set(before));
  }

  rowRankMasks(base: HostArray, models: readonly HostArray[], params: RowRankParams, keeps: readonly Uint8Array[]): Promise<void> {
    return this.call((backend) => backend.rowRankMasks(base, models, params, keeps));
  }

  normLanes(inputs: readonly HostArray[], lanes: Float32Array): Promise<void> {
    const before = lanes.slice();
    return this.call((backend) => backend.normLanes(inputs, lanes), () => lanes.set(before));
  }

  unitTangent(values: readonly HostArray[], mean: HostArray, base: HostArray | undefined, params: UnitTangentParams, out: HostArray): Promise<void> {
    return this.call((backend) => backend.unitTangent(values, mean, base, params, out));
  }

  unitMix(inputs: readonly HostArray[], divisors: readonly number[], coefficients: readonly number[], scale: number, out: HostArray): Promise<void> {
    return this.call((backend) => backend.unitMix(inputs, divisors, coefficients, scale, out));
  }

  deltaVariance(base: HostArray, models: readonly HostArray[], out: HostArray, step?: StepDtype): Promise<void> {
    return this.call((backend) => backend.deltaVariance(base, models, out, step));
  }

  keySorter(): ComputeBackend | undefined {
    return (this.fallback ?? this.primary).keySorter?.();
  }

  sceMerge(base: HostArray, models: readonly HostArray[], params: SceMergeParams, out: HostArray): Promise<void> {
    return this.call((backend) => backend.sceMerge(base, models, params, out));
  }

  sceDelta(base: HostArray, model: HostArray, params: SceDeltaParams, out: HostArray): Promise<void> {
    return this.call((backend) => backend.sceDelta(base, model, params, out));
  }

  ramCounts(base: HostArray, models: readonly HostArray[], params: RamParams, counts: Float64Array): Promise<void> {
    const before = counts.slice();
    return this.call((backend) => backend.ramCounts(base, models, params, counts), () => counts.set(before));
  }

  ramMerge(base: HostArray, models: readonly HostArray[], params: RamParams, out: HostArray): Promise<void> {
    return this.call((backend) => backend.ramMerge(base, models, params, out));
  }

  unitSum(inputs: readonly HostArray[], divisors: readonly number[], weights: readonly number[], out: HostArray, options?: UnitSumOptions): Promise<void> {
    return this.call((backend) => backend.unitSum(inputs, divisors, weights, out, options));
  }

  gramSums(inputs: readonly HostArray[], sums: Float64Array): Promise<void> {
    const before = sums.slice();
    return this.call((backend) => backend.gramSums(inputs, sums), () => sums.set(before));
  }

  dotRows(a: HostArray, b: HostArray, n0: number, n1: number, state: CascadeState, step?: StepDtype): Promise<void> {
    const acc = state.acc.slice();
    const rowsDone = state.rowsDone;
    return this.call(
      (backend) => backend.dotRows(a, b, n0, n1, state, step),
      () => {
        state.acc.set(acc);
        state.rowsDone = rowsDone;
      },
    );
  }

  async dispose(): Promise<void> {
    await Promise.all([this.primary.dispose(), this.fallback?.dispose()]);
  }

  private async call<T>(run: (backend: ComputeBackend) => Promise<T>, restore?: () => void): Promise<T> {
    if (!this.fallback) {
      try {
        return await run(this.primary);
      } catch (error) {
        if (!(error instanceof GpuDeviceLostError)) throw error;
        this.fallback ??= this.makeFallback();
        this.notice(`WARNING: ${error.message}; computing on the ${this.fallback.description} for the rest of the run`);
        void this.primary.dispose().catch(() => undefined);
        restore?.();
      }
    }
    return run(this.fallback!);
  }
}
