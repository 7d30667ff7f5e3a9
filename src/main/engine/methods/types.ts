import type { MethodParameterInfo } from '../../../shared/contract';
import { hostArray, sliceHost, type ComputeBackend, type HostArray } from '../compute/types';
import type { FloatDtype } from '../safetensors/dtype';

/** A parameter as a method declares it: the app's forms and the CLI's help are built from this. */
export type ParameterDecl = MethodParameterInfo;

export type ParamValue = number | boolean;

/** The inputs of one output tensor as the kernel sees them: f32 views, one per model, in recipe order. */
export interface TensorMergeContext {
  tensorName: string;
  shape: number[];
  numel: number;
  /** Index into the inputs of the base model, when the method has one. */
  baseIndex: number | undefined;
  global: Readonly<Record<string, ParamValue>>;
  perModel: ReadonlyArray<Readonly<Record<string, ParamValue>>>;
  seed: number;
  /** The recipe's `dtype`: mergekit computes in it, so a method may round its steps to it. */
  computeDtype?: FloatDtype;
  /** torch's intra-op threads, which set the order of its sums over more than 32,768 elements. */
  torchThreads?: number;
  /**
   * Where the elementwise arithmetic runs (`--device`): a method that has a kernel for its step calls
   * it with the chunk's f32 views, and gets the same bits as its own TypeScript would give. Absent
   * (a kernel called on its own, in a test), the method computes in TypeScript.
   */
  backend?: ComputeBackend;
}

export interface Chunk {
  /** First element of the chunk within the tensor. */
  start: number;
  length: number;
  /** One f32 view per input, each `length` long. */
  inputs: Float32Array[];
  /**
   * The inputs as read, undecoded (bf16 stays bf16), when `inputs` are exactly their widening (no
   * rounding to the compute dtype was needed): a backend can take these and skip the decode.
   */
  raw?: HostArray[];
}

/** The input tensors of one merge, readable in chunks as many times as a method needs. */
export interface TensorSource {
  /** Yields chunks in order; a chunk's arrays are reused once the chunk after it has been taken. */
  chunks(): AsyncIterable<Chunk>;
}

export interface TensorSink {
  /** Takes a copy of `values` before returning, so the caller may reuse the array at once. */
  write(start: number, values: Float32Array): Promise<void>;
  /** The output tensor's dtype, when the sink also takes values already in it (`writeEncoded`). */
  outDtype?: FloatDtype;
  /** As `write`, for values already in `outDtype` (rounded to nearest even, as `write` would round them). */
  writeEncoded?(start: number, values: HostArray): Promise<void>;
  /**
   * An array of `length` elements in `outDtype` for a chunk's output, the sink's own (the executor's
   * pooled memory, which the CPU backend's kernels write where it is); valid until the next call.
   */
  outputArray?(length: number): HostArray;
}

/**
 * A method's output chunks in the sink's dtype when the sink takes them (else f32), in one array
 * reused from chunk to chunk (the sink's own where it has one): the sink copies what it is given
 * before its promise resolves.
 */
export class OutputBuffer {
  private array: HostArray | undefined;

  constructor(private readonly sink: TensorSink) {}

  take(length: number): HostArray {
    const encoded = this.sink.writeEncoded !== undefined && this.sink.outDtype !== undefined;
    if (encoded && this.sink.outputArray) return this.sink.outputArray(length);
    if (!this.array || this.array.data.length < length) this.array = hostArray(encoded ? this.sink.outDtype! : 'F32', length);
    return sliceHost(this.array, 0, length);
  }

  write(start: number, values: HostArray): Promise<void> {
    const encoded = this.sink.writeEncoded !== undefined && this.sink.outDtype !== undefined;
    return encoded ? this.sink.writeEncoded!(start, values) : this.sink.write(start, values.data as Float32Array);
  }
}

export type MergeKernel = (source: TensorSource, sink: TensorSink, ctx: TensorMergeContext) => Promise<void>;

export interface MergeMethod {
  name: string;
  prettyName: string;
  description: string;
  paper?: string;
  /** Whether `base_model` is required, optional or ignored by this method. */
  base: 'required' | 'optional' | 'none';
  parameters: ParameterDecl[];
  /** How many models the method merges at once (mergekit's InputContract): all inputs, and those besides the base. */
  inputs?: { min?: number; max?: number; minOthers?: number; maxOthers?: number };
  /** `rows`: every chunk holds whole rows (1-D tensors are one row), for methods that work per row. */
  chunking?: 'rows';
  /**
   * The dtype of mergekit's result from inputs computed in `computed`, where it is not that dtype:
   * a method that multiplies by an f32 tensor returns f32 from bf16 or f16 inputs, and mergekit saves
   * it so unless the recipe sets `out_dtype`.
   */
  resultDtype?: (computed: FloatDtype) => FloatDtype;
  /**
   * Where this tensor's result may differ from mergekit's, a sentence saying how (the plan warns it
   * once per sentence); undefined where it gives mergekit's result.
   */
  divergence?: (tensor: {
    numel: number;
    global: Readonly<Record<string, ParamValue>>;
    perModel: ReadonlyArray<Readonly<Record<string, ParamValue>>>;
    baseIndex: number | undefined;
    computeDtype: FloatDtype | undefined;
  }) => string | undefined;
  kernel: MergeKernel;
}

/** `values` as a backend's host array (the same memory). */
export function f32Host(values: Float32Array): { dtype: 'F32'; data: Float32Array } {
  return { dtype: 'F32', data: values };
}

/**
 * The part of an elementwise kernel that runs on `ctx.backend`: it computes `out` from `inputs` (as
 * stored, or f32) and resolves, or returns undefined when this tensor is not for the backend.
 */
export type BackendStep = (backend: ComputeBackend, inputs: HostArray[], out: HostArray, ctx: TensorMergeContext) => Promise<void> | undefined;

/**
 * A kernel that needs nothing but the same element of every input. With `onBackend` and a backend in
 * the context, chunks go to the backend as read (bf16 undecoded where the source has them) and its
 * output to the sink in the output's dtype, so neither end is converted in TypeScript.
 */
export function elementwise(compute: (inputs: Float32Array[], out: Float32Array, ctx: TensorMergeContext) => void, onBackend?: BackendStep): MergeKernel {
  return async (source, sink, ctx) => {
    let buffer = new Float32Array(0);
    const output = new OutputBuffer(sink);
    for await (const chunk of source.chunks()) {
      if (ctx.backend && onBackend) {
        const out = output.take(chunk.length);
        const running = onBackend(ctx.backend, chunk.raw ?? chunk.inputs.map(f32Host), out, ctx);
        if (running) {
          await running;
          await output.write(chunk.start, out);
          continue;
        }
      }
      if (buffer.length < chunk.length) buffer = new Float32Array(chunk.length);
      const out = buffer.subarray(0, chunk.length);
      compute(chunk.inputs, out, ctx);
      await sink.write(chunk.start, out);
    }
  };
}
