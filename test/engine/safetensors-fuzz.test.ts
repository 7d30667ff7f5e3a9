import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { SafetensorsError } from '../../src/main/engine/safetensors/reader';
import { HOSTILE_PROPERTIES, openSafetensorsBytes, safetensorsBytes } from '../fuzz/properties';
import { tempDir } from '../helpers';

let dir: string;
beforeAll(async () => {
  dir = await tempDir('alloy-fuzz-');
});

describe('SafetensorsReader on hostile files (property-based)', () => {
  for (const property of HOSTILE_PROPERTIES.filter((p) => p.name.startsWith('safetensors:'))) {
    it(`${property.name.slice('safetensors: '.length)}, ${property.ciRuns.toLocaleString('en')} cases`, async () => {
      await fc.assert(await property.make(dir), { numRuns: property.ciRuns });
    });
  }

  it('never allocates what a lying length prefix claims', async () => {
    for (const claimed of [2n ** 63n, 2n ** 40n, 99_999_999n, 1n << 31n]) {
      const result = await openSafetensorsBytes(dir, safetensorsBytes('{}', 0, claimed));
      expect(result).toBeInstanceOf(SafetensorsError);
    }
  });
});
