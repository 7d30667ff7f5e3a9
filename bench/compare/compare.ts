// Alloy against mergekit, side by side: `npm run compare -- [RECIPE.yml ...] [--params 1e9] [--rounds 2]
// [--dir .tmp/compare] [--mergekit DIR_WITH_MERGEKIT_BINARIES]`.
//
// Builds (or reuses) bf16 models of a realistic shape, `base` and fine-tunes `ft1`..`ft3`, runs each
// recipe (default: every bench/recipes/*.yml) through mergekit and through Alloy alternately (A B A B),
// and prints per recipe: how far Alloy's tensors are from mergekit's against the recipe's bar, the wall
// times and their ratio (medians), and peak RSS. A recipe's first line may say `# bar: exact |
// bf16-1ulp | stats` (default bf16-1ulp). Needs Python's mergekit (`pip install mergekit`); CI does not.
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { compareOutputs, type Bar } from './compare-outputs';
import { ensureModel, shapeForParams } from './realistic-models';
import { runTimed, type TimedRun } from './run-timed';

const ROOT = resolve(import.meta.dirname, '..', '..');

interface Options {
  recipes: string[];
  params: number;
  rounds: number;
  dir: string;
  mergekitBin: string;
}

function parseOptions(argv: string[]): Options {
  const flags = new Map<string, string>();
  const recipes: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i]!.startsWith('--')) flags.set(argv[i]!.slice(2), argv[++i] ?? '');
    else recipes.push(resolve(argv[i]!));
  }
  return {
    recipes,
    params: Number(flags.get('params') ?? 1e9),
    rounds: Number(flags.get('rounds') ?? 2),
    dir: resolve(flags.get('dir') ?? join(ROOT, '.tmp', 'compare')),
    mergekitBin: flags.get('mergekit') ?? process.env['MERGEKIT_BIN'] ?? '',
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const recipes = options.recipes.length > 0 ? options.recipes : (await readdir(join(ROOT, 'bench', 'recipes'))).filter((f) => f.endsWith('.yml')).sort().map((f) => join(ROOT, 'bench', 'recipes', f));
  const shape = shapeForParams(options.params);
  const models = join(options.dir, `models-${shape.layers}L`);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${gb(totalmem())} RAM`);
  console.log(`models: ${shape.layers} layers of TinyLlama's widths, bf16, in ${models}`);
  await ensureModel(join(models, 'base'), shape, 1);
  for (let i = 1; i <= 3; i++) await ensureModel(join(models, `ft${i}`), shape, 1, i + 1);
  const alloy = join(ROOT, 'bin', 'alloy.mjs');
  for (const recipe of recipes) {
    const name = basename(recipe, '.yml');
    const text = await readFile(recipe, 'utf8');
    const bar = (/^# bar: (\S+)/.exec(text)?.[1] ?? 'bf16-1ulp') as Bar;
    const multi = /^---\s*$/m.test(text.trim());
    // Absolute paths: mergekit's model card asks the Hub about any model name with fewer than two slashes.
    await writeFile(join(models, `${name}.yml`), text.replace(/\b(model|base_model):(\s+)(base|ft[1-3])\b/g, `$1:$2${models}/$3`));
    const outs = { mergekit: join(options.dir, 'out', `${name}-mergekit`), alloy: join(options.dir, 'out', `${name}-alloy`) };
    const runs: { mergekit: TimedRun[]; alloy: TimedRun[] } = { mergekit: [], alloy: [] };
    for (let round = 0; round < options.rounds; round++) {
      for (const who of ['mergekit', 'alloy'] as const) {
        await rm(outs[who], { recursive: true, force: true });
        await rm(join(options.dir, 'work', who), { recursive: true, force: true });
        const run =
          who === 'mergekit'
            ? multi
              ? await runTimed(join(options.mergekitBin, 'mergekit-multi'), [`${name}.yml`, '--out-path', outs.mergekit, '-I', join(options.dir, 'work', who), '--random-seed', '42'], models)
              : await runTimed(join(options.mergekitBin, 'mergekit-yaml'), [`${name}.yml`, outs.mergekit, '--out-shard-size', '1B', '--random-seed', '42'], models)
            : await runTimed(process.execPath, [alloy, 'merge', `${name}.yml`, outs.alloy, '--out-shard-size', '1B', '--random-seed', '42', '--progress', 'none', '--intermediate-dir', join(options.dir, 'work', who)], models);
        if (run.code !== 0) throw new Error(`${who} failed on ${name}:\n${run.output}`);
        runs[who].push(run);
      }
    }
    const base = /base_model:\s*(base|ft[1-3])\b/.exec(text)?.[1];
    const equality = await compareOutputs(outs.mergekit, outs.alloy, bar, base ? join(models, base) : undefined);
    const [tm, ta] = [median(runs.mergekit.map((r) => r.seconds)), median(runs.alloy.map((r) => r.seconds))];
    const [rm_, ra] = [Math.max(...runs.mergekit.map((r) => r.peakRss)), Math.max(...runs.alloy.map((r) => r.peakRss))];
    console.log(
      `${name.padEnd(16)} ${equality.within ? 'SAME' : 'DIFF'} (${bar}; worst ${equality.worstUlps} ulp${equality.worstTensor ? ` in ${equality.worstTensor}` : ''}; ${(equality.offFraction * 100).toPrecision(2)} % of elements > 1 ulp${equality.note ? `; ${equality.note}` : ''})` +
        `  time mergekit ${tm.toFixed(1)} s, Alloy ${ta.toFixed(1)} s, ×${(tm / ta).toFixed(2)}` +
        `  peak RSS mergekit ${gb(rm_)}, Alloy ${gb(ra)}, ×${(rm_ / ra).toFixed(2)}`,
    );
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
