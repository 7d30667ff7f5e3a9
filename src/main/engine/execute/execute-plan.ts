import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { formatBytes } from '../../../shared/format';
import type { ProgressEvent } from '../../../shared/progress';
import { selectBackend } from '../compute/select-backend';
import { hostBytes, type ComputeBackend, type DeviceChoice, type HostArray } from '../compute/types';
import { EngineError } from '../errors';
import { getMergeMethod } from '../methods/registry';
import type { TensorSink } from '../methods/types';
import { checkTokenizerFiles, copyTokenizerFiles } from '../output/copy-tokenizer';
import { renderModelCard } from '../output/model-card';
import { encodeFromF32 } from '../safetensors/convert';
import { dtypeSize, isFloatDtype, type FloatDtype } from '../safetensors/dtype';
import type { SafetensorsReader, TensorReader } from '../safetensors/reader';
import { ConcatenatedReader } from '../model/concatenated-reader';
import { layoutShard } from '../safetensors/writer';
import type { MergePlan, PlannedInput, PlannedTensor } from '../plan/types';
import { BufferPool } from './buffer-pool';
import { ShardHasher } from './shard-digest';
import { ShardOutput } from './shard-output';
import { ChunkedTensorSource, chunkElementsFor, roundInPlace } from './tensor-source';
import { VocabularyTensorSource } from './vocabulary-source';
import { openTensorFile } from '../model/open-tensor-file';
import { describeShard, hashPlan, ShardJournal, verifyFinishedShards, type FinishedShard } from './shard-journal';

export interface ExecuteOptions {
  outDir: string;
  /** Bytes of tensor data held in memory at once, inputs and output together. */
  memoryBudget?: number;
  /** Replace a non-empty output folder (it is swapped out only once the new one is complete). */
  overwrite?: boolean;
  copyTokenizer?: boolean;
  writeModelCard?: boolean;
  /** The intra-op threads of the torch whose whole-tensor sums are reproduced (see ParallelTorchSum). */
  torchThreads?: number;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Where the arithmetic runs (`--device`); default `auto`. Ignored when `backend` is given. */
  device?: DeviceChoice;
  /** A backend the caller opened and will dispose of (tests, the bench); default: one chosen by `device` for this run. */
  backend?: ComputeBackend;
  /** Continue from the shards an interrupted run of the same plan finished (its journal in the hidden folder). */
  resume?: boolean;
  /** How models are read; default `auto` (see CacheMode). */
  reads?: CacheMode;
  /** How shards are written; default `auto` (see CacheMode). */
  writes?: CacheMode;
}

/**
 * How the models are read, or the shards written. `direct`: past the page cache (Linux's O_DIRECT,
 * from and into the buffer pool's page-aligned memory), which saves the kernel's copies and the
 * cache's churn (on this project's VM, 1–6 CPU-seconds per 2–4 GB); `cached`: through it, so a
 * second run over models that fit in memory reads them from there, and the merged model is in memory
 * for whatever loads it next; `auto`: direct when the bytes exceed half the machine's memory (they
 * would not stay cached anyway).
 */
export type CacheMode = 'auto' | 'direct' | 'cached';

export const DEFAULT_MEMORY_BUDGET = 1 << 30;

export class CancelledError extends EngineError {
  constructor() {
    super('cancelled');
  }
}

/** Runs a plan: reads, merges and writes every tensor, then moves the finished folder into place. */
export async function executePlan(plan: MergePlan, options: ExecuteOptions): Promise<{ outDir: string; bytesWritten: number; seconds: number }> {
  const started = performance.now();
  const outDir = options.outDir;
  await checkTarget(outDir, options.overwrite ?? false);
  if (plan.tokenizerFrom && (options.copyTokenizer !== false || plan.tokenizerJson)) await checkTokenizerFiles(plan.tokenizerFrom);
  const temp = partialFolderFor(outDir);
  const planHash = await hashPlan(plan, options.torchThreads ?? 1);
  const resumed = options.resume ? await resumableShards(temp, planHash, options.onProgress) : undefined;
  await checkFreeSpace(dirname(outDir), plan.bytesToWrite - (resumed?.bytes ?? 0));
  const progress = new ProgressCounter(plan, options.onProgress, options.signal);
  const writing = { file: '' };
  try {
    const journal = resumed?.journal ?? (await startBuildFolder(temp, planHash));
    const finished = resumed?.files ?? new Set<string>();
    await untilAborted(writeShards(plan, temp, { journal, finished, progress, writing, options }), options.signal);
    options.onProgress?.({ type: 'stage', stage: 'finalize', message: 'writing config, tokenizer and model card' });
    writing.file = 'config, tokenizer and model card';
    await writeSideFiles(plan, temp, options);
    await rm(journal.path, { force: true });
    await syncDir(temp);
    await moveIntoPlace(temp, outDir);
  } catch (error) {
    // maxRetries: after a cancel, a shard the abandoned work was renaming may appear while the folder is removed.
    await rm(temp, { recursive: true, force: true, maxRetries: 5 });
    if (options.signal?.aborted) throw new CancelledError();
    throw diskFullError(error, writing.file, dirname(outDir), plan.bytesToWrite) ?? error;
  } finally {
    progress.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  options.onProgress?.({ type: 'done', outDir, seconds, bytesWritten: progress.bytesWritten, peakRssBytes: progress.stop() });
  return { outDir, bytesWritten: progress.bytesWritten, seconds };
}

/** The hidden folder beside `outDir` that the output is built in; also where an interrupted run's journal is. */
export function partialFolderFor(outDir: string): string {
  return join(dirname(outDir), `.${basename(outDir)}.alloy-partial`);
}

interface ShardsContext {
  journal: ShardJournal;
  /** Shards an interrupted run finished (verified): not written again. */
  finished: ReadonlySet<string>;
  progress: ProgressCounter;
  /** The file being written, for error messages. */
  writing: { file: string };
  options: ExecuteOptions;
}

/**
 * Writes every shard not already finished, journaling each once it is renamed into place. Its
 * readers and compute backend are released when it stops, even after a cancel stopped waiting for it.
 */
async function writeShards(plan: MergePlan, temp: string, { journal, finished, progress, writing, options }: ShardsContext): Promise<void> {
  const readers = new ReaderPool();
  let compute: Awaited<ReturnType<typeof openBackend>> | undefined;
  let pool: BufferPool | undefined;
  const hasher = new ShardHasher();
  /** The last shard's flush, rename and journal line, going on while the next shard is computed. */
  let committing: Promise<void> | undefined;
  const failure: { error?: unknown } = {};
  const journalWhenFlushed = async (file: string, digest: string | undefined, flushed: Promise<void>) => {
    await flushed;
    // Pieces written out of order were not hashed as they went: the shard is read back (its own hasher).
    await journal.record(digest ? { file, bytes: (await stat(join(temp, file))).size, digest } : await describeShard(temp, file));
  };
  try {
    compute = await openBackend(options);
    const run: ExecuteOptions = { ...options, backend: compute.backend };
    pool = new BufferPool(compute.backend, options.memoryBudget ?? DEFAULT_MEMORY_BUDGET);
    const reads = chooseDirect('reads', options.reads ?? 'auto', plan.bytesToRead, 'the models');
    const writes = chooseDirect('writes', options.writes ?? 'auto', plan.bytesToWrite, 'the output');
    for (const warning of [reads.warning, writes.warning]) if (warning) options.onProgress?.({ type: 'warning', message: warning });
    const how = [reads.direct ? `reading past the page cache (${reads.why})` : '', writes.direct ? `writing past the page cache (${writes.why})` : ''].filter(Boolean);
    options.onProgress?.({ type: 'stage', stage: 'merge', message: `merging ${plan.tensors.length} tensors with ${plan.method}${how.map((h) => `; ${h}`).join('')}` });
    const stopIfFailed = () => {
      if (failure.error !== undefined) throw failure.error;
    };
    for (const [index, shard] of plan.shards.entries()) {
      const tensors = plan.tensors.filter((t) => t.shard === index);
      if (finished.has(shard.file)) {
        progress.tensorsSkipped(tensors);
        continue;
      }
      writing.file = shard.file;
      const { digest, flushed } = await writeShard(plan, tensors, join(temp, shard.file), { readers, progress, run, pool, hasher, directReads: reads.direct, directWrites: writes.direct, stopIfFailed });
      // The shard before this one was flushed while this one was computed; this one is while the next is.
      await committing;
      committing = journalWhenFlushed(shard.file, digest, flushed);
      committing.catch((error: unknown) => {
        failure.error ??= error;
        writing.file = shard.file;
      });
    }
    await committing;
  } finally {
    await committing?.catch(() => undefined);
    await readers.closeAll();
    pool?.dispose();
    await compute?.close();
  }
}

/**
 * Settles as `work` does, or rejects with CancelledError the moment `signal` aborts: a cancel never
 * waits for a read, a write or a kernel in progress (the work stops at its next check on its own).
 */
function untilAborted<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  work.catch(() => undefined);
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CancelledError());
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

interface ShardContext {
  readers: ReaderPool;
  progress: ProgressCounter;
  run: ExecuteOptions;
  pool: BufferPool;
  hasher: ShardHasher;
  directReads: boolean;
  directWrites: boolean;
  /** Throws the failure of the previous shard's flush, which goes on in the background. */
  stopIfFailed: () => void;
}

/**
 * Writes one shard's tensors and returns its digest and its flush (the writes finishing, fsync and
 * the rename to its final name). Tensors go in the order of the shard's layout, so the file is
 * written front to back (and hashed as it is written), and each tensor's first chunk is read while
 * the one before it is computed.
 */
async function writeShard(plan: MergePlan, tensors: PlannedTensor[], path: string, { readers, progress, run, pool, hasher, directReads, directWrites, stopIfFailed }: ShardContext): Promise<{ digest: string | undefined; flushed: Promise<void> }> {
  const output = await ShardOutput.create(path, tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), pool, hasher, directWrites);
  const ordered = inLayoutOrder(tensors);
  let next: Promise<PreparedTensor> | undefined;
  try {
    const prepare = (tensor: PlannedTensor) => prepareTensor(plan, tensor, readers, run, pool, directReads);
    next = prepare(ordered[0]!);
    for (let i = 0; i < ordered.length; i++) {
      run.signal?.throwIfAborted();
      stopIfFailed();
      const current = await next!;
      next = i + 1 < ordered.length ? prepare(ordered[i + 1]!) : undefined;
      next?.catch(() => undefined);
      let bytesRead: number;
      try {
        bytesRead = await writeTensor(plan, current, output, run, pool);
      } finally {
        await current.release();
      }
      progress.tensorDone(current.tensor, bytesRead);
    }
    return output.finish();
  } catch (error) {
    await next?.then((p) => p.release(), () => undefined);
    await output.abort();
    throw error;
  }
}

/** The order safetensors lays a shard's tensors out in (wider dtypes first, then by name). */
function inLayoutOrder(tensors: PlannedTensor[]): PlannedTensor[] {
  const at = layoutShard(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })), {}).offsets;
  return [...tensors].sort((a, b) => at.get(a.name)! - at.get(b.name)!);
}

/** A fresh hidden folder (an earlier run's leftovers removed) with an empty journal. */
async function startBuildFolder(temp: string, planHash: string): Promise<ShardJournal> {
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp, { recursive: true });
  return ShardJournal.start(temp, planHash);
}

/**
 * The shards an interrupted run of this very plan finished and that are still intact, with its
 * journal to go on appending to; undefined (start over, with a warning saying why) otherwise.
 */
async function resumableShards(temp: string, planHash: string, emit?: (event: ProgressEvent) => void) {
  const found = await ShardJournal.read(temp, planHash);
  if (found === 'none') {
    emit?.({ type: 'warning', message: `nothing to resume in ${temp}; starting from the beginning` });
    return undefined;
  }
  if (found === 'other-plan') {
    emit?.({ type: 'warning', message: `the interrupted merge in ${temp} was for another recipe, models or options; starting from the beginning` });
    return undefined;
  }
  const { kept, dropped } = await verifyFinishedShards(temp, found.finished);
  for (const file of dropped) emit?.({ type: 'warning', message: `${file} no longer matches its journal entry; writing it again` });
  emit?.({ type: 'stage', stage: 'plan', message: `resuming: ${kept.length} finished shard${kept.length === 1 ? '' : 's'} verified in ${temp}` });
  return { journal: found.journal, files: new Set(kept.map((s) => s.file)), bytes: sumBytes(kept) };
}

function sumBytes(shards: FinishedShard[]): number {
  return shards.reduce((sum, s) => sum + s.bytes, 0);
}

const FREE_SPACE = 'Free some space (or pick another folder) and run the merge again.';

/** The write failures that mean "no room", what each means and what to do. */
const NO_ROOM: Record<string, { reason: string; advice: string }> = {
  ENOSPC: { reason: 'the disk is full', advice: FREE_SPACE },
  EDQUOT: { reason: 'the disk quota is used up', advice: FREE_SPACE },
  EFBIG: { reason: 'the file size limit was reached', advice: 'Raise the limit (ulimit -f) or pass a smaller --out-shard-size, and run the merge again.' },
};

/** An out-of-room failure as a message for the user: what was being written, where, and that nothing was kept. */
function diskFullError(error: unknown, file: string, dir: string, bytesToWrite: number): EngineError | undefined {
  const code = (error as NodeJS.ErrnoException)?.code ?? '';
  const noRoom = NO_ROOM[code];
  if (!noRoom) return undefined;
  return new EngineError(
    `${noRoom.reason} (${code}) while writing ${file || 'the output'} in ${dir}: the merge writes ${formatBytes(bytesToWrite)}; ` +
      `the partial output was removed, nothing was kept. ${noRoom.advice}`,
    { file: dir },
  );
}

interface PreparedTensor {
  tensor: PlannedTensor;
  inputReaders: TensorReader[];
  source?: ChunkedTensorSource | VocabularyTensorSource;
  release(): Promise<void>;
}

/** Opens a tensor's inputs and starts reading its first chunk. */
async function prepareTensor(plan: MergePlan, tensor: PlannedTensor, readers: ReaderPool, options: ExecuteOptions, pool: BufferPool, directReads: boolean): Promise<PreparedTensor> {
  const inputReaders = await Promise.all(tensor.inputs.map((i) => readers.input(i)));
  if ((tensor.kind === 'copy' && tensor.inputs[0]!.dtype === tensor.dtype) || !isFloatDtype(tensor.dtype)) return { tensor, inputReaders, release: async () => undefined };
  const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  const method = tensor.kind === 'merge' ? getMergeMethod(plan.method) : undefined;
  const wholeRows = method?.chunking === 'rows';
  const rowLength = tensor.shape.length > 1 ? tensor.shape[tensor.shape.length - 1]! : wholeRows ? tensor.numel : 0;
  const inputs = tensor.kind === 'copy' ? tensor.inputs.slice(0, 1) : tensor.inputs;
  // Three sets of chunk buffers at most: the chunk computed, the next one read, the next tensor's first.
  const chunkElements = chunkElementsFor(inputs, dtypeSize(tensor.dtype), budget, rowLength, wholeRows || tensor.vocabulary !== undefined, 3);
  if (tensor.vocabulary) {
    // A token's values: a row of a 2-D embedding, one value of a 1-D vocabulary tensor (phi's lm_head.bias).
    const tokenWidth = tensor.numel / tensor.shape[0]!;
    const source = new VocabularyTensorSource(inputReaders, inputs, tensor.vocabulary, tokenWidth, Math.max(1, Math.floor(chunkElements / tokenWidth)), plan.computeDtype, options.signal, {
      oneDimensional: tensor.shape.length === 1,
      torchThreads: options.torchThreads ?? 1,
    });
    return { tensor, inputReaders, source, release: async () => undefined };
  }
  const source = new ChunkedTensorSource(inputReaders, inputs, tensor.numel, chunkElements, plan.computeDtype, options.signal, pool, directReads);
  source.prefetch();
  return { tensor, inputReaders, source, release: () => source.release() };
}

async function writeTensor(plan: MergePlan, prepared: PreparedTensor, output: ShardOutput, options: ExecuteOptions, pool: BufferPool): Promise<number> {
  const { tensor, inputReaders, source } = prepared;
  const budget = options.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  if (tensor.kind === 'copy' && tensor.inputs[0]!.dtype === tensor.dtype) {
    return copyBytes(tensor, inputReaders[0]!, output, budget, options.signal);
  }
  if (!isFloatDtype(tensor.dtype) || !source) throw new EngineError(`tensor "${tensor.name}": cannot convert ${tensor.inputs[0]!.dtype} to ${tensor.dtype}`, { tensor: tensor.name });
  const method = tensor.kind === 'merge' ? getMergeMethod(plan.method) : undefined;
  const working = computeDtypeOf(plan, tensor);
  // mergekit rounds a merge's result to its working dtype (or the method's own result dtype), then
  // casts it to the output's (`dtype: bfloat16` with `out_dtype: float32`): where those differ, the
  // sink takes f32 and rounds twice.
  const result = method && working && method.resultDtype ? method.resultDtype(working) : working;
  const roundTo = method && result && result !== 'F32' && result !== tensor.dtype ? result : undefined;
  const { sink, release } = tensorSink(tensor, output, pool, roundTo);
  try {
    if (!method) {
      for await (const chunk of source.chunks()) await sink.write(chunk.start, chunk.inputs[0]!);
      return source.bytesRead;
    }
      await method.kernel(source, sink, {
        tensorName: tensor.name,
        shape: tensor.shape,
        numel: tensor.numel,
        baseIndex: tensor.baseIndex,
        global: tensor.global,
        perModel: tensor.perModel,
        seed: plan.seed,
        torchThreads: options.torchThreads ?? 1,
        ...(options.backend ? { backend: options.backend } : {}),
        ...(working ? { computeDtype: working } : {}),
      });
  } catch (error) {
    // The write's own errors (a full disk, a file size limit) go up as they are: they name the file.
    if (error instanceof EngineError || options.signal?.aborted || (error as NodeJS.ErrnoException).code !== undefined) throw error;
    throw new EngineError(`tensor "${tensor.name}": ${(error as Error).message}`, { tensor: tensor.name });
  } finally {
    release();
  }
  return source.bytesRead;
}

/**
 * Where a tensor's chunks go: encoded to its dtype, each chunk copied into a buffer of the shard's
 * output at once (so the caller may reuse its own); the output array this sink gave out is handed to
 * the shard as it is, and the next chunk gets another. With `roundTo`, the method writes f32, which is
 * rounded to that dtype before it is encoded.
 */
function tensorSink(tensor: PlannedTensor, output: ShardOutput, pool: BufferPool, roundTo: 'BF16' | 'F16' | undefined): { sink: TensorSink; release: () => void } {
  const outDtype = tensor.dtype as FloatDtype;
  const outSize = dtypeSize(outDtype);
  const sinkDtype: FloatDtype = roundTo ? 'F32' : outDtype;
  /** The output array given out for the chunk being computed, until it is written. */
  let givenOut: Uint8Array | undefined;
  const encode = (start: number, values: Float32Array) => output.write(tensor.name, start * outSize, values.length * outSize, (bytes) => encodeFromF32(values, outDtype, bytes));
  const sink: TensorSink = {
    write: (start, values) => {
      if (!roundTo) return encode(start, values);
      const rounded = Float32Array.from(values);
      roundInPlace(rounded, roundTo);
      return encode(start, rounded);
    },
    // A backend's output already in the sink's dtype (its rounding is encodeFromF32's).
    outDtype: sinkDtype,
    writeEncoded: (start, values) => {
      if (values.dtype !== sinkDtype) return Promise.reject(new Error(`a ${values.dtype} chunk for a ${sinkDtype} sink`));
      if (roundTo) {
        roundInPlace(values.data as Float32Array, roundTo);
        return encode(start, values.data as Float32Array);
      }
      const bytes = hostBytes(values);
      if (givenOut?.buffer === bytes.buffer && givenOut.byteOffset === bytes.byteOffset) {
        givenOut = undefined;
        return output.writeTaken(tensor.name, start * outSize, bytes);
      }
      return output.write(tensor.name, start * outSize, bytes.byteLength, (into) => into.set(bytes));
    },
    outputArray: (length) => {
      if (givenOut) pool.give(givenOut);
      givenOut = pool.take(length * dtypeSize(sinkDtype));
      return hostView(givenOut, sinkDtype, length);
    },
  };
  return { sink, release: () => givenOut && pool.give(givenOut) };
}

/** `bytes` as a host array of `length` elements of `dtype` (sharing its memory). */
function hostView(bytes: Uint8Array, dtype: FloatDtype, length: number): HostArray {
  return dtype === 'F32' ? { dtype, data: new Float32Array(bytes.buffer, bytes.byteOffset, length) } : { dtype, data: new Uint16Array(bytes.buffer, bytes.byteOffset, length) };
}

/**
 * The run's compute backend, chosen by `--device` (or the caller's own), announced as a `device`
 * event; its warnings (no GPU for `--device gpu`, a lost device later in the run) as warnings.
 */
async function openBackend(options: ExecuteOptions): Promise<{ backend: ComputeBackend; close: () => Promise<void> }> {
  const emit = options.onProgress ?? (() => undefined);
  if (options.backend) {
    const { backend } = options;
    emit({ type: 'device', kind: backend.kind, description: backend.description, message: `computing on the ${backend.description}` });
    return { backend, close: async () => undefined };
  }
  let chosen = '';
  let selected: ComputeBackend | undefined;
  const { backend, description } = await selectBackend({
    device: options.device ?? 'auto',
    onNotice: (message) => {
      if (!message.startsWith('WARNING: ')) chosen = message;
      else {
        emit({ type: 'warning', message: message.slice('WARNING: '.length) });
        // After the start, a warning is a lost GPU: the rest of the run is on the CPU.
        if (selected) emit({ type: 'device', kind: selected.kind, description: selected.description, message: `computing on the ${selected.description} from now on` });
      }
    },
  });
  selected = backend;
  emit({ type: 'device', kind: backend.kind, description, message: chosen || `computing on the ${description}` });
  return { backend, close: () => backend.dispose() };
}

/** A tensor copied as it is (passthrough, same dtype): read into the output's buffers, written as read. */
async function copyBytes(tensor: PlannedTensor, reader: TensorReader, output: ShardOutput, budget: number, signal?: AbortSignal): Promise<number> {
  const input = tensor.inputs[0]!;
  const step = Math.max(1, Math.min(budget, 64 << 20));
  for (let start = 0; start < input.byteLength; start += step) {
    signal?.throwIfAborted();
    const length = Math.min(step, input.byteLength - start);
    await output.write(tensor.name, start, length, (bytes) => reader.read(input.tensor, bytes, start, length));
  }
  return input.byteLength;
}

async function writeSideFiles(plan: MergePlan, dir: string, options: ExecuteOptions): Promise<void> {
  if (plan.indexFile) {
    const weightMap: Record<string, string> = {};
    for (const t of plan.tensors) weightMap[t.name] = plan.shards[t.shard]!.file;
    const total = plan.shards.reduce((sum, s) => sum + s.bytes, 0);
    await writeFile(join(dir, plan.indexFile), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
  await writeFile(join(dir, 'config.json'), JSON.stringify(plan.outputConfig, null, 2) + '\n');
  await writeFile(join(dir, 'mergekit_config.yml'), plan.recipeText.endsWith('\n') ? plan.recipeText : plan.recipeText + '\n');
  if (options.writeModelCard !== false) await writeFile(join(dir, 'README.md'), renderModelCard({ ...plan.modelCard, name: basename(options.outDir) }));
  if (plan.tokenizerJson && plan.tokenizerFrom) {
    // A built vocabulary is always saved, as mergekit saves it; the slow tokenizer's files would disagree with it.
    await copyTokenizerFiles(plan.tokenizerFrom, dir, (name) => !SLOW_TOKENIZER_FILES.has(name));
    await writeFile(join(dir, 'tokenizer.json'), plan.tokenizerJson);
    if (plan.chatTemplate) await saveChatTemplate(dir, plan.chatTemplate);
  } else if (options.copyTokenizer !== false && plan.tokenizerFrom) {
    await copyTokenizerFiles(plan.tokenizerFrom, dir);
    if (plan.chatTemplate) await saveChatTemplate(dir, plan.chatTemplate);
  }
}

/**
 * Whether this run's reads or writes go past the page cache, and why (for the merge's stage
 * message); a warning when `direct` was asked for where there is no O_DIRECT (not Linux).
 */
function chooseDirect(flag: 'reads' | 'writes', mode: CacheMode, bytes: number, what: string): { direct: boolean; why?: string; warning?: string } {
  if (mode === 'cached') return { direct: false };
  const possible = fsConstants.O_DIRECT !== undefined;
  if (mode === 'direct') {
    return possible ? { direct: true, why: `--${flag} direct` } : { direct: false, warning: `direct ${flag} need Linux (O_DIRECT); ${flag === 'reads' ? 'reading' : 'writing'} through the page cache` };
  }
  if (!possible || bytes <= totalmem() / 2) return { direct: false };
  return { direct: true, why: `${what}, ${formatBytes(bytes)}, over half of this machine's ${formatBytes(totalmem())} of memory` };
}

/** The recipe's dtype, else the inputs' own when they share one: mergekit computes on tensors as loaded. */
function computeDtypeOf(plan: MergePlan, tensor: PlannedTensor): FloatDtype | undefined {
  if (plan.computeDtype) return plan.computeDtype;
  const dtypes = new Set(tensor.inputs.map((i) => i.dtype));
  const only = tensor.inputs[0]?.dtype;
  return dtypes.size === 1 && only && isFloatDtype(only) ? only : undefined;
}

/** As transformers saves one: chat_template.jinja, and no copy left in tokenizer_config.json. */
async function saveChatTemplate(dir: string, template: string): Promise<void> {
  await writeFile(join(dir, 'chat_template.jinja'), template);
  const configFile = join(dir, 'tokenizer_config.json');
  const config = await readFile(configFile, 'utf8').then(JSON.parse, () => undefined);
  if (config && 'chat_template' in config) {
    delete config.chat_template;
    await writeFile(configFile, JSON.stringify(config, null, 2) + '\n');
  }
}

const SLOW_TOKENIZER_FILES = new Set(['tokenizer.json', 'tokenizer.model', 'vocab.json', 'merges.txt', 'added_tokens.json']);

async function checkTarget(outDir: string, overwrite: boolean): Promise<void> {
  const info = await stat(outDir).catch(() => undefined);
  if (!info) return;
  if (!info.isDirectory()) throw new EngineError(`${outDir} exists and is not a folder`, { file: outDir });
  if ((await readdir(outDir)).length > 0 && !overwrite) {
    throw new EngineError(`${outDir} already exists and is not empty; choose another folder or pass --overwrite`, { file: outDir });
  }
}

async function checkFreeSpace(dir: string, bytes: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (free < bytes * 1.02 + (16 << 20)) {
    throw new EngineError(`not enough free space in ${dir}: the merge writes ${formatBytes(bytes)} but ${formatBytes(free)} is free`, { file: dir });
  }
}

async function syncDir(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const handle = await open(join(dir, name), 'r');
    await handle.sync().finally(() => handle.close());
  }
  const handle = await open(dir, 'r');
  await handle.sync().catch(() => undefined).finally(() => handle.close());
}

/** Puts the finished folder at `outDir`; an old folder there is removed only after the swap. */
async function moveIntoPlace(temp: string, outDir: string): Promise<void> {
  const existing = await stat(outDir).catch(() => undefined);
  if (!existing) {
    await rename(temp, outDir);
  } else {
    const old = `${temp}-old`;
    await rename(outDir, old);
    await rename(temp, outDir);
    await rm(old, { recursive: true, force: true });
  }
  const parent = await open(dirname(outDir), 'r');
  await parent.sync().catch(() => undefined).finally(() => parent.close());
}

class ReaderPool {
  private readers = new Map<string, Promise<SafetensorsReader>>();

  get(file: string): Promise<SafetensorsReader> {
    let reader = this.readers.get(file);
    if (!reader) {
      reader = openTensorFile(file);
      this.readers.set(file, reader);
    }
    return reader;
  }

  /** The reader of one input: its file, or, for a converted tensor, its parts' files read as one. */
  async input(input: PlannedInput): Promise<TensorReader> {
    if (!input.parts) return this.get(input.file);
    const parts = await Promise.all(input.parts.map(async (p) => ({ reader: await this.get(p.file), tensor: p.tensor, byteLength: p.byteLength })));
    return new ConcatenatedReader(input.tensor, parts);
  }

  async closeAll(): Promise<void> {
    const all = await Promise.allSettled(this.readers.values());
    await Promise.all(all.map((r) => (r.status === 'fulfilled' ? r.value.close() : undefined)));
  }
}

class ProgressCounter {
  private index = 0;
  private bytesRead = 0;
  bytesWritten = 0;
  private readonly started = performance.now();
  /** Sampled, not getrusage's maxRSS: that one is inherited across exec from whatever spawned us. */
  private peakRss = process.memoryUsage.rss();
  private readonly sampler = setInterval(() => this.sampleRss(), 50).unref();

  constructor(
    private readonly plan: MergePlan,
    private readonly onProgress?: (event: ProgressEvent) => void,
    private readonly signal?: AbortSignal,
  ) {}

  /** Nothing is reported once cancelled: the abandoned work may still finish a tensor. */
  private emit(event: ProgressEvent): void {
    if (!this.signal?.aborted) this.onProgress?.(event);
  }

  private sampleRss(): void {
    this.peakRss = Math.max(this.peakRss, process.memoryUsage.rss());
  }

  stop(): number {
    clearInterval(this.sampler);
    this.sampleRss();
    return this.peakRss;
  }

  /** Tensors an interrupted run already wrote: counted as written, not reported one by one. */
  tensorsSkipped(tensors: PlannedTensor[]): void {
    this.index += tensors.length;
    for (const tensor of tensors) this.bytesWritten += tensor.numel * dtypeSize(tensor.dtype);
  }

  tensorDone(tensor: PlannedTensor, bytesRead: number): void {
    this.index++;
    this.sampleRss();
    this.bytesRead += bytesRead;
    this.bytesWritten += tensor.numel * dtypeSize(tensor.dtype);
    const seconds = Math.max(1e-3, (performance.now() - this.started) / 1000);
    const rate = (this.bytesRead + this.bytesWritten) / seconds;
    const remaining = this.plan.bytesToWrite - this.bytesWritten;
    const writeRate = this.bytesWritten / seconds;
    this.emit({
      type: 'tensor',
      index: this.index,
      total: this.plan.tensors.length,
      name: tensor.name,
      bytesRead: this.bytesRead,
      bytesWritten: this.bytesWritten,
      totalBytesToWrite: this.plan.bytesToWrite,
      rate,
      etaSeconds: writeRate > 0 ? remaining / writeRate : 0,
    });
  }
}
