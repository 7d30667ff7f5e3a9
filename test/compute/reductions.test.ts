// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { hostArray, HISTOGRAM_BINS, type CascadeState, type ComputeBackend, type HostArray, type TaskArithmeticParams, type StepDtype, type TaskVectorMask } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { openWebGpu } from '../../src/main/engine/compute/webgpu-backend';
import { roundBf16 } from '../../src/main/engine/methods/numerics';
import { getMergeMethod } from '../../src/main/engine/methods/registry';
import type { TensorMergeContext, TensorSource } from '../../src/main/engine/methods/types';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { asHost, describeElement, firstDifference, rng, weights, placed } from './samples';

const reference = new ReferenceBackend();
const inPlace = new WasmBackend({ workers: 1 });
const opened = await openWebGpu({ windowElements: 1000 });
const gpu = 'backend' in opened ? opened.backend : undefined;
if (!gpu) console.warn(`\n*** WebGPU REDUCTION TESTS SKIPPED: ${'reason' in opened ? opened.reason : ''}.\n*** On Linux without a GPU, install Mesa (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) for llvmpipe.\n`);

/** Each backend, and whether its arrays are put in its own memory first (the engine's buffer pool does that on the CPU). */
const BACKENDS: [string, ComputeBackend, boolean][] = [
  ['WASM, 2 workers, windows of 1,000', new WasmBackend({ workers: 2, windowElements: 1000 }), false],
  ['WASM, calling thread, windows of 1,000', new WasmBackend({ workers: 0, windowElements: 1000 }), false],
  ['WASM, 1 worker, arrays in its own memory', inPlace, true],
  ...(gpu ? [[`GPU (${gpu.description})`, gpu, false] as [string, ComputeBackend, boolean]] : []),
];
afterAll(() => Promise.all(BACKENDS.map(([, b]) => b.dispose())));


/** '+0' or '-0' where element i is a zero, else its value. */
function zeroSign(array: HostArray, i: number): string {
  const v = array.data[i]!;
  if (array.dtype === 'F32') return v === 0 ? (Object.is(v, -0) ? '-0' : '+0') : String(v);
  return v === 0 ? '+0' : v === 0x8000 ? '-0' : `0x${v.toString(16)}`;
}

/**
 * A base and fine-tunes whose deltas are a few steps of 2^-14: many elements share each |δ|, so
 * the magnitude ranks meet ties, as bf16 models do.
 */
function quantized(n: number, count: number, seed: number): Float32Array[] {
  const random = rng(seed);
  const base = weights(n, random, -8, -3);
  return [base, ...Array.from({ length: count }, () => base.map((b) => (random() < 0.1 ? b : Math.fround(b + Math.round((random() - 0.5) * 8) * 2 ** -14))))];
}

function hosts(values: Float32Array[], dtype: FloatDtype): HostArray[] {
  return values.map((v) => asHost(v, dtype));
}

/** The magnitude bits of the k-th largest |δ| of model j (from the reference's own histograms). */
async function kthBits(inputs: HostArray[], j: number, k: number, step: StepDtype): Promise<number> {
  const high = new Float64Array(HISTOGRAM_BINS);
  await reference.deltaHistogram(inputs[0]!, [inputs[j + 1]!], { step, prefixes: [undefined] }, [high]);
  let b = HISTOGRAM_BINS - 1;
  for (let above = 0; b > 0 && above + high[b]! < k; b--) above += high[b]!;
  const low = new Float64Array(HISTOGRAM_BINS);
  await reference.deltaHistogram(inputs[0]!, [inputs[j + 1]!], { step, prefixes: [b] }, [low]);
  let l = HISTOGRAM_BINS - 1;
  while (l > 0 && low[l] === 0) l--;
  return ((b << 16) | l) >>> 0;
}

const LENGTHS = [5003, 70_001, 33];

describe('the reductions on every backend equal the reference', () => {
  for (const [label, backend, pin] of BACKENDS) {
    it(`${label}: deltaHistogram, both passes, f32/bf16 inputs, f32/bf16 steps`, async () => {
      for (const n of LENGTHS) {
        for (const dtype of ['F32', 'BF16', 'F16'] as const) {
          for (const step of ['F32', 'BF16', 'F16'] as const) {
            const inputs = hosts(quantized(n, 3, n), dtype);
            const mine = inputs.map((h) => placed(backend, pin, h));
            const prefixes = [undefined, 0x3880, undefined];
            const want = prefixes.map(() => new Float64Array(HISTOGRAM_BINS).fill(3));
            const got = prefixes.map(() => new Float64Array(HISTOGRAM_BINS).fill(3));
            await reference.deltaHistogram(inputs[0]!, inputs.slice(1), { step, prefixes }, want);
            await backend.deltaHistogram(mine[0]!, mine.slice(1), { step, prefixes }, got);
            for (let j = 0; j < 3; j++) expect([...got[j]!].findIndex((c, b) => c !== want[j]![b]), `${n} ${dtype} ${step} selection ${j}`).toBe(-1);
          }
        }
      }
    });

    it(`${label}: deltaHistogram with one array as several selections (as sce counts its variances), between others`, async () => {
      for (const dtype of ['F32', 'BF16'] as const) {
        const inputs = hosts(quantized(70_001, 2, 5), dtype);
        const mine = inputs.map((h) => placed(backend, pin, h));
        // Selections: a, a, b, a, a: the same array twice in a row, after another and before another.
        const order = [1, 1, 2, 1, 1];
        const high = new Float64Array(HISTOGRAM_BINS);
        await reference.deltaHistogram(inputs[0]!, [inputs[1]!], { step: 'F32', prefixes: [undefined] }, [high]);
        const bucket = high.findIndex((c, b) => b > 0 && c > 0);
        const prefixes = [undefined, bucket, undefined, 0, bucket];
        const want = prefixes.map(() => new Float64Array(HISTOGRAM_BINS));
        const got = prefixes.map(() => new Float64Array(HISTOGRAM_BINS));
        await reference.deltaHistogram(inputs[0]!, order.map((m) => inputs[m]!), { step: 'F32', prefixes }, want);
        await backend.deltaHistogram(mine[0]!, order.map((m) => mine[m]!), { step: 'F32', prefixes }, got);
        for (let j = 0; j < order.length; j++) expect([...got[j]!].findIndex((c, b) => c !== want[j]![b]), `${dtype} selection ${j}`).toBe(-1);
        expect(want[1]!.reduce((a, c) => a + c, 0), 'the low pass counts something').toBeGreaterThan(0);
      }
    });

    it(`${label}: deltaHistogram after ram's counts and with the number of selections changing: each call counts only its own elements`, async () => {
      // The WASM backend zeroes the bins it reads instead of clearing them all before each window;
      // ramCounts writes its pairs where the histograms lie. Neither may leak into a later histogram.
      const n = 70_001;
      const inputs = hosts(quantized(n, 5, 11), 'BF16');
      const mine = inputs.map((h) => placed(backend, pin, h));
      for (const [count, afterRam] of [[4, false], [1, true], [3, false], [4, true], [2, false]] as const) {
        if (afterRam) await backend.ramCounts(mine[0]!, mine.slice(1, 3), { epsilon: 2 ** -12 }, new Float64Array(4));
        const prefixes = Array.from({ length: count }, () => undefined);
        const want = prefixes.map(() => new Float64Array(HISTOGRAM_BINS));
        const got = prefixes.map(() => new Float64Array(HISTOGRAM_BINS));
        await reference.deltaHistogram(inputs[0]!, inputs.slice(1, count + 1), { step: 'F32', prefixes }, want);
        await backend.deltaHistogram(mine[0]!, mine.slice(1, count + 1), { step: 'F32', prefixes }, got);
        for (let j = 0; j < count; j++) expect([...got[j]!].findIndex((c, b) => c !== want[j]![b]), `${count} selections${afterRam ? ' after ramCounts' : ''}: selection ${j}`).toBe(-1);
      }
    });

    it(`${label}: deltaFind, the wanted tie before, across and after windows, and not there`, async () => {
      for (const n of LENGTHS) {
        for (const dtype of ['F32', 'BF16'] as const) {
          const inputs = hosts(quantized(n, 2, n + 1), dtype);
          const mine = inputs.map((h) => placed(backend, pin, h));
          const bits = [await kthBits(inputs, 0, Math.ceil(n / 3), 'F32'), 0];
          for (const ranks of [[0, 0], [7, Math.floor(n / 20)], [Math.floor(n / 8), 3], [n, n]]) {
            const params = { step: 'F32' as const, bits, ranks };
            expect(await backend.deltaFind(mine[0]!, mine.slice(1), params), `${n} ${dtype} ranks ${ranks}`).toEqual(await reference.deltaFind(inputs[0]!, inputs.slice(1), params));
          }
        }
      }
    });

    it(`${label}: deltaSums in f64 in index order, every kind of mask, continuing earlier sums`, async () => {
      for (const n of LENGTHS) {
        for (const step of ['F32', 'BF16', 'F16'] as const) {
          const inputs = hosts(quantized(n, 4, n + 2), 'BF16');
          const mine = inputs.map((h) => placed(backend, pin, h));
          const random = rng(n);
          const keep = Uint8Array.from({ length: n }, () => (random() < 0.3 ? 1 : 0));
          const cut = await kthBits(inputs, 2, Math.ceil(n / 4), step);
          const masks: TaskVectorMask[] = [
            { kind: 'all' },
            { kind: 'random', key: 0xabcdef, density: 0.35 },
            { kind: 'magnitude', keep: { bits: cut, before: 1000 + Math.floor(n / 2) } },
            { kind: 'keep', keep },
          ];
          const want = Float64Array.from({ length: 8 }, (_, i) => 0.1 * i);
          const got = want.slice();
          await reference.deltaSums(inputs[0]!, inputs.slice(1), { step, start: 1234, masks }, want);
          await backend.deltaSums(mine[0]!, mine.slice(1), { step, start: 1234, masks }, got);
          expect([...got], `${n} ${step}`).toEqual([...want]);
        }
      }
    });

    it(`${label}: normLanes and dotRows (torch's norm lanes and cascade sum), across cascade steps`, async () => {
      for (const n of [8 * 4000, 32 * 70_001]) {
        for (const dtype of ['F32', 'BF16'] as const) {
          const random = rng(n);
          const values = [weights(n, random, -10, 2), weights(n, random, -10, 2)];
          const inputs = hosts(values, dtype);
          const mine = inputs.map((h) => placed(backend, pin, h));
          const lanesWant = Float32Array.from({ length: 16 }, (_, i) => i / 3);
          const lanesGot = lanesWant.slice();
          await reference.normLanes(inputs, lanesWant);
          await backend.normLanes(mine, lanesGot);
          expect([...lanesGot], `normLanes ${n} ${dtype}`).toEqual([...lanesWant]);
          // A state part way through a block, with a step of 16 rows and a last full block before the end.
          const state = (): CascadeState => ({ acc: Float32Array.from({ length: 128 }, (_, i) => (i % 7) / 5), rowsDone: 13, levelPower: 4, fullBlockRows: 13 + Math.floor((n / 32) * 0.8) });
          const want = state();
          const got = state();
          await reference.dotRows(inputs[0]!, inputs[1]!, 0.75, 1.5, want);
          await backend.dotRows(mine[0]!, mine[1]!, 0.75, 1.5, got);
          expect(got.rowsDone).toBe(want.rowsDone);
          expect([...got.acc], `dotRows ${n} ${dtype}`).toEqual([...want.acc]);
        }
      }
    });

    it(`${label}: gramSums (karcher's f64 Gram sums) equals the reference, 1 to 9 inputs (rows of sums four at a time, and what is left), odd lengths`, async () => {
      for (const [n, count] of [[1, 1], [1001, 2], [70_003, 3], [300_017, 5], [20_011, 9]] as const) {
        for (const dtype of ['F32', 'BF16'] as const) {
          const random = rng(n + count);
          const inputs = hosts(Array.from({ length: count }, () => weights(n, random, -10, 2)), dtype);
          const mine = inputs.map((h) => placed(backend, pin, h));
          const want = Float64Array.from({ length: count * count }, (_, i) => i / 7);
          const got = want.slice();
          await reference.gramSums(inputs, want);
          await backend.gramSums(mine, got);
          expect([...got], `gramSums ${n} × ${count} ${dtype}`).toEqual([...want]);
        }
      }
    });

    it(`${label}: unitSum (multislerp's mean of units) equals the reference, 1 to 5 inputs, f32/bf16 in and out, odd lengths, from +0 and from −0, f32 and bf16 steps`, async () => {
      for (const [n, count, step] of [[1, 1, 'F32'], [1001, 2, 'F32'], [70_003, 3, 'F32'], [300_017, 5, 'F32'], [1, 1, 'BF16'], [1001, 2, 'BF16'], [70_003, 3, 'BF16']] as const) {
        for (const [inDtype, outDtype] of [['F32', 'F32'], ['BF16', 'F32'], ['BF16', 'BF16'], ['F32', 'F16']] as const) {
          for (const signedZeros of [false, true]) {
            const random = rng(n + count + 1);
            // One element in seven is ±0 in every input, so some sums have only −0 terms.
            const inputs = hosts(Array.from({ length: count }, () => weights(n, random, -10, 2).map((x, i) => (i % 7 === 3 ? (random() < 0.5 ? -0 : 0) : i % 7 === 5 ? -0 : x))), inDtype);
            const mine = inputs.map((h) => placed(backend, pin, h));
            const divisors = Array.from({ length: count }, (_, j) => [0.3, 7.25, 1e-3, 3, 2.5][j]!);
            const ws = Array.from({ length: count }, (_, j) => [0.6, 0.4, 1.7, -0.25, 1e-5][j]!);
            const want = hostArray(outDtype, n);
            const got = placed(backend, pin, hostArray(outDtype, n));
            await reference.unitSum(inputs, divisors, ws, want, { signedZeros, step });
            await backend.unitSum(mine, divisors, ws, got, { signedZeros, step });
            const at = firstDifference(got, want);
            expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}`, `unitSum ${n} × ${count} ${inDtype} → ${outDtype}, ${step} steps`).toBe('');
            // Element 5: every term is −0 but where a weight is negative (+0).
            if (n > 5) expect(zeroSign(got, 5), `element 5, signedZeros ${signedZeros}`).toBe(signedZeros && ws.every((w) => w > 0) ? '-0' : '+0');
          }
        }
      }
    });

    it(`${label}: unitTangent (multislerp's last pass) equals the reference, 1 to 5 values, with and without a base, with and without the exponential map's cos and sinc, f32/bf16 in and out`, async () => {
      for (const [n, count] of [[1, 1], [1001, 2], [70_003, 3], [300_017, 5]] as const) {
        for (const [inDtype, outDtype] of [['F32', 'F32'], ['BF16', 'F32'], ['BF16', 'BF16'], ['F32', 'F16']] as const) {
          for (const [withBase, cos, sinc] of [[false, undefined, undefined], [true, undefined, undefined], [true, 0.99999994, 0.9999997], [false, 0, 1]] as const) {
            const random = rng(n + count + 2);
            const values = hosts(Array.from({ length: count }, () => weights(n, random, -10, 2)), inDtype);
            const mean = asHost(weights(n, random, -6, 1), 'F32');
            const base = withBase ? asHost(weights(n, random, -4, 1), inDtype) : undefined;
            const params = {
              divisors: Array.from({ length: count }, (_, j) => [0.3, 7.25, 1e-3, 3, 2.5][j]!),
              weights: Array.from({ length: count }, (_, j) => [0.6, -0.4, 1.7, 0.25, 1e-5][j]!),
              dots: Array.from({ length: count }, (_, j) => [0.9, 0.2, -0.7, 1, 0.33][j]!),
              meanNorm: 0.77,
              averageNorm: 3.1,
              ...(cos === undefined ? {} : { cos, sinc }),
            };
            const want = hostArray(outDtype, n);
            const got = placed(backend, pin, hostArray(outDtype, n));
            await reference.unitTangent(values, mean, base, params, want);
            await backend.unitTangent(values.map((h) => placed(backend, pin, h)), placed(backend, pin, mean), base && placed(backend, pin, base), params, got);
            const at = firstDifference(got, want);
            expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}`, `unitTangent ${n} × ${count} ${inDtype} → ${outDtype}, base ${withBase}, cos ${cos} sinc ${sinc}`).toBe('');
          }
        }
      }
    });

    it(`${label}: unitMix (karcher's merge pass, f64 sums) equals the reference, 1 to 5 inputs, f32/bf16 in and out`, async () => {
      for (const [n, count] of [[1, 1], [1001, 2], [70_003, 3], [300_017, 5]] as const) {
        for (const [inDtype, outDtype] of [['F32', 'F32'], ['BF16', 'F32'], ['BF16', 'BF16'], ['F32', 'F16']] as const) {
          const random = rng(n + count + 3);
          const inputs = hosts(Array.from({ length: count }, () => weights(n, random, -10, 2)), inDtype);
          const divisors = Array.from({ length: count }, (_, j) => [0.3, 7.25, 1e-3, 3, 2.5][j]!);
          const coefficients = Array.from({ length: count }, (_, j) => [0.6123456789012345, -0.4, 1.7000000000000002, 0.25, 1e-5][j]!);
          const want = hostArray(outDtype, n);
          const got = placed(backend, pin, hostArray(outDtype, n));
          await reference.unitMix(inputs, divisors, coefficients, 1.2345678901234567, want);
          await backend.unitMix(inputs.map((h) => placed(backend, pin, h)), divisors, coefficients, 1.2345678901234567, got);
          const at = firstDifference(got, want);
          expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}`, `unitMix ${n} × ${count} ${inDtype} → ${outDtype}`).toBe('');
        }
      }
    });

    it(`${label}: deltaVariance (sce's variances) equals the reference, 1 to 5 models, f32/bf16 in and out, f32/bf16/f16 steps`, async () => {
      for (const [n, count] of [[1, 1], [1001, 2], [70_003, 3], [300_017, 5]] as const) {
        for (const [inDtype, outDtype] of [['F32', 'F32'], ['BF16', 'F32'], ['BF16', 'BF16'], ['F32', 'F16']] as const) {
          for (const step of ['F32', 'BF16', 'F16'] as const) {
            const inputs = hosts(quantized(n, count, n + count + 4), inDtype);
            const want = hostArray(outDtype, n);
            const got = placed(backend, pin, hostArray(outDtype, n));
            await reference.deltaVariance(inputs[0]!, inputs.slice(1), want, step);
            const mine = inputs.map((h) => placed(backend, pin, h));
            await backend.deltaVariance(mine[0]!, mine.slice(1), got, step);
            const at = firstDifference(got, want);
            expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}`, `deltaVariance ${n} × ${count} ${inDtype} → ${outDtype}, ${step} steps`).toBe('');
          }
        }
      }
    });

    it(`${label}: taskArithmetic with magnitude masks (TIES and breadcrumbs cuts, ties in index order or by bytes) equals the reference`, async () => {
      for (const n of LENGTHS) {
        const values = quantized(n, 3, n + 3);
        for (const [inDtype, outDtype] of [['F32', 'F32'], ['BF16', 'BF16'], ['BF16', 'F16']] as const) {
          const inputs = hosts(values, inDtype);
          const mine = inputs.map((h) => placed(backend, pin, h));
          for (const step of ['F32', 'BF16', 'F16'] as const) {
            const keep0 = await kthBits(inputs, 0, Math.ceil(n / 2), step);
            const keep1 = await kthBits(inputs, 1, Math.ceil(n / 5), step);
            const skip1 = await kthBits(inputs, 1, Math.ceil(n / 50), step);
            // Ties' bytes (torch's order among ties): any bytes, so each backend's test of them is seen whole.
            const bytes = (seed: number) => Uint8Array.from({ length: n }, (_, i) => ((i * 2654435761 + seed) >>> 7) & 1);
            const inIndexOrder: TaskVectorMask[] = [
              { kind: 'magnitude', keep: { bits: keep0, before: 500 + Math.floor(n / 3) } },
              { kind: 'magnitude', keep: { bits: keep1, before: Infinity }, skip: { bits: skip1, before: 600 } },
              { kind: 'magnitude', keep: { bits: keep0, before: 0 } },
            ];
            const withTies: TaskVectorMask[] = [
              { kind: 'magnitude', keep: { bits: keep0, before: 0 }, ties: bytes(1) },
              { kind: 'magnitude', keep: { bits: keep1, before: 0 }, skip: { bits: skip1, before: 0 }, ties: bytes(2) },
              { kind: 'magnitude', keep: { bits: keep1, before: 0 }, skip: { bits: keep1, before: 0 }, ties: bytes(3) },
            ];
            for (const [masks, consensus] of [[inIndexOrder, true], [inIndexOrder, false], [withTies, true], [withTies, false]] as const) {
              const params: TaskArithmeticParams = { start: 321, weights: [0.7, 0.5, -0.3], scales: [1, 1.25, 1], masks, consensus, normalize: true, divisor: 0.9, lambda: 1, step };
              const want = hostArray(outDtype, n);
              const got = placed(backend, pin, hostArray(outDtype, n));
              await reference.taskArithmetic(inputs[0]!, inputs.slice(1), params, want);
              await backend.taskArithmetic(mine[0]!, mine.slice(1), params, got);
              const at = firstDifference(got, want);
              expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}`, `${n} ${inDtype}→${outDtype} ${step}${consensus ? ' ties' : ''}${masks === withTies ? ", ties' bytes" : ''}`).toBe('');
            }
          }
        }
      }
    });
  }
});

/** An in-memory TensorSource in chunks of `chunk` elements, offering the raw inputs as the engine does. */
function sourceOf(inputs: Float32Array[], chunk: number): TensorSource {
  return {
    async *chunks() {
      for (let start = 0; start < inputs[0]!.length; start += chunk) {
        const length = Math.min(chunk, inputs[0]!.length - start);
        const views = inputs.map((x) => x.subarray(start, start + length));
        yield { start, length, inputs: views, raw: views.map((data) => ({ dtype: 'F32' as const, data })) };
      }
    },
  };
}

async function methodOutput(method: string, inputs: Float32Array[], ctx: TensorMergeContext, chunk: number): Promise<Float32Array> {
  const out = new Float32Array(inputs[0]!.length);
  await getMergeMethod(method).kernel(sourceOf(inputs, chunk), { write: async (start, values) => out.set(values, start) }, ctx);
  return out;
}

function expectSameF32(got: Float32Array, want: Float32Array, label: string): void {
  const at = firstDifference({ dtype: 'F32', data: got }, { dtype: 'F32', data: want });
  expect(at < 0 ? '' : `element ${at}: ${got[at]} vs ${want[at]}`, label).toBe('');
}

describe('methods whose reductions run on the backend give their own TypeScript\'s bits', () => {
  it('ties and breadcrumbs with many ties at the threshold, the cut in a later chunk, f32 and bf16 steps', async () => {
    const n = 40_000;
    for (const [method, extra] of [['ties', { density: 0.45 }], ['breadcrumbs', { density: 0.5, gamma: 0.02 }], ['breadcrumbs_ties', { density: 0.3, gamma: 0.1 }]] as const) {
      for (const dtype of [undefined, 'BF16'] as const) {
        let inputs = quantized(n, 3, 77);
        if (dtype) inputs = inputs.map((x) => x.map(roundBf16));
        const ctx: TensorMergeContext = {
          tensorName: 'model.layers.1.mlp.down_proj.weight',
          shape: [40, 1000],
          numel: n,
          baseIndex: 0,
          global: { normalize: true, rescale: false, lambda: 1 },
          perModel: [{}, { weight: 0.6, ...extra }, { weight: 0.5, ...extra }, { weight: -0.3, ...extra }],
          seed: 3,
          ...(dtype ? { computeDtype: dtype } : {}),
        };
        const want = await methodOutput(method, inputs, ctx, 7000);
        for (const [label, backend] of BACKENDS) expectSameF32(await methodOutput(method, inputs, { ...ctx, backend }, 7000), want, `${method}${dtype ? ' bf16' : ''} on ${label}`);
      }
    }
  });

  it('dare_linear and della rescaled (L1 sums on the backend), in chunks of whole rows', async () => {
    const n = 30_000;
    for (const [method, extra] of [['dare_linear', { density: 0.3 }], ['della', { density: 0.5, epsilon: 0.2 }]] as const) {
      const inputs = quantized(n, 2, 78);
      const ctx: TensorMergeContext = {
        tensorName: 'model.layers.2.mlp.up_proj.weight',
        shape: [30, 1000],
        numel: n,
        baseIndex: 0,
        global: { normalize: false, rescale: true, lambda: 1 },
        perModel: [{}, { weight: 0.6, ...extra }, { weight: 0.5, ...extra }],
        seed: 4,
      };
      const want = await methodOutput(method, inputs, ctx, 6000);
      for (const [label, backend] of BACKENDS) expectSameF32(await methodOutput(method, inputs, { ...ctx, backend }, 6000), want, `${method} on ${label}`);
    }
  });

  it('slerp over several of mergekit\'s 1 M-element runs, chunks that cut runs and lanes, 1 to 3 torch threads', async () => {
    const n = 2_500_013;
    const random = rng(5);
    const a = weights(n, random, -12, 0);
    const b = weights(n, random, -12, 0).map((x, i) => Math.fround(a[i]! * 0.9 + x * 0.1));
    for (const [chunk, base, threads] of [[n, 0, 1], [333_337, 1, 2], [1 << 20, 0, 3]] as const) {
      const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex: base, global: { t: 0.37 }, perModel: [{}, {}], seed: 0, torchThreads: threads };
      const want = await methodOutput('slerp', [a, b], ctx, chunk);
      for (const [label, backend] of BACKENDS.filter(([, , pin]) => !pin)) expectSameF32(await methodOutput('slerp', [a, b], { ...ctx, backend }, chunk), want, `chunks of ${chunk}, base ${base}, ${threads} threads, ${label}`);
    }
  });

  it('karcher over chunks that cut windows, 2 to 4 models', async () => {
    const random = rng(12);
    for (const [n, chunk, models] of [[100_003, 100_003, 2], [250_001, 33_333, 3], [4_099, 1_000, 4]] as const) {
      const first = weights(n, random, -8, -2);
      const inputs = [first, ...Array.from({ length: models - 1 }, () => weights(n, random, -9, -4).map((x, i) => Math.fround(first[i]! * 0.8 + x)))];
      const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex: undefined, global: { max_iter: 10, tol: 1e-5 }, perModel: inputs.map(() => ({})), seed: 0 };
      const want = await methodOutput('karcher', inputs, ctx, chunk);
      for (const [label, backend] of BACKENDS) expectSameF32(await methodOutput('karcher', inputs, { ...ctx, backend }, chunk), want, `${n}, chunks of ${chunk}, ${models} models, ${label}`);
    }
  });

  it('karcher in bf16 steps: whole tensors and chunks that cut windows, 2 to 4 models, a model of zeros, max_iter 1 to 10', async () => {
    const random = rng(19);
    const bf16 = (values: Float32Array) => values.map(roundBf16);
    for (const [n, chunk, models, maxIter, zeroModel] of [[100_003, 100_003, 2, 10, false], [250_001, 33_333, 3, 10, false], [4_099, 1_000, 4, 3, true], [70_001, 7_777, 3, 1, false]] as const) {
      const first = bf16(weights(n, random, -8, -2));
      const inputs = [first, ...Array.from({ length: models - 1 }, () => bf16(weights(n, random, -9, -4).map((x, i) => first[i]! * 0.8 + x)))];
      if (zeroModel) inputs[1]!.fill(0);
      const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex: undefined, global: { max_iter: maxIter, tol: 1e-5 }, perModel: inputs.map(() => ({})), seed: 0, computeDtype: 'BF16' };
      const want = await methodOutput('karcher', inputs, ctx, chunk);
      for (const [label, backend] of BACKENDS) expectSameF32(await methodOutput('karcher', inputs, { ...ctx, backend }, chunk), want, `bf16 steps, ${n}, chunks of ${chunk}, ${models} models, max_iter ${maxIter}, ${label}`);
    }
  });

  it('multislerp with and without a base, whole tensors and chunks that cut windows, lanes and rows, 2 to 4 models', async () => {
    const random = rng(13);
    for (const [n, chunk, models, withBase] of [[100_003, 100_003, 2, false], [60_013, 60_013, 3, true], [250_001, 33_333, 3, true], [4_099, 1_000, 4, true], [70_001, 7_777, 2, true]] as const) {
      const first = weights(n, random, -8, -2);
      const inputs = [first, ...Array.from({ length: models - 1 }, () => weights(n, random, -9, -4).map((x, i) => Math.fround(first[i]! * 0.8 + x)))];
      const perModel = inputs.map((_, i) => ({ weight: [0.5, 0.3, 0.9, 0.2][i]! }));
      const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex: withBase ? 0 : undefined, global: { normalize_weights: true, eps: 1e-8 }, perModel, seed: 0 };
      const want = await methodOutput('multislerp', inputs, ctx, chunk);
      for (const [label, backend] of BACKENDS) expectSameF32(await methodOutput('multislerp', inputs, { ...ctx, backend }, chunk), want, `${n}, chunks of ${chunk}, ${models} models, base ${withBase}, ${label}`);
    }
  });

  it('multislerp in bf16 steps: with and without a base, whole tensors and chunks, 2 to 4 models, models whose units cancel', async () => {
    const random = rng(17);
    const bf16 = (values: Float32Array) => values.map(roundBf16);
    for (const [n, chunk, models, withBase] of [[60_013, 60_013, 3, true], [100_003, 100_003, 2, false], [250_001, 33_333, 3, true], [4_099, 1_000, 4, true], [70_001, 7_777, 2, false]] as const) {
      const first = bf16(weights(n, random, -8, -2));
      const inputs = [first, ...Array.from({ length: models - 1 }, () => bf16(weights(n, random, -9, -4).map((x, i) => first[i]! * 0.8 + x)))];
      const perModel = inputs.map((_, i) => ({ weight: [0.5, 0.3, 0.9, 0.2][i]! }));
      const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex: withBase ? 0 : undefined, global: { normalize_weights: true, eps: 1e-8 }, perModel, seed: 0, computeDtype: 'BF16' };
      const want = await methodOutput('multislerp', inputs, ctx, chunk);
      for (const [label, backend] of BACKENDS) expectSameF32(await methodOutput('multislerp', inputs, { ...ctx, backend }, chunk), want, `bf16 steps, ${n}, chunks of ${chunk}, ${models} models, base ${withBase}, ${label}`);
    }
    // Two models whose units cancel: their weighted pair, r(r(v_0·w_0) + r(v_1·w_1)).
    const x = bf16(weights(5_003, random, -6, -2));
    const opposite = [x, x.map((v) => -v)];
    const ctx: TensorMergeContext = { tensorName: 'x', shape: [5_003], numel: 5_003, baseIndex: undefined, global: { normalize_weights: true, eps: 1e-8 }, perModel: [{ weight: 0.5 }, { weight: 0.5 }], seed: 0, computeDtype: 'BF16' };
    const want = await methodOutput('multislerp', opposite, ctx, 1_000);
    expect(want.every((v) => v === 0)).toBe(true);
    for (const [label, backend] of BACKENDS) expectSameF32(await methodOutput('multislerp', opposite, { ...ctx, backend }, 1_000), want, `bf16 steps, units that cancel, ${label}`);
  });

  it('sce with and without top-k selection, chunks that cut windows, 2 to 4 models', async () => {
    for (const [n, chunk, models, topk] of [[100_003, 100_003, 2, 0.5], [250_001, 33_333, 3, 0.3], [4_099, 1_000, 4, 1], [70_001, 7_777, 3, 0.9]] as const) {
      const inputs = quantized(n, models, n + models);
      const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex: 0, global: { select_topk: topk }, perModel: inputs.map(() => ({})), seed: 0 };
      const want = await methodOutput('sce', inputs, ctx, chunk);
      for (const [label, backend] of BACKENDS) expectSameF32(await methodOutput('sce', inputs, { ...ctx, backend }, chunk), want, `${n}, chunks of ${chunk}, ${models} models, top ${topk}, ${label}`);
    }
  });

  it('model_stock whole-tensor and filter_wise, chunks that cut rows and lanes, 1 and 3 torch threads, odd row lengths', async () => {
    const random = rng(11);
    for (const [rowsCount, rowLength, chunk, threads, filterWise, models] of [
      [1, 300_007, 300_007, 1, false, 3],
      [1, 300_007, 77_777, 3, false, 4],
      [37, 1_003, 5_000, 1, true, 3],
      [20, 4_096, 10_001, 2, true, 4],
      [5, 13, 29, 1, true, 3],
    ] as const) {
      const n = rowsCount * rowLength;
      const base = weights(n, random, -8, -2);
      const inputs = [base, ...Array.from({ length: models - 1 }, () => weights(n, random, -12, -6).map((x, i) => Math.fround(base[i]! + x)))];
      const ctx: TensorMergeContext = {
        tensorName: 'model.layers.0.mlp.up_proj.weight',
        shape: rowsCount === 1 ? [n] : [rowsCount, rowLength],
        numel: n,
        baseIndex: 0,
        global: { filter_wise: filterWise },
        perModel: inputs.map(() => ({})),
        seed: 0,
        torchThreads: threads,
      };
      const want = await methodOutput('model_stock', inputs, ctx, chunk);
      for (const [label, backend] of BACKENDS) expectSameF32(await methodOutput('model_stock', inputs, { ...ctx, backend }, chunk), want, `${rowsCount} × ${rowLength}, chunks of ${chunk}, ${threads} threads, ${label}`);
    }
  });
});
