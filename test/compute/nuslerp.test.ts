import { afterAll, describe, expect, it } from 'vitest';
import type { HostArray } from '../../src/main/engine/compute/types';
import { testBackends } from './backends';
import { getMergeMethod } from '../../src/main/engine/methods/registry';
import type { TensorMergeContext, TensorSink } from '../../src/main/engine/methods/types';
import { encodeFromF32 } from '../../src/main/engine/safetensors/convert';
import type { FloatDtype } from '../../src/main/engine/safetensors/dtype';
import { asHost, describeElement, edgeValues, firstDifference, rng, weights, hostChunks } from './samples';

const BACKENDS = await testBackends('NUSLERP');
afterAll(() => Promise.all(BACKENDS.map(([, b]) => b.dispose())));


/** nuslerp's output as f32, or (with `outDtype`) as the encoded codes a bf16 output gets. */
async function nuslerpOutput(inputs: HostArray[], ctx: TensorMergeContext, chunk: number, outDtype?: 'BF16'): Promise<HostArray> {
  const n = inputs[0]!.data.length;
  const f32 = new Float32Array(n);
  const codes = new Uint16Array(n);
  const sink: TensorSink = outDtype
    ? {
        outDtype,
        write: async (start, values) => encodeFromF32(values, 'BF16', new Uint8Array(codes.buffer, start * 2, values.length * 2)),
        writeEncoded: async (start, values) => void codes.set(values.data as Uint16Array, start),
      }
    : { write: async (start, values) => void f32.set(values, start) };
  await getMergeMethod('nuslerp').kernel(hostChunks(inputs, chunk), sink, ctx);
  return outDtype ? { dtype: 'BF16', data: codes } : { dtype: 'F32', data: f32 };
}

/** Two fine-tunes of a base; `kind` makes them generic, colinear (one a multiple of the other's offset), or with edge values. */
function models(n: number, seed: number, kind: 'generic' | 'colinear' | 'edges'): Float32Array[] {
  const random = rng(seed);
  const base = weights(n, random, -8, -2);
  const a = base.map((b) => Math.fround(b + (random() - 0.5) * 2 ** -6));
  const b = kind === 'colinear' ? base.map((x, i) => Math.fround(x + 2 * (a[i]! - x))) : base.map((x) => Math.fround(x + (random() - 0.5) * 2 ** -6));
  if (kind === 'edges') {
    const edges = edgeValues().filter((v) => Number.isFinite(v) && Math.abs(v) < 1e30);
    for (const values of [base, a, b]) for (let i = 0; i < n; i += 37) values[i] = edges[Math.floor(random() * edges.length)]!;
  }
  return [base, a, b];
}

describe('nuslerp (flattened) on the backends gives its TypeScript\'s bits', () => {
  it('with and without a base, f32 and bf16 models, chunks that cut windows, colinear and generic, f32 and bf16 output', async () => {
    for (const [n, chunk, dtype, kind] of [
      [40_001, 40_001, 'BF16', 'generic'],
      [25_013, 3_001, 'F32', 'generic'],
      [9_000, 1_003, 'BF16', 'colinear'],
      [30_011, 4_099, 'F32', 'edges'],
    ] as [number, number, FloatDtype, 'generic' | 'colinear' | 'edges'][]) {
      const inputs = models(n, n, kind).map((v) => asHost(v, dtype));
      for (const baseIndex of [0, undefined]) {
        const perModel = [{ weight: 0.3 }, { weight: 0.5 }, { weight: 0.2 }];
        const used = baseIndex === undefined ? inputs.slice(1) : inputs;
        const ctx: TensorMergeContext = { tensorName: 'x', shape: [n], numel: n, baseIndex, global: {}, perModel: baseIndex === undefined ? perModel.slice(1) : perModel, seed: 0 };
        for (const outDtype of [undefined, 'BF16'] as const) {
          const want = await nuslerpOutput(used, ctx, chunk, outDtype);
          for (const [label, backend] of BACKENDS) {
            const got = await nuslerpOutput(used, { ...ctx, backend }, chunk, outDtype);
            const at = firstDifference(got, want);
            expect(at < 0 ? '' : `element ${at}: ${describeElement(got, at)} vs ${describeElement(want, at)}`, `${n} ${dtype} ${kind}, chunks of ${chunk}, base ${baseIndex}, out ${outDtype ?? 'F32'}, ${label}`).toBe('');
          }
        }
      }
    }
  });
});
