import type { RowRankParams, StepDtype } from '../../src/main/engine/compute/types';
import { bitsToF32 } from '../../src/main/engine/safetensors/convert';
import { rng } from './samples';

/** NaNs of several payloads, infinities and signed zeros: what row ranks must order like the reference. */
export const ROW_RANK_SPECIALS = [NaN, bitsToF32(0x7fc00001), bitsToF32(0xffc00000), bitsToF32(0x7f800001), Infinity, -Infinity, 0, -0];

/**
 * A base and `count` models: deltas of a few magnitudes (many ties), a third with full mantissas
 * (every digit of the sort matters), `specials` in one element of 33, subnormal deltas where the base
 * is near zero, and special base elements (−0 against +0, NaN or an infinity against a number).
 */
export function tiedRows(n: number, count: number, seed: number, specials: readonly number[] = ROW_RANK_SPECIALS): Float32Array[] {
  const random = rng(seed);
  const steps = [0, 2 ** -12, 3 * 2 ** -12, 2 ** -9, 5 * 2 ** -9, 2 ** -6];
  const base = Float32Array.from({ length: n }, () => (random() < 0.5 ? -1 : 1) * 2 ** -(2 + Math.floor(random() * 5)));
  const tiny = (i: number) => i % 89 === 5;
  for (let i = 0; i < n; i++) if (tiny(i)) base[i] = bitsToF32(3);
  const models = Array.from({ length: count }, () =>
    base.map((b, i) => {
      if (tiny(i)) return bitsToF32((random() < 0.3 ? 0x80000000 : 0) | Math.floor(random() * 8)) as number;
      const r = random();
      if (r < 0.03) return specials[Math.floor(random() * specials.length)]!;
      if (r < 0.36) return Math.fround(b + (random() - 0.5) * 2 ** -(4 + Math.floor(random() * 8)));
      return Math.fround(b + (random() < 0.5 ? -1 : 1) * steps[Math.floor(random() * steps.length)]!);
    }),
  );
  for (let i = 0; i < n; i += 97) base[i] = specials[(i / 97) % specials.length]!;
  return [base, ...models];
}

/** DELLA's parameters for `count` models: seeded keys, a few densities and epsilons. */
export function rowRankParams(count: number, rowLength: number, start: number, step: StepDtype, seed: number): RowRankParams {
  const random = rng(seed);
  return {
    step,
    start,
    rowLength,
    keys: Array.from({ length: count }, () => Math.floor(random() * 2 ** 32)),
    densities: Array.from({ length: count }, (_, j) => [0.5, 0.3, 0.7, 0.45][j % 4]!),
    epsilons: Array.from({ length: count }, (_, j) => [0.15, 0.1, 0.25, 0.05][j % 4]!),
  };
}
