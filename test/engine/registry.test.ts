import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MERGE_METHODS } from '../../src/main/engine/methods/registry';

interface MergekitMethod {
  name: string;
  parameters: { name: string; scope: 'SHARED' | 'INPUT' | 'NON_BASE'; default: number | boolean | null | 'required' }[];
}

const mergekit: { mergekitVersion: string; methods: MergekitMethod[] } = JSON.parse(readFileSync('test/fixtures/mergekit-methods.json', 'utf8'));

describe(`the method registry against mergekit ${mergekit.mergekitVersion}'s`, () => {
  it('has every method mergekit registers, and no other', () => {
    expect([...MERGE_METHODS.keys()].sort()).toEqual(mergekit.methods.map((m) => m.name).sort());
  });

  for (const theirs of mergekit.methods) {
    it(`${theirs.name}: the same parameters, scopes and defaults`, () => {
      const ours = MERGE_METHODS.get(theirs.name)!;
      expect(ours.parameters.map((p) => p.name).sort()).toEqual(theirs.parameters.map((p) => p.name).sort());
      for (const p of theirs.parameters) {
        const mine = ours.parameters.find((q) => q.name === p.name)!;
        expect(mine.scope, p.name).toBe(p.scope === 'SHARED' ? 'global' : 'model');
        if (p.default === 'required') expect(mine.required, p.name).toBe(true);
        else if (p.default !== null) expect(mine.default, p.name).toBe(p.default);
        else expect(mine.required, p.name).toBe(false);
      }
    });
  }

  it('describes every method for the app: a name, a description and a known base policy', () => {
    for (const method of MERGE_METHODS.values()) {
      expect(method.prettyName.length, method.name).toBeGreaterThan(2);
      expect(method.description.length, method.name).toBeGreaterThan(20);
      expect(['required', 'optional', 'none']).toContain(method.base);
    }
  });
});
