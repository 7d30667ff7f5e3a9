import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsReader } from '../../src/main/engine/safetensors/reader';
import { SafetensorsShardWriter, layoutShard } from '../../src/main/engine/safetensors/writer';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'alloy-st-'));
});

function rawFile(header: unknown, dataBytes: number, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

async function openRaw(name: string, bytes: Uint8Array) {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return SafetensorsReader.open(path);
}

describe('SafetensorsShardWriter and SafetensorsReader', () => {
  it('writes tensors in any order and pieces, and reads back each range', async () => {
    const path = join(dir, 'a.safetensors');
    const writer = await SafetensorsShardWriter.create(path, [
      { name: 'b', dtype: 'F32', shape: [2, 3] },
      { name: 'a', dtype: 'BF16', shape: [4] },
      { name: 'ids', dtype: 'I64', shape: [2] },
    ]);
    const b = new Float32Array([1, 2, 3, 4, 5, 6]);
    await writer.write('b', new Uint8Array(b.buffer, 12, 12), 12);
    await writer.write('a', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    await writer.write('b', new Uint8Array(b.buffer, 0, 12), 0);
    await writer.write('ids', new Uint8Array(16).fill(9));
    await writer.commit();

    const reader = await SafetensorsReader.open(path);
    expect(reader.metadata).toEqual({ format: 'pt' });
    expect([...reader.tensors.keys()].sort()).toEqual(['a', 'b', 'ids']);
    expect(reader.tensors.get('b')).toMatchObject({ dtype: 'F32', shape: [2, 3], numel: 6, byteLength: 24 });
    const all = await reader.read('b');
    expect([...new Float32Array(all.buffer, all.byteOffset, 6)]).toEqual([1, 2, 3, 4, 5, 6]);
    const part = await reader.read('b', undefined, 8, 8);
    expect([...new Float32Array(part.buffer.slice(part.byteOffset, part.byteOffset + 8))]).toEqual([3, 4]);
    await expect(reader.read('b', undefined, 20, 8)).rejects.toThrow(/outside tensor "b"/);
    await reader.close();
  });

  it('lays out like the safetensors serializer: wider dtypes first, then by name, header padded to 8', () => {
    const layout = layoutShard(
      [
        { name: 'z', dtype: 'BF16', shape: [3] },
        { name: 'y', dtype: 'F32', shape: [1] },
        { name: 'a', dtype: 'BF16', shape: [1] },
      ],
      { format: 'pt' },
    );
    expect(layout.header.byteLength % 8).toBe(0);
    expect([...layout.offsets.entries()]).toEqual([
      ['y', 0],
      ['a', 4],
      ['z', 6],
    ]);
  });

  it('leaves only a .partial file until commit, and refuses to commit a short file', async () => {
    const path = join(dir, 'short.safetensors');
    const writer = await SafetensorsShardWriter.create(path, [{ name: 'x', dtype: 'F32', shape: [4] }]);
    await writer.write('x', new Uint8Array(8));
    await expect(readFile(path)).rejects.toThrow();
    await expect(writer.commit()).rejects.toThrow(/8 of 16 tensor bytes/);
    await expect(readFile(path)).rejects.toThrow();
  });

  const entry = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const bad: [string, Uint8Array, RegExp][] = [
    ['too short', new Uint8Array(4), /too short/],
    ['header past the end', (() => { const b = rawFile({ x: entry }, 8); new DataView(b.buffer).setBigUint64(0, 10_000n, true); return b; })(), /header claims 10000 bytes/],
    ['huge header', (() => { const b = rawFile({}, 0); new DataView(b.buffer).setBigUint64(0, 2n ** 40n, true); return b; })(), /over the 100000000-byte limit/],
    ['not an object', rawFile(null, 0, '[1,2]'), /does not start with "\{"/],
    ['bad json', rawFile(null, 0, '{"x": '), /not valid JSON/],
    ['unknown dtype', rawFile({ x: { ...entry, dtype: 'F12' } }, 8), /tensor "x" has unknown dtype "F12"/],
    ['wrong byte count', rawFile({ x: { ...entry, shape: [3] } }, 8), /spans 8 bytes but F32 \[3\] needs 12/],
    ['past the end', rawFile({ x: { ...entry, data_offsets: [8, 16], shape: [2] } }, 8), /past the end of the file/],
    ['overlap', rawFile({ x: entry, y: { ...entry, data_offsets: [4, 12] } }, 12), /overlap/],
    ['metadata not strings', rawFile({ __metadata__: { a: 1 }, x: entry }, 8), /__metadata__ "a" is not a string/],
    ['negative dim', rawFile({ x: { ...entry, shape: [-2] } }, 8), /invalid shape/],
    ['duplicate names', rawFile(null, 8, `{"x":${JSON.stringify(entry)},"x":${JSON.stringify(entry)}}`), /names "x" twice/],
    ['not utf-8', (() => { const b = rawFile(null, 0, '{"\u00e9":1}'); b[10] = 0xff; return b; })(), /not valid UTF-8/],
  ];
  for (const [name, bytes, message] of bad) {
    it(`refuses a file with ${name}, naming the file`, async () => {
      const file = `bad-${name.replace(/\W+/g, '-')}.safetensors`;
      await expect(openRaw(file, bytes)).rejects.toThrow(new RegExp(`${file}: .*${message.source}`));
    });
  }
});
