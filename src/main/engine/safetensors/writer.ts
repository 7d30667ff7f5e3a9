import { open, rename, type FileHandle } from 'node:fs/promises';
import { dtypeSize, type Dtype } from './dtype';
import { DirectFileSink, type AlignedBuffers } from './direct-file-sink';
import { writeFully } from './write-fully';

export interface PlannedTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
}

export interface ShardLayout {
  /** Data-relative byte offset of each tensor, by name. */
  offsets: Map<string, number>;
  header: Uint8Array;
  totalBytes: number;
}

/** The order the Rust safetensors serializer uses (its Dtype enum order), largest first. */
const DTYPE_ORDER: Dtype[] = [
  'BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64',
];

/** Lays tensors out as safetensors does: by dtype (descending), then by name; header padded to 8 bytes. */
export function layoutShard(tensors: PlannedTensor[], metadata: Record<string, string>): ShardLayout {
  const sorted = [...tensors].sort(
    (a, b) => DTYPE_ORDER.indexOf(b.dtype) - DTYPE_ORDER.indexOf(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const offsets = new Map<string, number>();
  const header: Record<string, unknown> = { __metadata__: metadata };
  let cursor = 0;
  for (const t of sorted) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * dtypeSize(t.dtype);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [cursor, cursor + bytes] };
    offsets.set(t.name, cursor);
    cursor += bytes;
  }
  let json = JSON.stringify(header);
  const encoded = new TextEncoder().encode(json);
  json += ' '.repeat((8 - (encoded.byteLength % 8)) % 8);
  const headerJson = new TextEncoder().encode(json);
  const full = new Uint8Array(8 + headerJson.byteLength);
  new DataView(full.buffer).setBigUint64(0, BigInt(headerJson.byteLength), true);
  full.set(headerJson, 8);
  return { offsets, header: full, totalBytes: full.byteLength + cursor };
}

/**
 * Writes one safetensors file whose layout is fixed up front, so tensors can arrive in any order
 * and in pieces. Bytes go to `<path>.partial`; `commit` flushes and renames it into place. With
 * `direct` (page-aligned buffers to stage in), bytes that come front to back are written past the
 * page cache (DirectFileSink).
 */
export class SafetensorsShardWriter {
  private written = 0;

  private constructor(
    readonly path: string,
    private readonly layout: ShardLayout,
    private readonly handle: FileHandle,
    private readonly sink: DirectFileSink | undefined,
  ) {}

  static async create(path: string, tensors: PlannedTensor[], metadata: Record<string, string> = { format: 'pt' }, direct?: AlignedBuffers) {
    const layout = layoutShard(tensors, metadata);
    const handle = await open(`${path}.partial`, 'w');
    let sink: DirectFileSink | undefined;
    try {
      sink = direct ? await DirectFileSink.open(`${path}.partial`, handle, direct) : undefined;
      await (sink ? sink.write(layout.header, 0) : writeFully(handle, layout.header, 0));
    } catch (error) {
      await sink?.close();
      await handle.close();
      throw error;
    }
    return new SafetensorsShardWriter(path, layout, handle, sink);
  }

  /** Bytes of this file written past the page cache so far (with `direct`). */
  get bytesWrittenDirect(): number {
    return this.sink?.bytesWrittenDirect ?? 0;
  }

  /** Writes `bytes` at `byteStart` within tensor `name`'s data. */
  async write(name: string, bytes: Uint8Array, byteStart = 0): Promise<void> {
    const offset = this.layout.offsets.get(name);
    if (offset === undefined) throw new Error(`tensor "${name}" is not planned for ${this.path}`);
    const position = this.layout.header.byteLength + offset + byteStart;
    await (this.sink ? this.sink.write(bytes, position) : writeFully(this.handle, bytes, position));
    this.written += bytes.byteLength;
  }

  get bytesWritten(): number {
    return this.written;
  }

  async commit(): Promise<void> {
    const expected = this.layout.totalBytes - this.layout.header.byteLength;
    if (this.written !== expected) {
      await this.abort();
      throw new Error(`${this.path}: ${this.written} of ${expected} tensor bytes were written`);
    }
    await this.sink?.finish();
    await this.handle.sync();
    await this.sink?.close();
    await this.handle.close();
    await rename(`${this.path}.partial`, this.path);
  }

  async abort(): Promise<void> {
    await this.sink?.close();
    await this.handle.close().catch(() => undefined);
  }
}
