import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { absBits } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { TieBytes } from '../../src/main/engine/methods/sparsify';
import { keptTies, SortKeys } from '../../src/main/engine/methods/torch-sort-ties';
import { toF32 } from '../../src/main/engine/compute/reference';
import { roundStepArray } from '../../src/main/engine/methods/numerics';
import { asHost, edgeValues, hostChunks, rng, weights } from '../compute/samples';
import { torchTiesWithin, type TieRequest } from '../../src/main/engine/methods/magnitude-select';

interface SortCase {
  length: number;
  seed: number;
  levels: number;
  specials: boolean;
  descending: boolean;
  /** torch.topk(k = to) rather than a slice of a sort. */
  topk?: boolean;
  from: number;
  to: number;
  /** The values tied across an end of [from, to). */
  tied: number[];
  /** The indices of the tied elements torch's sort put inside it. */
  kept: number[];
}

const vectors: { torch: string; cases: SortCase[] } = JSON.parse(readFileSync('test/fixtures/torch-sort-ties.json', 'utf8'));

/** The same exact dyadic values as tools/vectors/make_sort_tie_vectors.py. */
function values({ length, seed, levels, specials }: SortCase): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    let h = (Math.imul(i, 2654435761) + Math.imul(seed, 40503)) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    h = Math.imul(h, 2246822519) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    out[i] = ((h >>> 20) & 1 ? -1 : 1) * (h % levels) * 2 ** -12;
  }
  if (specials) [NaN, Infinity, -Infinity, -0, NaN].forEach((x, j) => (out[(j * 7919 + seed) % length] = x));
  return out;
}

function keysOf(c: SortCase, x: Float32Array, memory?: Int32Array): SortKeys {
  const keys = new SortKeys(c.length, c.descending, c.tied.map((t) => absBits(t)), memory);
  keys.setDeltas(0, new Int32Array(x.buffer));
  return keys;
}

/** The indices a bitset holds, ascending. */
function members(bits: Uint8Array): number[] {
  return [...bits.keys()].flatMap((byte) => [0, 1, 2, 3, 4, 5, 6, 7].filter((b) => (bits[byte]! >> b) & 1).map((b) => 8 * byte + b));
}

describe(`torch's sort order among tied values (torch ${vectors.torch})`, () => {
  const cases = vectors.cases.filter((c) => c.tied.length > 0);

  it('has cases with ties on both sides of one end, and of two, in both orders', () => {
    expect(cases.filter((c) => c.descending).length).toBeGreaterThan(8);
    expect(cases.filter((c) => !c.descending && c.tied.length === 2).length).toBeGreaterThan(8);
    expect(cases.some((c) => c.length > 100_000 && c.kept.length > 100)).toBe(true);
    expect(cases.filter((c) => c.topk && c.to * 64 <= c.length).length).toBeGreaterThan(3);
    expect(cases.filter((c) => c.topk && c.to * 64 > c.length).length).toBeGreaterThan(3);
  });

  for (const c of cases) {
    const order = c.topk ? `topk(${c.to}), by ${c.to * 64 <= c.length ? 'partial_sort' : 'nth_element'}` : `${c.descending ? 'argsort descending' : 'sort ascending'}[${c.from}:${c.to}]`;
    it(`keeps the tied elements torch keeps: ${c.length} elements (seed ${c.seed}, ${c.levels} magnitudes${c.specials ? ', NaN and ±inf' : ''}), ${order}`, () => {
      const keys = keysOf(c, values(c));
      expect(members(c.topk ? keys.topkWithin(c.to) : keys.tiesWithin(c.from, c.to))).toEqual(c.kept);
    });
  }

  it('differs from taking the ties in index order (the order the cases would give without torch\'s sort)', () => {
    const differing = cases.filter((c) => {
      const x = values(c);
      const tied = new Set(c.tied.map((t) => absBits(t)));
      const inIndexOrder = [...x.keys()].filter((i) => tied.has(absBits(x[i]!))).slice(0, c.kept.length);
      return JSON.stringify(inIndexOrder) !== JSON.stringify(c.kept);
    });
    expect(differing.length).toBeGreaterThan(cases.length / 2);
  });

  it('keeps no tie from topk(0), leaving the keys as they were', () => {
    const c = cases.find((c) => c.topk)!;
    const keys = keysOf(c, values(c));
    const before = keys.keys.slice();
    expect(members(keys.topkWithin(0))).toEqual([]);
    expect(keys.keys).toEqual(before);
  });

  it('refuses tensors whose indices do not fit its keys', () => {
    expect(() => new SortKeys(2 ** 30 + 1, true, [0])).toThrow(/more than/);
  });
});

describe("torch's sort order among tied values on the CPU kernels' threads (kernels.wat tsort, tselect)", () => {
  const cases = vectors.cases.filter((c) => c.tied.length > 0);
  const backends = [new WasmBackend({ workers: 2 }), new WasmBackend({ workers: 0 })];
  afterAll(() => Promise.all(backends.map((b) => b.dispose())));

  for (const backend of backends) {
    it(`keeps the tied elements torch keeps, every case side by side (${backend.description})`, async () => {
      const blocks = cases.map((c) => backend.allocateHost(4 * c.length));
      const keys = cases.map((c, i) => keysOf(c, values(c), new Int32Array(blocks[i]!.buffer, blocks[i]!.byteOffset, c.length)));
      const kept = await keptTies(cases.map((c, i) => ({ keys: keys[i]!, steps: c.topk ? { topk: c.to } : { sort: [c.from, c.to] as const } })), backend);
      expect(kept.map(members)).toEqual(cases.map((c) => c.kept));
      blocks.forEach((b) => backend.releaseHost(b));
    });
  }

  it('leaves a million keys of 97 values in the order the steps here leave them', async () => {
    const backend = backends[0]!;
    const n = 1_000_003;
    const block = backend.allocateHost(4 * n);
    const x = new Float32Array(n).map((_, i) => ((Math.imul(i, 2654435761) >>> 0) % 97) * 2 ** -10);
    const sorted = x.slice().sort();
    const at = (rank: number) => absBits(sorted[rank]!);
    for (const [steps, tied] of [
      [{ sort: [250_000, 750_000] as const }, [at(250_000), at(750_000)]],
      [{ topk: 400_000 }, [at(399_999)]],
      [{ topk: 9_000 }, [at(8_999)]],
    ] as const) {
      const here = new SortKeys(n, false, [...tied]);
      const there = new SortKeys(n, false, [...tied], new Int32Array(block.buffer, block.byteOffset, n));
      here.setDeltas(0, new Int32Array(x.buffer));
      there.setDeltas(0, new Int32Array(x.buffer));
      const [kept] = await keptTies([{ keys: there, steps }], backend);
      const expected = members(here.keptBy(steps));
      expect(expected.length).toBeGreaterThan(0);
      expect(members(kept!)).toEqual(expected);
      expect(Buffer.compare(Buffer.from(there.keys.buffer, there.keys.byteOffset, 4 * n), Buffer.from(here.keys.buffer, 0, 4 * n))).toBe(0);
    }
    backend.releaseHost(block);
  });

  for (const dtype of ['F32', 'BF16', 'F16'] as const) {
    for (const descending of [true, false]) {
      it(`builds the keys setDeltas builds from r(x − base): ${dtype} inputs and steps, ${descending ? 'descending' : 'ascending'}, windows of 1,000`, async () => {
        const backend = new WasmBackend({ workers: 2, windowElements: 1000 });
        const random = rng(dtype.length + (descending ? 1 : 0));
        const n = 20_011;
        const base = asHost(weights(n, random, -12, 1), dtype);
        const x = weights(n, random, -12, 1);
        edgeValues().forEach((v, i) => (x[3 * i] = v));
        [NaN, Infinity, -Infinity].forEach((v, i) => (x[10 + 3 * i] = v));
        const model = asHost(x, dtype);
        const baseValues = toF32(base);
        const delta = toF32(model).map((v, i) => v - baseValues[i]!);
        roundStepArray(dtype, delta);
        const bits = new Int32Array(delta.buffer);
        const tied = [absBits(delta[777]!), absBits(delta[12_345]!)];
        const expected = new SortKeys(n, descending, tied);
        expected.setDeltas(0, bits);
        const block = backend.allocateHost(4 * n);
        const keys = new Int32Array(block.buffer, block.byteOffset, n);
        const start = 4_000_000;
        for (let at = 0; at < n; at += 7_001) {
          const length = Math.min(7_001, n - at);
          const slice = <T extends Float32Array | Uint16Array>(a: T) => a.subarray(at, at + length) as T;
          await backend.deltaKeys(
            { dtype: base.dtype, data: slice(base.data) } as typeof base,
            { dtype: model.dtype, data: slice(model.data) } as typeof model,
            { tied, descending, start: start + at, step: dtype },
            keys.subarray(at, at + length),
          );
        }
        const shifted = expected.keys.map((k) => (k >= 0 ? k : ~(~k + start)));
        expect(keys.filter((k) => k < 0).length).toBeGreaterThan(1);
        expect(Buffer.compare(Buffer.from(keys.buffer, keys.byteOffset, 4 * n), Buffer.from(shifted.buffer))).toBe(0);
        await backend.dispose();
      });
    }
  }

  it("keeps the ties the TypeScript keeps for several models, their keys built and sorted on the kernels' threads, all at once or a model at a time", async () => {
    const n = 50_021;
    const random = rng(99);
    const inputs = [0, 1, 2, 3].map(() => asHost(weights(n, random, -9, -6), 'BF16'));
    const values = inputs.map(toF32);
    const requests: TieRequest[] = [1, 2, 3].map((model, j) => {
      const delta = values[model]!.map((v, i) => v - values[0]![i]!);
      roundStepArray('BF16', delta);
      const order = [...delta].map((d) => absBits(d)).sort((a, b) => (j === 1 ? a - b : b - a));
      const [from, to] = j === 1 ? [10_000, 30_000] : [0, 20_000 + 5_000 * j];
      return { model, order: { descending: j !== 1, from, to }, tied: [...new Set([order[from]!, order[to]!])] };
    });
    const source = hostChunks(inputs, 7_001);
    const here = await torchTiesWithin(source, { base: 0, step: 'BF16' }, requests, n);
    expect(here.map((bits) => members(bits).length).every((count) => count > 0)).toBe(true);
    for (const keysBytes of [undefined, 4 * n]) {
      const backend = new WasmBackend({ workers: 1, windowElements: 4_000 });
      const there = await torchTiesWithin(source, { base: 0, step: 'BF16', backend, ...(keysBytes ? { keysBytes } : {}) }, requests, n);
      expect(there.map(members)).toEqual(here.map(members));
      await backend.dispose();
    }
  });

  it('refuses keys outside its memory', async () => {
    await expect(backends[1]!.sortKeys([{ keys: new Int32Array(4), tiedValues: [0, 0], steps: { topk: 1 } }])).rejects.toThrow(/outside the kernels' memory/);
  });
});

describe('TieBytes: a bitset over the tensor as a byte per element of a run', () => {
  it('gives each element its bit, for runs that start on a bitset byte and runs that do not, of any length', () => {
    const n = 1000;
    const bits = Uint8Array.from({ length: n / 8 }, (_, i) => (i * 151 + 7) & 0xff);
    const ties = new TieBytes(bits);
    for (const [start, length] of [[0, 1000], [8, 17], [16, 8], [3, 100], [997, 3], [504, 0], [0, 7]] as const) {
      const want = Array.from({ length }, (_, i) => (bits[(start + i) >> 3]! >> ((start + i) & 7)) & 1);
      expect([...ties.over(start, length)], `[${start}, ${start + length})`).toEqual(want);
    }
  });
});
