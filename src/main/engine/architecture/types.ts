/**
 * One tensor of a model as an architecture names it (mergekit's `WeightInfo`,
 * mergekit/architecture/base.py).
 */
export interface WeightInfo {
  /** The tensor's name in a checkpoint; layer weights carry `${layer_index}` until substituted. */
  name: string;
  /**
   * An embedding or LM head: mergekit uses this to merge vocabularies (tokenizer_source) and, when
   * the row counts of the inputs differ, to merge their largest common submatrix.
   */
  isEmbed?: boolean;
  /** May be absent from a model: the output skips it when no input has it (under `name` or an alias). */
  optional?: boolean;
  /**
   * Tensors that hold the same values when the model ties them (lm_head ↔ embed_tokens). Only read
   * from when the weight itself is missing in one input; they do not make an optional weight present.
   */
  tiedNames?: string[];
  /** Other names the same tensor has in some checkpoints (gpt2's `h.0…` without `transformer.`). */
  aliases?: string[];
}

/** A model family, as data: which tensors it has and in what order a merge writes them. */
export interface ArchitectureDef {
  /** config.json's `model_type` this definition expects. */
  modelType: string;
  /** config.json `architectures[0]` class names that select this definition. */
  architectures: string[];
  /** Tensors before the first layer, in merge order. */
  preWeights: WeightInfo[];
  /** Tensors of one layer, in merge order; names contain `${layer_index}`. */
  layerWeights: WeightInfo[];
  /** Tensors after the last layer, in merge order. */
  postWeights: WeightInfo[];
  /** config.json key holding the layer count (dotted for nested configs). */
  numLayersKey: string;
  /**
   * Other config.json keys transformers reads as the layer count (its config class's
   * `attribute_map`), tried in order when `numLayersKey` is absent: EXAONE's configs say `num_layers`.
   */
  numLayersAliases?: string[];
}
