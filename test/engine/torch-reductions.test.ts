import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defaultTorchThreads, ParallelTorchSum, TorchHalfNorm, TorchNorm, TorchSum } from '../../src/main/engine/methods/torch-reductions';
import { roundBf16, roundF16 } from '../../src/main/engine/methods/numerics';
import { deltaVarianceF32 } from '../../src/main/engine/compute/reference';

const vectors: {
  torch: string;
  capability: string;
  cases: { length: number; seed: number; sum: number; norm: number }[];
  threaded: { length: number; seed: number; threads: number; sum: number }[];
  halfNorms: { length: number; seed: number; threads: number; norm: number }[];
  halfSums: { dtype: 'F16' | 'BF16'; length: number; seed: number; threads: number; sum: number }[];
  variances: { dtype: 'F32' | 'F16' | 'BF16'; length: number; seeds: number[]; variance: number[] }[];
} = JSON.parse(
  readFileSync('test/fixtures/torch-reductions.json', 'utf8'),
);

/** The same exact dyadic values as tools/vectors/make_reduction_vectors.py. */
function value(i: number, seed: number): number {
  let h = (Math.imul(i, 2654435761) + Math.imul(seed, 40503)) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  h = Math.imul(h, 2246822519) >>> 0;
  h = (h ^ (h >>> 13)) >>> 0;
  return ((h & 0xfffff) - 524288) * 2 ** -24;
}

describe(`torch's f32 reductions, order for order (torch ${vectors.torch}, ${vectors.capability}, one thread)`, () => {
  it('sum: bit-identical on every length, including those with leftover vectors and scalars', () => {
    const wrong = vectors.cases.filter(({ length, seed, sum }) => {
      const s = new TorchSum(length);
      for (let i = 0; i < length; i++) s.add(value(i, seed));
      return s.result() !== sum;
    });
    expect(wrong.map((c) => `${c.length}/${c.seed}`)).toEqual([]);
  });

  it('vector_norm: bit-identical on every length that fills whole 8-lane vectors', () => {
    const wrong = vectors.cases.filter(({ length, seed, norm }) => {
      if (length % 8 !== 0) return false;
      const n = new TorchNorm(length);
      for (let i = 0; i < length; i++) n.add(value(i, seed));
      return n.result() !== norm;
    });
    expect(wrong.map((c) => `${c.length}/${c.seed}`)).toEqual([]);
  });

  it('differs from a plain f64 sum rounded once, so the order is what is being tested', () => {
    const differs = vectors.cases.some(({ length, seed, sum }) => {
      let plain = 0;
      for (let i = 0; i < length; i++) plain += value(i, seed);
      return Math.fround(plain) !== sum;
    });
    expect(differs).toBe(true);
  });

  it('sum on several threads: the run cut per thread above the grain, partial sums added in order', () => {
    const wrong = vectors.threaded.filter(({ length, seed, threads, sum }) => {
      const s = new ParallelTorchSum(length, threads);
      for (let i = 0; i < length; i++) s.add(value(i, seed));
      return s.result() !== sum;
    });
    expect(vectors.threaded.length).toBeGreaterThan(0);
    expect(wrong.map((c) => `${c.length}/${c.threads}`)).toEqual([]);
  });

  it('takes torch\'s default threads from the physical cores in /proc/cpuinfo', () => {
    const cpuinfo = ['physical id : 0', 'core id : 0', 'physical id : 0', 'core id : 0', 'physical id : 0', 'core id : 1', 'physical id : 1', 'core id : 0'].join('\n');
    expect(defaultTorchThreads(cpuinfo, 8)).toBe(3);
    expect(defaultTorchThreads(undefined, 8)).toBe(8);
  });
});

describe(`torch's reductions of 16-bit tensors (torch ${vectors.torch}, ${vectors.capability}, 1 to 3 threads)`, () => {
  const round = (dtype: 'F16' | 'BF16') => (dtype === 'F16' ? roundF16 : roundBf16);

  it('norm of an f16 tensor: one f32 accumulator per thread\'s range (not the vector lanes), the sqrt rounded to f16', () => {
    // The generator's values over 4, after a first value of 64.
    const norm = (run: { add(x: number): void; result(): number }, length: number, seed: number) => {
      for (let i = 0; i < length; i++) run.add(roundF16(i === 0 ? 64 : value(i, seed) / 4));
      return roundF16(run.result());
    };
    const cases = vectors.halfNorms;
    expect(cases.length).toBeGreaterThan(0);
    expect(cases.filter((c) => norm(new TorchHalfNorm(c.length, c.threads), c.length, c.seed) !== c.norm).map((c) => `${c.length}/${c.threads}`)).toEqual([]);
    // The lanes' order, or one thread where torch used more, gives other bits: the order is what is tested.
    expect(cases.filter((c) => norm(new TorchNorm(c.length), c.length, c.seed) !== c.norm).length).toBeGreaterThan(0);
    expect(cases.filter((c) => c.threads > 1 && norm(new TorchHalfNorm(c.length, 1), c.length, c.seed) !== c.norm).length).toBeGreaterThan(0);
  });

  it('sum of an f16 or bf16 tensor across threads: each thread\'s partial sum rounded to the dtype before they are added', () => {
    const sum = (dtype: 'F16' | 'BF16', length: number, seed: number, threads: number, roundPart?: (x: number) => number) => {
      const r = round(dtype);
      const s = new ParallelTorchSum(length, threads, roundPart);
      for (let i = 0; i < length; i++) s.add(r(value(i, seed)));
      return r(s.result());
    };
    const cases = vectors.halfSums;
    expect(cases.filter((c) => sum(c.dtype, c.length, c.seed, c.threads, round(c.dtype)) !== c.sum).map((c) => `${c.dtype} ${c.length}/${c.threads}`)).toEqual([]);
    expect(cases.filter((c) => sum(c.dtype, c.length, c.seed, c.threads) !== c.sum).length).toBeGreaterThan(0);
  });
});

describe(`torch.var across stacked task vectors, sce's variances (torch ${vectors.torch})`, () => {
  it('is Welford\'s update in f64 over the models, cast to the dtype: deltaVariance, 2 to 5 models, f32, bf16 and f16', () => {
    expect(vectors.variances.length).toBe(12);
    const wrong = vectors.variances.filter(({ dtype, length, seeds, variance }) => {
      const r = dtype === 'BF16' ? roundBf16 : dtype === 'F16' ? roundF16 : Math.fround;
      const models = seeds.map((seed, j) => Float32Array.from({ length }, (_, i) => r(value(i, seed) * (1 + j))));
      const out = new Float32Array(length);
      deltaVarianceF32(new Float32Array(length), models, out, dtype);
      return out.some((v, i) => !Object.is(v, variance[i]));
    });
    expect(wrong.map((c) => `${c.dtype} × ${c.seeds.length}`)).toEqual([]);
  });

  it('differs from the f32 two-pass variance (mean, then squared deviations) on some elements', () => {
    const { length, seeds, variance } = vectors.variances.find((c) => c.dtype === 'F32' && c.seeds.length === 5)!;
    const models = seeds.map((seed, j) => Float32Array.from({ length }, (_, i) => Math.fround(value(i, seed) * (1 + j))));
    const f = Math.fround;
    const twoPass = (i: number) => {
      let sum = 0;
      for (const x of models) sum = f(sum + x[i]!);
      const mean = f(sum / models.length);
      let squares = 0;
      for (const x of models) squares = f(squares + f(f(x[i]! - mean) ** 2));
      return f(squares / models.length);
    };
    expect(variance.filter((v, i) => v !== twoPass(i)).length).toBeGreaterThan(10);
  });
});
