import type { FileHandle } from 'node:fs/promises';
import { EngineError } from '../errors';
import { readFully } from '../safetensors/reader';

export interface ZipEntry {
  name: string;
  /** Absolute offset of the entry's (stored, uncompressed) bytes in the archive. */
  dataOffset: number;
  size: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/**
 * The entries of a zip archive as torch.save writes it: stored (never compressed), zip64 when large.
 * Only the directories are read; entry bytes are left on disk for positional reads.
 */
export async function readZipDirectory(handle: FileHandle, path: string, fileSize: number): Promise<ZipEntry[]> {
  const fail = (why: string) => new EngineError(`${path}: not a PyTorch zip archive (${why})`, { file: path });
  const tailLength = Math.min(fileSize, 22 + 65535 + 20);
  const tail = new Uint8Array(tailLength);
  await readFully(handle, tail, fileSize - tailLength, path);
  const view = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLength - 22; i >= 0; i--) {
    if (view.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw fail('no end-of-directory record');
  let count = view.getUint16(eocd + 10, true);
  let dirSize = view.getUint32(eocd + 12, true);
  let dirOffset = view.getUint32(eocd + 16, true);
  if (eocd >= 20 && view.getUint32(eocd - 20, true) === ZIP64_LOCATOR) {
    const record = new Uint8Array(56);
    await readFully(handle, record, Number(view.getBigUint64(eocd - 12, true)), path);
    const r = new DataView(record.buffer);
    if (r.getUint32(0, true) !== ZIP64_EOCD) throw fail('bad zip64 record');
    count = Number(r.getBigUint64(32, true));
    dirSize = Number(r.getBigUint64(40, true));
    dirOffset = Number(r.getBigUint64(48, true));
  }
  if (dirOffset + dirSize > fileSize || dirSize > 256 << 20) throw fail('directory outside the file');
  const dir = new Uint8Array(dirSize);
  await readFully(handle, dir, dirOffset, path);
  const entries: ZipEntry[] = [];
  let at = 0;
  const d = new DataView(dir.buffer);
  for (let n = 0; n < count; n++) {
    if (at + 46 > dirSize || d.getUint32(at, true) !== CENTRAL) throw fail('broken central directory');
    const method = d.getUint16(at + 10, true);
    let size = d.getUint32(at + 24, true);
    const nameLength = d.getUint16(at + 28, true);
    const extraLength = d.getUint16(at + 30, true);
    const commentLength = d.getUint16(at + 32, true);
    let localOffset = d.getUint32(at + 42, true);
    const name = new TextDecoder().decode(dir.subarray(at + 46, at + 46 + nameLength));
    ({ size, localOffset } = zip64Sizes(d, at + 46 + nameLength, extraLength, size, localOffset, d.getUint32(at + 20, true)));
    if (method !== 0) throw fail(`entry "${name}" is compressed`);
    entries.push({ name, dataOffset: await dataOffsetOf(handle, path, localOffset, fail), size });
    at += 46 + nameLength + extraLength + commentLength;
  }
  for (const e of entries) if (e.dataOffset + e.size > fileSize) throw fail(`entry "${e.name}" runs past the end of the file`);
  return entries;
}

/** Applies the zip64 extra field (id 1), whose values appear only for fields that overflowed. */
function zip64Sizes(d: DataView, start: number, length: number, size: number, localOffset: number, compressed: number) {
  for (let at = start; at + 4 <= start + length; ) {
    const id = d.getUint16(at, true);
    const fieldLength = d.getUint16(at + 2, true);
    if (id === 1) {
      let p = at + 4;
      if (size === 0xffffffff) size = Number(d.getBigUint64((p += 8) - 8, true));
      if (compressed === 0xffffffff) p += 8;
      if (localOffset === 0xffffffff) localOffset = Number(d.getBigUint64(p, true));
    }
    at += 4 + fieldLength;
  }
  return { size, localOffset };
}

async function dataOffsetOf(handle: FileHandle, path: string, localOffset: number, fail: (why: string) => Error): Promise<number> {
  const header = new Uint8Array(30);
  await readFully(handle, header, localOffset, path);
  const h = new DataView(header.buffer);
  if (h.getUint32(0, true) !== LOCAL) throw fail('broken local header');
  return localOffset + 30 + h.getUint16(26, true) + h.getUint16(28, true);
}
