import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { DEMO_MODELS, makeDemoModels } from '../src/main/engine/demo/make-demo-models';

export const DEMO_ROOT = 'resources/demo/models';

/**
 * Builds the CLI bundle the process-level tests run, and the demo models they merge. Every temporary
 * folder of the run (the tests' own, and those of the engines and servers they start) goes under one
 * folder that teardown removes: a test that fails, or makes a folder inside its body, leaks nothing
 * into the machine's temp folder (a CI machine's disk filled with gigabytes of old merges that way).
 */
export default async function setup(): Promise<() => void> {
  execFileSync(process.execPath, ['scripts/build-cli.mjs'], { stdio: 'inherit' });
  if (!DEMO_MODELS.every((m) => existsSync(join(DEMO_ROOT, m.name, 'config.json')))) await makeDemoModels(DEMO_ROOT);
  const runTemp = mkdtempSync(join(tmpdir(), 'alloy-vitest-'));
  process.env.TMPDIR = runTemp;
  return () => rmSync(runTemp, { recursive: true, force: true });
}
