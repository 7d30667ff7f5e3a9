import type { ParamValue } from '../methods/types';
import type { ModelCardParams } from '../output/model-card';
import type { Dtype, FloatDtype } from '../safetensors/dtype';
import type { VocabularyRows } from '../tokenizer/vocabulary-rows';

/** One input tensor of an output tensor: which model, which tensor, where its bytes are. */
export interface PlannedInput {
  /** Index into `MergePlan.models`. */
  model: number;
  tensor: string;
  file: string;
  offset: number;
  byteLength: number;
  dtype: Dtype;
  shape: number[];
  /**
   * For a tensor converted on load (a per-expert checkpoint's experts as one fused tensor): the stored
   * tensors whose bytes, one after another, are this input's; `file` and `offset` are then the first's.
   */
  parts?: { file: string; tensor: string; byteLength: number }[];
}

export interface PlannedTensor {
  name: string;
  shape: number[];
  numel: number;
  dtype: Dtype;
  /** `merge` runs the method; `copy` moves the first input's bytes untouched. */
  kind: 'merge' | 'copy';
  inputs: PlannedInput[];
  /** Position in `inputs` of the base model, when the method uses one. */
  baseIndex: number | undefined;
  global: Record<string, ParamValue>;
  perModel: Record<string, ParamValue>[];
  /** Index into `MergePlan.shards`. */
  shard: number;
  /** For embeddings and LM heads when the recipe builds a vocabulary: how each input's rows are re-indexed. */
  vocabulary?: VocabularyRows;
}

export interface PlannedShard {
  file: string;
  tensors: string[];
  bytes: number;
}

/** Everything a merge will read and write, decided before a byte of tensor data is read. Pure data. */
export interface MergePlan {
  name?: string;
  method: string;
  models: { reference: string; path: string }[];
  baseModel?: number;
  /** Inputs are rounded to this dtype before the method sees them (mergekit's `dtype:`). */
  computeDtype?: FloatDtype;
  tensors: PlannedTensor[];
  shards: PlannedShard[];
  /** Present when more than one shard: the index file's name. */
  indexFile?: string;
  bytesToRead: number;
  bytesToWrite: number;
  outputConfig: Record<string, unknown>;
  tokenizerFrom?: string;
  /** When the recipe builds a vocabulary: the output's tokenizer.json, written in place of the copied one. */
  tokenizerJson?: string;
  /** The chat template saved with a built tokenizer (chat_template.jinja). */
  chatTemplate?: string;
  recipeText: string;
  /** The model card's contents; its title comes from the output folder's name at write time. */
  modelCard: Omit<ModelCardParams, 'name' | 'isHubModel'>;
  seed: number;
  warnings: string[];
}
