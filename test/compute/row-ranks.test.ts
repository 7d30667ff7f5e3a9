// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { MAX_DELLA_ROW, type ComputeBackend, type HostArray, type RowRankParams } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { openWebGpu } from '../../src/main/engine/compute/webgpu-backend';
import { roundBf16 } from '../../src/main/engine/methods/numerics';
import { uniformAt } from '../../src/main/engine/methods/random-mask';
import { DellaSparsifier } from '../../src/main/engine/methods/sparsify';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { asHost, placed, rng } from './samples';
import { rowRankParams, tiedRows } from './row-rank-samples';

const reference = new ReferenceBackend();
const opened = await openWebGpu({ windowElements: 1000 });
const gpu = 'backend' in opened ? opened.backend : undefined;
if (!gpu) console.warn(`\n*** WebGPU ROW-RANK TESTS SKIPPED: ${'reason' in opened ? opened.reason : ''}.\n*** On Linux without a GPU, install Mesa (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) for llvmpipe.\n`);

/** Each backend, and whether its arrays (inputs and masks) are put in its own memory first, as the engine does on the CPU. */
const BACKENDS: [string, ComputeBackend, boolean][] = [
  ['WASM, 2 workers, windows of 5,000', new WasmBackend({ workers: 2, windowElements: 5000 }), false],
  ['WASM, 2 workers, windows of 100,000 (rows split across the threads)', new WasmBackend({ workers: 2, windowElements: 100_000 }), false],
  ['WASM, calling thread', new WasmBackend({ workers: 0 }), false],
  ['WASM, 1 worker, arrays in its own memory', new WasmBackend({ workers: 1 }), true],
  ...(gpu ? [[`GPU (${gpu.description}), windows of 1,000 (longer rows on its host CPU backend)`, gpu, false] as [string, ComputeBackend, boolean]] : []),
];
afterAll(() => Promise.all(BACKENDS.map(([, b]) => b.dispose())));

/** Bytes past each mask that no backend may write. */
const GUARD = 64;
const SENTINEL = 0xa5;

/** `count` masks of `n` bytes with a guard of sentinels after each (in the backend's memory when pinned). */
function masks(backend: ComputeBackend, pin: boolean, count: number, n: number): Uint8Array[] {
  return Array.from({ length: count }, () => {
    const whole = pin && backend.allocateHost ? backend.allocateHost(n + GUARD) : new Uint8Array(n + GUARD);
    whole.fill(SENTINEL);
    return whole.subarray(0, n);
  });
}

/** `dtype`: every input's, or each input's in turn. */
async function compare(label: string, backend: ComputeBackend, pin: boolean, values: Float32Array[], dtype: FloatDtype | readonly FloatDtype[], params: RowRankParams): Promise<void> {
  const n = values[0]!.length;
  const count = values.length - 1;
  const inputs = values.map((v, i) => asHost(v, typeof dtype === 'string' ? dtype : dtype[i]!));
  const want = masks(reference, false, count, n);
  await reference.rowRankMasks(inputs[0]!, inputs.slice(1), params, want);
  const mine = inputs.map((h) => placed(backend, pin, h));
  const got = masks(backend, pin, count, n);
  await backend.rowRankMasks(mine[0]!, mine.slice(1), params, got);
  for (let j = 0; j < count; j++) {
    const at = got[j]!.findIndex((b, i) => b !== want[j]![i]);
    expect(at, `${label}: model ${j}, element ${at} (row ${Math.floor(at / params.rowLength)})`).toBe(-1);
    const guard = new Uint8Array(got[j]!.buffer, got[j]!.byteOffset + n, GUARD);
    expect(guard.every((b) => b === SENTINEL), `${label}: model ${j}, written past the mask`).toBe(true);
  }
  if (pin) for (const array of [...mine.map((m) => new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength)), ...got]) backend.releaseHost?.(new Uint8Array(array.buffer, array.byteOffset, 0));
}

describe('rowRankMasks (DELLA) on every backend equals the reference byte for byte', () => {
  for (const [label, backend, pin] of BACKENDS) {
    it(`${label}: f32/bf16/f16 inputs, f32/bf16 steps, rows of 1, 7, 33, 2048 and 4099, many ties, NaN/±0/subnormals`, async () => {
      let seed = 1;
      for (const [rowLength, rows, count] of [[1, 37, 2], [7, 13, 3], [33, 31, 1], [2048, 3, 2], [4099, 2, 3]] as const) {
        for (const dtype of ['F32', 'BF16', 'F16'] as const) {
          for (const step of ['F32', 'BF16', 'F16'] as const) {
            const values = tiedRows(rowLength * rows, count, seed++);
            // The last start puts the call across tensor index 2^32 (the hash's high word).
            for (const start of [0, 12_345 * rowLength, 2 ** 32 - Math.floor((rows * rowLength) / 2)]) {
              await compare(`rows of ${rowLength} ×${rows}, ${count} models, ${dtype} in, ${step} steps, start ${start}`, backend, pin, values, dtype, rowRankParams(count, rowLength, start, step, seed));
            }
          }
        }
      }
    });

    it(`${label}: inputs of different dtypes (an f32 base with bf16 models, and bf16, f32, f16), odd row lengths`, async () => {
      let seed = 900;
      for (const dtypes of [['F32', 'BF16', 'BF16'], ['BF16', 'F32', 'F16']] as const) {
        for (const [rowLength, rows] of [[7, 13], [2048, 3], [4099, 2]] as const) {
          const values = tiedRows(rowLength * rows, 2, seed++);
          await compare(`rows of ${rowLength} ×${rows}, ${dtypes.join('/')} in`, backend, pin, values, dtypes, rowRankParams(2, rowLength, 0, 'F32', seed));
        }
      }
    });

    it(`${label}: rows whose magnitudes differ in a few bits (one digit), about 13 (two) and all (three)`, async () => {
      const random = rng(21);
      const n = 3000;
      const sign = () => (random() < 0.5 ? -1 : 1);
      const kinds: [string, () => number][] = [
        ['one digit', () => sign() * (1 + Math.floor(random() * 8) / 8) * 2 ** -5],
        ['two digits', () => sign() * (1 + Math.floor(random() * 1024) / 1024) * 2 ** -(5 + Math.floor(random() * 4))],
        ['three digits', () => sign() * random() * 2 ** -(Math.floor(random() * 20))],
      ];
      for (const [kind, draw] of kinds) {
        const values = [new Float32Array(n), Float32Array.from({ length: n }, draw), Float32Array.from({ length: n }, draw)];
        for (const rowLength of [n, 3]) await compare(`${kind}, rows of ${rowLength}`, backend, pin, values, 'F32', rowRankParams(2, rowLength, 99, 'F32', 5));
      }
    });

    it(`${label}: many rows in a call (whole rows across the threads), 2 to 5 models`, async () => {
      for (const [rowLength, rows, count, dtype] of [[2048, 48, 2, 'BF16'], [1000, 131, 3, 'F32'], [5632, 9, 5, 'BF16'], [129, 1001, 2, 'F32']] as const) {
        const values = tiedRows(rowLength * rows, count, rowLength);
        for (const step of ['F32', 'BF16', 'F16'] as const) await compare(`rows of ${rowLength} ×${rows}, ${count} models, ${dtype} in, ${step} steps`, backend, pin, values, dtype, rowRankParams(count, rowLength, 4096 * rowLength, step, rows));
      }
    });
  }

  it('a row of 4,194,304 elements (the longest), 4 models f32 and in bf16 steps: models taken a group at a time', async () => {
    const [, wasm] = BACKENDS[1]!;
    const n = MAX_DELLA_ROW;
    const values = tiedRows(n, 4, 77);
    await compare('one row of 4,194,304', wasm, false, values, 'F32', rowRankParams(4, n, 0, 'F32', 3));
    await compare('one row of 4,194,304, bf16', wasm, false, values.map((v) => v.map(roundBf16)), 'BF16', rowRankParams(4, n, n, 'BF16', 4));
  }, 120_000);

  it('rejects rows longer than 4,194,304, a call that is not whole rows, and density ± epsilon outside (0, 1)', async () => {
    for (const [label, backend] of [['reference', reference] as const, ...BACKENDS.slice(0, 1)]) {
      const x: HostArray = { dtype: 'F32', data: new Float32Array(10) };
      const keep = [new Uint8Array(10)];
      const ok = rowRankParams(1, 5, 0, 'F32', 1);
      await expect(backend.rowRankMasks(x, [x], { ...ok, rowLength: 3 }, keep), label).rejects.toThrow(/not whole rows/);
      await expect(backend.rowRankMasks(x, [x], { ...ok, rowLength: MAX_DELLA_ROW + 1 }, keep), label).rejects.toThrow(/longer than Alloy ranks/);
      await expect(backend.rowRankMasks(x, [x], { ...ok, densities: [0.9], epsilons: [0.1] }, keep), label).rejects.toThrow(/inside \(0, 1\)/);
    }
  });
});

describe('DELLA ranks', () => {
  it('rank k of n is kept with probability f(low + f(f(k/(n − 1))·span)) under the counter hash: a row of distinct magnitudes', async () => {
    const n = 1000;
    const base = new Float32Array(n);
    // |δ| descending with the index: the element at i has rank n − 1 − i.
    const model = Float32Array.from({ length: n }, (_, i) => (i % 2 ? -1 : 1) * (n - i) * 2 ** -10);
    const params = rowRankParams(1, n, 500, 'F32', 9);
    const keep = new Uint8Array(n);
    await BACKENDS[2]![1].rowRankMasks({ dtype: 'F32', data: base }, [{ dtype: 'F32', data: model }], params, [keep]);
    const low = Math.fround(params.densities[0]! - params.epsilons[0]!);
    const span = Math.fround(2 * params.epsilons[0]!);
    for (let i = 0; i < n; i++) {
      const p = Math.fround(low + Math.fround(Math.fround((n - 1 - i) / (n - 1)) * span));
      expect(keep[i], `element ${i}`).toBe(uniformAt(params.keys[0]!, 500 + i) < p ? 1 : 0);
    }
  });

  it('every NaN ranks alike, whatever its payload or sign (the TypeScript path too)', () => {
    const n = 64;
    const random = rng(4);
    const delta = Float32Array.from({ length: n }, () => (random() - 0.5) * 2 ** -8);
    const canonical = delta.slice();
    const bits = new Uint32Array(delta.buffer);
    for (const [i, payload] of [[3, 0x7fc00001], [10, 0xffc00000], [11, 0x7f800001], [40, 0xffffffff]] as const) {
      bits[i] = payload;
      canonical[i] = NaN;
    }
    const a = new Uint8Array(n);
    const b = new Uint8Array(n);
    new DellaSparsifier(7, 0.5, 0.3, 16).mask(0, delta, a);
    new DellaSparsifier(7, 0.5, 0.3, 16).mask(0, canonical, b);
    expect([...a]).toEqual([...b]);
  });
});
