import * as v from 'valibot';
import { analysisRequestEntries } from './analysis-contract';

/** The job file the app writes and `alloy run-job` reads: one merge, everything it needs. */
export const jobFileSchema = v.strictObject({
  recipeText: v.pipe(v.string(), v.maxLength(1_000_000)),
  /** Where the recipe came from: errors name it, relative model paths resolve beside it. */
  recipeFile: v.string(),
  outDir: v.string(),
  options: v.optional(
    v.strictObject({
      outShardSize: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
      seed: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
      allowCrimes: v.optional(v.boolean()),
      unsafeTruncateEmbeddings: v.optional(v.boolean()),
      copyTokenizer: v.optional(v.boolean()),
      writeModelCard: v.optional(v.boolean()),
      overwrite: v.optional(v.boolean()),
      memoryBudget: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1 << 20))),
      device: v.optional(v.picklist(['auto', 'cpu', 'gpu'])),
      modelRoots: v.optional(v.array(v.string())),
      loraMergeCache: v.optional(v.string()),
      torchThreads: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
      /** Continue an interrupted merge from the shards it finished (the app's Resume). */
      resume: v.optional(v.boolean()),
      /** How models are read and shards written: past the page cache (`direct`), through it (`cached`), or `auto`. */
      reads: v.optional(v.picklist(['auto', 'direct', 'cached'])),
      writes: v.optional(v.picklist(['auto', 'direct', 'cached'])),
    }),
  ),
});

export type JobFile = v.InferOutput<typeof jobFileSchema>;

/** An analysis job file (`kind: "analysis"`): the Analysis view's comparison, run by `alloy run-job` as a merge is. */
export const analysisJobFileSchema = v.strictObject({
  kind: v.literal('analysis'),
  ...analysisRequestEntries,
  options: v.optional(
    v.strictObject({
      memoryBudget: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1 << 20))),
      modelRoots: v.optional(v.array(v.string())),
      loraMergeCache: v.optional(v.string()),
    }),
  ),
});

export type AnalysisJobFile = v.InferOutput<typeof analysisJobFileSchema>;
