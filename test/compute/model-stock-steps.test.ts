// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { CASCADE_ROW, hostArray, type CascadeState, type ComputeBackend, type HostArray } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { openWebGpu } from '../../src/main/engine/compute/webgpu-backend';
import { roundBf16 } from '../../src/main/engine/methods/numerics';
import { getMergeMethod } from '../../src/main/engine/methods/registry';
import type { TensorMergeContext, TensorSink, TensorSource } from '../../src/main/engine/methods/types';
import { encodeFromF32 } from '../../src/main/engine/safetensors/convert';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { asHost, describeElement, edgeValues, firstDifference, rng, weights, placed } from './samples';

// model_stock with bf16 steps (mergekit computing in bf16) on the backends: the ops' BF16 step
// (linear, blend2, dotRows) against the reference bit for bit, and the method with a backend
// against its own TypeScript loop, which the goldens hold to mergekit.

const reference = new ReferenceBackend();
const opened = await openWebGpu({ windowElements: 1000 });
const gpu = 'backend' in opened ? opened.backend : undefined;
if (!gpu) console.warn(`\n*** WebGPU MODEL_STOCK BF16 TESTS SKIPPED: ${'reason' in opened ? opened.reason : ''}.\n*** On Linux without a GPU, install Mesa (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) for llvmpipe.\n`);

/** Each backend, and whether its arrays are put in its own memory first (the engine's buffer pool does that on the CPU). */
const BACKENDS: [string, ComputeBackend, boolean][] = [
  ['WASM, 2 workers, windows of 1,000', new WasmBackend({ workers: 2, windowElements: 1000 }), false],
  ['WASM, calling thread only', new WasmBackend({ workers: 0 }), false],
  ['WASM, 1 worker, arrays in its own memory', new WasmBackend({ workers: 1 }), true],
  ...(gpu ? [[`GPU (${gpu.description})`, gpu, false] as [string, ComputeBackend, boolean]] : []),
];
afterAll(() => Promise.all(BACKENDS.map(([, b]) => b.dispose())));


/** A fresh output of `dtype`, in the backend's own memory when `pin`. */
function output(backend: ComputeBackend, pin: boolean, dtype: FloatDtype, n: number): HostArray {
  return placed(backend, pin, hostArray(dtype, n));
}

const EDGES = [...edgeValues(), NaN, -NaN, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-40, -1e-40];

/** `count` arrays of weights and fine-tune-like neighbours, every pair of edge values first (also where they meet finite values). */
function samples(n: number, count: number, seed: number): Float32Array[] {
  const random = rng(seed);
  const first = weights(n, random, -12, 1);
  const arrays = [first, ...Array.from({ length: count - 1 }, () => weights(n, random, -16, -6).map((x, i) => Math.fround(first[i]! + x)))];
  let i = 0;
  for (const x of EDGES) {
    for (const y of EDGES) {
      if (i >= n) break;
      arrays.forEach((a, k) => (a[i] = k % 2 === 0 ? x : y));
      i++;
    }
  }
  return arrays;
}

/** The accumulators with every NaN as 0x7fc00000: which NaN a sum of NaNs gives is the hardware's (the reference's `toEqual` does not see it either). */
function nanFree(acc: Float32Array): HostArray {
  return { dtype: 'F32', data: acc.map((x) => (Number.isNaN(x) ? NaN : x)) };
}

function expectSame(got: HostArray, want: HostArray, label: string): void {
  const at = firstDifference(got, want);
  expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}`, label).toBe('');
}

const DTYPES: [FloatDtype, FloatDtype][] = [
  ['BF16', 'BF16'],
  ['BF16', 'F32'],
  ['F32', 'BF16'],
  ['F32', 'F32'],
  ['F16', 'F16'],
  ['F16', 'BF16'],
];

describe('linear, blend2 and dotRows with bf16 and f16 steps on every backend equal the reference', () => {
  for (const [label, backend, pin] of BACKENDS) {
    it(`${label}: linear, 1 to 4 inputs, weights 1 and others, with and without normalize, edge values, f32 steps too (products that underflow to -0, tiny subnormal sums)`, async () => {
      for (const [n, count] of [[5_003, 1], [70_001, 3], [2_049, 4], [31, 2]] as const) {
        const values = samples(n, count, n + count);
        for (const [inDtype, outDtype] of DTYPES) {
          const inputs = values.map((v) => asHost(v, inDtype));
          const mine = inputs.map((h) => placed(backend, pin, h));
          for (const [w, normalize] of [[values.map(() => 1), true], [values.map((_, i) => [0.3, -1.7, 2, 1e-3][i]!), true], [values.map((_, i) => [1, 0.5, -2, 3][i]!), false]] as const) {
            // f32 steps too: the WASM kernel's first model once made +0 of a product that underflows
            // to -0, and these edge values reach the GPU fma_rn's tiny products and sums with subnormal
            // results (its integer path, wgsl.ts); its NaN and infinity cases are in webgpu.test.ts.
            for (const step of ['BF16', 'F16', 'F32'] as const) {
              const want = hostArray(outDtype, n);
              const got = output(backend, pin, outDtype, n);
              await reference.linear(inputs, w, normalize, want, step);
              await backend.linear(mine, w, normalize, got, step);
              expectSame(got, want, `${step} steps, ${n} × ${count}, ${inDtype} → ${outDtype}, weights ${w.join(',')}, normalize ${normalize}`);
            }
          }
        }
      }
    });

    it(`${label}: blend2 (model_stock's offsets and last pass), edge values and coefficients`, async () => {
      for (const n of [5_003, 70_001, 17]) {
        const [a, b] = samples(n, 2, n);
        for (const [inDtype, outDtype] of DTYPES) {
          const inputs = [asHost(a!, inDtype), asHost(b!, inDtype)];
          const mine = inputs.map((h) => placed(backend, pin, h));
          for (const [c0, c1] of [[1, -1], [0.4375, roundBf16(1 - 0.4375)], [0, 1], [1, 0], [-2.5e-5, 3e7], [NaN, 1], [Infinity, 0.5]]) {
            for (const step of ['BF16', 'F16'] as const) {
              const want = hostArray(outDtype, n);
              const got = output(backend, pin, outDtype, n);
              await reference.blend2(c0!, inputs[0]!, c1!, inputs[1]!, want, step);
              await backend.blend2(c0!, mine[0]!, c1!, mine[1]!, got, step);
              expectSame(got, want, `${step} steps, ${n}, ${inDtype} → ${outDtype}, c ${c0}, ${c1}`);
            }
          }
        }
      }
    });

    it(`${label}: dotRows with each product rounded to bf16 or f16, across cascade steps, edge values`, async () => {
      for (const n of [CASCADE_ROW * 4000, CASCADE_ROW * 70_001, CASCADE_ROW]) {
        const [a, b] = samples(n, 2, n + 1);
        for (const dtype of ['F32', 'BF16', 'F16'] as const) {
          const inputs = [asHost(a!, dtype), asHost(b!, dtype)];
          const mine = inputs.map((h) => placed(backend, pin, h));
          for (const [n0, n1] of [[1, 1], [0.75, 1.5]]) {
            // A state part way through a block, with a step of 16 rows and a last full block before the end.
            const state = (): CascadeState => ({ acc: Float32Array.from({ length: 128 }, (_, i) => (i % 7) / 5), rowsDone: 13, levelPower: 4, fullBlockRows: 13 + Math.floor((n / CASCADE_ROW) * 0.8) });
            for (const step of ['BF16', 'F16'] as const) {
              const want = state();
              const got = state();
              await reference.dotRows(inputs[0]!, inputs[1]!, n0!, n1!, want, step);
              await backend.dotRows(mine[0]!, mine[1]!, n0!, n1!, got, step);
              expect(got.rowsDone).toBe(want.rowsDone);
              expectSame(nanFree(got.acc), nanFree(want.acc), `dotRows ${step} steps, ${n} ${dtype}, n ${n0}, ${n1}`);
            }
          }
        }
      }
    });
  }

  it('the BF16 step is what it says: roundBf16 after each step (a few values by hand)', async () => {
    const x = { dtype: 'F32' as const, data: Float32Array.of(1, 1 + 2 ** -9, 3, -0) };
    const y = { dtype: 'F32' as const, data: Float32Array.of(2 ** -8, 2 ** -9, 1 + 2 ** -7, -0) };
    const out = hostArray('F32', 4);
    await reference.linear([x, y], [1, 1], false, out, 'BF16');
    // 1 + 2^-8 ties to 1; 1 + 2^-9 is first rounded to 1, then 1 + 2^-9 to 1; 3 + 1.0078125 → 4; -0 + -0 from +0 is +0.
    expect([...out.data]).toEqual([1, 1, 4, 0]);
    expect(Object.is(out.data[3], 0)).toBe(true);
    await reference.blend2(1, x, -1, y, out, 'BF16');
    expect([...out.data]).toEqual([roundBf16(1 - 2 ** -8), 1, roundBf16(3 - (1 + 2 ** -7)), 0]);
  });
});

/** Chunks of `chunk` elements; `raw` as bf16 codes (what the engine hands a backend for bf16 models), or f32, or none. */
function sourceOf(inputs: Float32Array[], chunk: number, raw: 'BF16' | 'F32' | 'none'): TensorSource {
  const codes = inputs.map((x) => asHost(x, 'BF16').data as Uint16Array);
  return {
    async *chunks() {
      for (let start = 0; start < inputs[0]!.length; start += chunk) {
        const length = Math.min(chunk, inputs[0]!.length - start);
        const views = inputs.map((x) => x.subarray(start, start + length));
        const rawArrays: HostArray[] | undefined =
          raw === 'BF16' ? codes.map((c) => ({ dtype: 'BF16' as const, data: c.subarray(start, start + length) })) : raw === 'F32' ? views.map((data) => ({ dtype: 'F32' as const, data })) : undefined;
        yield { start, length, inputs: views, ...(rawArrays ? { raw: rawArrays } : {}) };
      }
    },
  };
}

/** The method's output as f32 (a plain sink), or as bf16 codes (a sink that takes encoded values and lends its arrays). */
async function methodOutput(inputs: Float32Array[], ctx: TensorMergeContext, chunk: number, raw: 'BF16' | 'F32' | 'none', outDtype: 'F32' | 'BF16'): Promise<HostArray> {
  const n = inputs[0]!.length;
  const out = hostArray(outDtype, n);
  const bytes = (h: HostArray) => new Uint8Array(h.data.buffer, h.data.byteOffset, h.data.byteLength);
  const sink: TensorSink =
    outDtype === 'F32'
      ? { write: async (start, values) => (out.data as Float32Array).set(values, start) }
      : {
          outDtype: 'BF16',
          write: async (start, values) => encodeFromF32(values, 'BF16', bytes({ dtype: 'BF16', data: (out.data as Uint16Array).subarray(start, start + values.length) })),
          writeEncoded: async (start, values) => (out.data as Uint16Array).set(values.data as Uint16Array, start),
          outputArray: (length) => hostArray('BF16', length),
        };
  await getMergeMethod('model_stock').kernel(sourceOf(inputs, chunk, raw), sink, ctx);
  return out;
}

describe('model_stock with bf16 steps gives its TypeScript\'s bits on the backends', () => {
  it('whole-tensor and filter_wise, 2 to 4 fine-tunes, chunks that cut rows and lanes, 1 to 3 torch threads, edge values in some rows', async () => {
    const random = rng(21);
    for (const [rowsCount, rowLength, chunk, threads, filterWise, models, edges] of [
      [1, 300_007, 300_007, 1, false, 3, false],
      [1, 300_007, 77_777, 3, false, 4, false],
      [1, 65_536, 4_096, 2, false, 5, false],
      [37, 1_003, 5_000, 1, true, 3, true],
      [20, 4_096, 10_001, 2, true, 4, false],
      [64, 96, 1_000, 1, true, 5, true],
      [5, 13, 29, 1, true, 3, false],
      [3, 40_000, 7_001, 1, true, 3, false],
    ] as const) {
      const n = rowsCount * rowLength;
      const base = weights(n, random, -8, -2).map(roundBf16);
      const inputs = [base, ...Array.from({ length: models - 1 }, () => weights(n, random, -12, -6).map((x, i) => roundBf16(base[i]! + x)))];
      if (edges) {
        // Rows 1 and 2 meet NaN, ±∞, ±0 and subnormals; the others stay finite.
        for (let i = 0; i < EDGES.length * 2 && i < rowLength * 2; i++) inputs[1 + (i % (models - 1))]![rowLength + i] = roundBf16(EDGES[i % EDGES.length]!);
        for (let i = 0; i < 20; i++) inputs[0]![3 * rowLength + i] = roundBf16(EDGES[i]!);
      }
      const ctx: TensorMergeContext = {
        tensorName: 'model.layers.0.mlp.up_proj.weight',
        shape: rowsCount === 1 ? [n] : [rowsCount, rowLength],
        numel: n,
        baseIndex: 0,
        global: { filter_wise: filterWise },
        perModel: inputs.map(() => ({})),
        seed: 0,
        torchThreads: threads,
        computeDtype: 'BF16',
      };
      const label = `${rowsCount} × ${rowLength}, ${models - 1} fine-tunes, chunks of ${chunk}, ${threads} threads`;
      const want = await methodOutput(inputs, ctx, chunk, 'none', 'F32');
      // Every output value is a bf16 value: the last step rounds to bf16.
      expect(want.data.every((x) => Number.isNaN(x) || Object.is(roundBf16(x), x)), label).toBe(true);
      for (const [name, backend] of BACKENDS.filter(([, , pin]) => !pin)) {
        for (const raw of ['BF16', 'F32', 'none'] as const) {
          expectSame(await methodOutput(inputs, { ...ctx, backend }, chunk, raw, 'F32'), want, `${label}, ${name}, raw ${raw}, f32 out`);
        }
        const wantBf16 = hostArray('BF16', n);
        encodeFromF32(want.data as Float32Array, 'BF16', new Uint8Array(wantBf16.data.buffer));
        expectSame(await methodOutput(inputs, { ...ctx, backend }, chunk, 'BF16', 'BF16'), wantBf16, `${label}, ${name}, bf16 out`);
      }
    }
  });

  it('the base second, a base that equals a fine-tune (zero offsets, t = 0 or NaN)', async () => {
    const random = rng(22);
    const n = 12_000;
    const a = weights(n, random, -8, -2).map(roundBf16);
    const b = a.map((x, i) => roundBf16(x + (i % 3 === 0 ? 0 : 2 ** -12)));
    const c = a.slice();
    for (const [inputs, baseIndex] of [[[a, b, c], 1], [[b, a, a], 0], [[a, c, a], 2]] as const) {
      for (const filterWise of [false, true]) {
        const ctx: TensorMergeContext = { tensorName: 'x', shape: [12, 1000], numel: n, baseIndex, global: { filter_wise: filterWise }, perModel: inputs.map(() => ({})), seed: 0, computeDtype: 'BF16' };
        const want = await methodOutput([...inputs], ctx, 5_000, 'none', 'F32');
        for (const [name, backend] of BACKENDS.filter(([, , pin]) => !pin)) expectSame(await methodOutput([...inputs], { ...ctx, backend }, 5_000, 'BF16', 'F32'), want, `base ${baseIndex}, filter_wise ${filterWise}, ${name}`);
      }
    }
  });
});
