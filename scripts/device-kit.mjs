// `npm run device-kit`: prepares what `bench/device-check.sh` needs on a borrowed GPU machine, which
// has no Node, no npm registry and no network: `.device-kit/` (this Node, compressed; the bench and
// the engine bundled into one file; the `webgpu` package's Linux dawn.node) and `.gl/` (the Vulkan
// and EGL loaders as Debian packages). Both are ignored by git and travel as the `run` call's carry.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const KIT = '.device-kit';
const GL = '.gl';
const LIMIT = 64 << 20;

/** `from` compressed with xz into `to`, unless `to` was made from a file of this size and time. */
function xzInto(from, to) {
  const { size, mtimeMs } = statSync(from);
  const stamp = `${to}.from`;
  const made = `${size} ${mtimeMs}`;
  if (existsSync(to) && existsSync(stamp) && execFileSync('cat', [stamp], { encoding: 'utf8' }) === made) return;
  writeFileSync(to, execFileSync('xz', ['-T0', '-6', '-c', from], { maxBuffer: 1 << 30 }));
  writeFileSync(stamp, made);
}

function bundleBench() {
  return build({
    entryPoints: ['bench/bench.ts'],
    outfile: join(KIT, 'bench.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['webgpu'],
    // Bundled CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __alloyRequire } from 'node:module'; const require = __alloyRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}

function copyWebgpu() {
  const from = join('node_modules', 'webgpu');
  const to = join(KIT, 'node_modules', 'webgpu');
  mkdirSync(join(to, 'dist', 'linux-x64'), { recursive: true });
  for (const file of ['package.json', 'index.js', 'LICENSE.md']) copyFileSync(join(from, file), join(to, file));
  xzInto(join(from, 'dist', 'linux-x64', 'dawn.node'), join(to, 'dist', 'linux-x64', 'dawn.node.xz'));
}

/** The loaders the device machine may lack (its README: NVIDIA's driver is mounted, the loaders are not). */
function downloadLoaders() {
  if (existsSync(GL) && readdirSync(GL).some((f) => f.startsWith('libvulkan1'))) return;
  mkdirSync(GL, { recursive: true });
  mkdirSync('/tmp/amd64/partial', { recursive: true });
  const options = ['-oAPT::Architecture=amd64', '-oAPT::Architectures=amd64', '-oDir::State::Lists=/tmp/amd64'];
  execFileSync('apt-get', [...options, 'update'], { stdio: 'ignore' });
  execFileSync('apt-get', [...options, 'download', 'libvulkan1', 'libegl1', 'libglvnd0', 'libopengl0', 'libgl1', 'libglx0', 'libgles2'], { cwd: GL, stdio: 'inherit' });
}

function sizeOf(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}

mkdirSync(KIT, { recursive: true });
rmSync(join(KIT, 'bench.mjs'), { force: true });
await bundleBench();
copyWebgpu();
xzInto(process.execPath, join(KIT, 'node.xz'));
downloadLoaders();
const tracked = execFileSync('git', ['ls-files', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean);
const total = sizeOf(KIT) + sizeOf(GL) + tracked.reduce((sum, f) => sum + (existsSync(f) ? statSync(f).size : 0), 0);
console.log(`${KIT} ${(sizeOf(KIT) / 2 ** 20).toFixed(1)} MiB, ${GL} ${(sizeOf(GL) / 2 ** 20).toFixed(1)} MiB; with the tracked files ${(total / 2 ** 20).toFixed(1)} MiB of the device call's 64 MiB`);
if (total > LIMIT) {
  console.error('over the device call\'s limit: the kit would not travel');
  process.exit(1);
}
console.log(`on the device: run({ command: 'bash bench/device-check.sh', carry: ['${KIT}', '${GL}'], timeout_s: 570 })`);
