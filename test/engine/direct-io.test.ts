import { constants, openSync, closeSync, readSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceBackend } from '../../src/main/engine/compute/reference';
import { WasmBackend } from '../../src/main/engine/compute/wasm-backend';
import { BufferPool } from '../../src/main/engine/execute/buffer-pool';
import { executePlan } from '../../src/main/engine/execute/execute-plan';
import { ChunkedTensorSource } from '../../src/main/engine/execute/tensor-source';
import { planRecipe, runMerge } from '../../src/main/engine/run-merge';
import { DIRECT_SLACK, SafetensorsReader } from '../../src/main/engine/safetensors/reader';
import { SafetensorsShardWriter } from '../../src/main/engine/safetensors/writer';
import { DirectFileSink } from '../../src/main/engine/safetensors/direct-file-sink';
import { open } from 'node:fs/promises';
import type { ProgressEvent } from '../../src/shared/progress';
import { tempDir } from '../helpers';

const DEMO = resolve('resources/demo/models');
const wasm = new WasmBackend({ workers: 1 });
afterAll(() => wasm.dispose());

let dir: string;
let path: string;
/** Whether this file system takes O_DIRECT reads into page-aligned memory (tmpfs on old kernels does not). */
let directWorksHere = false;
const TENSORS = [
  // Sizes and a header that put the tensors' starts and ends off page boundaries, and the file's end too.
  { name: 'a', dtype: 'BF16' as const, shape: [3, 3001] },
  { name: 'b', dtype: 'F32' as const, shape: [70_001] },
  { name: 'c', dtype: 'BF16' as const, shape: [5, 4099] },
];

beforeAll(async () => {
  dir = await tempDir('alloy-direct-');
  path = join(dir, 'odd.safetensors');
  const writer = await SafetensorsShardWriter.create(path, TENSORS);
  for (const t of TENSORS) {
    const bytes = new Uint8Array(t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : 2));
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + t.name.charCodeAt(0)) & 0xff;
    await writer.write(t.name, bytes);
  }
  await writer.commit();
  directWorksHere = probeDirect(path);
  if (!directWorksHere) console.warn(`WARNING: ${dir} does not take O_DIRECT reads: only the fallback to the page cache is tested here`);
});

function probeDirect(file: string): boolean {
  if (constants.O_DIRECT === undefined) return false;
  const page = wasm.allocateHost(4096);
  try {
    const fd = openSync(file, constants.O_RDONLY | constants.O_DIRECT);
    try {
      readSync(fd, page, 0, 4096, 0);
      return true;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  } finally {
    wasm.releaseHost(page);
  }
}

describe('SafetensorsReader.readDirect', () => {
  it('returns the bytes read() returns, for whole tensors and ranges that start and end off page boundaries', async () => {
    const reader = await SafetensorsReader.open(path);
    const buffer = wasm.allocateHost(300_000 + DIRECT_SLACK);
    try {
      for (const entry of reader.tensors.values()) {
        for (const [start, length] of [[0, entry.byteLength], [2, entry.byteLength - 2], [4094, 4100], [entry.byteLength - 6, 6]] as const) {
          const expected = await reader.read(entry.name, undefined, start, length);
          const got = await reader.readDirect(entry.name, buffer, start, length);
          expect(got.byteLength).toBe(length);
          expect(Buffer.from(got).equals(Buffer.from(expected)), `${entry.name} [${start}, +${length})`).toBe(true);
        }
      }
      // Past the cache where the file system allows it (every byte asked for counted), else through it.
      const asked = [...reader.tensors.values()].reduce((sum, e) => sum + 2 * e.byteLength - 2 + 4100 + 6, 0);
      expect(reader.bytesReadDirect).toBe(directWorksHere ? asked : 0);
    } finally {
      wasm.releaseHost(buffer);
      await reader.close();
    }
  });

  it('falls back to read() for memory off a page boundary (EINVAL) or a buffer without the slack, with the same bytes', async () => {
    const reader = await SafetensorsReader.open(path);
    const buffer = wasm.allocateHost(300_000 + DIRECT_SLACK);
    try {
      const expected = await reader.read('b');
      const short = await reader.readDirect('b', buffer.subarray(0, expected.byteLength), 0, expected.byteLength);
      expect(Buffer.from(short).equals(Buffer.from(expected))).toBe(true);
      expect(reader.bytesReadDirect).toBe(0);
      const misaligned = await reader.readDirect('b', buffer.subarray(16), 0, expected.byteLength);
      expect(Buffer.from(misaligned).equals(Buffer.from(expected))).toBe(true);
      expect(reader.bytesReadDirect).toBe(0);
      // Once refused, the file is read through the page cache even into aligned memory.
      await reader.readDirect('b', buffer, 0, expected.byteLength);
      expect(reader.bytesReadDirect).toBe(0);
    } finally {
      wasm.releaseHost(buffer);
      await reader.close();
    }
  });
});

describe('ChunkedTensorSource with direct reads', () => {
  it('reads each chunk past the page cache into the pool\'s memory, the values as read() gives them', async () => {
    const reader = await SafetensorsReader.open(path);
    const pool = new BufferPool(wasm);
    const entry = reader.tensors.get('c')!;
    const input = { model: 0, tensor: 'c', file: path, offset: entry.offset, byteLength: entry.byteLength, dtype: entry.dtype, shape: entry.shape };
    const source = new ChunkedTensorSource([reader], [input], entry.numel, 4099 * 2, undefined, undefined, pool, true);
    const expected = new Uint16Array((await reader.read('c')).slice().buffer);
    try {
      const seen: number[] = [];
      for await (const chunk of source.chunks()) {
        const raw = chunk.raw![0]!.data as Uint16Array;
        expect([...raw]).toEqual([...expected.subarray(chunk.start, chunk.start + chunk.length)]);
        seen.push(chunk.start);
      }
      expect(seen).toEqual([0, 8198, 16396]);
      expect(reader.bytesReadDirect).toBe(directWorksHere ? entry.byteLength : 0);
    } finally {
      await source.release();
      pool.dispose();
      await reader.close();
    }
  });
});

/** Bytes 0..n of a pattern that differs from page to page. */
function pattern(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 2654435761 + seed + (i >> 12)) >>> 24;
  return out;
}

describe('DirectFileSink', () => {
  async function sinkFile(name: string) {
    const file = join(dir, name);
    const buffered = await open(file, 'w');
    const sink = await DirectFileSink.open(file, buffered, new BufferPool(wasm));
    return { file, buffered, sink: sink! };
  }

  it('writes bytes that come in order, in pieces of any size, past the page cache (the last partial page through it)', async () => {
    if (!directWorksHere) console.warn('WARNING: no O_DIRECT here: DirectFileSink cannot be opened, its test checks only that');
    const { file, buffered, sink } = await sinkFile('sink-in-order.bin');
    if (!directWorksHere) {
      expect(sink).toBeUndefined();
      await buffered.close();
      return;
    }
    const bytes = pattern(20_000_003);
    for (let at = 0, k = 0; at < bytes.length; k++) {
      const size = [1, 4095, 1 << 20, 3_333_333, 17][k % 5]!;
      await sink.write(bytes.subarray(at, at + size), at);
      at += size;
    }
    await sink.finish();
    await sink.close();
    await buffered.close();
    expect((await readFile(file)).equals(Buffer.from(bytes))).toBe(true);
    // Every whole page but the last partial one went past the cache.
    expect(sink.bytesWrittenDirect).toBe(bytes.length - (bytes.length % 4096));
  });

  it('turns to the page cache for the rest of the file at the first piece out of order, with the same bytes', async () => {
    const { file, buffered, sink } = await sinkFile('sink-out-of-order.bin');
    if (!sink) {
      await buffered.close();
      return;
    }
    const bytes = pattern(9_000_001, 3);
    const cut = [0, 8_500_000, 8_600_000, 9_000_001];
    await sink.write(bytes.subarray(cut[0], cut[1]), cut[0]!);
    await sink.write(bytes.subarray(cut[2], cut[3]), cut[2]!);
    await sink.write(bytes.subarray(cut[1], cut[2]), cut[1]!);
    await sink.finish();
    await sink.close();
    await buffered.close();
    expect((await readFile(file)).equals(Buffer.from(bytes))).toBe(true);
    expect(sink.bytesWrittenDirect).toBe(8 << 20);
  });
});

describe('a merge with --reads direct and --writes direct', () => {
  const recipe = ['merge_method: linear', 'models:', '  - model: alloy-demo-chat', '    parameters: { weight: 0.7 }', '  - model: alloy-demo-code', '    parameters: { weight: 0.2 }', 'dtype: float32', 'out_dtype: bfloat16', ''].join('\n');

  async function merge(mode: 'direct' | 'cached'): Promise<{ out: string; events: ProgressEvent[] }> {
    const out = join(await tempDir(), 'merged');
    const events: ProgressEvent[] = [];
    // A small budget: tensors in several chunks, most starting off a page boundary.
    await runMerge({ recipeText: recipe, recipeFile: join(DEMO, 'inline.yml'), outDir: out, options: { modelRoots: [DEMO], device: 'cpu', reads: mode, writes: mode, memoryBudget: 1 << 20, outShardSize: 100_000 }, onProgress: (e) => events.push(e) });
    return { out, events };
  }

  it('writes the same files as through the page cache, and says it reads and writes past it', async () => {
    const direct = await merge('direct');
    const cached = await merge('cached');
    const files = (await readdir(cached.out)).filter((f) => f.endsWith('.safetensors')).sort();
    expect(files.length).toBeGreaterThan(1);
    expect((await readdir(direct.out)).filter((f) => f.endsWith('.safetensors')).sort()).toEqual(files);
    for (const f of files) expect((await readFile(join(direct.out, f))).equals(await readFile(join(cached.out, f))), f).toBe(true);
    const stage = (events: ProgressEvent[]) => events.find((e) => e.type === 'stage' && e.stage === 'merge');
    expect(stage(direct.events)).toMatchObject({ message: expect.stringMatching(/; reading past the page cache \(--reads direct\); writing past the page cache \(--writes direct\)$/) });
    expect(stage(cached.events)).toMatchObject({ message: expect.not.stringMatching(/page cache/) });
  });

  it('works as well on a backend without memory of its own (as the GPU backend\'s): the pool\'s own heap, the same files', async () => {
    const plan = await planRecipe({ recipeText: recipe, recipeFile: join(DEMO, 'inline.yml'), options: { modelRoots: [DEMO], outShardSize: 100_000 } });
    const outs: string[] = [];
    const stages: ProgressEvent[] = [];
    for (const mode of ['direct', 'cached'] as const) {
      const outDir = join(await tempDir(), 'merged');
      await executePlan(plan, { outDir, backend: new ReferenceBackend(), reads: mode, writes: mode, memoryBudget: 1 << 20, writeModelCard: false, onProgress: (e) => void (e.type === 'stage' && e.stage === 'merge' && stages.push(e)) });
      outs.push(outDir);
    }
    const files = (await readdir(outs[1]!)).sort();
    expect((await readdir(outs[0]!)).sort()).toEqual(files);
    for (const f of files) expect((await readFile(join(outs[0]!, f))).equals(await readFile(join(outs[1]!, f))), f).toBe(true);
    expect(stages[0]).toMatchObject({ message: expect.stringMatching(/reading past the page cache \(--reads direct\); writing past the page cache \(--writes direct\)$/) });
  });
});

describe('BufferPool without a backend', () => {
  it('hands out page-aligned buffers from a heap of its own (a direct read lands in them), and takes them back', async () => {
    const pool = new BufferPool();
    const a = pool.take(5000);
    const b = pool.take(3 << 20);
    // One heap (a grow shows a new buffer object on the same memory), blocks rounded up to a MiB.
    expect([a.byteOffset, b.byteOffset]).toEqual([0, 1 << 20]);
    if (directWorksHere) {
      const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
      try {
        expect(readSync(fd, b, 0, 8192, 0)).toBe(8192);
      } finally {
        closeSync(fd);
      }
    }
    pool.give(a);
    pool.give(b);
    expect(pool.take(3 << 20).byteOffset).toBe(b.byteOffset);
    pool.dispose();
  });
});
