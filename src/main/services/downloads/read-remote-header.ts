import { MAX_HEADER_BYTES, parseHeader, type TensorEntry } from '../../engine/safetensors/reader';
import type { HubOptions } from './hub-options';
import type { RemoteFile } from './list-remote-files';
import { fetchResolvedFile } from './resolve-file';

const FIRST_READ = 64 * 1024;

/** A remote safetensors file's tensors, from its header alone: one or two range requests. */
export async function readRemoteHeader(params: { hub: HubOptions; repo: string; commit: string; file: RemoteFile }): Promise<Map<string, TensorEntry>> {
  const { file } = params;
  const first = await readBytes(params, 0, Math.min(file.size, FIRST_READ));
  if (first.length < 8) throw new Error(`${file.path}: ${file.size} bytes is too short for a safetensors file`);
  const headerLength = Number(Buffer.from(first.buffer, first.byteOffset, 8).readBigUInt64LE(0));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > file.size) throw new Error(`${file.path}: header length ${headerLength} is not valid`);
  const header = 8 + headerLength <= first.length ? first.subarray(8, 8 + headerLength) : await readBytes(params, 8, headerLength);
  return parseHeader(header, `${params.repo}/${file.path}`, file.size, 8 + headerLength).tensors;
}

/** `length` bytes from `start`, reading no more even if the server ignores the Range. */
async function readBytes(params: { hub: HubOptions; repo: string; commit: string; file: RemoteFile }, start: number, length: number): Promise<Uint8Array> {
  const response = await fetchResolvedFile({ hub: params.hub, repo: params.repo, revision: params.commit, path: params.file.path, start, end: start + length - 1 });
  const reader = response.body!.getReader();
  const out = new Uint8Array(length);
  let skip = response.status === 206 ? 0 : start;
  let filled = 0;
  while (filled < length) {
    const { done, value } = await reader.read();
    if (done) break;
    const chunk = value.subarray(Math.min(skip, value.length));
    skip -= Math.min(skip, value.length);
    const take = Math.min(chunk.length, length - filled);
    out.set(chunk.subarray(0, take), filled);
    filled += take;
  }
  await reader.cancel().catch(() => undefined);
  return out.subarray(0, filled);
}
