import * as v from 'valibot';
import { ANALYSIS_DTYPES, type AnalysisEvent, type AnalysisInfo } from './analysis';

/**
 * The Analysis view's channels: their own block of the contract, spread into `requestSchemas`,
 * `ResponseTypes` and `EventTypes` in `contract.ts`.
 *
 *   analysis.start   { base, models, t?, dtype? }  → AnalysisInfo (the engine runs it as a child process)
 *   analysis.cancel  { id }                        → AnalysisInfo
 *   analysis.list    {}                            → AnalysisInfo[] (newest first; a reloaded window re-attaches)
 *   events: analysis.progress ({ id, event }) for every engine event; analysis.state (AnalysisInfo) when
 *   a run starts and when it ends, with everything it computed.
 */

const modelName = v.pipe(v.string(), v.trim(), v.minLength(1, 'a model is needed'), v.maxLength(4096));

/** What an analysis compares: also the fields of an analysis job file (`job.ts`). */
export const analysisRequestEntries = {
  /** The model the others are compared with (a library path, a folder, `org/name`). */
  base: modelName,
  models: v.pipe(v.array(modelName), v.minLength(1, 'pick at least one model to compare with the base'), v.maxLength(32)),
  /** NearSwap thresholds to count whole swaps at. */
  t: v.optional(v.pipe(v.array(v.pipe(v.number(), v.finite(), v.minValue(0, 'NearSwap t must be at least 0'))), v.maxLength(16))),
  /** The dtype NearSwap would compute in (a recipe's `dtype:`); default the models' own. */
  dtype: v.optional(v.picklist(ANALYSIS_DTYPES)),
};

export const analysisRequestSchemas = {
  'analysis.start': v.strictObject(analysisRequestEntries),
  'analysis.cancel': v.strictObject({ id: v.pipe(v.string(), v.maxLength(100)) }),
  'analysis.list': v.strictObject({}),
} as const;

export interface AnalysisResponseTypes {
  'analysis.start': AnalysisInfo;
  'analysis.cancel': AnalysisInfo;
  'analysis.list': AnalysisInfo[];
}

export interface AnalysisEventTypes {
  'analysis.progress': { id: string; event: AnalysisEvent };
  'analysis.state': AnalysisInfo;
}

export const ANALYSIS_EVENT_NAMES: (keyof AnalysisEventTypes)[] = ['analysis.progress', 'analysis.state'];
