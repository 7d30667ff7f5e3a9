import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dtypeSize, isDtype, type Dtype } from './dtype';
import { EngineError } from '../errors';

/** The Rust reference refuses headers over 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;
/** Node aborts on a single read of 2 GiB or more; stay far below. */
export const MAX_READ_BYTES = 1 << 30;
/**
 * What direct reads (past the page cache) are aligned to: their file offset, length and memory. 4 KiB
 * is every Linux file system's logical block or a multiple of it.
 */
export const DIRECT_ALIGNMENT = 4096;
/** Bytes a buffer for `readDirect` needs beyond the bytes asked for: the pages the read begins and ends in. */
export const DIRECT_SLACK = 2 * DIRECT_ALIGNMENT;
/** A direct read is cut into pieces of this many bytes read at once: the disk sees a queue, not one request. */
const DIRECT_PIECE = 8 << 20;

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  byteLength: number;
  numel: number;
}

export class SafetensorsError extends EngineError {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`, { file });
  }
}

/** Where a tensor's bytes are read from: a file of tensors, or several of its tensors read as one (a converted tensor). */
export interface TensorReader {
  /** The file read (the first of them, for a tensor made of several), for messages and plans. */
  readonly path: string;
  /** Reads `length` bytes starting `start` bytes into the tensor's data, into `into` (or a new buffer). */
  read(name: string, into?: Uint8Array, start?: number, length?: number): Promise<Uint8Array>;
  /**
   * As `read`, past the page cache where the file system allows (Linux's O_DIRECT): the whole pages
   * holding the bytes are read into `into`, which must start on a DIRECT_ALIGNMENT boundary in memory
   * and hold `length + DIRECT_SLACK` bytes, and the bytes asked for are returned where they landed
   * (up to 4095 bytes in). Falls back to `read` where direct reads cannot be done.
   */
  readDirect?(name: string, into: Uint8Array, start: number, length: number): Promise<Uint8Array>;
}

/** A validated safetensors file whose tensors are read by positional reads, never all at once. */
export class SafetensorsReader implements TensorReader {
  private constructor(
    readonly path: string,
    readonly fileSize: number,
    readonly tensors: ReadonlyMap<string, TensorEntry>,
    readonly metadata: Readonly<Record<string, string>>,
    private handle: FileHandle | undefined,
  ) {}

  /** The file opened with O_DIRECT, on the first direct read (undefined where it cannot be). */
  private directOpen: Promise<FileHandle | undefined> | undefined;
  /** Set once a direct read was refused: the file is read through the page cache from then on. */
  private directRefused = false;
  /** Bytes asked for that were read past the page cache. */
  bytesReadDirect = 0;

  static async open(path: string): Promise<SafetensorsReader> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      const { tensors, metadata } = await readHeader(handle, path, size);
      return new SafetensorsReader(path, size, tensors, metadata, handle);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** A reader over tensors whose places in an open file are already known (a PyTorch zip checkpoint). */
  static fromEntries(path: string, fileSize: number, tensors: ReadonlyMap<string, TensorEntry>, handle: FileHandle): SafetensorsReader {
    return new SafetensorsReader(path, fileSize, tensors, {}, handle);
  }

  /** Reads `length` bytes starting `start` bytes into the tensor's data, into `into` (or a new buffer). */
  async read(name: string, into?: Uint8Array, start = 0, length?: number): Promise<Uint8Array> {
    const { entry, count } = this.span(name, start, length);
    const target = into ? into.subarray(0, count) : new Uint8Array(count);
    if (target.byteLength < count) throw new RangeError(`buffer of ${into?.byteLength} bytes cannot hold ${count}`);
    await readFully(this.fileHandle(), target, entry.offset + start, this.path);
    return target;
  }

  async readDirect(name: string, into: Uint8Array, start: number, length: number): Promise<Uint8Array> {
    const { entry, count } = this.span(name, start, length);
    const from = entry.offset + start;
    const first = from - (from % DIRECT_ALIGNMENT);
    const end = Math.ceil((from + count) / DIRECT_ALIGNMENT) * DIRECT_ALIGNMENT;
    const handle = end - first <= into.byteLength ? await this.directHandle() : undefined;
    if (!handle) return this.read(name, into, start, length);
    const pieces: Promise<void>[] = [];
    for (let at = first; at < end; at += DIRECT_PIECE) {
      const to = Math.min(end, at + DIRECT_PIECE);
      pieces.push(readFully(handle, into.subarray(at - first, to - first), at, this.path, Math.min(to, from + count) - at));
    }
    // Every piece settles before `into` is read into again or handed back.
    const failure = (await Promise.allSettled(pieces)).find((p) => p.status === 'rejected')?.reason as NodeJS.ErrnoException | undefined;
    if (failure) {
      // EINVAL: this file system (or this memory) does not take direct reads after all.
      if (failure.code !== 'EINVAL') throw failure;
      this.directRefused = true;
      return this.read(name, into, start, length);
    }
    this.bytesReadDirect += count;
    return into.subarray(from - first, from - first + count);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
    const direct = this.directOpen;
    this.directOpen = undefined;
    this.directRefused = true;
    await (await direct)?.close();
  }

  /** The bytes [start, start + length) of tensor `name`'s data, checked to lie inside it. */
  private span(name: string, start: number, length: number | undefined): { entry: TensorEntry; count: number } {
    const entry = this.tensors.get(name);
    if (!entry) throw new SafetensorsError(this.path, `no tensor named "${name}"`);
    const count = length ?? entry.byteLength - start;
    if (start < 0 || count < 0 || start + count > entry.byteLength) {
      throw new SafetensorsError(this.path, `read of bytes ${start}..${start + count} is outside tensor "${name}"`);
    }
    return { entry, count };
  }

  /** The file opened for direct reads (once), or undefined where that cannot be done. */
  private async directHandle(): Promise<FileHandle | undefined> {
    if (this.directRefused || constants.O_DIRECT === undefined) return undefined;
    this.directOpen ??= open(this.path, constants.O_RDONLY | constants.O_DIRECT).catch(() => undefined);
    return this.directOpen;
  }

  private fileHandle(): FileHandle {
    if (!this.handle) throw new SafetensorsError(this.path, 'read after close');
    return this.handle;
  }
}

/** Reads `target.byteLength` bytes at `position`, or (a direct read's last page) at least `needed` of them before the file ends. */
export async function readFully(handle: FileHandle, target: Uint8Array, position: number, path: string, needed = target.byteLength): Promise<void> {
  let done = 0;
  while (done < needed) {
    const want = Math.min(MAX_READ_BYTES, target.byteLength - done);
    const { bytesRead } = await handle.read(target, done, want, position + done);
    if (bytesRead === 0) throw new SafetensorsError(path, `file ended early at byte ${position + done}`);
    done += bytesRead;
  }
}

async function readHeader(handle: FileHandle, path: string, fileSize: number) {
  if (fileSize < 8) throw new SafetensorsError(path, `file is ${fileSize} bytes, too short for a safetensors header`);
  const prefix = new Uint8Array(8);
  await readFully(handle, prefix, 0, path);
  const headerLength = Number(new DataView(prefix.buffer).getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES) {
    throw new SafetensorsError(path, `header claims ${headerLength} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (8 + headerLength > fileSize) {
    throw new SafetensorsError(path, `header claims ${headerLength} bytes but the file has only ${fileSize - 8} after the length`);
  }
  const headerBytes = new Uint8Array(headerLength);
  await readFully(handle, headerBytes, 8, path);
  return parseHeader(headerBytes, path, fileSize, 8 + headerLength);
}

export function parseHeader(headerBytes: Uint8Array, path: string, fileSize: number, dataStart: number) {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(path, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw new SafetensorsError(path, 'header does not start with "{"');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    if (error instanceof SafetensorsError) throw error;
    throw new SafetensorsError(path, `header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError(path, 'header is not a JSON object');
  }
  rejectDuplicateKeys(text, path);
  const metadata = parseMetadata((json as Record<string, unknown>)['__metadata__'], path);
  const dataLength = fileSize - dataStart;
  const tensors = new Map<string, TensorEntry>();
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') continue;
    tensors.set(name, parseEntry(name, raw, path, dataStart, dataLength));
  }
  checkNoOverlaps([...tensors.values()], path, dataStart);
  return { tensors, metadata };
}

/** JSON.parse keeps the last of two equal keys silently; the format forbids duplicates, so scan for them. */
function rejectDuplicateKeys(text: string, path: string): void {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      let k = j + 1;
      while (text[k] === ' ' || text[k] === '\n' || text[k] === '\r' || text[k] === '\t') k++;
      if (depth === 1 && text[k] === ':') {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) throw new SafetensorsError(path, `header names "${key}" twice`);
        seen.add(key);
      }
      i = j;
    }
  }
}

function parseMetadata(raw: unknown, path: string): Record<string, string> {
  if (raw === undefined) return {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SafetensorsError(path, '__metadata__ is not an object of strings');
  }
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') throw new SafetensorsError(path, `__metadata__ "${key}" is not a string`);
  }
  return raw as Record<string, string>;
}

function parseEntry(name: string, raw: unknown, path: string, dataStart: number, dataLength: number): TensorEntry {
  const where = `tensor "${name}"`;
  if (typeof raw !== 'object' || raw === null) throw new SafetensorsError(path, `${where} is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !isDtype(dtype)) {
    throw new SafetensorsError(path, `${where} has unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(path, `${where} has an invalid shape ${JSON.stringify(shape)}`);
  }
  const numel = (shape as number[]).reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(numel * dtypeSize(dtype))) {
    throw new SafetensorsError(path, `${where} shape ${JSON.stringify(shape)} is too large`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new SafetensorsError(path, `${where} has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const byteLength = numel * dtypeSize(dtype);
  if (end < begin || end - begin !== byteLength) {
    throw new SafetensorsError(
      path,
      `${where} spans ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${byteLength}`,
    );
  }
  if (end > dataLength) {
    throw new SafetensorsError(path, `${where} ends at byte ${dataStart + end}, past the end of the file`);
  }
  return { name, dtype, shape: shape as number[], offset: dataStart + begin, byteLength, numel };
}

function checkNoOverlaps(entries: TensorEntry[], path: string, dataStart: number): void {
  const sorted = entries.filter((e) => e.byteLength > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.offset < prev.offset + prev.byteLength) {
      throw new SafetensorsError(
        path,
        `tensors "${prev.name}" and "${cur.name}" overlap at byte ${cur.offset - dataStart} of the data`,
      );
    }
  }
}
