import { resolve } from 'node:path';
import type { AnalysisEvent, AnalysisMetrics } from '../../shared/analysis';
import { formatBytes } from '../../shared/format';
import type { AnalysisJobFile } from '../../shared/job';
import { EXIT_CODES } from '../../shared/progress';
import { analyzeModels, type AnalyzeModelsParams } from '../engine/analysis/analyze-models';
import { parseTorchDtype } from '../engine/safetensors/dtype';
import { parseArgs, parseKmb, UsageError, type FlagSpec } from './args';
import { cancelOnSignals } from './cancel-on-signals';

export const ANALYZE_FLAGS: Record<string, FlagSpec> = {
  base: { kind: 'string', description: 'the model the others are compared with (required)' },
  t: { kind: 'string', description: 'NearSwap t values to count whole swaps at, comma-separated, like 0.0001,0.001' },
  dtype: { kind: 'string', description: 'float32 | bfloat16 | float16: what NearSwap computes in (default: the models\' own dtype)' },
  'memory-budget': { kind: 'string', description: 'bytes of tensor data in memory at once, like 1B, 512M (default 1B)' },
  'model-root': { kind: 'string', description: 'a folder to look for models in by name' },
  'lora-merge-cache': { kind: 'string', description: 'where base+LoRA references are merged and kept' },
  progress: { kind: 'string', description: 'bar | jsonl | none (default bar); jsonl prints every event on stdout' },
  json: { kind: 'boolean', description: 'print the whole result as one JSON object at the end' },
};

export const ANALYZE_USAGE = 'usage: alloy analyze --base BASE MODEL [MODEL...] [--t 0.0001,0.001] [--progress jsonl]';

/** `alloy analyze`: each model against the base, layer by layer, printed as the layers finish. */
export async function analyzeCommand(argv: string[]): Promise<number> {
  const { positionals, flags, warnings } = parseArgs(argv, ANALYZE_FLAGS);
  const base = flags['base'];
  if (typeof base !== 'string' || positionals.length === 0) throw new UsageError(ANALYZE_USAGE);
  const mode = (flags['progress'] as string | undefined) ?? 'bar';
  if (mode === 'jsonl' && flags['json']) throw new UsageError('--json and --progress jsonl both print on stdout; pick one');
  const t = typeof flags['t'] === 'string' ? parseTList(flags['t']) : [];
  const print = analysisPrinter(mode, { table: !flags['json'], t });
  for (const message of warnings) print({ type: 'warning', message });
  const abort = cancelOnSignals();
  const result = await analyzeModels({
    base,
    models: positionals,
    t,
    ...dtypeOption(flags['dtype']),
    search: {
      recipeDir: process.cwd(),
      ...(typeof flags['model-root'] === 'string' ? { modelRoots: [resolve(flags['model-root'])] } : {}),
      ...(typeof flags['lora-merge-cache'] === 'string' ? { loraMergeCache: resolve(flags['lora-merge-cache']) } : {}),
    },
    ...(typeof flags['memory-budget'] === 'string' ? { memoryBudget: parseKmb(flags['memory-budget']) } : {}),
    signal: abort.signal,
    onEvent: print,
  });
  if (flags['json']) process.stdout.write(JSON.stringify({ base, models: positionals, t, ...result }, null, 2) + '\n');
  return EXIT_CODES.ok;
}

/** `alloy run-job` for a job file of kind "analysis": what the app's Analysis view runs. */
export async function runAnalysisJob(job: AnalysisJobFile, mode: string, signal: AbortSignal): Promise<void> {
  const options = job.options ?? {};
  await analyzeModels({
    base: job.base,
    models: job.models,
    t: job.t ?? [],
    ...dtypeOption(job.dtype),
    search: { modelRoots: options.modelRoots ?? [], ...(options.loraMergeCache ? { loraMergeCache: options.loraMergeCache } : {}) },
    ...(options.memoryBudget ? { memoryBudget: options.memoryBudget } : {}),
    signal,
    onEvent: analysisPrinter(mode, { table: mode !== 'jsonl', t: job.t ?? [] }),
  });
}

function parseTList(text: string): number[] {
  return text.split(',').map((part) => {
    const value = Number(part.trim());
    if (part.trim() === '' || !Number.isFinite(value) || value < 0) throw new UsageError(`--t takes numbers of at least 0 separated by commas, not "${text}"`);
    return value;
  });
}

function dtypeOption(name: unknown): Pick<AnalyzeModelsParams, 'dtype'> {
  if (name === undefined) return {};
  const dtype = typeof name === 'string' ? parseTorchDtype(name) : undefined;
  if (!dtype) throw new UsageError(`--dtype must be float32, bfloat16 or float16, not "${String(name)}"`);
  return { dtype };
}

const number = (x: number | null, digits = 6) => (x === null ? '—' : x.toPrecision(digits));
const percent = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(3)} %`);

/**
 * Prints the analysis's events: every one as a JSON line (`jsonl`), or a table of each layer on
 * stdout as it finishes with the progress on stderr (`bar`, or `none` for the table alone).
 */
function analysisPrinter(mode: string, { table, t }: { table: boolean; t: number[] }): (event: AnalysisEvent) => void {
  if (mode === 'jsonl') return (event) => process.stdout.write(JSON.stringify(event) + '\n');
  if (mode !== 'bar' && mode !== 'none') throw new UsageError(`--progress must be bar, jsonl or none, not "${mode}"`);
  const tty = process.stderr.isTTY;
  let width = 0;
  const row = (label: string, m: AnalysisMetrics) =>
    [label.padEnd(6), m.model.padEnd(width), number(m.relativeL2).padStart(12), number(m.cosine, 8).padStart(12), ...m.swapFractions.map((s) => percent(s).padStart(14))].join('  ');
  return (event) => {
    if (event.type === 'warning') process.stderr.write(`warning: ${event.message}\n`);
    else if (event.type === 'start') {
      width = Math.max(5, ...event.models.map((m) => m.length));
      if (mode === 'bar') process.stderr.write(`${event.message}; reading ${formatBytes(event.totalBytes)}\n`);
      if (table) {
        const head = ['group'.padEnd(6), 'model'.padEnd(width), 'rel. L2'.padStart(12), 'cosine'.padStart(12), ...t.map((x) => `swap@t=${x}`.padStart(14))];
        process.stdout.write(`${head.join('  ')}\n`);
      }
    } else if (event.type === 'layer' && table) {
      if (mode === 'bar' && tty) process.stderr.write('\r'.padEnd(80) + '\r');
      for (const m of event.result.metrics) process.stdout.write(`${row(event.result.group.label, m)}\n`);
    } else if (event.type === 'done' && table) {
      for (const m of event.totals) process.stdout.write(`${row('all', m)}\n`);
      if (mode === 'bar') process.stderr.write(`read ${formatBytes(event.bytesRead)} in ${event.seconds.toFixed(1)} s\n`);
    } else if (event.type === 'tensor' && mode === 'bar' && tty) {
      const pct = ((100 * event.bytesRead) / Math.max(1, event.totalBytes)).toFixed(0).padStart(3);
      process.stderr.write(`\r${pct}% ${event.index}/${event.total} tensors, ${formatBytes(event.rate)}/s, ETA ${Math.ceil(event.etaSeconds)}s`.padEnd(80));
    }
  };
}
