import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { hostArray, type ComputeBackend, type HostArray } from '../../src/main/engine/compute/types';
import { WasmBackend, wasmSimdAvailable } from '../../src/main/engine/compute/wasm-backend';
import { KERNELS_WASM_BASE64, KERNELS_WAT_SHA256 } from '../../src/main/engine/compute/wasm/kernels-wasm';
import { f32BitsRoundedToF16 } from '../../src/main/engine/safetensors/convert';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { asHost, describeElement, edgeValues, firstDifference, neighbours, rng, weights } from './samples';

const DTYPES: FloatDtype[] = ['F32', 'BF16', 'F16'];
const reference = new ReferenceBackend();
// Windows of 992 elements on one worker, two workers and the calling thread; and the default windows.
const backends = {
  'one worker': new WasmBackend({ workers: 1, windowElements: 1000 }),
  'two workers': new WasmBackend({ workers: 2, windowElements: 1000 }),
  'the calling thread': new WasmBackend({ workers: 0, windowElements: 1000 }),
};
const wide = new WasmBackend({ workers: 2 });
afterAll(() => Promise.all([...Object.values(backends), wide].map((b) => b.dispose())));

type Call = (b: ComputeBackend, inputs: HostArray[], out: HostArray) => Promise<void>;
const CALLS: Record<string, { inputs: number; call: Call; near?: boolean }> = {
  'linear of 3, normalized': { inputs: 3, call: (b, i, o) => b.linear(i, [0.7, 0.2, 0.35], true, o) },
  'linear of 2, not normalized': { inputs: 2, call: (b, i, o) => b.linear(i, [1.5, -0.25], false, o) },
  nearswap: { inputs: 2, call: (b, i, o) => b.nearswap(i[0]!, i[1]!, 0.0001, o), near: true },
  'nearswap, bf16 steps': { inputs: 2, call: (b, i, o) => b.nearswap(i[0]!, i[1]!, 0.0001, o, 'BF16'), near: true },
  'nearswap, f16 steps': { inputs: 2, call: (b, i, o) => b.nearswap(i[0]!, i[1]!, 0.0001, o, 'F16'), near: true },
  'blend2 (slerp)': { inputs: 2, call: (b, i, o) => b.blend2(0.6180339, i[0]!, 0.4472136, i[1]!, o) },
  'blend2, f16 steps': { inputs: 2, call: (b, i, o) => b.blend2(0.6180339, i[0]!, -3.5e-5, i[1]!, o, 'F16') },
  'linear of 3, f16 steps': { inputs: 3, call: (b, i, o) => b.linear(i, [0.7, 0.2, 0.35], true, o, 'F16') },
  'unitSum of 2, f16 steps': { inputs: 2, call: (b, i, o) => b.unitSum(i, [0.37, 2.5e3], [0.6, -1.25], o, { step: 'F16' }) },
};

async function compare(backend: ComputeBackend, name: string, values: Float32Array[], inDtypes: FloatDtype[], outDtype: FloatDtype): Promise<void> {
  const { call } = CALLS[name]!;
  const inputs = values.map((v, i) => asHost(v, inDtypes[i % inDtypes.length]!));
  const want = hostArray(outDtype, values[0]!.length);
  const got = hostArray(outDtype, values[0]!.length);
  await call(reference, inputs, want);
  await call(backend, inputs, got);
  const at = firstDifference(got, want);
  const detail = at < 0 ? '' : `element ${at}: wasm ${describeElement(got, at)}, reference ${describeElement(want, at)}; inputs ${values.map((v) => v[at]).join(', ')}`;
  expect(detail, `${name} ${inDtypes.join('+')}→${outDtype}`).toBe('');
}

function sample(name: string, n: number, seed: number): Float32Array[] {
  const random = rng(seed);
  const values = Array.from({ length: CALLS[name]!.inputs }, () => weights(n, random));
  return CALLS[name]!.near ? [values[0]!, neighbours(values[0]!, random)] : values;
}

describe('WebAssembly SIMD kernels equal the TypeScript reference bit for bit', () => {
  it('has SIMD and shared memory here', () => expect(wasmSimdAvailable()).toBe(true));

  for (const [where, backend] of Object.entries(backends)) {
    it(`every method, every input and output dtype, windows of 992 elements, ${where}`, async () => {
      let seed = 100;
      for (const name of Object.keys(CALLS)) {
        for (const inDtype of DTYPES) for (const outDtype of DTYPES) await compare(backend, name, sample(name, 5003, seed++), [inDtype], outDtype);
      }
    });
  }

  it('zeros, subnormals, infinities and the extremes of each format, every pair', async () => {
    const edges = new Float32Array([...edgeValues(), Infinity, -Infinity]);
    const n = edges.length;
    const a = new Float32Array(n * n);
    const b = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { a[i * n + j] = edges[i]!; b[i * n + j] = edges[j]!; }
    for (const name of Object.keys(CALLS)) {
      for (const dtype of DTYPES) await compare(backends['two workers'], name, CALLS[name]!.inputs === 3 ? [a, b, a] : [a, b], [dtype], dtype);
    }
  });

  it('mixed input dtypes', async () => {
    for (const name of Object.keys(CALLS)) await compare(backends['one worker'], name, sample(name, 4000, 7), ['BF16', 'F32', 'F16'], 'BF16');
  });

  it('2 M elements in default windows, split across the workers', async () => {
    for (const name of Object.keys(CALLS)) {
      await compare(wide, name, sample(name, (1 << 21) + 5, 8), ['BF16'], 'BF16');
      await compare(wide, name, sample(name, (1 << 21) + 7, 9), ['F32'], 'F32');
    }
  });

  it('an output that is also its input, in the kernels\' memory (x = f(x)), as the reference computes it', async () => {
    const n = 70_003;
    for (const dtype of ['F32', 'BF16'] as const) {
      for (const step of ['F32', 'BF16', 'F16'] as const) {
        const values = weights(n, rng(11));
        const own = wide.allocateHost(4 * n);
        const x: HostArray = dtype === 'F32' ? { dtype, data: new Float32Array(own.buffer, own.byteOffset, n) } : { dtype, data: new Uint16Array(own.buffer, own.byteOffset, n) };
        x.data.set(asHost(values, dtype).data);
        const want = hostArray(dtype, n);
        await reference.unitSum([asHost(values, dtype)], [0.37], [1], want, { step, signedZeros: true });
        await wide.unitSum([x], [0.37], [1], x, { step, signedZeros: true });
        const unitSumAt = firstDifference(x, want);
        x.data.set(asHost(values, dtype).data);
        await reference.linear([asHost(values, dtype)], [1.5], true, want, step);
        await wide.linear([x], [1.5], true, x, step);
        const linearAt = firstDifference(x, want);
        wide.releaseHost(own);
        expect([unitSumAt, linearAt], `${dtype}, ${step} steps`).toEqual([-1, -1]);
      }
    }
  });

  it("rounds bf16 to f16 as the reader's decoding does, every bf16 code and a tail of 1 to 3, where both arrays lie in its memory", () => {
    for (const n of [65_536, 65_537, 65_539]) {
      const [codeBlock, valueBlock] = [wide.allocateHost(2 * n), wide.allocateHost(4 * n)];
      const codes = new Uint16Array(codeBlock.buffer, codeBlock.byteOffset, n);
      codes.forEach((_, i) => (codes[i] = (i * 40_503) & 0xffff));
      const dst = new Float32Array(valueBlock.buffer, valueBlock.byteOffset, n);
      expect(wide.bf16AsF16(codes, dst)).toBe(true);
      const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
      const wrong = [...codes.keys()].filter((i) => bits[i] !== f32BitsRoundedToF16((codes[i]! << 16) >>> 0));
      expect(wrong.slice(0, 3)).toEqual([]);
      expect(new Set(codes).size).toBe(65_536);
      [codeBlock, valueBlock].forEach((b) => wide.releaseHost(b));
    }
    expect(wide.bf16AsF16(new Uint16Array(8), new Float32Array(8))).toBe(false);
  });

  it('several calls in flight at once run one after another', async () => {
    const values = sample('blend2 (slerp)', 70_000, 10);
    const inputs = values.map((v) => asHost(v, 'BF16'));
    const outs = [0, 1, 2].map(() => hostArray('BF16', 70_000));
    await Promise.all(outs.map((o, i) => wide.blend2(0.1 * i, inputs[0]!, 1 - 0.1 * i, inputs[1]!, o)));
    for (const [i, o] of outs.entries()) {
      const want = hostArray('BF16', 70_000);
      await reference.blend2(0.1 * i, inputs[0]!, 1 - 0.1 * i, inputs[1]!, want);
      expect(firstDifference(o, want)).toBe(-1);
    }
  });
});

describe('the compiled kernels', () => {
  it('were built from the kernels.wat in the repository (else run build-wasm.mjs)', async () => {
    const source = await readFile('src/main/engine/compute/wasm/kernels.wat', 'utf8');
    expect(createHash('sha256').update(source).digest('hex')).toBe(KERNELS_WAT_SHA256);
  });

  it('are what wabt makes of kernels.wat today', async (context) => {
    const build = await import('../../src/main/engine/compute/wasm/build-wasm.mjs' as string).catch(() => undefined);
    const hasWabt = await import('wabt' as string).then(() => true, () => false);
    if (!build || !hasWabt) {
      console.warn('\n*** wabt is not installed: the kernels were not recompiled (the SHA-256 check above still ran).\n');
      context.skip();
      return;
    }
    const source = await readFile('src/main/engine/compute/wasm/kernels.wat', 'utf8');
    const binary: Buffer = await build.compileKernels(source);
    expect(binary.toString('base64')).toBe(KERNELS_WASM_BASE64);
  });
});
