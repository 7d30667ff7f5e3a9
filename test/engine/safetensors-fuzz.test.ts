import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsError, SafetensorsReader } from '../../src/main/engine/safetensors/reader';
import { tempDir } from '../helpers';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('alloy-fuzz-');
});

const dtype = fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F12', 'bf16', '', 'F64');
const entry = fc.record({
  dtype,
  shape: fc.array(fc.oneof(fc.integer({ min: 0, max: 6 }), fc.integer({ min: -3, max: 2 ** 40 })), { maxLength: 4 }),
  data_offsets: fc.tuple(fc.integer({ min: -4, max: 200 }), fc.integer({ min: -4, max: 300 })),
});
const header = fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(entry, fc.anything()), { maxKeys: 6 });

function file(headerText: string, dataBytes: number, claimedLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, claimedLength ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

let n = 0;
async function openBytes(bytes: Uint8Array): Promise<SafetensorsReader | SafetensorsError> {
  const path = join(dir, `f${n++ % 8}.safetensors`);
  await writeFile(path, bytes);
  try {
    return await SafetensorsReader.open(path);
  } catch (error) {
    return error as SafetensorsError;
  }
}

/** Whatever a file claims, the reader either refuses it with a SafetensorsError or every tensor lies inside it. */
async function checkVerdict(bytes: Uint8Array): Promise<void> {
  const result = await openBytes(bytes);
  if (result instanceof SafetensorsReader) {
    for (const t of result.tensors.values()) {
      expect(t.offset + t.byteLength).toBeLessThanOrEqual(bytes.byteLength);
      expect(t.byteLength).toBe(t.numel * ({ F32: 4, F16: 2, BF16: 2, I64: 8, U8: 1, BOOL: 1, F64: 8 } as Record<string, number>)[t.dtype]!);
      if (t.byteLength > 0) expect((await result.read(t.name)).byteLength).toBe(t.byteLength);
    }
    await result.close();
  } else {
    expect(result).toBeInstanceOf(SafetensorsError);
  }
}

describe('SafetensorsReader on hostile files (property-based)', () => {
  it('refuses or safely reads any generated header, 1,500 cases', async () => {
    await fc.assert(
      fc.asyncProperty(header, fc.integer({ min: 0, max: 400 }), async (h, data) => checkVerdict(file(JSON.stringify(h), data))),
      { numRuns: 1500 },
    );
  });

  it('refuses or safely reads any byte-level corruption of a valid file, 1,500 cases', async () => {
    const valid = file(JSON.stringify({ __metadata__: { format: 'pt' }, a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] }, b: { dtype: 'BF16', shape: [4], data_offsets: [24, 32] } }), 32);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(valid.byteLength - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(valid.byteLength), async (edits, cut) => {
        const bytes = valid.slice(0, Math.max(cut, 1));
        for (const [at, value] of edits) if (at < bytes.byteLength) bytes[at] = value;
        await checkVerdict(bytes);
      }),
      { numRuns: 1500 },
    );
  });

  it('never allocates what a lying length prefix claims', async () => {
    for (const claimed of [2n ** 63n, 2n ** 40n, 99_999_999n, 1n << 31n]) {
      const result = await openBytes(file('{}', 0, claimed));
      expect(result).toBeInstanceOf(SafetensorsError);
    }
  });
});
