import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { absBits, hostArray, type ComputeBackend, type HostArray, type MagnitudeCut } from '../../src/main/engine/compute/types';
import { testBackends } from './backends';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { getMergeMethod } from '../../src/main/engine/methods/registry';
import type { TensorMergeContext } from '../../src/main/engine/methods/types';
import { asHost, describeElement, edgeValues, firstDifference, rng, weights, placed, hostChunks } from './samples';

const reference = new ReferenceBackend();
const BACKENDS = await testBackends('SCE');
afterAll(() => Promise.all(BACKENDS.map(([, b]) => b.dispose())));


const SPECIAL = new Float32Array([NaN, Infinity, -Infinity, 0, -0]);

/**
 * A base and fine-tunes a few steps of 2^-14 away (so the variances tie, as with bf16 models), with
 * one element in 50 of each taken from the edge values (±0, subnormals, the extremes) and NaN/±∞.
 */
function models(n: number, count: number, seed: number, edgeShare = 0.02): Float32Array[] {
  const random = rng(seed);
  const base = weights(n, random, -8, -3);
  const edges = [...edgeValues(), ...SPECIAL];
  const all = [base, ...Array.from({ length: count }, () => base.map((b) => (random() < 0.1 ? b : Math.fround(b + Math.round((random() - 0.5) * 8) * 2 ** -14))))];
  for (const values of all) for (let i = 0; i < n; i++) if (random() < edgeShare) values[i] = edges[Math.floor(random() * edges.length)]!;
  return all;
}

/** The reference's variances of the task vectors. */
async function variancesOf(inputs: HostArray[]): Promise<Float32Array> {
  const v = new Float32Array(inputs[0]!.data.length);
  await reference.deltaVariance(inputs[0]!, inputs.slice(1), { dtype: 'F32', data: v });
  return v;
}

/** Cuts over the reference's variances: the k-th largest with its ties cut halfway, none kept, all kept. */
function cuts(v: Float32Array, start: number): (MagnitudeCut | undefined)[] {
  const n = v.length;
  const bits = Array.from(v, absBits).sort((a, b) => b - a);
  const k = Math.floor(n * 0.4);
  const at = bits[k]!;
  const ties = Array.from(v, absBits).flatMap((b, i) => (b === at ? [i] : []));
  return [
    undefined,
    { bits: at, before: start + ties[Math.floor(ties.length / 2)]! },
    { bits: at, before: Infinity },
    { bits: at, before: 0 },
    { bits: 0xffffffff, before: 0 },
    { bits: 0, before: Infinity },
  ];
}

describe('sceMerge (sce\'s merge pass) on every backend equals the reference', () => {
  for (const [label, backend, pin] of BACKENDS) {
    it(`${label}: 2 to 4 models, f32/bf16 in and out, NaN/±0/subnormals, with and without a cut, f32, bf16 and f16 steps (sceMerge and sceDelta)`, async () => {
      for (const [n, count, start, step] of [[33, 2, 0, 'F32'], [5003, 3, 17, 'BF16'], [70_001, 4, 2 ** 32 + 5, 'F32'], [2_049, 2, 1_000_000, 'BF16'], [40_003, 4, 3, 'BF16'], [3_001, 3, 9, 'F16']] as const) {
        for (const [inDtype, outDtype] of [['F32', 'F32'], ['BF16', 'BF16'], ['BF16', 'F32'], ['F32', 'F16']] as [FloatDtype, FloatDtype][]) {
          const inputs = models(n, count, n + count).map((v) => asHost(v, inDtype));
          const weightsOf = [0.61, 0.27, 0.083, 0.037].slice(0, count);
          const variances: HostArray = { dtype: 'F32', data: await variancesOf(inputs) };
          const mine = inputs.map((h) => placed(backend, pin, h));
          const myVariances = placed(backend, pin, variances);
          for (const cut of cuts(variances.data as Float32Array, start)) {
            const params = { start, weights: weightsOf, step, ...(cut ? { select: { cut, variances } } : {}) };
            const myParams = { start, weights: weightsOf, step, ...(cut ? { select: { cut, variances: myVariances } } : {}) };
            const want = hostArray(outDtype, n);
            await reference.sceMerge(inputs[0]!, inputs.slice(1), params, want);
            const got = placed(backend, pin, hostArray(outDtype, n));
            await backend.sceMerge(mine[0]!, mine.slice(1), myParams, got);
            const diff = firstDifference(got, want);
            expect(diff < 0 ? '' : `element ${diff}: ${describeElement(got, diff)} vs ${describeElement(want, diff)}`, `sceMerge ${n} × ${count} ${inDtype} → ${outDtype}, ${step} steps, cut ${JSON.stringify(cut)}${diff < 0 ? "" : `, inputs ${inputs.map((h) => describeElement(h, diff)).join(" ")}`}`).toBe('');
            for (let model = 0; model < count; model++) {
              const wantDelta = hostArray(outDtype, n);
              await reference.sceDelta(inputs[0]!, inputs[model + 1]!, params, wantDelta);
              const gotDelta = placed(backend, pin, hostArray(outDtype, n));
              await backend.sceDelta(mine[0]!, mine[model + 1]!, myParams, gotDelta);
              const at = firstDifference(gotDelta, wantDelta);
              expect(at < 0 ? '' : `element ${at}: ${describeElement(gotDelta, at)} vs ${describeElement(wantDelta, at)}`, `sceDelta ${model} of ${n} × ${count} ${inDtype} → ${outDtype}, cut ${JSON.stringify(cut)}`).toBe('');
            }
          }
        }
      }
    });
  }

  it('WASM, default windows: 5 M bf16 elements and their f32 variances copied in (arena slots of the widest element)', async () => {
    const n = 5_000_000;
    const inputs = models(n, 2, 11, 0).map((v) => asHost(v, 'BF16'));
    const variances: HostArray = { dtype: 'F32', data: await variancesOf(inputs) };
    const [cut] = cuts(variances.data as Float32Array, 0).slice(1);
    const params = { start: 0, weights: [0.7, 0.3], select: { cut: cut!, variances } };
    const want = hostArray('BF16', n);
    await reference.sceMerge(inputs[0]!, inputs.slice(1), params, want);
    const backend = new WasmBackend({ workers: 1 });
    try {
      const got = hostArray('BF16', n);
      await backend.sceMerge(inputs[0]!, inputs.slice(1), params, got);
      expect(firstDifference(got, want)).toBe(-1);
    } finally {
      await backend.dispose();
    }
  });

  it('the reference is sce.ts\'s loop: a hand-checked element', async () => {
    // tv = (0.5, -0.25, 1): vote 1.25 elects +, so models 0 and 2 count: (0.5·0.5 + 1·0.25) / 0.75.
    const base = { dtype: 'F32', data: new Float32Array([1]) } as const;
    const xs = [1.5, 0.75, 2].map((x) => ({ dtype: 'F32', data: new Float32Array([x]) }) as const);
    const out = hostArray('F32', 1);
    await reference.sceMerge(base, xs, { start: 0, weights: [0.5, 0.25, 0.25] }, out);
    expect(out.data[0]).toBe(Math.fround(1 + Math.fround(0.5 / 0.75)));
  });
});


async function sceOutput(inputs: HostArray[], ctx: TensorMergeContext, chunk: number): Promise<Float32Array> {
  const out = new Float32Array(inputs[0]!.data.length);
  await getMergeMethod('sce').kernel(hostChunks(inputs, chunk), { write: async (start, values) => out.set(values, start) }, ctx);
  return out;
}

describe('sce on the backends gives its TypeScript\'s bits', () => {
  it('in bf16 and f16 steps (select_topk 0 to 1): bf16 models with and without NaN/±∞/±0/subnormals, chunks that cut windows, 2 to 4 models', async () => {
    for (const [n, chunk, count, edges] of [
      [40_001, 40_001, 2, 0.02],
      [9_000, 1_003, 4, 0.02],
      [30_011, 4_099, 3, 0],
      [70_001, 70_001, 2, 0],
    ] as [number, number, number, number][]) {
      const inputs = models(n, count, n + 5 * count, edges).map((v) => asHost(v, 'BF16'));
      for (const [topk, step] of [[0, 'BF16'], [1, 'BF16'], [0.001, 'BF16'], [0.37, 'BF16'], [0.37, 'F16']] as const) {
        const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex: 0, global: { select_topk: topk }, perModel: inputs.map(() => ({})), seed: 0, computeDtype: step };
        const want = await sceOutput(inputs, ctx, chunk);
        for (const [label, backend] of BACKENDS) {
          const got = await sceOutput(inputs, { ...ctx, backend }, chunk);
          const at = firstDifference({ dtype: 'F32', data: got }, { dtype: 'F32', data: want });
          expect(at < 0 ? '' : `element ${at}: ${describeElement({ dtype: 'F32', data: got }, at)} vs ${describeElement({ dtype: 'F32', data: want }, at)}`, `${step} steps, ${n}, chunks of ${chunk}, ${count} models, top ${topk}, ${label}`).toBe('');
        }
      }
    }
  });

  it('bf16 and f32 models with and without NaN/±∞/±0/subnormals, select_topk 0 to 1, chunks that cut windows and rows, 2 to 4 models', async () => {
    // Edge values in one element of 50 make every mean square NaN or ∞; without them the weights are finite.
    for (const [n, chunk, count, dtype, edges] of [
      [40_001, 40_001, 2, 'BF16', 0.02],
      [25_013, 3_001, 3, 'F32', 0.02],
      [9_000, 1_003, 4, 'BF16', 0.02],
      [30_011, 4_099, 3, 'BF16', 0],
      [70_001, 70_001, 2, 'F32', 0],
    ] as [number, number, number, FloatDtype, number][]) {
      const inputs = models(n, count, n + 7 * count, edges).map((v) => asHost(v, dtype));
      for (const topk of [0, 0.001, 0.37, 1]) {
        const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex: 0, global: { select_topk: topk }, perModel: inputs.map(() => ({})), seed: 0 };
        const want = await sceOutput(inputs, ctx, chunk);
        for (const [label, backend] of BACKENDS) {
          const got = await sceOutput(inputs, { ...ctx, backend }, chunk);
          const at = firstDifference({ dtype: 'F32', data: got }, { dtype: 'F32', data: want });
          expect(at < 0 ? '' : `element ${at}: ${describeElement({ dtype: 'F32', data: got }, at)} vs ${describeElement({ dtype: 'F32', data: want }, at)}`, `${n} ${dtype}, chunks of ${chunk}, ${count} models, top ${topk}, ${label}`).toBe('');
        }
      }
    }
  });
});
