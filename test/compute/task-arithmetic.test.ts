// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { hostArray, type ComputeBackend, type HostArray, type TaskArithmeticParams, type TaskVectorMask } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { openWebGpu } from '../../src/main/engine/compute/webgpu-backend';
import { stepOf, stepRounding } from '../../src/main/engine/methods/numerics';
import { maskKey, uniformAt } from '../../src/main/engine/methods/random-mask';
import { getMergeMethod } from '../../src/main/engine/methods/registry';
import type { TensorMergeContext, TensorSource } from '../../src/main/engine/methods/types';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { asHost, describeElement, firstDifference, rng, weights } from './samples';

const reference = new ReferenceBackend();
// The CPU backend in windows of 1,000 elements, its kernels on two workers (parts of 496 elements)
// and on the calling thread.
const wasm = new WasmBackend({ workers: 2, windowElements: 1000 });
const wasmLocal = new WasmBackend({ workers: 0, windowElements: 1000 });
// Windows of 1,000 elements: every call below is cut into several, and the ring of slots wraps.
const opened = await openWebGpu({ windowElements: 1000 });
const gpu = 'backend' in opened ? opened.backend : undefined;
if (!gpu) console.warn(`\n*** WebGPU TASK-ARITHMETIC TESTS SKIPPED: ${'reason' in opened ? opened.reason : ''}.\n*** On Linux without a GPU, install Mesa (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) for llvmpipe.\n`);
afterAll(() => Promise.all([wasm.dispose(), wasmLocal.dispose(), gpu?.dispose()]));

/** A base and fine-tunes of it: each model the base plus a small delta, some deltas zero or negative. */
function models(n: number, count: number, seed: number): Float32Array[] {
  const random = rng(seed);
  const base = weights(n, random, -12, 0);
  return [base, ...Array.from({ length: count }, () => base.map((b) => (random() < 0.05 ? b : b + (random() - 0.5) * 0.02 * Math.abs(b) + (random() - 0.5) * 1e-4)))];
}

/** An in-memory TensorSource in chunks of `chunk` elements. */
function sourceOf(inputs: Float32Array[], chunk: number): TensorSource {
  return {
    async *chunks() {
      for (let start = 0; start < inputs[0]!.length; start += chunk) {
        const length = Math.min(chunk, inputs[0]!.length - start);
        yield { start, length, inputs: inputs.map((x) => x.subarray(start, start + length)) };
      }
    },
  };
}

/** The method's own TypeScript (no backend in ctx), chunk by chunk. */
async function methodOutput(method: string, inputs: Float32Array[], ctx: TensorMergeContext, chunk: number): Promise<Float32Array> {
  const out = new Float32Array(inputs[0]!.length);
  await getMergeMethod(method).kernel(sourceOf(inputs, chunk), { write: async (start, values) => out.set(values, start) }, ctx);
  return out;
}

const round = (dtype: FloatDtype | undefined) => stepRounding(dtype);

/** mergekit's L1 rescale factor per model, as methods/task-arithmetic.ts sums it (f64, in order). */
function rescaleFactors(inputs: Float32Array[], masks: TaskVectorMask[], densities: number[], r: (x: number) => number): number[] {
  const base = inputs[0]!;
  return masks.map((mask, j) => {
    if (densities[j]! >= 1) return 1;
    let before = 0;
    let after = 0;
    for (let i = 0; i < base.length; i++) {
      const delta = r(inputs[j + 1]![i]! - base[i]!);
      before += Math.abs(delta);
      const keep = mask.kind === 'all' || (mask.kind === 'random' && uniformAt(mask.key, i) < mask.density) || (mask.kind === 'keep' && mask.keep[i] !== 0);
      after += keep ? Math.abs(delta) : 0;
    }
    const a = r(before);
    const k = r(after);
    return a < 1e-7 || k < 1e-7 ? 1 : r(a / k);
  });
}

interface Setup {
  method: 'task_arithmetic' | 'ties' | 'dare_linear' | 'dare_ties';
  weights: number[];
  densities: number[];
  normalize: boolean;
  rescale: boolean;
  lambda: number;
  dtype: FloatDtype | undefined;
}

const SETUPS: Setup[] = [
  { method: 'task_arithmetic', weights: [0.7, 0.5], densities: [1, 1], normalize: false, rescale: false, lambda: 1, dtype: undefined },
  { method: 'task_arithmetic', weights: [1.2, -0.4, 0.3], densities: [1, 1, 1], normalize: true, rescale: false, lambda: 0.8, dtype: 'BF16' },
  { method: 'ties', weights: [0.7, 0.5, 0.3], densities: [1, 1, 1], normalize: true, rescale: false, lambda: 1, dtype: undefined },
  { method: 'ties', weights: [0.6, -0.6], densities: [1, 1], normalize: true, rescale: false, lambda: 1.1, dtype: 'BF16' },
  { method: 'dare_linear', weights: [0.5, 0.5], densities: [0.3, 0.9], normalize: false, rescale: true, lambda: 1, dtype: undefined },
  { method: 'dare_ties', weights: [0.8, 0.4, 0.2], densities: [0.5, 0.5, 1], normalize: true, rescale: true, lambda: 1, dtype: undefined },
  { method: 'dare_ties', weights: [0.8, 0.4], densities: [0.4, 0.6], normalize: false, rescale: true, lambda: 0.9, dtype: 'BF16' },
  { method: 'ties', weights: [0.6, -0.6, 0.25], densities: [1, 1, 1], normalize: true, rescale: false, lambda: 1.1, dtype: 'F16' },
  { method: 'dare_linear', weights: [0.8, 0.4], densities: [0.4, 0.6], normalize: true, rescale: true, lambda: 1, dtype: 'F16' },
];

function describeSetup(s: Setup): string {
  return `${s.method} ×${s.weights.length} (${s.dtype ?? 'f32'} steps${s.normalize ? ', normalized' : ''}${s.rescale ? ', rescaled' : ''}${s.lambda !== 1 ? `, λ ${s.lambda}` : ''})`;
}

/** The backend call that stands for the method's TypeScript on this setup. */
function callFor(s: Setup, inputs: Float32Array[], seed: number, name: string): TaskArithmeticParams {
  const r = round(s.dtype);
  const w = s.weights.map(r);
  const random = s.method.startsWith('dare');
  const masks: TaskVectorMask[] = s.densities.map((density, j) => (random && density < 1 ? { kind: 'random', key: maskKey(seed, name, j + 1), density } : { kind: 'all' }));
  let divisor = 0;
  for (const x of w) divisor = Math.fround(divisor + x);
  divisor = r(divisor);
  if (Math.abs(divisor) < 1e-8) divisor = 1;
  return {
    start: 0,
    weights: w,
    scales: s.rescale ? rescaleFactors(inputs, masks, s.densities, r) : w.map(() => 1),
    masks,
    consensus: s.method === 'ties' || s.method === 'dare_ties',
    normalize: s.normalize,
    divisor,
    lambda: s.lambda,
    step: stepOf(s.dtype),
  };
}

async function run(backend: ComputeBackend, inputs: Float32Array[], params: TaskArithmeticParams, inDtype: FloatDtype, outDtype: FloatDtype): Promise<HostArray> {
  const out = hostArray(outDtype, inputs[0]!.length);
  const hosts = inputs.map((x) => asHost(x, inDtype));
  await backend.taskArithmetic(hosts[0]!, hosts.slice(1), params, out);
  return out;
}

function expectSame(got: HostArray, want: HostArray, label: string): void {
  const at = firstDifference(got, want);
  expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}`, label).toBe('');
}

describe('taskArithmetic: the reference is the methods\' own TypeScript', () => {
  for (const [k, s] of SETUPS.entries()) {
    it(describeSetup(s), async () => {
      const n = 6007;
      const seed = 42;
      const name = `model.layers.${k}.mlp.up_proj.weight`;
      let inputs = models(n, s.weights.length, 100 + k);
      // As the engine hands them over: inputs rounded to the compute dtype.
      if (s.dtype === 'BF16' || s.dtype === 'F16') inputs = inputs.map((x) => x.map(stepRounding(s.dtype)));
      const ctx: TensorMergeContext = {
        tensorName: name,
        shape: [n],
        numel: n,
        baseIndex: 0,
        global: { normalize: s.normalize, rescale: s.rescale, lambda: s.lambda },
        perModel: [{}, ...s.weights.map((weight, j) => ({ weight, density: s.densities[j]! }))],
        seed,
        ...(s.dtype ? { computeDtype: s.dtype } : {}),
      };
      const want = await methodOutput(s.method, inputs, ctx, 1000);
      const got = await run(reference, inputs, callFor(s, inputs, seed, name), 'F32', 'F32');
      expectSame(got, { dtype: 'F32', data: want }, describeSetup(s));
    });
  }
});

describe('the task-vector methods with a backend in ctx give their own TypeScript\'s output', () => {
  const methods: [string, Record<string, number>][] = [
    ['task_arithmetic', {}],
    ['ties', { density: 0.4 }],
    ['dare_ties', { density: 0.5 }],
    ['breadcrumbs', { density: 0.6, gamma: 0.05 }],
    ['della', { density: 0.5, epsilon: 0.1 }],
  ];
  for (const [method, extra] of methods) {
    for (const dtype of [undefined, 'BF16', 'F16'] as const) {
      it(`${method}${dtype ? ` in ${dtype.toLowerCase()} steps` : ''}, in chunks of 3 rows`, async () => {
        const shape = [6, 500];
        let inputs = models(3000, 3, 300);
        if (dtype) inputs = inputs.map((x) => x.map(stepRounding(dtype)));
        const ctx: TensorMergeContext = {
          tensorName: 'model.layers.3.self_attn.o_proj.weight',
          shape,
          numel: 3000,
          baseIndex: 0,
          global: { normalize: true, rescale: true, lambda: 1 },
          perModel: [{}, { weight: 0.7, ...extra }, { weight: 0.4, ...extra }, { weight: -0.2, ...extra }],
          seed: 5,
          ...(dtype ? { computeDtype: dtype } : {}),
        };
        const want = await methodOutput(method, inputs, ctx, 1500);
        for (const backend of [wasm, gpu]) {
          if (!backend) continue;
          const got = await methodOutput(method, inputs, { ...ctx, backend }, 1500);
          expectSame({ dtype: 'F32', data: got }, { dtype: 'F32', data: want }, backend.description);
        }
      });
    }
  }
});

const BACKENDS: [string, ComputeBackend | undefined][] = [
  ['CPU (WebAssembly SIMD, 2 workers)', wasm],
  ['CPU (WebAssembly SIMD, calling thread)', wasmLocal],
  [gpu ? `GPU (${gpu.description})` : 'GPU (no adapter)', gpu],
];

for (const [label, backend] of BACKENDS) {
  describe.skipIf(!backend)(`taskArithmetic on the ${label} equals the reference bit for bit`, () => {
    for (const [k, s] of SETUPS.entries()) {
      it(`${describeSetup(s)}: f32 and bf16 inputs and outputs, across windows of 1,000 elements`, async () => {
        const inputs = models(5001, s.weights.length, 200 + k);
        const params = callFor(s, inputs, 7, `t${k}`);
        for (const [inDtype, outDtype] of [['F32', 'F32'], ['BF16', 'BF16'], ['F32', 'BF16'], ['BF16', 'F16']] as const) {
          expectSame(await run(backend!, inputs, params, inDtype, outDtype), await run(reference, inputs, params, inDtype, outDtype), `${inDtype}→${outDtype}`);
        }
      });
    }

    it('explicit keep masks, scales, negative weights, and DARE draws past element 2^32 (a chunk deep in a huge tensor)', async () => {
      const n = 4099;
      const inputs = models(n, 3, 9);
      const random = rng(10);
      const keep = Uint8Array.from({ length: n }, () => (random() < 0.4 ? 1 : 0));
      for (const start of [0, 12_345, 2 ** 32 - 1700]) {
        for (const consensus of [false, true]) {
          for (const step of ['F32', 'BF16', 'F16'] as const) {
            const params: TaskArithmeticParams = {
              start,
              weights: [0.9, -0.35, 0.6],
              scales: [1.75, 1, 3.25],
              masks: [{ kind: 'keep', keep }, { kind: 'random', key: 0xdeadbeef, density: 0.37 }, { kind: 'random', key: 12345, density: 0.81 }],
              consensus,
              normalize: true,
              divisor: 1.15,
              lambda: 1.3,
              step,
            };
            const dtype = step === 'BF16' ? 'BF16' : 'F32';
            expectSame(await run(backend!, inputs, params, dtype, dtype), await run(reference, inputs, params, dtype, dtype), `start ${start}, ${step} steps${consensus ? ', consensus' : ''}`);
          }
        }
      }
    });

    it('a model dropped whole (density 0) and a tensor with no models agreeing', async () => {
      const inputs = models(3001, 2, 11);
      const params: TaskArithmeticParams = { start: 5, weights: [0.5, 0.5], scales: [1, 1], masks: [{ kind: 'random', key: 1, density: 0 }, { kind: 'all' }], consensus: true, normalize: true, divisor: 1, lambda: 1, step: 'F32' };
      expectSame(await run(backend!, inputs, params, 'F32', 'F32'), await run(reference, inputs, params, 'F32', 'F32'), 'density 0');
    });
  });
}

describe.skipIf(!gpu)('DARE masks on the GPU', () => {
  it('a DARE mask drawn on the GPU is the counter hash of random-mask.ts', async () => {
    // With one model, weight 1 and a zero base, the output is the kept part of the model: its mask.
    const n = 3001;
    const start = 777;
    const ones = new Float32Array(n).fill(1);
    const zeros = new Float32Array(n);
    const params: TaskArithmeticParams = { start, weights: [1], scales: [1], masks: [{ kind: 'random', key: 99, density: 0.25 }], consensus: false, normalize: false, divisor: 1, lambda: 1, step: 'F32' };
    const out = await run(gpu!, [zeros, ones], params, 'F32', 'F32');
    const kept = [...(out.data as Float32Array)].map((v, i) => (v === 1) === uniformAt(99, start + i) < 0.25);
    expect(kept.every(Boolean)).toBe(true);
    const fraction = [...(out.data as Float32Array)].filter((v) => v === 1).length / n;
    expect(fraction).toBeGreaterThan(0.2);
    expect(fraction).toBeLessThan(0.3);
  });
});
