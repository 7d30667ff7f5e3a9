// dawn.node finds llvmpipe through Mesa's EGL only with this set when there is no display.
process.env['EGL_PLATFORM'] ??= 'surfaceless';

import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { hostArray, type ComputeBackend, type HostArray } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { openWebGpu } from '../../src/main/engine/compute/webgpu-backend';
import { getMergeMethod } from '../../src/main/engine/methods/registry';
import type { TensorMergeContext } from '../../src/main/engine/methods/types';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { asHost, describeElement, edgeValues, firstDifference, neighbours, rng, weights } from './samples';

const reference = new ReferenceBackend();
const opened = await openWebGpu({ windowElements: 1000 });
const gpu = 'backend' in opened ? opened.backend : undefined;
if (!gpu) console.warn(`\n*** WebGPU NEARSWAP TESTS SKIPPED: ${'reason' in opened ? opened.reason : ''}.\n`);

const BACKENDS: [string, ComputeBackend][] = [
  ['WASM, 2 workers, windows of 1,000', new WasmBackend({ workers: 2, windowElements: 1000 })],
  ['WASM, calling thread', new WasmBackend({ workers: 0 })],
  ...(gpu ? [[`GPU (${gpu.description})`, gpu] as [string, ComputeBackend]] : []),
];
afterAll(() => Promise.all(BACKENDS.map(([, b]) => b.dispose())));

/** Every pair of edge values (±0, subnormals, extremes, NaN, ±∞), then neighbours as nearswap sees them. */
function samples(n: number, seed: number): [Float32Array, Float32Array] {
  const edges = [...edgeValues(), NaN, Infinity, -Infinity, 1e-6, -1e-6, 2e-6];
  const random = rng(seed);
  const a = weights(n, random, -12, 1);
  const b = neighbours(a, random);
  let i = 0;
  for (const x of edges) for (const y of edges) if (i < n) [a[i], b[i++]] = [x, y];
  return [a, b];
}

describe('nearswap with bf16 and f16 steps on every backend equals the reference', () => {
  for (const [label, backend] of BACKENDS) {
    it(`${label}: f32/bf16/f16 in, f32/bf16/f16 out, t from 0 to 1, edge values`, async () => {
      const pairs: [FloatDtype, FloatDtype][] = [['BF16', 'BF16'], ['BF16', 'F32'], ['F32', 'BF16'], ['F32', 'F32'], ['F16', 'F16'], ['F32', 'F16']];
      for (const [n, seed] of [[5_003, 1], [70_001, 2]] as const) {
        for (const [inDtype, outDtype] of pairs) {
          const [a, b] = samples(n, seed);
          const inputs = [asHost(a, inDtype), asHost(b, inDtype)] as const;
          for (const step of ['BF16', 'F16'] as const) {
            for (const t of [0, 1e-7, 0.0001, 0.01, 1]) {
              const want = hostArray(outDtype, n);
              const got = hostArray(outDtype, n);
              await reference.nearswap(inputs[0], inputs[1], t, want, step);
              await backend.nearswap(inputs[0], inputs[1], t, got, step);
              const at = firstDifference(got, want);
              expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}; inputs ${a[at]}, ${b[at]}`, `${n} ${inDtype} → ${outDtype}, ${step} steps, t ${t}`).toBe('');
            }
          }
        }
      }
    });
  }

  it('the method in bf16 gives its TypeScript\'s bits on the backends, the base first or second', async () => {
    const n = 20_011;
    const [a, b] = samples(n, 3);
    const bf = (x: Float32Array): HostArray => asHost(x, 'BF16');
    const widened = [bf(a), bf(b)].map((h) => new Float32Array(new Uint32Array(Array.from(h.data as Uint16Array, (c) => c << 16)).buffer));
    for (const baseIndex of [0, 1]) {
      const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex, global: { t: 0.0003 }, perModel: [{}, {}], seed: 0, computeDtype: 'BF16' };
      const run = async (c: TensorMergeContext): Promise<Float32Array> => {
        const out = new Float32Array(n);
        const source = { async *chunks() { for (let start = 0; start < n; start += 7_001) { const length = Math.min(7_001, n - start); const views = widened.map((x) => x.subarray(start, start + length)); yield { start, length, inputs: views, raw: [bf(a), bf(b)].map((h) => ({ dtype: 'BF16' as const, data: (h.data as Uint16Array).subarray(start, start + length) })) }; } } };
        await getMergeMethod('nearswap').kernel(source, { write: async (start, values) => out.set(values, start) }, c);
        return out;
      };
      const want = await run(ctx);
      for (const [label, backend] of BACKENDS) {
        const got = await run({ ...ctx, backend });
        const at = firstDifference({ dtype: 'F32', data: got }, { dtype: 'F32', data: want });
        expect(at < 0 ? '' : `element ${at}: ${got[at]} vs ${want[at]}`, `base ${baseIndex}, ${label}`).toBe('');
      }
    }
  });
});
