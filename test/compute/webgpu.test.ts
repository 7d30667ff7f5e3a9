// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { hostArray, type ComputeBackend, type HostArray } from '../../src/main/engine/compute/types';
import { GpuDeviceLostError, openWebGpu, type WebGpuBackend } from '../../src/main/engine/compute/webgpu-backend';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { asHost, describeElement, edgeValues, firstDifference, neighbours, rng, weights } from './samples';

const DTYPES: FloatDtype[] = ['F32', 'BF16', 'F16'];
const reference = new ReferenceBackend();

// Two backends: the device's own windows, and windows of 1,000 elements so that every call below
// is cut into several windows and the ring of three slots wraps around.
const whole = await openWebGpu();
const windowed = await openWebGpu({ windowElements: 1000 });
const gpu = 'backend' in whole ? whole.backend : undefined;
const small = 'backend' in windowed ? windowed.backend : undefined;
if (!gpu || !small) {
  const reason = 'reason' in whole ? whole.reason : 'reason' in windowed ? windowed.reason : '';
  console.warn(`\n*** WebGPU TESTS SKIPPED: ${reason}.\n*** On Linux without a GPU, install Mesa (libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri) for llvmpipe.\n`);
}
afterAll(async () => {
  await gpu?.dispose();
  await small?.dispose();
});

type Call = (b: ComputeBackend, inputs: HostArray[], out: HostArray) => Promise<void>;
const CALLS: Record<string, { inputs: number; call: Call; make?: (values: Float32Array[], random: () => number) => Float32Array[] }> = {
  'linear of 3, normalized': { inputs: 3, call: (b, i, o) => b.linear(i, [0.7, 0.2, 0.35], true, o) },
  'linear of 2, not normalized': { inputs: 2, call: (b, i, o) => b.linear(i, [1.5, -0.25], false, o) },
  'linear of 1': { inputs: 1, call: (b, i, o) => b.linear(i, [0.3], true, o) },
  nearswap: {
    inputs: 2,
    call: (b, i, o) => b.nearswap(i[0]!, i[1]!, 0.0001, o),
    make: ([a], random) => [a!, neighbours(a!, random)],
  },
  'nearswap, t = 0.5': { inputs: 2, call: (b, i, o) => b.nearswap(i[0]!, i[1]!, 0.5, o), make: ([a], random) => [a!, neighbours(a!, random)] },
  'blend2 (slerp)': { inputs: 2, call: (b, i, o) => b.blend2(0.6180339, i[0]!, 0.4472136, i[1]!, o) },
};

async function compare(backend: ComputeBackend, name: string, values: Float32Array[], inDtype: FloatDtype, outDtype: FloatDtype): Promise<void> {
  const { call } = CALLS[name]!;
  const inputs = values.map((v) => asHost(v, inDtype));
  const want = hostArray(outDtype, values[0]!.length);
  const got = hostArray(outDtype, values[0]!.length);
  await call(reference, inputs, want);
  await call(backend, inputs, got);
  const at = firstDifference(got, want);
  const detail = at < 0 ? '' : `element ${at}: gpu ${describeElement(got, at)}, reference ${describeElement(want, at)}; inputs ${values.map((v) => v[at]).join(', ')}`;
  expect(detail, `${name} ${inDtype}→${outDtype}`).toBe('');
}

function sample(name: string, n: number, seed: number): Float32Array[] {
  const random = rng(seed);
  const { inputs, make } = CALLS[name]!;
  const values = Array.from({ length: inputs }, () => weights(n, random));
  return make ? make(values, random) : values;
}

describe.skipIf(!gpu)('WebGPU kernels equal the TypeScript reference bit for bit', () => {
  it(`runs on ${gpu?.description ?? 'no adapter'}`, () => {
    expect(gpu!.kind).toBe('gpu');
    expect(gpu!.adapter.name.length).toBeGreaterThan(0);
  });

  for (const name of Object.keys(CALLS)) {
    it(`${name}: every input and output dtype, across windows of 1,000 elements`, async () => {
      let seed = 1;
      for (const inDtype of DTYPES) {
        for (const outDtype of DTYPES) await compare(small!, name, sample(name, 5001, seed++), inDtype, outDtype);
      }
    });
  }

  it('every method on 1 M elements in the device\'s own windows', async () => {
    for (const name of Object.keys(CALLS)) {
      await compare(gpu!, name, sample(name, 1 << 20, 7), 'BF16', 'BF16');
      await compare(gpu!, name, sample(name, (1 << 20) + 3, 8), 'F32', 'F32');
    }
  });

  it('zeros, subnormals and the extremes of each format (one documented corner of linear aside)', async () => {
    const edges = edgeValues();
    const n = edges.length;
    // Every pair of edge values, both ways round.
    const a = new Float32Array(n * n);
    const b = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { a[i * n + j] = edges[i]!; b[i * n + j] = edges[j]!; }
    for (const name of ['nearswap', 'nearswap, t = 0.5', 'blend2 (slerp)', 'linear of 2, not normalized', 'linear of 1']) {
      for (const dtype of DTYPES) await compare(small!, name, [a, b].slice(0, CALLS[name]!.inputs), dtype, dtype);
    }
    // fma_rn's corner (wgsl.ts): a product and a running sum both below 2^-75 with a subnormal
    // result may be one subnormal ulp off, so an element whose inputs are all that tiny may end one
    // ulp off. Anything else must be exact.
    const inputs = [a, b, a].map((v) => asHost(v, 'F32'));
    const want = hostArray('F32', n * n);
    const got = hostArray('F32', n * n);
    await reference.linear(inputs, [0.7, 0.2, 0.35], true, want);
    await small!.linear(inputs, [0.7, 0.2, 0.35], true, got);
    const wantBits = new Int32Array(want.data.buffer);
    const gotBits = new Int32Array(got.data.buffer);
    const off = [];
    for (let i = 0; i < n * n; i++) {
      if (wantBits[i] === gotBits[i]) continue;
      off.push(i);
      const tiny = Math.abs(a[i]!) < 2 ** -75 && Math.abs(b[i]!) < 2 ** -75;
      expect(tiny && Math.abs(wantBits[i]! - gotBits[i]!) === 1, `element ${i}: ${describeElement(got, i)} vs ${describeElement(want, i)}`).toBe(true);
    }
    expect(off.length).toBeLessThanOrEqual(4);
  });

  it('mixed input dtypes go through f32', async () => {
    const random = rng(3);
    const a = asHost(weights(3000, random), 'BF16');
    const b = asHost(weights(3000, random), 'F32');
    const want = hostArray('BF16', 3000);
    const got = hostArray('BF16', 3000);
    await reference.blend2(0.25, a, 0.75, b, want);
    await small!.blend2(0.25, a, 0.75, b, got);
    expect(firstDifference(got, want)).toBe(-1);
  });

  it('reads inputs that live in a SharedArrayBuffer (dawn rejects those views; the backend copies)', async () => {
    const random = rng(4);
    const values = weights(2001, random);
    const shared = new Uint16Array(new SharedArrayBuffer(2001 * 2));
    shared.set((asHost(values, 'BF16').data as Uint16Array));
    const input: HostArray = { dtype: 'BF16', data: shared };
    const want = hostArray('BF16', 2001);
    const got = hostArray('BF16', 2001);
    await reference.linear([input, input], [0.5, 0.5], true, want);
    await small!.linear([input, input], [0.5, 0.5], true, got);
    expect(firstDifference(got, want)).toBe(-1);
  });

  it('a tensor larger than the device\'s largest binding is cut into windows', async () => {
    const maxBinding = gpu!.limits.maxStorageBufferBindingSize;
    const n = Math.floor(maxBinding / 2) + 12_345; // bf16: each input alone is larger than one binding
    const random = rng(5);
    const a = new Uint16Array(n);
    const b = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      a[i] = 0x3c00 + Math.floor(random() * 0x0800) + (random() < 0.5 ? 0x8000 : 0);
      b[i] = 0x3c00 + Math.floor(random() * 0x0800) + (random() < 0.5 ? 0x8000 : 0);
    }
    const want = hostArray('BF16', n);
    const got = hostArray('BF16', n);
    await reference.blend2(0.3, { dtype: 'BF16', data: a }, 0.7, { dtype: 'BF16', data: b }, want);
    await gpu!.blend2(0.3, { dtype: 'BF16', data: a }, 0.7, { dtype: 'BF16', data: b }, got);
    expect(firstDifference(got, want)).toBe(-1);
  }, 240_000);
});

describe.skipIf(!gpu)('WebGPU device loss', () => {
  it('a lost device fails the call with GpuDeviceLostError, and every call after it', async () => {
    const opened = await openWebGpu({ windowElements: 1000 });
    if (!('backend' in opened)) throw new Error(opened.reason);
    const backend: WebGpuBackend = opened.backend;
    const a = asHost(weights(5000, rng(6)), 'BF16');
    const out = hostArray('BF16', 5000);
    await backend.blend2(0.5, a, 0.5, a, out);
    backend.simulateDeviceLoss();
    await expect(backend.blend2(0.5, a, 0.5, a, out)).rejects.toBeInstanceOf(GpuDeviceLostError);
    await expect(backend.nearswap(a, a, 0.5, out)).rejects.toBeInstanceOf(GpuDeviceLostError);
    await backend.dispose();
  });
});
