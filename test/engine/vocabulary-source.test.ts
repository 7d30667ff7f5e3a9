import { describe, expect, it } from 'vitest';
import { VocabularyTensorSource } from '../../src/main/engine/execute/vocabulary-source';
import type { TensorReader } from '../../src/main/engine/safetensors/reader';
import type { PlannedInput } from '../../src/main/engine/plan/types';

/** One f32 tensor held in memory, read as a safetensors reader reads it. */
function reader(values: Float32Array): TensorReader {
  const bytes = new Uint8Array(values.buffer);
  return { path: 'memory', read: async (_name, _into, start = 0, length = bytes.byteLength - start) => bytes.slice(start, start + length) };
}

const N = 1000;
// sin(i)·0.2 rounded to f32, as `torch.tensor([math.sin(i) * 0.2 for i in range(1000)], dtype=torch.float32)`.
const values = Float32Array.from({ length: N }, (_, i) => Math.sin(i) * 0.2);

async function padding(shape: number[], oneDimensional: boolean, chunkRows: number): Promise<Float32Array> {
  const cols = shape.length === 1 ? 1 : shape[1]!;
  const tokens = shape[0]!;
  const input: PlannedInput = { model: 0, tensor: 't', file: 'memory', offset: 0, byteLength: N * 4, dtype: 'F32', shape };
  const rows = { tokens, size: tokens + 3, runs: [[[0, tokens, 0] as [number, number, number]]], defaults: [] };
  const source = new VocabularyTensorSource([reader(values)], [input], rows, cols, chunkRows, 'F32', undefined, { oneDimensional, torchThreads: 1 });
  const out = new Float32Array((tokens + 3) * cols);
  for await (const chunk of source.chunks()) out.set(chunk.inputs[0]!.subarray(0, chunk.length), chunk.start);
  expect(out.subarray(0, N)).toEqual(values);
  return out.subarray(N);
}

describe('vocabulary tensors: padding rows are the mean of the token rows, in torch order', () => {
  it('1-D (phi lm_head.bias): a whole-tensor sum, as torch.mean(x, dim=0) gives it', async () => {
    // torch 2.15: torch.mean(x, dim=0).item() == -2.5819242637226125e-06 (f32 bits 0xb62d451f).
    const pad = await padding([N], true, 7);
    expect([...pad]).toEqual([-2.5819242637226125e-6, -2.5819242637226125e-6, -2.5819242637226125e-6]);
  });

  it('2-D: column by column, as torch.mean(x.view(500, 2), dim=0)', async () => {
    const pad = await padding([N / 2, 2], false, 9);
    expect([...pad]).toEqual([-0.00010917684267042205, 0.00010401321924291551, -0.00010917684267042205, 0.00010401321924291551, -0.00010917684267042205, 0.00010401321924291551]);
  });
});
