// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend, toF32 } from '../../src/main/engine/compute/reference';
import { absBits, hostArray, HISTOGRAM_BINS, type ComputeBackend, type HostArray, type StepDtype } from '../../src/main/engine/compute/types';
import { stepRounding } from '../../src/main/engine/methods/numerics';
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

  it('zeros, subnormals and the extremes of each format', async () => {
    const edges = edgeValues();
    const n = edges.length;
    // Every pair of edge values, both ways round.
    const a = new Float32Array(n * n);
    const b = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { a[i * n + j] = edges[i]!; b[i * n + j] = edges[j]!; }
    for (const name of ['nearswap', 'nearswap, t = 0.5', 'blend2 (slerp)', 'linear of 2, not normalized', 'linear of 1']) {
      for (const dtype of DTYPES) await compare(small!, name, [a, b].slice(0, CALLS[name]!.inputs), dtype, dtype);
    }
    // Products and running sums below 2^-75 with subnormal results (fma_rn's integer path) included.
    const inputs = [a, b, a].map((v) => asHost(v, 'F32'));
    const want = hostArray('F32', n * n);
    const got = hostArray('F32', n * n);
    await reference.linear(inputs, [0.7, 0.2, 0.35], true, want);
    await small!.linear(inputs, [0.7, 0.2, 0.35], true, got);
    const at = firstDifference(got, want);
    expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}; inputs ${a[at]}, ${b[at]}, ${a[at]}`).toBe('');
  });

  it('linear: NaN and infinities in any model, products that overflow where the exact sum does not', async () => {
    const big = 3.3895313892515355e38;
    const values = [1, -2.5, 0, -0, big, -big, 1e-30, NaN, Infinity, -Infinity];
    const n = values.length ** 3;
    const models = [0, 1, 2].map(() => new Float32Array(n));
    for (let i = 0; i < n; i++) {
      models[0]![i] = values[i % values.length]!;
      models[1]![i] = values[Math.floor(i / values.length) % values.length]!;
      models[2]![i] = values[Math.floor(i / values.length ** 2)]!;
    }
    for (const weights of [[0.3, -1.7, 2], [1, 1, 1], [2, 0.5, -3]]) {
      for (const dtype of ['F32', 'BF16'] as const) {
        const inputs = models.map((v) => asHost(v, dtype));
        const want = hostArray('F32', n);
        const got = hostArray('F32', n);
        await reference.linear(inputs, weights, true, want);
        await small!.linear(inputs, weights, true, got);
        // Which NaN comes out (sign, payload) is the hardware's: any NaN matches any NaN.
        for (const v of [want.data, got.data]) for (let i = 0; i < n; i++) if (Number.isNaN(v[i])) v[i] = NaN;
        const at = firstDifference(got, want);
        expect(at < 0 ? '' : `element ${at} (${models.map((m) => m[at]).join(', ')}): ${describeElement(got, at)} vs ${describeElement(want, at)}`, `${dtype}, weights ${weights}`).toBe('');
      }
    }
  });

  it('mixed input dtypes: f32 beside bf16 or f16 read as they are, bf16 with f16 through f32', async () => {
    const random = rng(3);
    for (const [x, y] of [['BF16', 'F32'], ['F32', 'F16'], ['BF16', 'F16']] as const) {
      const a = asHost(weights(3001, random), x);
      const b = asHost(weights(3001, random), y);
      const c = asHost(weights(3001, random, -4, 1), 'F32');
      for (const outDtype of DTYPES) {
        const want = hostArray(outDtype, 3001);
        const got = hostArray(outDtype, 3001);
        await reference.blend2(0.25, a, 0.75, b, want);
        await small!.blend2(0.25, a, 0.75, b, got);
        expect(firstDifference(got, want), `blend2 ${x} ${y} → ${outDtype}`).toBe(-1);
        await reference.linear([c, a, b], [0.5, 0.3, 0.2], true, want);
        await small!.linear([c, a, b], [0.5, 0.3, 0.2], true, got);
        expect(firstDifference(got, want), `linear F32 ${x} ${y} → ${outDtype}`).toBe(-1);
        // multislerp with a base: f32 task vectors and mean, the base as stored.
        const params = { divisors: [0.3, 7.25], weights: [0.6, -0.4], dots: [0.9, 0.2], meanNorm: 0.77, averageNorm: 3.1 };
        await reference.unitTangent([c, c], c, b, params, want);
        await small!.unitTangent([c, c], c, b, params, got);
        expect(firstDifference(got, want), `unitTangent F32 F32 F32 ${y} → ${outDtype}`).toBe(-1);
      }
    }
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

/** Zeros, subnormals, format extremes, the infinities and NaNs (quiet and signalling, both signs). */
function specials(): Float32Array {
  const extra = [0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x7f7fffff, 0xff7fffff, 0x00400000, 0x80000003, 0x01000000];
  return Float32Array.from([...edgeValues(), ...new Float32Array(new Uint32Array(extra).buffer)]);
}

/** `values` with a special value at about one element in `every`. */
function sprinkled(values: Float32Array, random: () => number, every = 20): Float32Array {
  const s = specials();
  for (let i = 0; i < values.length; i++) if (random() * every < 1) values[i] = s[Math.floor(random() * s.length)]!;
  return values;
}

/** A base and `count` models a few steps of 2^-14 away (many ties among the |δ|), specials sprinkled in. */
function nearBase(n: number, count: number, seed: number): Float32Array[] {
  const random = rng(seed);
  const base = sprinkled(weights(n, random, -8, -3), random);
  return [base, ...Array.from({ length: count }, () => sprinkled(base.map((b) => (random() < 0.1 ? b : Math.fround(b + Math.round((random() - 0.5) * 8) * 2 ** -14))), random, 40))];
}

function isNaNCode(array: HostArray, i: number): boolean {
  if (array.dtype === 'F32') return Number.isNaN(array.data[i]!);
  const code = array.data[i]! & 0x7fff;
  return array.dtype === 'BF16' ? code > 0x7f80 : code > 0x7c00;
}

/** The first element whose bits differ, a NaN matching any NaN (JavaScript's NaN sign and payload are the CPU's), or ''. */
function difference(got: HostArray, want: HostArray, inputs: HostArray[]): string {
  const gotBits = got.dtype === 'F32' ? new Uint32Array(got.data.buffer, got.data.byteOffset, got.data.length) : got.data;
  const wantBits = want.dtype === 'F32' ? new Uint32Array(want.data.buffer, want.data.byteOffset, want.data.length) : want.data;
  for (let i = 0; i < gotBits.length; i++) {
    if (gotBits[i] === wantBits[i] || (isNaNCode(got, i) && isNaNCode(want, i))) continue;
    return `element ${i}: gpu ${describeElement(got, i)}, reference ${describeElement(want, i)}; inputs ${inputs.map((x) => describeElement(x, i)).join(', ')}`;
  }
  return '';
}

/** Divisors and weights (multislerp's norms and coefficients): ordinary, tiny, huge, subnormal, zero, negative. */
const UNIT_PARAMS: { divisors: number[]; weights: number[]; dots: number[] }[] = [
  { divisors: [0.3, 7.25, 1e-3], weights: [0.6, -0.4, 1.7], dots: [0.9, 0.2, -0.7] },
  { divisors: [1e-40, -3e38, 0, 2.5], weights: [1e-5, 3e30, -1, 0.25], dots: [1, -0, 0.33, 1e-39] },
  { divisors: [0.77], weights: [1], dots: [0.5] },
];

describe.skipIf(!gpu)('the WGSL reductions and divisions equal the reference bit for bit', () => {
  it('unitSum: every input and output dtype, NaN/±inf/±0/subnormal inputs, across windows of 1,000', async () => {
    let seed = 100;
    for (const { divisors, weights: ws } of UNIT_PARAMS) {
      for (const inDtype of DTYPES) {
        for (const outDtype of DTYPES) {
          const random = rng(seed++);
          const inputs = divisors.map(() => asHost(sprinkled(weights(5001, random, -20, 3), random), inDtype));
          for (const signedZeros of [false, true]) {
            const want = hostArray(outDtype, 5001);
            const got = hostArray(outDtype, 5001);
            await reference.unitSum(inputs, divisors, ws, want, { signedZeros });
            await small!.unitSum(inputs, divisors, ws, got, { signedZeros });
            expect(difference(got, want, inputs), `unitSum ${inDtype}→${outDtype} divisors ${divisors} signedZeros ${signedZeros}`).toBe('');
          }
        }
      }
    }
  });

  it('unitTangent: every input and output dtype, with and without a base, the mean in f32 or as the values', async () => {
    let seed = 200;
    for (const { divisors, weights: ws, dots } of UNIT_PARAMS) {
      for (const inDtype of DTYPES) {
        for (const outDtype of DTYPES) {
          for (const [withBase, meanDtype] of [[false, 'F32'], [true, inDtype]] as const) {
            const random = rng(seed++);
            const values = divisors.map(() => asHost(sprinkled(weights(4001, random, -20, 3), random), inDtype));
            const mean = asHost(sprinkled(weights(4001, random, -12, 1), random), meanDtype);
            const base = withBase ? asHost(sprinkled(weights(4001, random, -6, 1), random), inDtype) : undefined;
            for (const [meanNorm, averageNorm, cos, sinc] of [[0.77, 3.1, 1, 1], [1e-39, 2e38, 1, 1], [0.77, 3.1, 0.99999994, 0.9999997], [0.77, 1, 0, 1]] as const) {
              const params = { divisors, weights: ws, dots, meanNorm, averageNorm, cos, sinc };
              const want = hostArray(outDtype, 4001);
              const got = hostArray(outDtype, 4001);
              await reference.unitTangent(values, mean, base, params, want);
              await small!.unitTangent(values, mean, base, params, got);
              expect(difference(got, want, [...values, mean, ...(base ? [base] : [])]), `unitTangent ${inDtype}→${outDtype} base ${withBase} norms ${meanNorm} ${averageNorm}`).toBe('');
            }
          }
        }
      }
    }
  });

  it('deltaVariance: 1, 3 and 16 models, every input and output dtype, NaN/±inf/±0/subnormal inputs, across windows', async () => {
    let seed = 300;
    for (const count of [1, 3, 16]) {
      for (const inDtype of DTYPES) {
        for (const outDtype of DTYPES) {
          const inputs = nearBase(3001, count, seed++).map((v) => asHost(v, inDtype));
          const want = hostArray(outDtype, 3001);
          const got = hostArray(outDtype, 3001);
          await reference.deltaVariance(inputs[0]!, inputs.slice(1), want);
          await small!.deltaVariance(inputs[0]!, inputs.slice(1), got);
          expect(difference(got, want, inputs), `deltaVariance × ${count} ${inDtype}→${outDtype}`).toBe('');
        }
      }
    }
  });

  /** Each model's |δ| bits as the reference computes them. */
  function deltaBits(inputs: HostArray[], step: StepDtype): Uint32Array[] {
    const round = stepRounding(step);
    const base = toF32(inputs[0]!);
    return inputs.slice(1).map((m) => Uint32Array.from(toF32(m), (x, i) => absBits(round(x - base[i]!))));
  }

  /** The most frequent bits (many ties), and NaN's, infinity's and zero's. */
  function interestingBits(bits: Uint32Array): number[] {
    const tally = new Map<number, number>();
    for (const b of bits) tally.set(b, (tally.get(b) ?? 0) + 1);
    const common = [...tally].filter(([b]) => b !== 0).sort((x, y) => y[1] - x[1])[0]?.[0] ?? 0x3f800000;
    return [common, 0x7fc00000, 0x7f800000, 0];
  }

  it('deltaHistogram: both passes, f32/bf16/f16 steps, every input dtype, NaN/±inf/±0/subnormal δ, across windows of 1,000', async () => {
    // A third backend reads its counters back before each window after the first in a slot (as it would before 2^32 elements).
    const opened = await openWebGpu({ windowElements: 1000, countLimit: 1500 });
    if (!('backend' in opened)) throw new Error(opened.reason);
    const flushing = opened.backend;
    let seed = 400;
    for (const n of [5003, 33, 1]) {
      for (const dtype of DTYPES) {
        for (const step of ['F32', 'BF16', 'F16'] as const) {
          const inputs = nearBase(n, 3, seed++).map((v) => asHost(v, dtype));
          const bits = deltaBits(inputs, step);
          // Pass 1 for model 0; pass 2 for model 1 at its most common high half, for model 2 at NaN's (0x7fc0).
          const prefixes = [undefined, interestingBits(bits[1]!)[0]! >>> 16, 0x7fc0];
          const want = prefixes.map(() => new Float64Array(HISTOGRAM_BINS).fill(2));
          const got = prefixes.map(() => new Float64Array(HISTOGRAM_BINS).fill(2));
          await reference.deltaHistogram(inputs[0]!, inputs.slice(1), { step, prefixes }, want);
          for (const backend of [small!, gpu!, flushing]) {
            got.forEach((c) => c.fill(2));
            await backend.deltaHistogram(inputs[0]!, inputs.slice(1), { step, prefixes }, got);
            for (let j = 0; j < 3; j++) {
              const at = got[j]!.findIndex((c, b) => c !== want[j]![b]);
              expect(at < 0 ? '' : `bin ${at}: gpu ${got[j]![at]}, reference ${want[j]![at]}`, `${n} ${dtype} ${step} selection ${j}`).toBe('');
            }
          }
        }
      }
    }
    await flushing.dispose();
  });

  it('deltaFind: ties before, in and across windows, and past the last; NaN, infinity and zero magnitudes', async () => {
    let seed = 500;
    for (const n of [7001, 33]) {
      for (const dtype of DTYPES) {
        for (const step of ['F32', 'BF16', 'F16'] as const) {
          const inputs = nearBase(n, 2, seed++).map((v) => asHost(v, dtype));
          const bits = deltaBits(inputs, step);
          for (const [b0, b1] of interestingBits(bits[0]!).map((b, k) => [b, interestingBits(bits[1]!)[3 - k]!])) {
            const ties = [b0!, b1!].map((b, j) => bits[j]!.filter((x) => x === b).length);
            for (const pick of [(t: number) => 0, (t: number) => Math.floor(t / 2), (t: number) => t - 1, (t: number) => t, (t: number) => t + 5]) {
              const params = { step, bits: [b0!, b1!], ranks: ties.map((t) => Math.max(0, pick(t))) };
              for (const backend of [small!, gpu!]) {
                expect(await backend.deltaFind(inputs[0]!, inputs.slice(1), params), `${n} ${dtype} ${step} bits ${params.bits} ranks ${params.ranks}`).toEqual(
                  await reference.deltaFind(inputs[0]!, inputs.slice(1), params),
                );
              }
            }
          }
        }
      }
    }
  });

  it('1 M elements in the device\'s own windows: histogram, find, unitSum, unitTangent, deltaVariance', async () => {
    const n = (1 << 20) + 3;
    const inputs = nearBase(n, 3, 600).map((v) => asHost(v, 'BF16'));
    const prefixes = [undefined, undefined, 0x3880];
    const want = prefixes.map(() => new Float64Array(HISTOGRAM_BINS));
    const got = prefixes.map(() => new Float64Array(HISTOGRAM_BINS));
    await reference.deltaHistogram(inputs[0]!, inputs.slice(1), { step: 'BF16', prefixes }, want);
    await gpu!.deltaHistogram(inputs[0]!, inputs.slice(1), { step: 'BF16', prefixes }, got);
    for (let j = 0; j < 3; j++) expect(got[j]!.findIndex((c, b) => c !== want[j]![b]), `histogram ${j}`).toBe(-1);
    const bits = deltaBits(inputs, 'F32');
    const b = interestingBits(bits[0]!)[0]!;
    const ties = bits[0]!.filter((x) => x === b).length;
    const params = { step: 'F32' as const, bits: [b, b, 0x7fc00000], ranks: [ties - 1, 7, 3] };
    expect(await gpu!.deltaFind(inputs[0]!, inputs.slice(1), params)).toEqual(await reference.deltaFind(inputs[0]!, inputs.slice(1), params));
    for (const outDtype of ['BF16', 'F32'] as const) {
      const want1 = hostArray(outDtype, n);
      const got1 = hostArray(outDtype, n);
      await reference.unitSum(inputs.slice(1), [0.3, 7.25, 1e-3], [0.6, -0.4, 1.7], want1);
      await gpu!.unitSum(inputs.slice(1), [0.3, 7.25, 1e-3], [0.6, -0.4, 1.7], got1);
      expect(difference(got1, want1, inputs), `unitSum → ${outDtype}`).toBe('');
      const tangent = { divisors: [0.3, 7.25], weights: [0.6, -0.4], dots: [0.9, 0.2], meanNorm: 0.77, averageNorm: 3.1 };
      await reference.unitTangent(inputs.slice(1, 3), inputs[3]!, inputs[0], tangent, want1);
      await gpu!.unitTangent(inputs.slice(1, 3), inputs[3]!, inputs[0], tangent, got1);
      expect(difference(got1, want1, inputs), `unitTangent → ${outDtype}`).toBe('');
      await reference.deltaVariance(inputs[0]!, inputs.slice(1), want1);
      await gpu!.deltaVariance(inputs[0]!, inputs.slice(1), got1);
      expect(difference(got1, want1, inputs), `deltaVariance → ${outDtype}`).toBe('');
    }
  }, 120_000);

  it('histograms and tie finds over a tensor larger than the device\'s largest binding', async () => {
    const n = Math.floor(gpu!.limits.maxStorageBufferBindingSize / 2) + 12_345; // bf16: each input alone is larger than one binding
    const random = rng(9);
    const a = new Uint16Array(n);
    const b = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      a[i] = 0x3c00 + Math.floor(random() * 0x0800) + (random() < 0.5 ? 0x8000 : 0);
      b[i] = random() < 0.2 ? a[i]! : 0x3c00 + Math.floor(random() * 0x0800) + (random() < 0.5 ? 0x8000 : 0);
    }
    const inputs: HostArray[] = [{ dtype: 'BF16', data: a }, { dtype: 'BF16', data: b }];
    for (const prefixes of [[undefined], [0x3c80]]) {
      const want = [new Float64Array(HISTOGRAM_BINS)];
      const got = [new Float64Array(HISTOGRAM_BINS)];
      await reference.deltaHistogram(inputs[0]!, [inputs[1]!], { step: 'F32', prefixes }, want);
      await gpu!.deltaHistogram(inputs[0]!, [inputs[1]!], { step: 'F32', prefixes }, got);
      expect(got[0]!.findIndex((c, bin) => c !== want[0]![bin]), `prefixes ${prefixes}`).toBe(-1);
    }
    // The ties at |δ| = 0 (one element in five and more): the wanted one near the end, in the last window.
    const zeros = b.reduce((count, x, i) => count + (x === a[i] ? 1 : 0), 0);
    const params = { step: 'F32' as const, bits: [0], ranks: [zeros - 3] };
    expect(await gpu!.deltaFind(inputs[0]!, [inputs[1]!], params)).toEqual(await reference.deltaFind(inputs[0]!, [inputs[1]!], params));
  }, 240_000);
});
