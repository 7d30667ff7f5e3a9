/** What two models must share for a merge of their weights: the same architecture and the same tensor shapes. */
export interface ModelShape {
  architecture: string;
  hiddenSize: number;
  layers: number;
}

export interface Compatibility {
  fits: boolean;
  /** Each difference in words: "32 layers, the base has 28". */
  differences: string[];
}

/**
 * Whether `model` can be merged with `base` layer for layer: architecture, hidden size and layer
 * count all equal (a frankenmerge of other layer counts is still possible with slices).
 */
export function compareWithBase(model: ModelShape, base: ModelShape): Compatibility {
  const differences: string[] = [];
  if (model.architecture !== base.architecture) differences.push(`${model.architecture || 'unknown architecture'}, the base is ${base.architecture || 'unknown'}`);
  if (model.hiddenSize !== base.hiddenSize) differences.push(`hidden size ${model.hiddenSize}, the base has ${base.hiddenSize}`);
  if (model.layers !== base.layers) differences.push(`${model.layers} layers, the base has ${base.layers}`);
  return { fits: differences.length === 0, differences };
}
