/**
 * A mergekit recipe (one YAML document) as Alloy holds it after parsing: the same shape as
 * mergekit's `MergeConfiguration` (mergekit/config.py), with camelCase names and the source
 * position of every value so errors can point at file:line:col.
 */

export interface SourcePosition {
  file: string;
  line: number;
  column: number;
}

/** `org/name`, `org/name@revision`, a local path, or `base+lora` (mergekit's ModelReference). */
export interface ModelReference {
  /** The reference exactly as written in the recipe. */
  raw: string;
  path: string;
  revision?: string;
  lora?: { path: string; revision?: string };
  position?: SourcePosition;
}

/** A number, or a gradient: a list of anchors interpolated over the layers of a slice. */
export type ScalarOrGradient = number | number[];

export interface ConditionalParameter {
  value: ScalarOrGradient | boolean | string;
  /** Substring matched against the tensor name; absent or "*" matches every tensor. */
  filter?: string;
}

/** mergekit's ParameterSetting: a scalar, a gradient, or a list of filtered values. */
export type ParameterSetting = ScalarOrGradient | boolean | string | ConditionalParameter[];

export interface ParameterMap {
  values: Record<string, ParameterSetting>;
  /** Where each parameter was written. */
  positions: Record<string, SourcePosition>;
}

export interface InputModelDefinition {
  model: ModelReference;
  parameters?: ParameterMap;
}

export interface InputSliceDefinition {
  model: ModelReference;
  layerRange: [number, number];
  parameters?: ParameterMap;
}

export interface OutputSliceDefinition {
  sources: InputSliceDefinition[];
  baseModel?: ModelReference;
  residualWeight?: number;
  parameters?: ParameterMap;
}

/** One entry of `modules:` (mergekit's OutputModuleDefinition): a part of a multimodal model merged on its own. */
export interface OutputModuleDefinition {
  /** The key under `modules:` (`text_decoder`, `vision_tower`, …; `default` for a one-part model). */
  name: string;
  models?: InputModelDefinition[];
  slices?: OutputSliceDefinition[];
  /** Between a slice's parameters and the recipe's in precedence. */
  parameters?: ParameterMap;
  /** Where the module's name was written. */
  position: SourcePosition;
}

export interface TokenEmbeddingConfig {
  source?: ModelReference | { kind: 'zero' } | { kind: 'model_token'; model: ModelReference; token?: string; tokenId?: number };
  force?: boolean;
}

export interface TokenizerConfig {
  source: 'union' | 'base' | ModelReference;
  tokens?: Record<string, TokenEmbeddingConfig>;
  padToMultipleOf?: number;
}

export interface Recipe {
  /** `name:` of a stage in a multi-document recipe. */
  name?: string;
  mergeMethod: string;
  models?: InputModelDefinition[];
  slices?: OutputSliceDefinition[];
  /** `modules:`, in the order written (which is the order the output's tensors are planned in). */
  modules?: OutputModuleDefinition[];
  baseModel?: ModelReference;
  /** Compute dtype, as written (`float32`, `bfloat16`, `float16`). */
  dtype?: string;
  outDtype?: string;
  tokenizerSource?: 'union' | 'base' | ModelReference;
  tokenizer?: TokenizerConfig;
  chatTemplate?: string;
  parameters?: ParameterMap;
  /** The document's text and where it came from. */
  source: { file: string; text: string };
  /** Position of each top-level key, for errors. */
  positions: Record<string, SourcePosition>;
  /** Things mergekit accepts silently that the user should hear about, as `file:line:col: message`. */
  warnings?: string[];
}
