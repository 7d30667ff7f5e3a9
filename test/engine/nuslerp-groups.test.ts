import { describe, expect, it } from 'vitest';
import { nuslerpGroups } from '../../src/main/engine/methods/nuslerp';

/** The group of every element of a tensor of `shape`, in row-major order. */
function groupsOf(shape: number[], flatten: boolean, rowWise: boolean): number[] {
  const numel = shape.reduce((a, b) => a * b, 1);
  const { groups, group } = nuslerpGroups(shape, numel, flatten, rowWise);
  const all = Array.from({ length: numel }, (_, i) => group(i));
  expect(new Set(all).size).toBe(numel === 0 ? 0 : groups);
  return all;
}

describe('nuslerp vectors (mergekit: along the last axis, or along axis 0 after transpose(0, -1))', () => {
  it('a 1-D tensor is one vector, row-wise or not', () => {
    expect(groupsOf([4], false, true)).toEqual([0, 0, 0, 0]);
    expect(groupsOf([4], false, false)).toEqual([0, 0, 0, 0]);
  });

  it('a 2-D tensor: rows, or columns row-wise; one vector when flattened', () => {
    expect(groupsOf([2, 3], false, false)).toEqual([0, 0, 0, 1, 1, 1]);
    expect(groupsOf([2, 3], false, true)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(groupsOf([2, 3], true, true)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('a 3-D tensor (fused experts): along the last axis, or along the first row-wise', () => {
    // Element (e, r, c) of a [2, 2, 3] tensor is at e·6 + r·3 + c.
    expect(groupsOf([2, 2, 3], false, false)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    expect(groupsOf([2, 2, 3], false, true)).toEqual([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
  });

  it('an empty tensor has no vectors', () => {
    expect(groupsOf([0, 3], false, true)).toEqual([]);
  });
});
