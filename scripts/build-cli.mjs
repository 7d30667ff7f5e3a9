// Bundles the engine CLI (also the web server) into one ESM file run by plain Node.
import { build } from 'esbuild';

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
