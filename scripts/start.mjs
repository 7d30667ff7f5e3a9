// `npm start`: the Electron app where Electron's binary exists; otherwise the same app in a browser.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const electronDir = join('node_modules', 'electron');
const pathFile = join(electronDir, 'path.txt');
const binary = existsSync(pathFile) ? join(electronDir, 'dist', readFileSync(pathFile, 'utf8').trim()) : undefined;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (cmd, args) => spawnSync(cmd, args, { stdio: 'inherit' }).status ?? 1;

if (binary && existsSync(binary)) {
  process.exit(run(npm, ['exec', '--', 'electron-vite', 'preview']));
}
console.log("Electron's binary is missing (run `npx install-electron` to get it); opening Alloy in web mode instead.");
const built = run(npm, ['run', 'build']);
if (built !== 0) process.exit(built);
process.exit(run(process.execPath, ['bin/alloy.mjs', 'serve', ...process.argv.slice(2)]));
