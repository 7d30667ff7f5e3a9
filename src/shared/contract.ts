import * as v from 'valibot';
import type { ProgressEvent } from './progress';
import { studioRequestSchemas, type StudioResponseTypes } from './studio-contract';
import { libraryRequestSchemas, type LibraryEventTypes, type LibraryResponseTypes } from './library-contract';
import { ANALYSIS_EVENT_NAMES, analysisRequestSchemas, type AnalysisEventTypes, type AnalysisResponseTypes } from './analysis-contract';

/**
 * The one contract between a face (Electron renderer, web page, tests) and the services.
 * Electron's IPC, the web bridge and the tests all speak it; every request is validated
 * against its schema in one place (`validateRequest`) before a handler sees it.
 */

export interface ModelSummary {
  /** Stable id: the folder path (for a hub cache model, its snapshot folder). */
  id: string;
  /** The folder's name, or the Hub repo id ("org/name") for a hub cache model. */
  name: string;
  path: string;
  source: 'demo' | 'folder' | 'hf-cache';
  /** What a recipe writes to use this model: "org/name@commit" for the hub cache, else the path. */
  reference: string;
  /** Hub cache models: the repo id, the snapshot's commit, and the refs (branches, tags) pointing at it. */
  repoId?: string;
  revision?: string;
  refs?: string[];
  architecture: string;
  modelType: string;
  layers: number;
  hiddenSize: number;
  vocabSize: number;
  /** Sum of the tensors' element counts, from the safetensors headers. */
  parameters: number;
  dtypes: string[];
  shards: number;
  /** Bytes on disk; a blob shared by several files or revisions is counted once. */
  bytes: number;
  hasTokenizer: boolean;
  weightFormat: 'safetensors' | 'pytorch' | 'none';
  /** Shards the index names that are not on disk. */
  missingShards: string[];
  /** Partial downloads of this repo (hub cache: `blobs/*.incomplete`). */
  incomplete: { files: number; bytes: number };
  /** Whether the engine knows the architecture; `problem` says why not. */
  mergeable: boolean;
  problem?: string;
  /**
   * A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), not a model: never
   * mergeable on its own, it is applied to a model as `model+adapter` (the `reference` after the "+").
   */
  adapter?: LoraAdapterFacts;
}

/** What adapter_config.json and the adapter's weights say about a LoRA adapter. */
export interface LoraAdapterFacts {
  /** `base_model_name_or_path`: the model it was trained on (a Hub id or a path), when the config names one. */
  baseModel?: string;
  /** The rank `r` and `lora_alpha`; 0 where the config lacks them. */
  rank: number;
  alpha: number;
  targetModules: string[];
  /** Why it cannot be applied to a model (no weights, not a LoRA, an unreadable config); absent when it can. */
  problem?: string;
}

export interface MethodParameterInfo {
  name: string;
  scope: 'model' | 'global';
  type: 'number' | 'boolean';
  required: boolean;
  default?: number | boolean;
  min?: number;
  max?: number;
  /** mergekit declares it an int: a fractional value is refused (a range is only warned about). */
  integer?: boolean;
  /** mergekit fails on a value below this (torch raises): Alloy refuses it, naming the parameter. */
  refusedBelow?: number;
  description: string;
}

export interface MethodInfo {
  name: string;
  prettyName: string;
  description: string;
  paper?: string;
  base: 'required' | 'optional' | 'none';
  parameters: MethodParameterInfo[];
}

export type DeviceChoice = 'auto' | 'cpu' | 'gpu';

/** Where a merge would compute with the settings' device choice, as the engine answers on this machine. */
export interface PlanDevice {
  choice: DeviceChoice;
  kind: 'cpu' | 'gpu';
  /** Backend and adapter: "GPU: NVIDIA GeForce RTX 4090 (WebGPU, vulkan)", "CPU: WebAssembly SIMD, 7 worker threads". */
  description: string;
  /** Why: "the only GPU adapter is a software one…". */
  notices: string[];
}

export interface PlanSummary {
  mergeMethod: string;
  models: string[];
  tensors: number;
  shards: { file: string; tensors: number; bytes: number }[];
  bytesToRead: number;
  bytesToWrite: number;
  outDtype: string;
  warnings: string[];
  /** Free bytes on the output folder's disk. */
  diskFree?: number;
  /** Absent where the engine could not be asked; `deviceError` says why. */
  device?: PlanDevice;
  deviceError?: string;
  /** Seconds, at the rate the last finished merge wrote on this machine; absent before the first one. */
  estimate?: { seconds: number; bytesPerSecond: number };
  /**
   * A multi-document recipe's stages in the order they run (then reads and writes above are their sums).
   * A stage that reads an earlier one is planned against the model that stage's output takes its shape from.
   */
  stages?: PlannedStage[];
}

/** One stage of a multi-document recipe, as planned before any stage is built. */
export interface PlannedStage {
  name: string;
  method: string;
  /** The earlier stages whose outputs it reads. */
  reads: string[];
  tensors: number;
  bytesToRead: number;
  bytesToWrite: number;
  final: boolean;
}

export type JobState = 'running' | 'done' | 'failed' | 'cancelled';

export interface JobInfo {
  id: string;
  state: JobState;
  outputName: string;
  outDir: string;
  startedAt: number;
  finishedAt?: number;
  lastProgress?: ProgressEvent;
  /** Where the merge computes, once the engine has chosen: "CPU: WebAssembly SIMD, 7 worker threads". */
  device?: string;
  error?: string;
  /**
   * A merge that stopped before the end (the engine was killed, the app stopped) and left finished
   * shards in its journal: `job.resume` continues from them.
   */
  resumable?: { finishedShards: number };
  log: string[];
}

/** A problem in a recipe, pointing at where it is. */
export interface RecipeProblem {
  message: string;
  line?: number;
  column?: number;
  key?: string;
}

const recipeText = v.pipe(v.string(), v.maxLength(1_000_000));
const outputName = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(200),
  v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-" only'),
);

export const requestSchemas = {
  'library.list': v.strictObject({}),
  'methods.list': v.strictObject({}),
  'recipe.demo': v.strictObject({}),
  'recipe.plan': v.strictObject({ recipe: recipeText }),
  'job.start': v.strictObject({
    recipe: recipeText,
    outputName,
    device: v.optional(v.picklist(['auto', 'cpu', 'gpu'])),
    /** Replace an output folder that already holds files (once the new merge is complete); else the start is refused. */
    overwrite: v.optional(v.boolean()),
  }),
  'job.cancel': v.strictObject({ id: v.pipe(v.string(), v.maxLength(100)) }),
  'job.resume': v.strictObject({ id: v.pipe(v.string(), v.maxLength(100)) }),
  'job.list': v.strictObject({}),
  'job.card': v.strictObject({ id: v.pipe(v.string(), v.maxLength(100)) }),
  'job.openFolder': v.strictObject({ id: v.pipe(v.string(), v.maxLength(100)) }),
  'app.capabilities': v.strictObject({}),
  'library.pickFolder': v.strictObject({}),
  ...studioRequestSchemas,
  ...libraryRequestSchemas,
  ...analysisRequestSchemas,
} as const;

export interface ResponseTypes extends StudioResponseTypes, LibraryResponseTypes, AnalysisResponseTypes {
  'library.list': ModelSummary[];
  'methods.list': MethodInfo[];
  'recipe.demo': { name: string; recipe: string };
  'recipe.plan': { ok: true; plan: PlanSummary } | { ok: false; problems: RecipeProblem[] };
  'job.start': JobInfo;
  'job.cancel': JobInfo;
  'job.resume': JobInfo;
  'job.list': JobInfo[];
  /** A finished merge's README.md model card; null where it has none (yet). */
  'job.card': { markdown: string | null };
  /** Opens a merge's output folder in the file manager where the face can (Electron); else says where it is. */
  'job.openFolder': { opened: boolean; path: string; message?: string };
  /** What this face can do on the machine the services run on: the desktop app opens and picks folders, a browser does not. */
  'app.capabilities': { openFolder: boolean; pickFolder: boolean };
  /** A folder chosen in the desktop's own dialog; null when cancelled. */
  'library.pickFolder': { path: string | null };
}

export type Channel = keyof typeof requestSchemas;
export type RequestOf<C extends Channel> = v.InferOutput<(typeof requestSchemas)[C]>;
export type ResponseOf<C extends Channel> = ResponseTypes[C];

/** Events pushed from the services to every face. */
export interface EventTypes extends LibraryEventTypes, AnalysisEventTypes {
  'job.progress': { jobId: string; event: ProgressEvent };
  'job.state': JobInfo;
}
export type EventName = keyof EventTypes;

/** Every event a face relays (IPC, WebSocket). */
export const EVENT_NAMES: EventName[] = ['job.progress', 'job.state', 'download.progress', 'library.changed', ...ANALYSIS_EVENT_NAMES];

export const CHANNELS = Object.keys(requestSchemas) as Channel[];

export function isChannel(name: string): name is Channel {
  return Object.prototype.hasOwnProperty.call(requestSchemas, name);
}

export class ContractError extends Error {
  constructor(
    readonly channel: string,
    message: string,
  ) {
    super(`${channel}: ${message}`);
    this.name = 'ContractError';
  }
}

/** Parses a request's payload against its channel's schema; throws a ContractError naming the field. */
export function validateRequest<C extends Channel>(channel: C, payload: unknown): RequestOf<C> {
  const result = v.safeParse(requestSchemas[channel], payload ?? {});
  if (!result.success) {
    const issue = result.issues[0];
    const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
    throw new ContractError(channel, `${path ? `${path}: ` : ''}${issue.message}`);
  }
  return result.output as RequestOf<C>;
}

/** The API a face calls: `window.alloy` in Electron (preload) and the web bridge in a browser. */
export interface AlloyApi {
  invoke<C extends Channel>(channel: C, request: RequestOf<C>): Promise<ResponseOf<C>>;
  on<E extends EventName>(event: E, listener: (payload: EventTypes[E]) => void): () => void;
}

export type Handlers = { [C in Channel]: (request: RequestOf<C>) => Promise<ResponseOf<C>> };
