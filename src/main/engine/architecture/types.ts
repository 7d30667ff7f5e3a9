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
  /**
   * A multimodal model's parts (mergekit's modular definitions, `mergekit/_data/architectures/*.json`
   * with `"kind": "modular"`), in the definition's order. Each has its own weight prefix, tensors and
   * layer count, and a recipe's `modules:` names them. For such a model the fields above describe its
   * text decoder (prefixed), so that layer lookups and summaries see the language model. Absent for
   * a one-part model, which mergekit calls a single module named `default`.
   */
  modules?: ArchitectureModule[];
}

/** One part of a multimodal model (mergekit's ModuleDefinition). */
export interface ArchitectureModule {
  /** The name a recipe's `modules:` uses (`text_decoder`, `vision_tower`, `multi_modal_projector`). */
  name: string;
  /** Put before every tensor name below (and their aliases and tied names) in a checkpoint. */
  weightPrefix?: string;
  preWeights: WeightInfo[];
  layerWeights: WeightInfo[];
  postWeights: WeightInfo[];
  /** config.json key (dotted) holding the module's layer count; absent when it has none to write. */
  numLayersKey?: string;
  /**
   * Keys tried when `numLayersKey` is absent from config.json: where the config class reads the count
   * from a flat config (Qwen2.5-VL's Hub configs keep `num_hidden_layers` at the top; transformers
   * moves it into `text_config`, where mergekit reads it).
   */
  numLayersAliases?: string[];
  /** A layer count fixed by the definition, whatever the config says (mergekit's override_num_layers). */
  fixedLayers?: number;
}
