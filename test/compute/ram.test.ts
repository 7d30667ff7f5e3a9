import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { hostArray, type ComputeBackend, type HostArray } from '../../src/main/engine/compute/types';
import { testBackends } from './backends';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { bitsToF32, f32Bits } from '../../src/main/engine/safetensors/convert';
import { getMergeMethod } from '../../src/main/engine/methods/registry';
import type { TensorMergeContext } from '../../src/main/engine/methods/types';
import { asHost, describeElement, edgeValues, firstDifference, rng, weights, placed, hostChunks } from './samples';

const reference = new ReferenceBackend();
const BACKENDS = await testBackends('RAM');
afterAll(() => Promise.all(BACKENDS.map(([, b]) => b.dispose())));

const SPECIAL = new Float32Array([NaN, Infinity, -Infinity, 0, -0]);
const EPSILONS = [1e-5, 2 ** -10, 0, 3 * 2 ** -12, -0.5];

/** The f32 next to x, up (+1) or down (-1) in magnitude. */
function step(x: number, by: number): number {
  return bitsToF32((f32Bits(x) + by) >>> 0);
}

/**
 * A base and fine-tunes a few steps of 2^-14 away, some unchanged; one element in 50 of each from the
 * edge values (±0, subnormals, extremes) and NaN/±∞; and one in 20 a base of ±0 with a task vector
 * right at ±r(epsilon) or one f32 either side of it.
 */
function models(n: number, count: number, seed: number, epsilon: number, edgeShare = 0.02): Float32Array[] {
  const random = rng(seed);
  const base = weights(n, random, -8, -3);
  const edges = [...edgeValues(), ...SPECIAL];
  const all = [base, ...Array.from({ length: count }, () => base.map((b) => (random() < 0.2 ? b : Math.fround(b + Math.round((random() - 0.5) * 8) * 2 ** -14))))];
  const e = Math.abs(Math.fround(epsilon));
  for (let i = 0; i < n; i++) {
    if (random() < 0.05 && e > 0) {
      base[i] = random() < 0.5 ? 0 : -0;
      for (let m = 1; m <= count; m++) {
        const at = step(e, Math.floor(random() * 3) - 1);
        all[m]![i] = random() < 0.3 ? base[i]! : random() < 0.5 ? at : -at;
      }
    }
  }
  for (const values of all) for (let i = 0; i < n; i++) if (random() < edgeShare) values[i] = edges[Math.floor(random() * edges.length)]!;
  return all;
}

const BOOSTS: (number[] | undefined)[] = [undefined, [1.1, 1.05, 1.2, 1.02], [0, 3.5e38, 1, 1e-3]];

describe('ramCounts and ramMerge (ram\'s passes) on every backend equal the reference', () => {
  for (const [label, backend, pin] of BACKENDS) {
    it(`${label}: 2 to 4 models, f32/bf16/f16 in, f32/bf16 out, f32 and bf16 steps, NaN/±0/subnormals/±∞, elements at epsilon`, async () => {
      for (const [n, count, step] of [[33, 2, 'F32'], [5003, 3, 'BF16'], [70_001, 4, 'F32'], [2_049, 2, 'BF16'], [40_003, 3, 'BF16']] as const) {
        for (const epsilon of EPSILONS) {
          for (const [inDtype, outDtype] of [['F32', 'F32'], ['BF16', 'BF16'], ['BF16', 'F32'], ['F16', 'BF16'], ['F32', 'BF16']] as [FloatDtype, FloatDtype][]) {
            const inputs = models(n, count, n + count, epsilon).map((v) => asHost(v, inDtype));
            const mine = inputs.map((h) => placed(backend, pin, h));
            const what = `${n} × ${count} ${inDtype} → ${outDtype}, epsilon ${epsilon}, ${step} steps`;
            // Counts are added to: two calls.
            const want = new Float64Array(2 * count);
            const got = new Float64Array(2 * count);
            for (let k = 0; k < 2; k++) {
              await reference.ramCounts(inputs[0]!, inputs.slice(1), { epsilon, step }, want);
              await backend.ramCounts(mine[0]!, mine.slice(1), { epsilon, step }, got);
            }
            expect(Array.from(got), `ramCounts ${what}`).toEqual(Array.from(want));
            for (const boosts of BOOSTS) {
              const params = { epsilon, step, ...(boosts ? { boosts: boosts.slice(0, count) } : {}) };
              const wantOut = hostArray(outDtype, n);
              await reference.ramMerge(inputs[0]!, inputs.slice(1), params, wantOut);
              const gotOut = placed(backend, pin, hostArray(outDtype, n));
              await backend.ramMerge(mine[0]!, mine.slice(1), params, gotOut);
              const diff = firstDifference(gotOut, wantOut);
              expect(diff < 0 ? '' : `element ${diff}: ${describeElement(gotOut, diff)} vs ${describeElement(wantOut, diff)}, inputs ${inputs.map((h) => describeElement(h, diff)).join(' ')}`, `ramMerge ${what}, boosts ${JSON.stringify(boosts)}`).toBe('');
            }
          }
        }
      }
    });
  }

  it('the reference is ram.ts\'s loop: hand-checked elements', async () => {
    // δ = (0.5, -0.25, 2^-12): the last is under epsilon, so two changed: r(0.5 / 2) + r(-0.25 / 2).
    // Then δ = (0, 0.75, 0): one changed, taken whole (times its boost with boosts).
    const base = { dtype: 'F32', data: new Float32Array([1, 1]) } as const;
    const xs = [[1.5, 1], [0.75, 1.75], [1 + 2 ** -12, 1]].map((x) => ({ dtype: 'F32', data: new Float32Array(x) }) as const);
    const out = hostArray('F32', 2);
    await reference.ramMerge(base, xs, { epsilon: 2 ** -10 }, out);
    expect(Array.from(out.data)).toEqual([1 + 0.25 - 0.125, 1.75]);
    await reference.ramMerge(base, xs, { epsilon: 2 ** -10, boosts: [1, 2, 1] }, out);
    expect(Array.from(out.data)).toEqual([1 + 0.25 - 0.125, 2.5]);
    const counts = new Float64Array(6);
    await reference.ramCounts(base, xs, { epsilon: 2 ** -10 }, counts);
    expect(Array.from(counts)).toEqual([1, 0, 1, 1, 0, 0]);
  });
});

async function methodOutput(method: string, inputs: HostArray[], ctx: TensorMergeContext, chunk: number): Promise<Float32Array> {
  const out = new Float32Array(inputs[0]!.data.length);
  await getMergeMethod(method).kernel(hostChunks(inputs, chunk), { write: async (start, values) => out.set(values, start) }, ctx);
  return out;
}

describe('ram and ramplus_tl on the backends give their TypeScript\'s bits', () => {
  it('bf16, f16 and f32 models with and without NaN/±∞/±0/subnormals, several chunk sizes, 2 to 4 models, f32 and bf16 steps', async () => {
    for (const [n, chunk, count, dtype, edges, epsilon, computeDtype] of [
      [40_001, 40_001, 2, 'BF16', 0.02, 1e-5, undefined],
      [25_013, 3_001, 3, 'F32', 0.02, 2 ** -10, undefined],
      [9_000, 1_003, 4, 'BF16', 0.02, 3 * 2 ** -12, undefined],
      [30_011, 4_099, 3, 'F16', 0, 2 ** -10, undefined],
      [70_001, 70_001, 2, 'F32', 0, 0, undefined],
      [40_001, 40_001, 2, 'BF16', 0.02, 1e-5, 'BF16'],
      [9_000, 1_003, 4, 'BF16', 0.02, 3 * 2 ** -12, 'BF16'],
      [25_013, 3_001, 3, 'F32', 0.02, 2 ** -10, 'BF16'],
    ] as [number, number, number, FloatDtype, number, number, 'BF16' | undefined][]) {
      const inputs = models(n, count, n + 7 * count, epsilon, edges).map((v) => asHost(v, dtype));
      for (const method of ['ram', 'ramplus_tl']) {
        const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex: 0, global: { epsilon, r: 0.1, alpha: 0.2 }, perModel: inputs.map(() => ({})), seed: 0, ...(computeDtype ? { computeDtype } : {}) };
        const want = await methodOutput(method, inputs, ctx, chunk);
        for (const [label, backend] of BACKENDS) {
          const got = await methodOutput(method, inputs, { ...ctx, backend }, chunk);
          const at = firstDifference({ dtype: 'F32', data: got }, { dtype: 'F32', data: want });
          expect(at < 0 ? '' : `element ${at}: ${describeElement({ dtype: 'F32', data: got }, at)} vs ${describeElement({ dtype: 'F32', data: want }, at)}`, `${method} ${n} ${dtype}, chunks of ${chunk}, ${count} models, epsilon ${epsilon}, ${computeDtype ?? 'F32'} steps, ${label}`).toBe('');
        }
      }
    }
  });
});
