// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { MAX_DELLA_ROW, type ComputeBackend, type HostArray, type RowRankParams } from '../../src/main/engine/compute/types';
import { openWebGpu, type WebGpuBackend } from '../../src/main/engine/compute/webgpu-backend';
import { bitsToF32 } from '../../src/main/engine/safetensors/convert';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { uniformAt } from '../../src/main/engine/methods/random-mask';
import { asHost, rng } from './samples';
import { ROW_RANK_SPECIALS, rowRankParams, tiedRows } from './row-rank-samples';

// DELLA's row ranks in WGSL (wgsl.ts rankShader) against the reference, byte for byte. The host
// CPU backend of each GPU backend is a stub that throws, so every call here must run on the device,
// except where a test says a row is longer than a window (then `viaHost` expects the host).
const reference = new ReferenceBackend();
let hostCalls = 0;
const host = (): ComputeBackend => {
  hostCalls++;
  return reference;
};
const opened = await Promise.all([openWebGpu({ host }), openWebGpu({ host, windowElements: 1000 }), openWebGpu({ host, windowElements: 130, slots: 2 })]);
const [gpu, windowed, tiny] = opened.map((o) => ('backend' in o ? o.backend : undefined)) as (WebGpuBackend | undefined)[];
if (!gpu || !windowed || !tiny) console.warn(`\n*** WebGPU ROW-RANK KERNEL TESTS SKIPPED: ${opened.map((o) => ('reason' in o ? o.reason : '')).join(' ')}.\n*** On Linux without a GPU, install Mesa (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) for llvmpipe.\n`);
afterAll(async () => {
  for (const b of [gpu, windowed, tiny]) await b?.dispose();
});

const GUARD = 16;
const SENTINEL = 0xa5;
const SPECIAL = [...ROW_RANK_SPECIALS, bitsToF32(1), bitsToF32(0x807fffff), bitsToF32(0x00800000)];

async function compare(label: string, backend: WebGpuBackend, values: Float32Array[], dtype: FloatDtype | FloatDtype[], params: RowRankParams, viaHost = false): Promise<void> {
  const n = values[0]!.length;
  const count = values.length - 1;
  const inputs: HostArray[] = values.map((v, m) => asHost(v, Array.isArray(dtype) ? dtype[m % dtype.length]! : dtype));
  const want = Array.from({ length: count }, () => new Uint8Array(n));
  await reference.rowRankMasks(inputs[0]!, inputs.slice(1), params, want);
  const got = Array.from({ length: count }, () => new Uint8Array(n + GUARD).fill(SENTINEL));
  const before = hostCalls;
  await backend.rowRankMasks(inputs[0]!, inputs.slice(1), params, got.map((g) => g.subarray(0, n)));
  expect(hostCalls - before, `${label}: ranked on the ${viaHost ? 'host' : 'device'}`).toBe(viaHost ? 1 : 0);
  for (let j = 0; j < count; j++) {
    const at = got[j]!.subarray(0, n).findIndex((b, i) => b !== want[j]![i]);
    expect(at, `${label}: model ${j}, element ${at} (row ${Math.floor(at / params.rowLength)})`).toBe(-1);
    expect(got[j]!.subarray(n).every((b) => b === SENTINEL), `${label}: model ${j}, written past the mask`).toBe(true);
  }
}

/** The inverse of x ↦ x·a mod 2^32 (a odd), by Newton's iteration. */
function inverse(a: number): number {
  let x = a;
  for (let i = 0; i < 5; i++) x = Math.imul(x, 2 - Math.imul(a, x));
  return x >>> 0;
}

/** An index below 2^32 at which uniformAt(key, index) draws exactly z / 2^32: the hash's steps undone. */
function indexDrawing(key: number, z: number): number {
  let y = (z ^ (z >>> 16)) >>> 0;
  y = Math.imul(y, inverse(0xc2b2ae35)) >>> 0;
  y = (y ^ (y >>> 13) ^ (y >>> 26)) >>> 0;
  y = Math.imul(y, inverse(0x85ebca6b)) >>> 0;
  y = (y ^ (y >>> 16)) >>> 0;
  return Math.imul((y ^ key) >>> 0, inverse(0x9e3779b9)) >>> 0;
}

describe.skipIf(!gpu)('rowRankMasks in WGSL equals the reference byte for byte', () => {
  it('f32/bf16/f16 inputs, f32/bf16 steps, rows of 1, 7, 33, 129, 2048, 4099 and 5632, several rows a call, starts up to and past 2^32', async () => {
    let seed = 1;
    for (const [rowLength, rows, count] of [[1, 37, 2], [7, 13, 3], [33, 31, 1], [129, 9, 2], [2048, 3, 2], [4099, 2, 3], [5632, 2, 1]] as const) {
      for (const dtype of ['F32', 'BF16', 'F16'] as const) {
        for (const step of ['F32', 'BF16'] as const) {
          const values = tiedRows(rowLength * rows, count, seed++, SPECIAL);
          for (const start of [0, 12_345 * rowLength, 2 ** 32 - Math.floor((rows * rowLength) / 2), 3 * 2 ** 32 + 17 * rowLength]) {
            await compare(`rows of ${rowLength} ×${rows}, ${count} models, ${dtype} in, ${step} steps, start ${start}`, gpu!, values, dtype, rowRankParams(count, rowLength, start, step, seed));
          }
        }
      }
    }
  }, 120_000);

  it('rows full of ties (all equal, ±0 alike, every NaN alike), and rows that differ in one, two or three digits', async () => {
    const n = 2100;
    const random = rng(5);
    const sign = () => (random() < 0.5 ? -1 : 1);
    const zero = new Float32Array(n);
    const rows: [string, Float32Array[]][] = [
      ['all zero deltas, ±0', [zero, Float32Array.from({ length: n }, () => sign() * 0), zero.slice()]],
      ['one magnitude, both signs', [zero, Float32Array.from({ length: n }, () => sign() * 0.375), Float32Array.from({ length: n }, () => sign() * 2 ** -140)]],
      ['NaNs of every payload and infinities', [zero, Float32Array.from({ length: n }, () => SPECIAL[Math.floor(random() * 4)]!), Float32Array.from({ length: n }, () => SPECIAL[Math.floor(random() * 6)]!)]],
      ['one digit', [zero, Float32Array.from({ length: n }, () => sign() * (1 + Math.floor(random() * 8) / 8) * 2 ** -5), Float32Array.from({ length: n }, () => sign() * 2 ** -(Math.floor(random() * 3)))]],
      ['two digits', [zero, Float32Array.from({ length: n }, () => sign() * (1 + Math.floor(random() * 1024) / 1024) * 2 ** -(5 + Math.floor(random() * 4))), Float32Array.from({ length: n }, () => sign() * random())]],
      ['three digits, subnormals', [zero, Float32Array.from({ length: n }, () => sign() * random() * 2 ** -Math.floor(random() * 150)), Float32Array.from({ length: n }, () => bitsToF32(Math.floor(random() * 0x800000)))]],
    ];
    for (const [kind, values] of rows) {
      for (const rowLength of [n, 300, 7]) {
        for (const step of ['F32', 'BF16'] as const) await compare(`${kind}, rows of ${rowLength}, ${step} steps`, gpu!, values, 'F32', rowRankParams(2, rowLength, 99, step, 5));
      }
    }
  });

  it('rows across windows of 1,000 and 130 elements (several windows a call, the ring wrapping), mixed f32 and bf16 inputs', async () => {
    let seed = 100;
    for (const [backend, label] of [[windowed!, 'windows of 1,000'], [tiny!, 'windows of 130, 2 slots']] as const) {
      for (const [rowLength, rows, count] of [[1, 1001, 2], [7, 300, 2], [33, 70, 3], [129, 17, 1]] as const) {
        const values = tiedRows(rowLength * rows, count, seed++, SPECIAL);
        await compare(`${label}: rows of ${rowLength} ×${rows}`, backend, values, 'BF16', rowRankParams(count, rowLength, 2 ** 32 - 5 * rowLength, 'BF16', seed));
        await compare(`${label}: rows of ${rowLength} ×${rows}, f32 base beside bf16 models`, backend, values, ['F32', 'BF16'], rowRankParams(count, rowLength, 77, 'F32', seed));
      }
    }
  });

  it('the draw at its threshold: hash values just below, at and above probability · 2^32 (every branch of the integer compare)', async () => {
    // [density, epsilon]: probabilities from 2^-9 to 1 (p · 2^32 an integer: exactly 1/2 among them,
    // and near 1), below 2^-9 (the ceiling of a fraction) and below 2^-57 (a threshold of 1).
    const cases = [[0.6, 0.1], [0.3, 0.25], [0.51, 0.3], [0.999, 0.0009], [0.02, 0.0100001], [0.001, 0.0005], [1e-6, 5e-7], [2e-30, 1e-30]] as const;
    for (const [density, epsilon] of cases) {
      const low = Math.fround(density - epsilon);
      const threshold = Math.ceil(low * 2 ** 32);
      for (const z of [threshold - 1, threshold, threshold + 1, 0, 1]) {
        if (z < 0) continue;
        const key = 0x1234567 + z;
        const start = indexDrawing(key, z >>> 0);
        expect(Math.round(uniformAt(key, start) * 2 ** 32), 'the inverted hash').toBe(z >>> 0);
        const params: RowRankParams = { step: 'F32', start, rowLength: 1, keys: [key], densities: [density], epsilons: [epsilon] };
        await compare(`p = ${low}, z = ${z}`, gpu!, [new Float32Array(1), new Float32Array([0.5])], 'F32', params);
      }
    }
  });

  it('a row longer than a window goes to the host, with the same bytes', async () => {
    const values = tiedRows(2048 * 2, 2, 9, SPECIAL);
    await compare('rows of 2,048 in windows of 1,000', windowed!, values, 'F32', rowRankParams(2, 2048, 5, 'F32', 9), true);
  });

  it('many rows in one window: 70,001 rows of 1 and 20,000 of 33 (a 2-D grid of workgroups)', async () => {
    await compare('rows of 1', gpu!, tiedRows(70_001, 1, 3, SPECIAL), 'BF16', rowRankParams(1, 1, 0, 'F32', 3));
    await compare('rows of 33', gpu!, tiedRows(33 * 20_000, 1, 4, SPECIAL), 'F32', rowRankParams(1, 33, 2 ** 40, 'BF16', 4));
  }, 120_000);

  it('a row of 4,194,304 elements (the longest), on the device', async () => {
    const values = tiedRows(MAX_DELLA_ROW, 1, 77, SPECIAL);
    await compare('one row of 4,194,304', gpu!, values, 'BF16', rowRankParams(1, MAX_DELLA_ROW, 2 ** 32, 'F32', 3));
  }, 300_000);
});
