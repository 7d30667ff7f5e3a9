import { describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { hostArray } from '../../src/main/engine/compute/types';
import { linear } from '../../src/main/engine/methods/linear';
import { nearswap } from '../../src/main/engine/methods/nearswap';
import type { MergeMethod, TensorMergeContext } from '../../src/main/engine/methods/types';
import { asHost, edgeValues, firstDifference, neighbours, rng, weights } from './samples';

/** Runs a method's own kernel over `inputs` in one chunk, as the executor would. */
async function runMethod(method: MergeMethod, inputs: Float32Array[], ctx: Partial<TensorMergeContext>): Promise<Float32Array> {
  const out = new Float32Array(inputs[0]!.length);
  const full: TensorMergeContext = { tensorName: 't', shape: [out.length], numel: out.length, baseIndex: undefined, global: {}, perModel: [], seed: 0, ...ctx };
  await method.kernel(
    { async *chunks() { yield { start: 0, length: out.length, inputs }; } },
    { async write(start, values) { out.set(values, start); } },
    full,
  );
  return out;
}

describe('the reference backend is the methods\' own arithmetic', () => {
  const reference = new ReferenceBackend();
  const random = rng(21);
  const a = new Float32Array([...weights(20_000, random), ...edgeValues()]);
  const b = new Float32Array([...weights(20_000, random), ...edgeValues().reverse()]);
  const c = neighbours(a, random);

  it('linear, normalized or not', async () => {
    for (const normalize of [true, false]) {
      const want = await runMethod(linear, [a, b, c], { perModel: [{ weight: 0.7 }, { weight: 0.2 }, { weight: -0.1 }], global: { normalize } });
      const got = hostArray('F32', a.length);
      await reference.linear([a, b, c].map((v) => asHost(v, 'F32')), [0.7, 0.2, -0.1], normalize, got);
      expect(firstDifference(got, { dtype: 'F32', data: want })).toBe(-1);
    }
  });

  it('nearswap, with the base first or second', async () => {
    for (const baseIndex of [0, 1]) {
      const inputs = baseIndex === 0 ? [a, c] : [c, a];
      const want = await runMethod(nearswap, inputs, { baseIndex, global: { t: 0.001 } });
      const got = hostArray('F32', a.length);
      await reference.nearswap(asHost(a, 'F32'), asHost(c, 'F32'), 0.001, got);
      expect(firstDifference(got, { dtype: 'F32', data: want })).toBe(-1);
    }
  });

  it('writes bf16 and f16 outputs with round-to-nearest-even, as the executor\'s encoder does', async () => {
    const f32 = hostArray('F32', a.length);
    const bf16 = hostArray('BF16', a.length);
    await reference.blend2(0.25, asHost(a, 'F32'), 0.75, asHost(b, 'F32'), f32);
    await reference.blend2(0.25, asHost(a, 'F32'), 0.75, asHost(b, 'F32'), bf16);
    expect(firstDifference(bf16, asHost(f32.data as Float32Array, 'BF16'))).toBe(-1);
  });
});
