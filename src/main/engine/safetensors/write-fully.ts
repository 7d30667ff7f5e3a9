import type { FileHandle } from 'node:fs/promises';
import { MAX_READ_BYTES } from './reader';

/** Writes all of `bytes` at `position`, in writes of at most MAX_READ_BYTES (Node aborts on one of 2 GiB or more). */
export async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const size = Math.min(MAX_READ_BYTES, bytes.byteLength - done);
    const { bytesWritten } = await handle.write(bytes, done, size, position + done);
    done += bytesWritten;
  }
}
