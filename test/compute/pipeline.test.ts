import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { hostArray, type HostArray } from '../../src/main/engine/compute/types';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { BufferPool } from '../../src/main/engine/execute/buffer-pool';
import { ShardHasher, shardDigestOfFile } from '../../src/main/engine/execute/shard-digest';
import { Xxh3Hasher } from '../../src/main/engine/execute/xxh3';
import { ShardOutput } from '../../src/main/engine/execute/shard-output';
import { ChunkedTensorSource } from '../../src/main/engine/execute/tensor-source';
import type { PlannedInput } from '../../src/main/engine/plan/types';
import { SafetensorsReader } from '../../src/main/engine/safetensors/reader';
import { SafetensorsShardWriter } from '../../src/main/engine/safetensors/writer';
import { tempDir } from '../helpers';
import { roundBf16, roundBf16Array, roundF16Array } from '../../src/main/engine/methods/numerics';
import { asHost, edgeValues, rng, weights } from './samples';

const wasm = new WasmBackend({ workers: 1 });
const hasher = new ShardHasher();
afterAll(async () => {
  await wasm.dispose();
});

describe('the WASM backend\'s own memory (allocateHost)', () => {
  it('hands out blocks that do not overlap, and reuses released ones', () => {
    const a = wasm.allocateHost(100_000);
    const b = wasm.allocateHost(3 << 20);
    const c = wasm.allocateHost(10);
    const spans = [a, b, c].map((x) => [x.byteOffset, x.byteOffset + x.byteLength] as const).sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    expect(a.byteOffset % 65536).toBe(0);
    wasm.releaseHost(b);
    const d = wasm.allocateHost(2 << 20);
    expect(d.byteOffset).toBe(b.byteOffset);
    expect(() => wasm.releaseHost(new Uint8Array(8))).toThrow(/not a block/);
    for (const x of [a, c, d]) wasm.releaseHost(x);
  });

  it('kernels read and write arrays there in place, and never past an array\'s end', async () => {
    const reference = new ReferenceBackend();
    for (const n of [1, 31, 32, 1000, 100_003]) {
      const random = rng(n);
      const values = [weights(n, random), weights(n, random)];
      const inputs = values.map((v) => asHost(v, 'BF16'));
      const pinned = inputs.map((h) => {
        const bytes = wasm.allocateHost(h.data.byteLength);
        bytes.set(new Uint8Array(h.data.buffer, h.data.byteOffset, h.data.byteLength));
        return { dtype: 'BF16', data: new Uint16Array(bytes.buffer, bytes.byteOffset, n) } as HostArray;
      });
      // The output's block is larger than the output: the bytes after it must stay as they are.
      const block = wasm.allocateHost(2 * n + 4096).fill(0xa5);
      const out: HostArray = { dtype: 'BF16', data: new Uint16Array(block.buffer, block.byteOffset, n) };
      const want = hostArray('BF16', n);
      await reference.linear(inputs, [0.6, 0.4], true, want);
      await wasm.linear(pinned, [0.6, 0.4], true, out);
      expect(Buffer.from(out.data.buffer, out.data.byteOffset, 2 * n).equals(Buffer.from(want.data.buffer, 0, 2 * n)), `n = ${n}`).toBe(true);
      expect(block.subarray(2 * n).every((x) => x === 0xa5), `n = ${n}: bytes past the output`).toBe(true);
      for (const p of pinned) wasm.releaseHost(new Uint8Array(p.data.buffer, p.data.byteOffset, p.data.byteLength));
      wasm.releaseHost(block);
    }
  });
});

describe('BufferPool', () => {
  it("takes plain buffers once the kernels' 4 GiB are spoken for, and lets them go without troubling the backend", () => {
    const backend = new WasmBackend({ workers: 0 });
    const pool = new BufferPool(backend, 0);
    // The memory's pages are reserved, not touched: this costs address space, not RAM.
    const most = backend.allocateHost(4 * 2 ** 30 - (512 << 20));
    const inHeap = pool.take(256 << 20);
    const plain = pool.take(512 << 20);
    expect(inHeap.buffer.byteLength).toBeGreaterThan(most.byteLength);
    expect(plain.buffer.byteLength).toBe(512 << 20);
    expect(() => backend.allocateHost(512 << 20)).toThrow(RangeError);
    pool.give(plain);
    pool.give(inHeap);
    pool.dispose();
    backend.releaseHost(most);
    expect(backend.allocateHost(512 << 20).byteLength).toBe(512 << 20);
    void backend.dispose();
  });

  it('gives a buffer back out for a request of about its size, and lets go beyond what it keeps', () => {
    const released: Uint8Array[] = [];
    const pool = new BufferPool(
      {
        allocateHost: (bytes) => wasm.allocateHost(bytes),
        releaseHost: (bytes) => {
          released.push(bytes);
          wasm.releaseHost(bytes);
        },
      },
      4 << 20,
    );
    const a = pool.take(3 << 20);
    expect(a.byteLength).toBe(3 << 20);
    pool.give(a);
    const b = pool.take(2 << 20);
    expect(b.byteOffset).toBe(a.byteOffset);
    // More than twice the size asked for: a new buffer, not the free one.
    pool.give(b);
    const small = pool.take(1000);
    expect(small.byteOffset).not.toBe(a.byteOffset);
    pool.give(small);
    // Free buffers past 4 MiB: the largest goes back to the backend.
    const big = pool.take(5 << 20);
    pool.give(big);
    expect(released.map((r) => r.byteOffset)).toContain(big.byteOffset);
    expect(() => pool.give(new Uint8Array(10))).toThrow(/not a buffer of this pool/);
    pool.dispose();
  });
});

describe('ChunkedTensorSource with a pool', () => {
  it('reads the same chunks into pooled memory, prefetched or not, after a pass stopped early, and gives them back', async () => {
    const dir = await tempDir('alloy-source-');
    const n = 10_007;
    const values = [weights(n, rng(1)), weights(n, rng(2))];
    const path = join(dir, 'm.safetensors');
    const writer = await SafetensorsShardWriter.create(path, [
      { name: 'a', dtype: 'BF16', shape: [n] },
      { name: 'b', dtype: 'BF16', shape: [n] },
    ]);
    for (const [k, name] of ['a', 'b'].entries()) await writer.write(name, new Uint8Array(asHost(values[k]!, 'BF16').data.buffer));
    await writer.commit();
    const reader = await SafetensorsReader.open(path);
    const planned: PlannedInput[] = ['a', 'b'].map((tensor, model) => ({ model, file: path, tensor, dtype: 'BF16', shape: [n], byteLength: 2 * n, offset: 0 }));
    const pool = new BufferPool(wasm);
    const expected = values.map((v) => asHost(v, 'BF16').data as Uint16Array);
    for (const [chunk, prefetch] of [[n, true], [1000, true], [1000, false]] as const) {
      const source = new ChunkedTensorSource([reader, reader], planned, n, chunk, undefined, undefined, pool);
      if (prefetch) source.prefetch();
      // A pass that stops after the first chunk, then two whole passes.
      for await (const first of source.chunks()) {
        expect(first.start).toBe(0);
        break;
      }
      for (let pass = 0; pass < 2; pass++) {
        const seen = [new Uint16Array(n), new Uint16Array(n)];
        for await (const c of source.chunks()) {
          c.raw!.forEach((r, k) => seen[k]!.set(r.data as Uint16Array, c.start));
          // Read straight into the backend's memory, where its kernels compute on it.
          expect(c.raw![0]!.data.buffer).toBeInstanceOf(SharedArrayBuffer);
          const last = c.length - 1;
          expect(c.inputs[1]![last]).toBe(new Float32Array(new Uint32Array([expected[1]![c.start + last]! << 16]).buffer)[0]!);
        }
        expect(seen.map((s, k) => Buffer.from(s.buffer).equals(Buffer.from(expected[k]!.buffer)))).toEqual([true, true]);
      }
      await source.release();
    }
    await reader.close();
    pool.dispose();
  });
});

describe('ChunkedTensorSource computing in a narrower dtype', () => {
  it('hands bf16 values to an f16 merge as their f16 rounding (subnormal, overflowing and NaN ones too), and f32 values to a bf16 or f16 one', async () => {
    const dir = await tempDir('alloy-source-');
    const n = 4_099;
    const values = weights(n, rng(3), -30, 18);
    values.set(edgeValues(), 0);
    values.set([70_000, -65_520, 65_504, 1e-6, -3e-8, 6e-8, NaN], 100);
    const path = join(dir, 'm.safetensors');
    const writer = await SafetensorsShardWriter.create(path, [
      { name: 'b', dtype: 'BF16', shape: [n] },
      { name: 'f', dtype: 'F32', shape: [n] },
    ]);
    await writer.write('b', new Uint8Array(asHost(values, 'BF16').data.buffer));
    await writer.write('f', new Uint8Array(values.buffer));
    await writer.commit();
    const reader = await SafetensorsReader.open(path);
    const stored = new Float32Array(n);
    stored.set(values.map(roundBf16));
    for (const [tensor, dtype, from] of [['b', 'BF16', stored], ['f', 'F32', values]] as const) {
      const planned: PlannedInput[] = [{ model: 0, file: path, tensor, dtype, shape: [n], byteLength: n * (dtype === 'F32' ? 4 : 2), offset: 0 }];
      for (const compute of ['F16', 'BF16'] as const) {
        if (dtype === compute) continue;
        const want = from.slice();
        if (compute === 'F16') roundF16Array(want);
        else roundBf16Array(want);
        const got = new Float32Array(n);
        for await (const c of new ChunkedTensorSource([reader], planned, n, 1000, compute).chunks()) got.set(c.inputs[0]!, c.start);
        const at = got.findIndex((x, i) => !Object.is(x, want[i]) && !(Number.isNaN(x) && Number.isNaN(want[i]!)));
        expect(at < 0 ? '' : `element ${at}: ${got[at]} for ${want[at]}`, `${dtype} read for ${compute}`).toBe('');
      }
    }
    await reader.close();
  });
});

describe('ShardOutput', () => {
  const tensors = [
    { name: 'b.weight', dtype: 'BF16' as const, shape: [3000] },
    { name: 'a.weight', dtype: 'F32' as const, shape: [1000] },
  ];

  it('hashes a shard written front to back as it writes it: the digest of the file', async () => {
    const dir = await tempDir('alloy-shard-');
    const pool = new BufferPool();
    const output = await ShardOutput.create(join(dir, 's.safetensors'), tensors, pool, hasher);
    // Layout order: F32 before BF16. Pieces of 1,000 bytes, more than the writes kept in flight.
    for (let at = 0; at < 4000; at += 1000) await output.write('a.weight', at, 1000, (bytes) => void bytes.fill(at / 1000 + 1));
    for (let at = 0; at < 6000; at += 1000) await output.write('b.weight', at, 1000, (bytes) => void bytes.fill(at / 1000 + 7));
    const { digest, flushed } = output.finish();
    await flushed;
    expect(digest).toBe(fileDigest(await readFile(join(dir, 's.safetensors'))));
    pool.dispose();
  });

  it('says nothing of a shard written out of order (the journal then reads it back)', async () => {
    const dir = await tempDir('alloy-shard-');
    const pool = new BufferPool();
    const output = await ShardOutput.create(join(dir, 's.safetensors'), tensors, pool, hasher);
    await output.write('b.weight', 0, 6000, (bytes) => void bytes.fill(2));
    await output.write('a.weight', 0, 4000, (bytes) => void bytes.fill(1));
    const first = output.finish();
    expect(first.digest).toBeUndefined();
    // The hash starts clean for the next shard, written while the first is still being flushed.
    const next = await ShardOutput.create(join(dir, 't.safetensors'), tensors, pool, hasher);
    await next.write('a.weight', 0, 4000, (bytes) => void bytes.fill(1));
    await next.write('b.weight', 0, 6000, (bytes) => void bytes.fill(2));
    const second = next.finish();
    await Promise.all([first.flushed, second.flushed]);
    expect(second.digest).toBe(fileDigest(await readFile(join(dir, 't.safetensors'))));
    pool.dispose();
  });
});

/** The journal's digest computed the plain way: the XXH3-128 of the whole file, in one update. */
function fileDigest(bytes: Uint8Array): string {
  const whole = new Xxh3Hasher();
  whole.update(bytes);
  return whole.digest();
}

describe('shardDigestOfFile', () => {
  it('reads a file back (in several reads) to its digest, and one changed byte changes it', async () => {
    const size = (40 << 20) + 12_345;
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i += 4099) bytes[i] = (i * 2654435761) >>> 24;
    const dir = await tempDir('alloy-digest-');
    const path = join(dir, 'shard.bin');
    await writeFile(path, bytes);
    expect(await shardDigestOfFile(path)).toBe(fileDigest(bytes));
    const changed = bytes.slice();
    changed[(33 << 20) + 7]! ^= 1;
    await writeFile(path, changed);
    const digest = await shardDigestOfFile(path, hasher);
    expect(digest).toBe(fileDigest(changed));
    expect(digest).not.toBe(fileDigest(bytes));
  });
});
