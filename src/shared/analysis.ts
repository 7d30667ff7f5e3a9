/**
 * How different models are from a base, layer by layer: what the engine's analysis reports
 * (`alloy analyze`, the app's Analysis view), one JSON object per line with `--progress=jsonl`.
 */

/** A part of the model the metrics are summed over: the embeddings, one layer, or the final norm and head. */
export interface AnalysisGroup {
  /** Position in the model, from 0: embeddings first, then the layers, then the head. */
  index: number;
  kind: 'embed' | 'layer' | 'head';
  /** The layer number, for `kind: 'layer'`. */
  layer?: number;
  /** "embed", "0", "1", …, "head": what a chart's axis shows. */
  label: string;
  /** The tensors summed, by their names in the base. */
  tensors: string[];
}

/**
 * One model against the base over one group (or the whole model), every tensor of the group taken
 * as one long vector. A metric is null where it is undefined (a base of zeros has no relative distance).
 */
export interface AnalysisMetrics {
  /** The model as it was named (a library path, a folder, `org/name`). */
  model: string;
  /** ‖W_model − W_base‖ / ‖W_base‖. */
  relativeL2: number | null;
  /** ⟨W_model, W_base⟩ / (‖W_model‖ ‖W_base‖). */
  cosine: number | null;
  /**
   * For each NearSwap t asked for (same order): the share of elements that NearSwap would take whole
   * from this model (its weight `t / max(|base − model|, 1e-6)` reaches 1), as the nearswap method
   * computes it, step by step in the compute dtype; null where no element was compared.
   */
  swapFractions: (number | null)[];
  /** Elements compared. */
  elements: number;
}

export interface AnalysisLayerResult {
  group: AnalysisGroup;
  metrics: AnalysisMetrics[];
}

export type AnalysisEvent =
  | {
      type: 'start';
      base: string;
      models: string[];
      t: number[];
      /** The dtype NearSwap's steps are rounded to: the analysis's `dtype`, else each tensor pair's own when they share one, else F32. */
      computeDtype: string;
      groups: AnalysisGroup[];
      tensors: number;
      /** Bytes of tensor data to read, base and models together. */
      totalBytes: number;
      message: string;
    }
  | {
      type: 'tensor';
      /** 1-based index of the tensor just read (a base tensor and the models' counterparts). */
      index: number;
      total: number;
      name: string;
      bytesRead: number;
      totalBytes: number;
      /** Bytes read per second so far. */
      rate: number;
      etaSeconds: number;
    }
  | { type: 'layer'; result: AnalysisLayerResult }
  | { type: 'warning'; message: string }
  | { type: 'done'; seconds: number; bytesRead: number; peakRssBytes: number; totals: AnalysisMetrics[] }
  | { type: 'error'; message: string; code: string };

export type AnalysisState = 'running' | 'done' | 'failed' | 'cancelled';

/** An analysis as the services keep it: what was asked, and everything the engine has reported so far. */
export interface AnalysisInfo {
  id: string;
  state: AnalysisState;
  base: string;
  models: string[];
  t: number[];
  dtype?: AnalysisDtype;
  startedAt: number;
  finishedAt?: number;
  /** Known once the engine has opened the models' headers. */
  groups: AnalysisGroup[];
  /** Results in the order they were computed. */
  layers: AnalysisLayerResult[];
  /** The whole model, once done. */
  totals?: AnalysisMetrics[];
  progress?: Extract<AnalysisEvent, { type: 'tensor' }>;
  computeDtype?: string;
  warnings: string[];
  error?: string;
}

/** Dtype names as a recipe writes them. */
export const ANALYSIS_DTYPES = ['float32', 'bfloat16', 'float16'] as const;
export type AnalysisDtype = (typeof ANALYSIS_DTYPES)[number];

/** An analysis with one more engine event applied; the services and the renderer follow a run with it. */
export function applyAnalysisEvent(info: AnalysisInfo, event: AnalysisEvent): AnalysisInfo {
  switch (event.type) {
    case 'start':
      return { ...info, groups: event.groups, computeDtype: event.computeDtype };
    case 'tensor':
      return { ...info, progress: event };
    case 'layer':
      return { ...info, layers: [...info.layers.filter((l) => l.group.index !== event.result.group.index), event.result] };
    case 'warning':
      return { ...info, warnings: [...info.warnings, event.message] };
    case 'done':
      return { ...info, totals: event.totals };
    case 'error':
      return { ...info, error: event.message };
  }
}

/** Share of the bytes read, 0–100. */
export function analysisPercent(info: AnalysisInfo): number {
  if (info.state === 'done') return 100;
  const p = info.progress;
  return p ? (100 * p.bytesRead) / Math.max(1, p.totalBytes) : 0;
}
