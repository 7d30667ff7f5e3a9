import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Xxh3Hasher } from '../../src/main/engine/execute/xxh3';

const vectors: { xxhash: string; cases: { length: number; xxh3_128: string }[] } = JSON.parse(readFileSync('test/fixtures/xxh3-vectors.json', 'utf8'));

/** The bytes of tools/vectors/make_xxh3_vectors.py: a 32-bit LCG's bits 16–23. */
function data(length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = 12345;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = (x >>> 16) & 0xff;
  }
  return out;
}

describe(`XXH3-128 (against ${vectors.xxhash})`, () => {
  const hasher = new Xxh3Hasher();

  it('gives the reference digest on every length, in one update', () => {
    const wrong = vectors.cases.filter(({ length, xxh3_128 }) => {
      hasher.update(data(length));
      return hasher.digest() !== xxh3_128;
    });
    expect(wrong.map((c) => c.length)).toEqual([]);
  });

  it('gives the same digest whatever the updates\' sizes (1 byte to past a copy block), and starts over after each digest', () => {
    const wrong: string[] = [];
    for (const { length, xxh3_128 } of vectors.cases.filter((c) => c.length >= 200)) {
      const bytes = data(length);
      for (const sizes of [[1, 63, 64, 65], [7, 300, 1024], [100_001, 262_145]]) {
        for (let at = 0, k = 0; at < length; k++) {
          const size = sizes[k % sizes.length]!;
          hasher.update(bytes.subarray(at, at + size));
          at += size;
        }
        const digest = hasher.digest();
        if (digest !== xxh3_128) wrong.push(`${length} in pieces of ${sizes.join('/')}: ${digest}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('changes with any one flipped bit of a long input', () => {
    const bytes = data(300_000);
    hasher.update(bytes);
    const digest = hasher.digest();
    for (const at of [0, 63, 64, 1023, 1024, 150_000, 262_143, 262_144, 299_935, 299_999]) {
      const changed = bytes.slice();
      changed[at]! ^= 1 << (at % 8);
      hasher.update(changed);
      expect(hasher.digest(), `byte ${at}`).not.toBe(digest);
    }
  });
});
