// npm run fuzz -- [--runs N] [--only TEXT] [--seed S]: the hostile-input properties of the test suite,
// N generated cases each (default 20,000), printing how many cases ran and any counterexample.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { makeDemoModels } from '../src/main/engine/demo/make-demo-models';
import { DEMO_MODELS, HOSTILE_PROPERTIES, type HostileProperty } from '../test/fuzz/properties';

interface FuzzOptions {
  runs: number;
  only?: string;
  seed?: number;
}

function parseOptions(argv: string[]): FuzzOptions {
  const options: FuzzOptions = { runs: 20_000 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = inline ?? argv[++i];
    if (flag === '--runs' && /^[1-9]\d*$/.test(value ?? '')) options.runs = Number(value);
    else if (flag === '--only' && value) options.only = value;
    else if (flag === '--seed' && /^-?\d+$/.test(value ?? '')) options.seed = Number(value);
    else throw new Error(`usage: npm run fuzz -- [--runs N] [--only TEXT] [--seed S] (got ${argv[i]})`);
  }
  return options;
}

async function fuzzOne(property: HostileProperty, options: FuzzOptions): Promise<{ cases: number; failed: boolean }> {
  const scratch = await mkdtemp(join(tmpdir(), 'alloy-fuzz-'));
  const started = performance.now();
  try {
    const details = await fc.check(await property.make(scratch), { numRuns: options.runs, ...(options.seed !== undefined ? { seed: options.seed } : {}) });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`${details.failed ? 'FAIL' : 'ok  '} ${details.numRuns.toLocaleString('en')} cases in ${seconds} s: ${property.name}`);
    if (details.failed) console.log(`     seed ${details.seed}, path ${details.counterexamplePath}\n     counterexample: ${fc.stringify(details.counterexample)}\n     ${String(details.errorInstance)}`);
    return { cases: details.numRuns, failed: details.failed };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  if (!existsSync(join(DEMO_MODELS, 'alloy-demo-chat', 'config.json'))) await makeDemoModels(DEMO_MODELS);
  const properties = HOSTILE_PROPERTIES.filter((p) => !options.only || p.name.includes(options.only));
  let cases = 0;
  let failures = 0;
  for (const property of properties) {
    const result = await fuzzOne(property, options);
    cases += result.cases;
    failures += result.failed ? 1 : 0;
  }
  console.log(`${cases.toLocaleString('en')} cases over ${properties.length} properties, ${failures} failed`);
  return failures ? 1 : 0;
}

process.exitCode = await main();
