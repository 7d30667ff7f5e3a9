import { describe, expect, it } from 'vitest';
import { fieldOf, isEditable, offsetOf, parseRecipeYaml, pathAtOffset, readAt, recipeYamlText, writeAt } from '../../src/renderer/src/recipe/recipe-yaml';

const TEXT = `# a comment that must survive
merge_method: linear
models:
  - model: a   # the first
    parameters:
      weight: 0.6
  - model: b
---
name: second
merge_method: slerp
`;

describe('the recipe as YAML documents', () => {
  it('writes a value in place, gradients in flow style, keeping comments and the other documents', () => {
    const { docs } = parseRecipeYaml(TEXT);
    writeAt(docs[0]!, ['models', 1, 'parameters', 'weight'], [0, 0.5, 1]);
    writeAt(docs[1]!, ['parameters', 't'], 0.3);
    writeAt(docs[0]!, ['models', 0, 'parameters', 'weight'], undefined);
    const text = recipeYamlText(docs);
    expect(text).toContain('# a comment that must survive');
    expect(text).toContain('- model: a # the first');
    expect(text).toContain('weight: [0, 0.5, 1]');
    expect(text).not.toContain('weight: 0.6');
    expect(text).toMatch(/---\nname: second\nmerge_method: slerp\nparameters:\n {2}t: 0.3\n$/);
    expect(readAt(parseRecipeYaml(text).docs[0], ['models', 1, 'parameters', 'weight'])).toEqual([0, 0.5, 1]);
  });

  it('finds the form field under a line and column the engine reports', () => {
    const { docs } = parseRecipeYaml(TEXT);
    const at = (line: number, column: number) => fieldOf(pathAtOffset(docs[0]!, offsetOf(TEXT, line, column)));
    expect(at(6, 15)).toBe('models.0.parameters.weight');
    expect(at(7, 12)).toBe('models.1.model');
    expect(at(2, 1)).toBe('merge_method');
    expect(at(5, 5)).toBe('models.0');
    expect(fieldOf(['parameters', 't', 0, 'value'])).toBe('parameters.t');
    expect(fieldOf(['slices', 2, 'sources', 0, 'layer_range'])).toBe('slices.2');
  });

  it('lets the form start from an empty text, and refuses to write into a document that is not a mapping', () => {
    const empty = parseRecipeYaml('').docs;
    expect(isEditable(empty[0])).toBe(true);
    writeAt(empty[0]!, ['merge_method'], 'slerp');
    expect(recipeYamlText(empty)).toBe('merge_method: slerp\n');
    expect(isEditable(parseRecipeYaml('just words').docs[0])).toBe(false);
    expect(isEditable(parseRecipeYaml('a: [1, 2').docs[0])).toBe(false);
  });
});
