import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { EXIT_CODES, type ProgressEvent } from '../../shared/progress';
import { EngineError } from '../engine/errors';
import { formatBytes } from '../../shared/format';
import { CancelledError } from '../engine/execute/execute-plan';
import { describeStages, planRecipe, runMerge, type MergeOptions } from '../engine/run-merge';
import { parseRecipes } from '../engine/recipe/parse-recipe';
import { isAnalysisJob, parseAnalysisJobFile, parseJobFile } from '../services/job-file';
import { parseArgs, parseKmb, UsageError, type FlagSpec } from './args';
import { formatPlan } from './format-plan';
import { cancelOnSignals } from './cancel-on-signals';

const MERGE_FLAGS: Record<string, FlagSpec> = {
  device: { kind: 'string', description: 'auto | cpu | gpu: where to compute (default auto)' },
  cuda: { kind: 'boolean', description: 'mergekit\'s flag: same as --device gpu' },
  'out-shard-size': { kind: 'string', description: 'bytes per output shard, like 5B, 500M (default 5B)' },
  'copy-tokenizer': { kind: 'boolean', description: 'copy the tokenizer of the base model (default on)' },
  'allow-crimes': { kind: 'boolean', description: 'allow mixing architectures' },
  'unsafe-truncate-embeddings': { kind: 'boolean', description: 'cut embeddings of different vocabulary sizes to the common rows' },
  'lazy-unpickle': { kind: 'boolean', description: 'accepted; Alloy always loads tensors one at a time', ignored: 'accepted as a no-op: Alloy always streams tensors' },
  'random-seed': { kind: 'string', description: 'seed for the random methods (DARE, DELLA)' },
  'write-model-card': { kind: 'boolean', description: 'write README.md beside the weights (default on)' },
  overwrite: { kind: 'boolean', description: 'replace a non-empty output folder once the new one is complete' },
  resume: { kind: 'boolean', description: 'continue an interrupted merge from the shards it finished' },
  'memory-budget': { kind: 'string', description: 'bytes of tensor data in memory at once, like 1B, 512M (default 1B)' },
  reads: { kind: 'string', description: 'auto | direct | cached: read models past the page cache or through it (default auto: direct when they exceed half the RAM, Linux)' },
  writes: { kind: 'string', description: 'auto | direct | cached: write the output past the page cache or through it (default auto: as --reads, for the output)' },
  'model-root': { kind: 'string', description: 'a folder to look for models in by name' },
  'intermediate-dir': { kind: 'string', description: 'where the stages of a multi-document recipe are built' },
  'torch-threads': { kind: 'string', description: 'sum whole tensors in the order torch does with N threads (default: this machine\'s physical cores)' },
  'lora-merge-cache': { kind: 'string', description: 'where base+LoRA references are merged and kept (default ~/.cache/alloy/lora-merges)' },
  progress: { kind: 'string', description: 'bar | jsonl | none (default bar)' },
  'trust-remote-code': { kind: 'boolean', description: 'accepted; Alloy never runs model code', ignored: 'Alloy never runs code from model repos; ignored' },
  'low-cpu-memory': { kind: 'boolean', description: 'accepted', ignored: 'ignored: memory is bounded by --memory-budget' },
  'clone-tensors': { kind: 'boolean', description: 'accepted', ignored: 'ignored: tensors are always written separately' },
  quiet: { kind: 'boolean', description: 'print nothing but errors' },
};

/** One line per flag, its description in a column two spaces past the longest flag. */
function optionLines(flags: typeof MERGE_FLAGS): string {
  const labels = Object.entries(flags).map(([name, spec]) => [`  --${name}${spec.kind === 'string' ? ' VALUE' : ''}`, spec.description] as const);
  const width = Math.max(...labels.map(([label]) => label.length)) + 2;
  return labels.map(([label, description]) => label.padEnd(width) + description).join('\n');
}

const HELP = `alloy: merge language models from mergekit recipes

Usage:
  alloy merge RECIPE.yml OUT_DIR [options]   merge, as mergekit-yaml does
  alloy plan RECIPE.yml [--json]             print what will be read and written; writes nothing
  alloy analyze --base BASE MODEL...         per-layer relative L2, cosine and NearSwap swaps against the base
  alloy run-job JOB.json --progress=jsonl    run a job file (what the desktop app does)
  alloy devices [--device D] [--json]        where a merge would compute (backend and adapter)
  alloy serve [--host H] [--port P] [--token T]  the app in a browser (web mode)
  alloy demo-models [DIR]                    write the tiny demo models (default resources/demo/models)

Merge options:
${optionLines(MERGE_FLAGS)}

Exit codes: 0 done, 1 the merge failed, 2 bad command line or recipe, 130 cancelled.
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command !== undefined && !command.startsWith('-') && rest.some((arg) => arg === '--help' || arg === '-h')) {
      process.stdout.write(HELP);
      return EXIT_CODES.ok;
    }
    switch (command) {
      case 'merge':
        return await mergeCommand(rest);
      case 'plan':
        return await planCommand(rest);
      case 'analyze':
        return await (await import('./analyze-command')).analyzeCommand(rest);
      case 'run-job':
        return await runJobCommand(rest);
      case 'devices':
        return await (await import('./devices-command')).devicesCommand(rest);
      case 'serve':
        return await (await import('./serve-command')).serveCommand(rest);
      case 'demo-models':
        return await demoModelsCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        return command === undefined ? EXIT_CODES.usage : EXIT_CODES.ok;
      case '--version':
        process.stdout.write('alloy 0.1.0\n');
        return EXIT_CODES.ok;
      default:
        throw new UsageError(`unknown command "${command}"; try alloy --help`);
    }
  } catch (error) {
    return reportError(error);
  }
}

function reportError(error: unknown): number {
  if (error instanceof CancelledError) {
    process.stderr.write('alloy: cancelled\n');
    return EXIT_CODES.cancelled;
  }
  if (error instanceof UsageError) {
    process.stderr.write(`alloy: ${error.message}\n`);
    return EXIT_CODES.usage;
  }
  if (error instanceof EngineError) {
    process.stderr.write(`alloy: ${error.message}\n`);
    return error.name === 'RecipeError' ? EXIT_CODES.usage : EXIT_CODES.failed;
  }
  process.stderr.write(`alloy: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
  return EXIT_CODES.failed;
}

function mergeOptionsFrom(flags: Record<string, string | boolean>): MergeOptions {
  const device = flags['cuda'] === true ? 'gpu' : ((flags['device'] as string | undefined) ?? 'auto');
  if (!['auto', 'cpu', 'gpu'].includes(device)) throw new UsageError(`--device must be auto, cpu or gpu, not "${device}"`);
  const [reads, writes] = (['reads', 'writes'] as const).map((flag) => {
    const mode = (flags[flag] as string | undefined) ?? 'auto';
    if (!['auto', 'direct', 'cached'].includes(mode)) throw new UsageError(`--${flag} must be auto, direct or cached, not "${mode}"`);
    return mode as NonNullable<MergeOptions['reads']>;
  }) as [NonNullable<MergeOptions['reads']>, NonNullable<MergeOptions['writes']>];
  const seed = flags['random-seed'];
  if (typeof seed === 'string' && !/^\d+$/.test(seed)) throw new UsageError(`--random-seed must be a whole number, not "${seed}"`);
  return {
    device: device as MergeOptions['device'],
    ...(typeof flags['out-shard-size'] === 'string' ? { outShardSize: parseKmb(flags['out-shard-size']) } : {}),
    ...(typeof flags['memory-budget'] === 'string' ? { memoryBudget: parseKmb(flags['memory-budget']) } : {}),
    ...(typeof seed === 'string' ? { seed: Number(seed) } : {}),
    ...(flags['allow-crimes'] !== undefined ? { allowCrimes: flags['allow-crimes'] === true } : {}),
    ...(flags['unsafe-truncate-embeddings'] === true ? { unsafeTruncateEmbeddings: true } : {}),
    ...(flags['copy-tokenizer'] !== undefined ? { copyTokenizer: flags['copy-tokenizer'] === true } : {}),
    ...(flags['write-model-card'] !== undefined ? { writeModelCard: flags['write-model-card'] === true } : {}),
    ...(flags['overwrite'] !== undefined ? { overwrite: flags['overwrite'] === true } : {}),
    ...(flags['resume'] === true ? { resume: true } : {}),
    ...(reads !== 'auto' ? { reads } : {}),
    ...(writes !== 'auto' ? { writes } : {}),
    ...(typeof flags['model-root'] === 'string' ? { modelRoots: [resolve(flags['model-root'])] } : {}),
    ...(typeof flags['intermediate-dir'] === 'string' ? { intermediateDir: resolve(flags['intermediate-dir']) } : {}),
    ...(typeof flags['lora-merge-cache'] === 'string' ? { loraMergeCache: resolve(flags['lora-merge-cache']) } : {}),
    ...(typeof flags['torch-threads'] === 'string' ? { torchThreads: positiveInteger(flags['torch-threads'], '--torch-threads') } : {}),
  };
}

function positiveInteger(text: string, flag: string): number {
  if (!/^[1-9]\d*$/.test(text)) throw new UsageError(`${flag} must be a whole number of at least 1, not "${text}"`);
  return Number(text);
}

async function readRecipe(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read recipe ${file}`);
  }
}

async function mergeCommand(argv: string[]): Promise<number> {
  const { positionals, flags, warnings } = parseArgs(argv, MERGE_FLAGS);
  if (positionals.length !== 2) throw new UsageError('usage: alloy merge RECIPE.yml OUT_DIR [options]');
  const [recipeFile, outDir] = positionals as [string, string];
  const mode = (flags['progress'] as string | undefined) ?? (flags['quiet'] ? 'none' : 'bar');
  const report = progressPrinter(mode);
  for (const message of warnings) report({ type: 'warning', message });
  const abort = cancelOnSignals();
  const result = await runMerge({
    recipeText: await readRecipe(recipeFile),
    recipeFile,
    outDir,
    options: mergeOptionsFrom(flags),
    signal: abort.signal,
    onProgress: report,
  });
  if (mode === 'bar') process.stderr.write('\n');
  if (!flags['quiet'] && mode !== 'jsonl') process.stdout.write(`${result.outDir}\n`);
  return EXIT_CODES.ok;
}

async function planCommand(argv: string[]): Promise<number> {
  const { positionals, flags } = parseArgs(argv, { ...MERGE_FLAGS, json: { kind: 'boolean', description: 'print the plan as JSON' } });
  if (positionals.length !== 1) throw new UsageError('usage: alloy plan RECIPE.yml [--json]');
  const recipeFile = positionals[0]!;
  const recipeText = await readRecipe(recipeFile);
  if (parseRecipes(recipeText, recipeFile).length > 1) {
    const { lines } = describeStages(recipeText, recipeFile);
    process.stdout.write(`stages, in the order they run:\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
    return EXIT_CODES.ok;
  }
  const plan = await planRecipe({ recipeText, recipeFile, options: mergeOptionsFrom(flags) });
  process.stdout.write(flags['json'] ? JSON.stringify(plan, null, 2) + '\n' : formatPlan(plan));
  return EXIT_CODES.ok;
}

async function runJobCommand(argv: string[]): Promise<number> {
  const { positionals, flags } = parseArgs(argv, { progress: MERGE_FLAGS['progress']! });
  if (positionals.length !== 1) throw new UsageError('usage: alloy run-job JOB.json --progress=jsonl');
  const jobFile = positionals[0]!;
  const text = await readFile(jobFile, 'utf8').catch(() => {
    throw new UsageError(`cannot read job file ${jobFile}`);
  });
  const analysis = isAnalysisJob(text) ? parseAnalysisJobFile(text, jobFile) : undefined;
  const job = analysis ? undefined : parseJobFile(text, jobFile);
  const mode = (flags['progress'] as string | undefined) ?? 'jsonl';
  const report = progressPrinter(mode);
  const abort = cancelOnSignals();
  try {
    if (analysis) await (await import('./analyze-command')).runAnalysisJob(analysis, mode, abort.signal);
    else await runMerge({ ...job!, signal: abort.signal, onProgress: report });
    return EXIT_CODES.ok;
  } catch (error) {
    const code = reportError(error);
    const message = error instanceof Error ? error.message : String(error);
    report({ type: 'error', message, code: code === EXIT_CODES.cancelled ? 'cancelled' : code === EXIT_CODES.usage ? 'recipe' : 'failed' });
    return code;
  }
}

async function demoModelsCommand(argv: string[]): Promise<number> {
  const { makeDemoModels } = await import('../engine/demo/make-demo-models');
  if (argv.length > 1 || argv[0]?.startsWith('-')) throw new UsageError(`usage: alloy demo-models [DIR] (got ${argv.join(' ')})`);
  const dir = resolve(argv[0] ?? 'resources/demo/models');
  for (const written of await makeDemoModels(dir)) process.stdout.write(`${written}\n`);
  return EXIT_CODES.ok;
}

function progressPrinter(mode: string): (event: ProgressEvent) => void {
  if (mode === 'jsonl') return (event) => process.stdout.write(JSON.stringify(event) + '\n');
  if (mode === 'none') return (event) => event.type === 'warning' && process.stderr.write(`warning: ${event.message}\n`);
  if (mode !== 'bar') throw new UsageError(`--progress must be bar, jsonl or none, not "${mode}"`);
  const tty = process.stderr.isTTY;
  return (event) => {
    if (event.type === 'warning') process.stderr.write(`warning: ${event.message}\n`);
    else if (event.type === 'stage' || event.type === 'device') process.stderr.write(`${event.message}\n`);
    else if (event.type === 'tensor' && (tty || event.index === event.total || event.index % 50 === 0)) {
      const pct = ((100 * event.bytesWritten) / Math.max(1, event.totalBytesToWrite)).toFixed(0).padStart(3);
      const line = `${pct}% ${event.index}/${event.total} tensors, ${formatBytes(event.bytesWritten)} written, ${formatBytes(event.rate)}/s, ETA ${Math.ceil(event.etaSeconds)}s`;
      process.stderr.write(tty ? `\r${line.padEnd(90)}` : `${line}\n`);
    }
  };
}
