import { afterAll, describe, expect, it } from 'vitest';
import { WasmBackend, type LoraApplyParams } from '../../src/main/engine/compute/wasm-backend';
import { hostArray, type HostArray } from '../../src/main/engine/compute/types';
import { loraApplyF32 } from '../../src/main/engine/lora/merge-lora';
import { fromF32, toF32 } from '../../src/main/engine/compute/reference';
import { asHost, describeElement, firstDifference, rng, weights } from './samples';

const BACKENDS: [string, WasmBackend][] = [
  ['2 workers, windows of 1,000', new WasmBackend({ workers: 2, windowElements: 1000 })],
  ['calling thread, windows of 1,000', new WasmBackend({ workers: 0, windowElements: 1000 })],
  ['1 worker, default windows', new WasmBackend({ workers: 1 })],
];
afterAll(() => Promise.all(BACKENDS.map(([, b]) => b.dispose())));

/**
 * Factors whose FMA chains often meet sums exactly halfway between two f32 (small integers times
 * powers of two, so products and partial sums are exact and a few land on ties), and ordinary ones.
 */
function factors(rows: number, cols: number, rank: number, seed: number, ties: boolean): Omit<LoraApplyParams, 'scale'> {
  const random = rng(seed);
  const tieValue = () => (Math.floor(random() * 2 ** 12) + 1) * 2 ** (Math.floor(random() * 6) - 14) * (random() < 0.5 ? -1 : 1);
  const make = (n: number) => (ties ? Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? tieValue() * 2 ** 13 : tieValue())) : weights(n, random, -9, -3));
  return { cols, rank, left: make(rows * rank), right: make(rank * cols) };
}

describe('loraApply (a LoRA delta merged into a weight) on the CPU kernels equals loraApplyF32', () => {
  for (const [label, backend] of BACKENDS) {
    it(`${label}: f32 and bf16 weights, ranks 1 to 64, rows that cut windows, sums halfway between two f32`, async () => {
      for (const [rows, cols, rank, ties] of [[3, 4, 1, false], [37, 132, 8, true], [129, 256, 16, false], [7, 2048, 64, true], [300, 20, 5, true]] as const) {
        for (const dtype of ['F32', 'BF16'] as const) {
          const params = { ...factors(rows, cols, rank, rows * cols + rank, ties), scale: 1.75 };
          const w = asHost(weights(rows * cols, rng(rows), -6, 0), dtype);
          const want = hostArray(dtype, rows * cols);
          const result = new Float32Array(rows * cols);
          loraApplyF32(toF32(w), params, result);
          fromF32(result, want);
          const got: HostArray = hostArray(dtype, rows * cols);
          await backend.loraApply(w, params, got);
          const at = firstDifference(got, want);
          expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}`, `${rows} × ${cols}, rank ${rank}, ${dtype}`).toBe('');
          expect(firstDifference(got, w), 'the delta changes the weight').toBeGreaterThanOrEqual(0);
        }
      }
    });
  }

  it('the FMA chain rounds each step once: hand-checked elements', async () => {
    // 2^12·2^12 = 2^24, then 2^24 + (1 + 2^-12)(1 − 2^-12 + 2^-24) = 2^24 + 1 + 2^-36 exactly: rounded
    // once to f32 that is 2^24 + 2; rounded to f64 first (2^24 + 1, halfway) and then to f32, 2^24.
    const halfway = { cols: 4, rank: 2, left: new Float32Array([2 ** 12, 1 + 2 ** -12]), right: new Float32Array([...Array(4).fill(2 ** 12), ...Array(4).fill(1 - 2 ** -12 + 2 ** -24)]), scale: 1 };
    // 2^-24, then 1 + 2^-24 (halfway, exact: ties to even, 1), then 1 + 2^-24 again: 1; adding the
    // products first and rounding once would give 1 + 2^-23.
    const chained = { cols: 4, rank: 3, left: new Float32Array([2 ** -24, 1, 2 ** -24]), right: new Float32Array(12).fill(1), scale: 1 };
    for (const [params, want] of [[halfway, 2 ** 24 + 2], [chained, 1]] as const) {
      const w = { dtype: 'F32', data: new Float32Array(4) } as const;
      for (const [, backend] of BACKENDS) {
        const out = hostArray('F32', 4);
        await backend.loraApply(w, params, out);
        expect(Array.from(out.data)).toEqual([want, want, want, want]);
      }
      const reference = new Float32Array(4);
      loraApplyF32(w.data, params, reference);
      expect(Array.from(reference)).toEqual([want, want, want, want]);
    }
  });

  it('refuses what it cannot take: rows not a multiple of 4, an f16 weight, factors of the wrong size', async () => {
    const backend = BACKENDS[1]![1];
    const params = { cols: 6, rank: 1, left: new Float32Array(2), right: new Float32Array(6), scale: 1 };
    await expect(backend.loraApply(hostArray('F32', 12), params, hostArray('F32', 12))).rejects.toThrow(/multiple of 4/);
    await expect(backend.loraApply(hostArray('F16', 8), { ...params, cols: 4, right: new Float32Array(4) }, hostArray('F16', 8))).rejects.toThrow(/F16 weight/);
    await expect(backend.loraApply(hostArray('F32', 8), { ...params, cols: 4 }, hostArray('F32', 8))).rejects.toThrow(/factors of rank 1/);
  });
});
