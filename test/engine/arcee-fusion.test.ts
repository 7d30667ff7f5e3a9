import { describe, expect, it } from 'vitest';
import { getMergeMethod } from '../../src/main/engine/methods/registry';
import { roundBf16 } from '../../src/main/engine/methods/numerics';
import type { TensorMergeContext } from '../../src/main/engine/methods/types';
import { asHost, firstDifference, hostChunks, rng, weights } from '../compute/samples';

const f = Math.fround;

/**
 * arcee_fusion restated the plain way: every importance in an array, the quantiles read from the
 * sorted array, each row's KL divergence computed where its elements are.
 */
function plainArceeFusion(x: Float32Array, b: Float32Array, row: number, bf16: boolean): Float32Array {
  const r = bf16 ? roundBf16 : f;
  const importance = new Float32Array(x.length);
  for (let start = 0; start < x.length; start += row) {
    const xs = x.subarray(start, start + row);
    const bs = b.subarray(start, start + row);
    const p = softmax(xs, r);
    const q = softmax(bs, r);
    let kl = 0;
    for (let i = 0; i < row; i++) {
      const pi = r(p[i]! + 1e-8);
      const qi = r(q[i]! + 1e-8);
      kl += r(pi * r(Math.log(r(pi / qi))));
    }
    kl = r(kl);
    for (let i = 0; i < row; i++) importance[start + i] = r(Math.abs(r(xs[i]! - bs[i]!)) * kl);
  }
  const sorted = importance.slice().sort();
  const at = (q: number) => sorted[Math.trunc(f(f(q) * (x.length - 1)))]!;
  const threshold = r(at(0.5) + r(1.5 * r(at(0.75) - at(0.25))));
  return x.map((xi, i) => (importance[i]! >= threshold ? f(b[i]! + r(f(xi - b[i]!))) : b[i]!));
}

function softmax(x: Float32Array, r: (x: number) => number): Float64Array {
  const max = x.reduce((m, v) => Math.max(m, v), -Infinity);
  const e = Array.from(x, (v) => f(Math.exp(f(v - max))));
  const sum = e.reduce((s, v) => s + v, 0);
  return Float64Array.from(e, (v) => r(v / sum));
}

describe('arcee_fusion', () => {
  it('equals its plain restatement: f32 and bf16 steps, one chunk or many, 1-D and 2-D tensors', async () => {
    const random = rng(21);
    for (const [rows, row, chunkRows, bf16] of [
      [300, 257, 300, false],
      [300, 257, 7, false],
      [211, 128, 211, true],
      [211, 128, 13, true],
      [1, 40_001, 1, false],
      [1, 40_001, 1, true],
    ] as const) {
      const n = rows * row;
      const round = bf16 ? (v: Float32Array) => v.map(roundBf16) : (v: Float32Array) => v;
      const b = round(weights(n, random, -8, -2));
      // A few rows and elements far from the base, so their divergence, and some importances, stand out.
      const x = round(b.map((v, i) => f(v + (Math.floor(i / row) % 17 === 3 || i % 97 === 5 ? 0.5 : 0.01) * (random() - 0.5))));
      const ctx: TensorMergeContext = { tensorName: 'w', shape: rows === 1 ? [n] : [rows, row], numel: n, baseIndex: 0, global: {}, perModel: [{}, {}], seed: 0, ...(bf16 ? { computeDtype: 'BF16' as const } : {}) };
      const out = new Float32Array(n);
      const inputs = [asHost(b, 'F32'), asHost(x, 'F32')];
      await getMergeMethod('arcee_fusion').kernel(hostChunks(inputs, chunkRows * row), { write: async (start, values) => out.set(values, start) }, ctx);
      const want = plainArceeFusion(x, b, row, bf16);
      const taken = want.filter((v, i) => v !== b[i]).length;
      expect(taken, 'some elements take the model\'s value, most keep the base\'s').toBeGreaterThan(0);
      expect(taken).toBeLessThan(n / 2);
      const at = firstDifference({ dtype: 'F32', data: out }, { dtype: 'F32', data: want });
      expect(at < 0 ? '' : `element ${at}: ${out[at]} vs ${want[at]}`, `${rows} × ${row}, chunks of ${chunkRows} rows, ${bf16 ? 'bf16' : 'f32'} steps`).toBe('');
    }
  });
});
