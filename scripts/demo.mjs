// `npm run demo`: builds the CLI, writes the tiny demo models, merges them with the bundled recipe.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

const node = process.execPath;
const run = (args) => execFileSync(node, args, { stdio: 'inherit' });

run(['scripts/build-cli.mjs']);
if (!['alloy-demo-base', 'alloy-demo-chat', 'alloy-demo-code'].every((m) => existsSync(`resources/demo/models/${m}/config.json`))) {
  run(['bin/alloy.mjs', 'demo-models', 'resources/demo/models']);
}
const out = resolve('out/demo-merge');
run(['bin/alloy.mjs', 'merge', 'resources/demo/linear.yml', out, '--model-root', 'resources/demo/models', '--out-shard-size', '200K', '--overwrite']);
console.log(`\nThe merged demo model is in ${out}`);
