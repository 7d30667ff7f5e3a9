import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { DEMO_MODELS, makeDemoModels } from '../src/main/engine/demo/make-demo-models';

export const DEMO_ROOT = 'resources/demo/models';

/** Builds the CLI bundle the process-level tests run, and the demo models they merge. */
export default async function setup(): Promise<void> {
  execFileSync(process.execPath, ['scripts/build-cli.mjs'], { stdio: 'inherit' });
  if (!DEMO_MODELS.every((m) => existsSync(join(DEMO_ROOT, m.name, 'config.json')))) await makeDemoModels(DEMO_ROOT);
}
