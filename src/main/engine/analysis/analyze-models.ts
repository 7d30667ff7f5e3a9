import type { AnalysisEvent, AnalysisGroup, AnalysisLayerResult, AnalysisMetrics } from '../../../shared/analysis';
import { EngineError } from '../errors';
import { CancelledError, DEFAULT_MEMORY_BUDGET } from '../execute/execute-plan';
import { ChunkedTensorSource, chunkElementsFor } from '../execute/tensor-source';
import type { ModelSearch } from '../model/resolve-model';
import { plannedInput } from '../plan/plan-merge';
import type { FloatDtype } from '../safetensors/dtype';
import { planAnalysis, type AnalysisPlan, type AnalysisTensor } from './plan-analysis';
import { nearswapComputeDtype, WeightComparison } from './weight-comparison';

export interface AnalyzeModelsParams {
  /** The model the others are compared with: a folder, a name under `search.modelRoots`, `org/name[@revision]`. */
  base: string;
  /** One or more models of the base's architecture and depth. */
  models: string[];
  /** NearSwap thresholds at which to count the elements swapped whole. Default: none. */
  t?: number[];
  /** Round NearSwap's steps as a recipe with this `dtype:` would. Default: each tensor pair's own dtype when they share one, else f32 (as a merge without `dtype:`). */
  dtype?: FloatDtype;
  /** Where model names are looked for. */
  search?: ModelSearch;
  /** Bytes of tensor data held at once (base and models together); default 1 GiB, as a merge. */
  memoryBudget?: number;
  signal?: AbortSignal;
  /** Every event as it happens: `start`, one `tensor` per tensor read, one `layer` per group finished, `warning`s, `done`. */
  onEvent?: (event: AnalysisEvent) => void;
}

export interface AnalysisResult {
  groups: AnalysisGroup[];
  layers: AnalysisLayerResult[];
  /** Each model over every group together. */
  totals: AnalysisMetrics[];
  bytesRead: number;
  seconds: number;
}

/**
 * Compares each model with the base, group by group (embeddings, each layer, head): relative L2
 * distance, cosine similarity and NearSwap's whole-swap share, summed in f64 over the group's tensors.
 * Tensors are streamed through the executor's chunked source within the memory budget, the base read
 * once for all the models; each group is reported as soon as its last tensor is read.
 */
export async function analyzeModels(params: AnalyzeModelsParams): Promise<AnalysisResult> {
  const started = performance.now();
  const { signal } = params;
  const t = params.t ?? [];
  for (const x of t) if (!Number.isFinite(x) || x < 0) throw new EngineError(`NearSwap t must be a number of at least 0, not ${x}`, { key: 't' });
  const emit = (event: AnalysisEvent) => {
    if (!signal?.aborted) params.onEvent?.(event);
  };
  const rss = new PeakRss();
  signal?.throwIfAborted();
  const plan = await planAnalysis({ base: params.base, models: params.models, ...(params.search ? { search: params.search } : {}) });
  try {
    emit({
      type: 'start',
      base: params.base,
      models: params.models,
      t,
      computeDtype: describeComputeDtype(plan, params.dtype),
      groups: plan.groups.map((g) => g.group),
      tensors: plan.tensors,
      totalBytes: plan.totalBytes,
      message: `comparing ${params.models.length} model${params.models.length === 1 ? '' : 's'} with ${params.base}: ${plan.architecture.modelType}, ${plan.layers} layers, ${plan.tensors} tensors`,
    });
    for (const message of plan.warnings) emit({ type: 'warning', message });
    const progress = { index: 0, bytesRead: 0 };
    const totals = params.models.map(() => new WeightComparison(t));
    const layers: AnalysisLayerResult[] = [];
    for (const { group, tensors } of plan.groups) {
      const comparisons = params.models.map(() => new WeightComparison(t));
      for (const tensor of tensors) {
        signal?.throwIfAborted();
        progress.bytesRead += await compareTensor(tensor, comparisons, params);
        progress.index++;
        rss.sample();
        const seconds = Math.max(1e-3, (performance.now() - started) / 1000);
        const rate = progress.bytesRead / seconds;
        emit({
          type: 'tensor',
          index: progress.index,
          total: plan.tensors,
          name: tensor.name,
          bytesRead: progress.bytesRead,
          totalBytes: plan.totalBytes,
          rate,
          etaSeconds: rate > 0 ? (plan.totalBytes - progress.bytesRead) / rate : 0,
        });
      }
      comparisons.forEach((c, i) => totals[i]!.absorb(c));
      const result = { group, metrics: comparisons.map((c, i) => c.metrics(params.models[i]!)) };
      layers.push(result);
      emit({ type: 'layer', result });
    }
    const seconds = (performance.now() - started) / 1000;
    const totalMetrics = totals.map((c, i) => c.metrics(params.models[i]!));
    emit({ type: 'done', seconds, bytesRead: progress.bytesRead, peakRssBytes: rss.stop(), totals: totalMetrics });
    return { groups: plan.groups.map((g) => g.group), layers, totals: totalMetrics, bytesRead: progress.bytesRead, seconds };
  } catch (error) {
    if (signal?.aborted) throw new CancelledError();
    throw error;
  } finally {
    rss.stop();
    await plan.close();
  }
}

/** Reads one tensor of the base and its counterparts chunk by chunk and adds each model's chunk to its comparison; returns the bytes read. */
async function compareTensor(tensor: AnalysisTensor, comparisons: WeightComparison[], params: AnalyzeModelsParams): Promise<number> {
  const present = tensor.models.flatMap((m, i) => (m ? [{ model: i, tensor: m }] : []));
  if (present.length === 0) return 0;
  const all = [{ model: -1, tensor: tensor.base }, ...present];
  const inputs = all.map(({ model, tensor }) => plannedInput(model, tensor));
  const { shape, numel, dtype: baseDtype } = tensor.base.entry;
  const rowLength = shape.length > 1 ? shape[shape.length - 1]! : 0;
  // No output, but room for NearSwap's rounded copies of a pair (two f32 scratch arrays).
  const chunkElements = chunkElementsFor(inputs, 8, params.memoryBudget ?? DEFAULT_MEMORY_BUDGET, rowLength);
  const source = new ChunkedTensorSource(all.map((a) => a.tensor.reader), inputs, numel, chunkElements, undefined, params.signal);
  for await (const chunk of source.chunks()) {
    const values = chunk.inputs;
    present.forEach(({ model, tensor: counterpart }, k) => {
      const stored = { base: baseDtype as FloatDtype, model: counterpart.entry.dtype as FloatDtype };
      comparisons[model]!.add(values[0]!, values[k + 1]!, stored, nearswapComputeDtype(params.dtype, stored.base, stored.model));
    });
  }
  return source.bytesRead;
}

function describeComputeDtype(plan: AnalysisPlan, dtype: FloatDtype | undefined): string {
  if (dtype) return dtype;
  const dtypes = new Set(plan.groups.flatMap((g) => g.tensors.flatMap((t) => [t.base, ...t.models].flatMap((m) => (m ? [m.entry.dtype] : [])))));
  return dtypes.size === 1 ? [...dtypes][0]! : 'each pair\'s own dtype when they share one, else F32';
}

/** The process's resident memory at its highest, sampled (as the executor samples it). */
class PeakRss {
  private peak = process.memoryUsage.rss();
  private readonly timer = setInterval(() => this.sample(), 50).unref();

  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peak;
  }
}
