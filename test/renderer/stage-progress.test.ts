import { describe, expect, it } from 'vitest';
import { currentStage, overallPercent } from '../../src/renderer/src/recipe/stage-progress';

describe('multi-stage progress', () => {
  it('follows the engine\'s stage lines and counts finished stages whole', () => {
    const log = ['planning recipe.yml', 'stage 1/5: reason-della (della)', 'merging 39 tensors with della', 'stage 2/5: prose-della (della) is up to date', 'stage 3/5: converge (slerp)'];
    expect(currentStage(log)).toEqual({ index: 3, total: 5, name: 'converge' });
    expect(overallPercent(currentStage(log), 0.5)).toBe(50);
    expect(overallPercent(undefined, 0.25)).toBe(25);
    expect(currentStage(['merging 39 tensors with linear'])).toBeUndefined();
  });
});
