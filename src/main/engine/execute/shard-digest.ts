import { open } from 'node:fs/promises';
import { Xxh3Hasher } from './xxh3';

/** Bytes read at a time when a shard on disk is hashed. */
const READ_BYTES = 16 << 20;

/**
 * A shard's digest, as the journal records it: the XXH3-128 of the whole file, in hex. It is there to
 * tell a shard that is still the one written from one changed or damaged since (`--resume`), not to
 * stand against someone forging a shard, so it need not be a cryptographic hash; at ~10 GB/s on one
 * core it costs a merge a tenth of what a SHA-256 did (1–2 GB/s).
 */
export class ShardHasher {
  private readonly xxh3 = new Xxh3Hasher();

  /** Adds `bytes`, the next ones of the file, at once (the buffer may be reused after). */
  update(bytes: Uint8Array): void {
    this.xxh3.update(bytes);
  }

  /** The digest of everything since the last digest; the next update starts a new file. */
  digest(): string {
    return this.xxh3.digest();
  }
}

/** The digest of a file on disk, the next read in flight while one is hashed. */
export async function shardDigestOfFile(path: string, hasher = new ShardHasher()): Promise<string> {
  const handle = await open(path, 'r');
  const buffers = [new Uint8Array(READ_BYTES), new Uint8Array(READ_BYTES)];
  let turn = 0;
  let reading = handle.read(buffers[0]!, 0, READ_BYTES, 0);
  try {
    for (let position = 0; ; turn ^= 1) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) break;
      position += bytesRead;
      reading = handle.read(buffers[turn ^ 1]!, 0, READ_BYTES, position);
      hasher.update(buffers[turn]!.subarray(0, bytesRead));
    }
    return hasher.digest();
  } catch (error) {
    hasher.digest();
    await reading.catch(() => undefined);
    throw error;
  } finally {
    await handle.close();
  }
}
