import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { absBits } from '../../src/main/engine/compute/types';
import { TieBytes } from '../../src/main/engine/methods/sparsify';
import { SortKeys } from '../../src/main/engine/methods/torch-sort-ties';

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

function keysOf(c: SortCase, x: Float32Array): SortKeys {
  const keys = new SortKeys(c.length, c.descending, c.tied.map((t) => absBits(t)));
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
