// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { readdir, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { FallbackBackend } from '../../src/main/engine/compute/select-backend';
import type { CascadeState, ComputeBackend, DeltaFindParams, DeltaHistogramParams, DeltaSumsParams, HostArray, RamParams, RowRankParams, SceDeltaParams, SceMergeParams, StepDtype, TaskArithmeticParams, UnitTangentParams } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { openWebGpu, type WebGpuBackend } from '../../src/main/engine/compute/webgpu-backend';
import { executePlan } from '../../src/main/engine/execute/execute-plan';
import { planRecipe, runMerge } from '../../src/main/engine/run-merge';
import type { ProgressEvent } from '../../src/shared/progress';
import { readModelF32, tempDir } from '../helpers';

// The golden cases of the methods that compute on a backend (linear, nearswap, slerp's blend, the
// task-vector family), run through the whole engine with
// --device cpu and --device gpu (llvmpipe here), with small GPU windows, and on the TypeScript
// reference backend: every output file must be the same bytes, and the same bits as mergekit's where
// the golden is exact.

interface GoldenCase {
  name: string;
  recipe: string;
  output: string;
  bar: string;
  method: string;
  args?: string[];
}
const ROOT = 'test/fixtures/golden';
const METHODS = new Set(['linear', 'nearswap', 'slerp', 'nuslerp', 'multislerp', 'model_stock', 'karcher', 'task_arithmetic', 'ties', 'dare_linear', 'dare_ties', 'breadcrumbs', 'breadcrumbs_ties', 'della', 'della_linear', 'sce', 'ram', 'ramplus_tl', 'arcee_fusion']);
const cases = (JSON.parse(readFileSync(join(ROOT, 'cases.json'), 'utf8')) as GoldenCase[]).filter(
  (c) => METHODS.has(c.method) && !c.name.startsWith('tok-') && !c.name.startsWith('lora-') && !c.args?.includes('--unsafe-truncate-embeddings'),
);

const probe = await openWebGpu({ windowElements: 100 });
const windowed = 'backend' in probe ? probe.backend : undefined;
if (!windowed) {
  console.warn(`\n*** GPU ENGINE TESTS SKIPPED: ${'reason' in probe ? probe.reason : ''}.\n*** On Linux without a GPU, install Mesa (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) for llvmpipe.\n`);
}
afterAll(() => windowed?.dispose());

/** The bytes of every safetensors file of a merged model, by file name. */
async function shardBytes(dir: string): Promise<Map<string, Buffer>> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
  return new Map(await Promise.all(files.map(async (f) => [f, await readFile(join(dir, f))] as const)));
}

function expectSameFiles(got: Map<string, Buffer>, want: Map<string, Buffer>, label: string): void {
  expect([...got.keys()], label).toEqual([...want.keys()]);
  for (const [file, bytes] of want) expect(got.get(file)!.equals(bytes), `${label}: ${file}`).toBe(true);
}

async function recipeOf(c: GoldenCase) {
  const recipeFile = join(ROOT, 'recipes', c.recipe);
  return { recipeFile, recipeText: await readFile(recipeFile, 'utf8') };
}

describe('methods on every backend give the same files', () => {
  it('has cases of every method that computes on a backend', () => {
    expect(new Set(cases.map((c) => c.method))).toEqual(METHODS);
  });

  for (const c of cases) {
    it.skipIf(!windowed)(`${c.name} (${c.method}, ${c.bar}): --device cpu = --device gpu = GPU in 100-element windows = reference`, async () => {
      const dir = await tempDir();
      const recipe = await recipeOf(c);
      const outputs = new Map<string, Map<string, Buffer>>();
      for (const device of ['cpu', 'gpu'] as const) {
        const events: ProgressEvent[] = [];
        const out = join(dir, device);
        await runMerge({ ...recipe, outDir: out, options: { device, outShardSize: 20_000 }, onProgress: (e) => events.push(e) });
        const announced = events.filter((e) => e.type === 'device');
        expect(announced).toHaveLength(1);
        expect(announced[0]!.kind).toBe(device);
        if (device === 'gpu') expect(announced[0]!.description).toContain(windowed!.adapter.name);
        outputs.set(device, await shardBytes(out));
      }
      // The same plan on a backend the test holds: small GPU windows (each tensor in several), and the reference.
      const plan = await planRecipe({ ...recipe, options: { outShardSize: 20_000 } });
      for (const [name, backend] of [['windowed', windowed!], ['reference', new ReferenceBackend()]] as const) {
        const out = join(dir, name);
        await executePlan(plan, { outDir: out, backend, ...(c.method === 'slerp' || c.method === 'ties' ? { memoryBudget: 2048 } : {}) });
        outputs.set(name, await shardBytes(out));
      }
      const want = outputs.get('reference')!;
      for (const name of ['cpu', 'gpu', 'windowed']) expectSameFiles(outputs.get(name)!, want, `${c.name} ${name}`);

      if (c.bar === 'exact') {
        const golden = await readModelF32(join(ROOT, 'outputs', c.output));
        const got = await readModelF32(join(dir, 'gpu'));
        for (const [tensor, { values }] of golden) {
          const mine = got.get(tensor)!.values;
          const bits = (v: Float32Array) => new Uint32Array(v.buffer, v.byteOffset, v.length);
          expect(Buffer.from(bits(mine).buffer).equals(Buffer.from(bits(values).buffer)), `${c.name}: ${tensor} against mergekit`).toBe(true);
        }
      }
    });
  }
});

/** The GPU until its `lossAt`-th call, when the device is destroyed as a driver reset would. */
class LosingBackend implements ComputeBackend {
  readonly kind = 'gpu';
  calls = 0;
  constructor(
    private readonly gpu: WebGpuBackend,
    private readonly lossAt: number,
  ) {}
  get description() {
    return this.gpu.description;
  }
  private before(): void {
    if (++this.calls === this.lossAt) this.gpu.simulateDeviceLoss();
  }
  linear(inputs: readonly HostArray[], weights: readonly number[], normalize: boolean, out: HostArray, step?: StepDtype) {
    this.before();
    return this.gpu.linear(inputs, weights, normalize, out, step);
  }
  nearswap(base: HostArray, other: HostArray, t: number, out: HostArray, step?: StepDtype) {
    this.before();
    return this.gpu.nearswap(base, other, t, out, step);
  }
  blend2(c0: number, a: HostArray, c1: number, b: HostArray, out: HostArray, step?: StepDtype) {
    this.before();
    return this.gpu.blend2(c0, a, c1, b, out, step);
  }
  taskArithmetic(base: HostArray, models: readonly HostArray[], params: TaskArithmeticParams, out: HostArray) {
    this.before();
    return this.gpu.taskArithmetic(base, models, params, out);
  }
  deltaHistogram(base: HostArray, selections: readonly HostArray[], params: DeltaHistogramParams, counts: readonly Float64Array[]) {
    this.before();
    return this.gpu.deltaHistogram(base, selections, params, counts);
  }
  deltaFind(base: HostArray, selections: readonly HostArray[], params: DeltaFindParams) {
    this.before();
    return this.gpu.deltaFind(base, selections, params);
  }
  deltaSums(base: HostArray, models: readonly HostArray[], params: DeltaSumsParams, sums: Float64Array) {
    this.before();
    return this.gpu.deltaSums(base, models, params, sums);
  }
  rowRankMasks(base: HostArray, models: readonly HostArray[], params: RowRankParams, keeps: readonly Uint8Array[]) {
    this.before();
    return this.gpu.rowRankMasks(base, models, params, keeps);
  }
  normLanes(inputs: readonly HostArray[], lanes: Float32Array) {
    this.before();
    return this.gpu.normLanes(inputs, lanes);
  }
  unitTangent(values: readonly HostArray[], mean: HostArray, base: HostArray | undefined, params: UnitTangentParams, out: HostArray) {
    this.before();
    return this.gpu.unitTangent(values, mean, base, params, out);
  }
  unitMix(inputs: readonly HostArray[], divisors: readonly number[], coefficients: readonly number[], scale: number, out: HostArray) {
    this.before();
    return this.gpu.unitMix(inputs, divisors, coefficients, scale, out);
  }
  deltaVariance(base: HostArray, models: readonly HostArray[], out: HostArray) {
    this.before();
    return this.gpu.deltaVariance(base, models, out);
  }
  sceMerge(base: HostArray, models: readonly HostArray[], params: SceMergeParams, out: HostArray) {
    this.before();
    return this.gpu.sceMerge(base, models, params, out);
  }
  sceDelta(base: HostArray, model: HostArray, params: SceDeltaParams, out: HostArray) {
    this.before();
    return this.gpu.sceDelta(base, model, params, out);
  }
  ramCounts(base: HostArray, models: readonly HostArray[], params: RamParams, counts: Float64Array) {
    this.before();
    return this.gpu.ramCounts(base, models, params, counts);
  }
  ramMerge(base: HostArray, models: readonly HostArray[], params: RamParams, out: HostArray) {
    this.before();
    return this.gpu.ramMerge(base, models, params, out);
  }
  unitSum(inputs: readonly HostArray[], divisors: readonly number[], weights: readonly number[], out: HostArray) {
    this.before();
    return this.gpu.unitSum(inputs, divisors, weights, out);
  }
  gramSums(inputs: readonly HostArray[], sums: Float64Array) {
    this.before();
    return this.gpu.gramSums(inputs, sums);
  }
  dotRows(a: HostArray, b: HostArray, n0: number, n1: number, state: CascadeState, step?: StepDtype) {
    this.before();
    return this.gpu.dotRows(a, b, n0, n1, state, step);
  }
  dispose() {
    return this.gpu.dispose();
  }
}

describe.skipIf(!windowed)('a GPU lost in the middle of a merge', () => {
  it('finishes on the CPU with the same bytes, saying so once', async () => {
    const c = cases.find((x) => x.name === 'linear-f32')!;
    const recipe = await recipeOf(c);
    const dir = await tempDir();
    const plan = await planRecipe({ ...recipe, options: { outShardSize: 20_000 } });
    await executePlan(plan, { outDir: join(dir, 'reference'), backend: new ReferenceBackend() });

    const opened = await openWebGpu({ windowElements: 100 });
    if (!('backend' in opened)) throw new Error(opened.reason);
    const losing = new LosingBackend(opened.backend, 5);
    const notices: string[] = [];
    const backend = new FallbackBackend(losing, () => new WasmBackend({ workers: 1 }), (m) => notices.push(m));
    await executePlan(plan, { outDir: join(dir, 'lost'), backend });
    expect(losing.calls).toBe(5);
    expect(backend.kind).toBe('cpu');
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(/^WARNING: GPU device lost: .*; computing on the CPU: WebAssembly SIMD.* for the rest of the run$/);
    expectSameFiles(await shardBytes(join(dir, 'lost')), await shardBytes(join(dir, 'reference')), 'after the loss');
    await backend.dispose();
  });
});
