import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { DEMO_MODELS, makeDemoModels } from '../src/main/engine/demo/make-demo-models';

export const DEMO_ROOT = 'resources/demo/models';

/** Builds the CLI bundle the process-level tests run, and the demo models they merge. */
export default async function setup(): Promise<void> {
  await build({
    entryPoints: ['src/main/cli/main.ts'],
    outfile: 'out/cli/alloy.mjs',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  });
  if (!DEMO_MODELS.every((m) => existsSync(join(DEMO_ROOT, m.name, 'config.json')))) await makeDemoModels(DEMO_ROOT);
}
