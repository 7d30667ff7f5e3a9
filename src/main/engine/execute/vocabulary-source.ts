import { decodeToF32 } from '../safetensors/convert';
import { dtypeSize, isFloatDtype, type FloatDtype } from '../safetensors/dtype';
import type { TensorReader } from '../safetensors/reader';
import type { Chunk, TensorSource } from '../methods/types';
import { stepRounding } from '../methods/numerics';
import { ParallelTorchSum, TorchSum } from '../methods/torch-reductions';
import type { PlannedInput } from '../plan/types';
import type { DefaultRow, VocabularyRows } from '../tokenizer/vocabulary-rows';
import { roundInPlace } from './tensor-source';

/**
 * The inputs of a vocabulary tensor (embeddings, LM head) re-indexed to the output vocabulary, in
 * chunks of whole rows: each input's rows read where its tokens are, default rows (a donor's row,
 * an average, zeros) built from the inputs, padding rows the input's mean row, as mergekit's
 * PermutedVocabulary builds them. Only the rows of one chunk are in memory.
 */
export class VocabularyTensorSource implements TensorSource {
  bytesRead = 0;
  private padMeans: Float32Array[] | undefined;
  private readonly round: (x: number) => number;
  private readonly dtype: FloatDtype | undefined;

  constructor(
    private readonly readers: TensorReader[],
    private readonly inputs: PlannedInput[],
    private readonly rows: VocabularyRows,
    private readonly cols: number,
    private readonly chunkRows: number,
    computeDtype: FloatDtype | undefined,
    private readonly signal?: AbortSignal,
    /** A 1-D tensor (one value a token) and the torch threads its padding mean is summed on. */
    private readonly layout: { oneDimensional: boolean; torchThreads: number } = { oneDimensional: false, torchThreads: 1 },
  ) {
    const dtypes = new Set(inputs.map((i) => i.dtype));
    this.dtype = computeDtype ?? (dtypes.size === 1 && isFloatDtype(inputs[0]!.dtype) ? (inputs[0]!.dtype as FloatDtype) : 'F32');
    this.round = stepRounding(this.dtype);
  }

  async *chunks(): AsyncIterable<Chunk> {
    if (this.rows.size > this.rows.tokens && !this.padMeans) this.padMeans = await this.meanRows();
    const values = this.inputs.map(() => new Float32Array(this.chunkRows * this.cols));
    for (let first = 0; first < this.rows.size; first += this.chunkRows) {
      const count = Math.min(this.chunkRows, this.rows.size - first);
      const inputs = await Promise.all(this.inputs.map((_, i) => this.fillRows(i, first, count, values[i]!.subarray(0, count * this.cols))));
      yield { start: first * this.cols, length: count * this.cols, inputs };
      this.signal?.throwIfAborted();
    }
  }

  /** Rows [first, first + count) of input i in the output vocabulary. */
  private async fillRows(i: number, first: number, count: number, out: Float32Array): Promise<Float32Array> {
    out.fill(0);
    const end = first + count;
    for (const [start, length, source] of this.rows.runs[i]!) {
      const from = Math.max(start, first);
      const to = Math.min(start + length, end, this.rows.tokens);
      if (from < to) out.set(await this.readRows(i, source + (from - start), to - from), (from - first) * this.cols);
    }
    for (const d of this.rows.defaults) if (d.row >= first && d.row < end && !this.covered(i, d.row)) out.set(await this.defaultRow(d), (d.row - first) * this.cols);
    if (this.padMeans) for (let r = Math.max(first, this.rows.tokens); r < end; r++) out.set(this.padMeans[i]!, (r - first) * this.cols);
    return out;
  }

  private covered(i: number, row: number): boolean {
    return this.rows.runs[i]!.some(([start, length]) => row >= start && row < start + length);
  }

  private async readRows(i: number, row: number, count: number): Promise<Float32Array> {
    const input = this.inputs[i]!;
    if (!isFloatDtype(input.dtype)) throw new Error(`tensor "${input.tensor}" has dtype ${input.dtype}, which cannot be merged`);
    const rowBytes = this.cols * dtypeSize(input.dtype);
    const bytes = await this.readers[i]!.read(input.tensor, undefined, row * rowBytes, count * rowBytes);
    this.bytesRead += bytes.byteLength;
    const values = new Float32Array(count * this.cols);
    decodeToF32(bytes, input.dtype, values);
    if (this.dtype !== 'F32' && input.dtype !== this.dtype) roundInPlace(values, this.dtype as 'BF16' | 'F16');
    return values;
  }

  /** Zeros (no source), a donor's row, or the sum of several rows divided by their count, each step in the tensor's dtype. */
  private async defaultRow(d: DefaultRow): Promise<Float32Array> {
    const acc = new Float32Array(this.cols);
    if (d.sources.length === 0) return acc;
    if (d.sources.length === 1) return this.readRows(d.sources[0]!.input, d.sources[0]!.row, 1);
    for (const { input, row } of d.sources) {
      const x = await this.readRows(input, row, 1);
      for (let c = 0; c < this.cols; c++) acc[c] = this.round(acc[c]! + x[c]!);
    }
    for (let c = 0; c < this.cols; c++) acc[c] = this.round(acc[c]! / d.sources.length);
    return acc;
  }

  /**
   * Each input's mean over its token rows in ATen's order for `mean(dim=0)` (a sum, then a division):
   * column by column for a 2-D tensor; for a 1-D one, a whole-tensor sum (eight lanes, split over
   * torch's threads above its grain).
   */
  private async meanRows(): Promise<Float32Array[]> {
    const wide = Math.floor(this.cols / 32) * 32;
    const { oneDimensional, torchThreads } = this.layout;
    return Promise.all(
      this.inputs.map(async (_, i) => {
        const sums = Array.from({ length: this.cols }, (_, c) =>
          oneDimensional ? new ParallelTorchSum(this.rows.tokens, torchThreads) : new TorchSum(this.rows.tokens, { lanes: 1, ilp: c < wide ? 1 : 4 }),
        );
        const buffer = new Float32Array(this.chunkRows * this.cols);
        for (let first = 0; first < this.rows.tokens; first += this.chunkRows) {
          const count = Math.min(this.chunkRows, this.rows.tokens - first);
          const rows = await this.fillRows(i, first, count, buffer.subarray(0, count * this.cols));
          for (let r = 0; r < count; r++) for (let c = 0; c < this.cols; c++) sums[c]!.add(rows[r * this.cols + c]!);
        }
        return Float32Array.from(sums, (s) => this.round(s.result() / this.rows.tokens));
      }),
    );
  }
}
