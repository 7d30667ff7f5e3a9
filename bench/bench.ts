// Alloy's merge benchmark (not part of `npm test`):
//
//   npm run bench -- [--params 1e9[,2e9…]] [--methods linear,nearswap,slerp,task_arithmetic,ties,dare_ties]
//                    [--devices cpu,gpu] [--cold] [--no-kernels] [--dir .tmp/bench] [--budget 1G] [--repeat 1]
//                    [--reads auto|direct|cached] [--writes auto|direct|cached] [--out DIR] [--compare]
//                    [--run-timeout SECONDS] [--deadline SECONDS]
//
// Generates bf16 models of a realistic shape (TinyLlama's widths, the depth set by --params: a base
// and two fine-tunes of it), measures the disk's sequential read rate of those files in the same run,
// then runs the real engine (`runMerge`, as `alloy merge --device D` does) once per method and device,
// each in a fresh Node process so that its peak RSS is its own. Prints wall time, GB/s read, the
// ratio to the disk's read rate and peak RSS, plus the backends' kernels alone on data in memory.
// --cold drops the page cache before the disk measurement and each merge (Linux, root); without it
// the models are usually in the page cache and the "disk" rate is the page cache's. --repeat N
// measures the disk and runs each merge N times and reports the medians (a shared machine's disk and
// CPU vary from run to run by a factor of two). --out writes the merges (and the I/O floor's bytes)
// under DIR, e.g. another disk or /dev/shm, so that the model disk serves only the reads. --methods all
// runs every recipe below. --compare keeps each method's outputs until every device has run it and
// compares the others' tensors with the CPU's, in ulps (the GPU backend's promise: f32 the same bits,
// bf16 within 1 ulp). --run-timeout stops a merge that runs longer (reported as failed), so that one
// slow method cannot use up a borrowed machine's time; --deadline starts no merge once that many seconds
// of the bench have passed (the rest are reported as skipped), so the results come back in time.
import { execFileSync, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HostHeap } from '../src/main/engine/compute/host-heap';
import { partialFolderFor } from '../src/main/engine/execute/execute-plan';
import { compareOutputs } from './compare/compare-outputs';
import type { ComputeBackend, HostArray, TaskArithmeticParams } from '../src/main/engine/compute/types';
import type { ProgressEvent } from '../src/shared/progress';
import { ensureModel, numelOf, shapeFor, tensorsOf } from './model';

type Device = 'cpu' | 'gpu';

/** Each method's recipe over the bench models: `base` and two fine-tunes `a`, `b`. */
const RECIPES: Record<string, (base: string, a: string, b: string) => string> = {
  linear: (_, a, b) => `merge_method: linear\nmodels:\n  - model: ${a}\n    parameters: {weight: 0.6}\n  - model: ${b}\n    parameters: {weight: 0.4}\ndtype: float32\nout_dtype: bfloat16\n`,
  nearswap: (base, a) => `merge_method: nearswap\nbase_model: ${base}\nmodels:\n  - model: ${base}\n  - model: ${a}\nparameters: {t: 0.001}\ndtype: float32\nout_dtype: bfloat16\n`,
  // nearswap computed in bf16 (mergekit's default for bf16 models without `dtype`): every step rounded to bf16.
  nearswap_bf16: (base, a) => `merge_method: nearswap\nbase_model: ${base}\nmodels:\n  - model: ${base}\n  - model: ${a}\nparameters: {t: 0.001}\ndtype: bfloat16\nout_dtype: bfloat16\n`,
  slerp: (base, a) => `merge_method: slerp\nbase_model: ${base}\nmodels:\n  - model: ${base}\n  - model: ${a}\nparameters: {t: 0.4}\ndtype: float32\nout_dtype: bfloat16\n`,
  task_arithmetic: (base, a, b) =>
    `merge_method: task_arithmetic\nbase_model: ${base}\nmodels:\n  - model: ${a}\n    parameters: {weight: 0.7}\n  - model: ${b}\n    parameters: {weight: 0.5}\ndtype: float32\nout_dtype: bfloat16\n`,
  ties: (base, a, b) =>
    `merge_method: ties\nbase_model: ${base}\nmodels:\n  - model: ${a}\n    parameters: {weight: 0.7, density: 0.5}\n  - model: ${b}\n    parameters: {weight: 0.5, density: 0.5}\ndtype: float32\nout_dtype: bfloat16\n`,
  dare_ties: (base, a, b) =>
    `merge_method: dare_ties\nbase_model: ${base}\nmodels:\n  - model: ${a}\n    parameters: {weight: 0.7, density: 0.5}\n  - model: ${b}\n    parameters: {weight: 0.5, density: 0.5}\ndtype: float32\nout_dtype: bfloat16\n`,
  karcher: (_, a, b) => `merge_method: karcher\nmodels:\n  - model: ${a}\n  - model: ${b}\ndtype: float32\nout_dtype: bfloat16\n`,
  model_stock: (base, a, b) => `merge_method: model_stock\nbase_model: ${base}\nmodels:\n  - model: ${base}\n  - model: ${a}\n  - model: ${b}\ndtype: float32\nout_dtype: bfloat16\n`,
  // ties and model_stock computed in f16 (`dtype: float16`, Excalibur-7b's): every step rounded to f16.
  ties_f16: (base, a, b) =>
    `merge_method: ties\nbase_model: ${base}\nmodels:\n  - model: ${a}\n    parameters: {weight: 0.7, density: 0.5}\n  - model: ${b}\n    parameters: {weight: 0.5, density: 0.5}\ndtype: float16\nout_dtype: float16\n`,
  model_stock_f16: (base, a, b) => `merge_method: model_stock\nbase_model: ${base}\nmodels:\n  - model: ${base}\n  - model: ${a}\n  - model: ${b}\ndtype: float16\nout_dtype: float16\n`,
  // model_stock computed in bf16 (`dtype: bfloat16`, as its recipes are usually written): every step rounded to bf16.
  model_stock_bf16: (base, a, b) => `merge_method: model_stock\nbase_model: ${base}\nmodels:\n  - model: ${base}\n  - model: ${a}\n  - model: ${b}\ndtype: bfloat16\nout_dtype: bfloat16\n`,
  della: (base, a, b) =>
    `merge_method: della\nbase_model: ${base}\nmodels:\n  - model: ${a}\n    parameters: {weight: 0.7, density: 0.5, epsilon: 0.1}\n  - model: ${b}\n    parameters: {weight: 0.5, density: 0.5, epsilon: 0.1}\ndtype: float32\nout_dtype: bfloat16\n`,
  multislerp: (base, a, b) =>
    `merge_method: multislerp\nbase_model: ${base}\nmodels:\n  - model: ${a}\n    parameters: {weight: 0.6}\n  - model: ${b}\n    parameters: {weight: 0.4}\ndtype: float32\nout_dtype: bfloat16\n`,
  nuslerp: (base, a, b) => `merge_method: nuslerp\nbase_model: ${base}\nmodels:\n  - model: ${a}\n    parameters: {weight: 0.6}\n  - model: ${b}\n    parameters: {weight: 0.4}\ndtype: float32\nout_dtype: bfloat16\n`,
  ram: (base, a, b) => `merge_method: ram\nbase_model: ${base}\nmodels:\n  - model: ${a}\n  - model: ${b}\ndtype: float32\nout_dtype: bfloat16\n`,
  sce: (base, a, b) => `merge_method: sce\nbase_model: ${base}\nmodels:\n  - model: ${a}\n  - model: ${b}\nparameters: {select_topk: 0.5}\ndtype: float32\nout_dtype: bfloat16\n`,
};
const DEFAULT_METHODS = ['linear', 'nearswap', 'slerp', 'task_arithmetic', 'ties', 'dare_ties'];

interface RunSpec {
  method: string;
  device: Device;
  recipeText: string;
  recipeFile: string;
  outDir: string;
  memoryBudget?: number;
  reads?: 'auto' | 'direct' | 'cached';
  writes?: 'auto' | 'direct' | 'cached';
  /** Seconds after which the parent kills the merge. */
  timeout?: number;
}

interface RunResult {
  ok: boolean;
  reason?: string;
  device?: string;
  seconds?: number;
  bytesRead?: number;
  bytesWritten?: number;
  peakRss?: number;
  /** CPU seconds of the merge's process (every thread), in user space and in the kernel. */
  cpu?: { user: number; system: number };
}

function parseArgs(argv: string[]): Record<string, string | true> {
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument "${arg}"`);
    const [name, value] = arg.slice(2).split('=', 2) as [string, string | undefined];
    if (value !== undefined) flags[name] = value;
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) flags[name] = argv[++i]!;
    else flags[name] = true;
  }
  return flags;
}

/** "1e9", "1B", "500M", "0.5e9", "1G" → a number. */
function parseCount(text: string, flag: string): number {
  const m = /^([\d.]+(?:e\d+)?)([kmbg])?$/i.exec(text.trim());
  if (!m) throw new Error(`--${flag}: "${text}" is not a number (1e9, 1B, 500M)`);
  const scale = { k: 1e3, m: 1e6, b: 1e9, g: 2 ** 30 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'b' | 'g'] ?? 1;
  return Number(m[1]) * scale;
}

const gb = (bytes: number) => bytes / 1e9;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
/** `, N runs lo–hi` after a median of several runs; nothing after one. */
const spread = (values: number[]) => (values.length > 1 ? `, ${values.length} runs ${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}` : '');

/** The run of median wall time, with the highest peak RSS of them all; a failed run if any failed. */
function medianRun(runs: RunResult[]): RunResult {
  const failed = runs.find((r) => !r.ok);
  if (failed) return failed;
  const wall = median(runs.map((r) => r.seconds!));
  return { ...runs.find((r) => r.seconds === wall)!, peakRss: Math.max(...runs.map((r) => r.peakRss!)) };
}
const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;

let dropWarned = false;
/** Empties the page cache so the next reads come from the disk (Linux, root). */
function dropCaches(): void {
  try {
    execFileSync('sync');
    execFileSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches'], { stdio: 'ignore' });
  } catch {
    if (!dropWarned) console.warn('--cold: cannot drop the page cache here (Linux, root only); reads may come from memory');
    dropWarned = true;
  }
}

async function modelFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort().map((f) => join(dir, f));
}

/**
 * Sequential read of every file, one positional read of `readBytes` at a time. The engine reads a
 * tensor's chunk (8–64 MiB here) from each input at once; the bench takes the faster of 16 and 64 MiB
 * reads as the rate a merge cannot beat.
 */
async function diskReadRate(files: string[], readBytes: number): Promise<number> {
  const buffer = Buffer.allocUnsafe(readBytes);
  let bytes = 0;
  const started = performance.now();
  for (const file of files) {
    const handle = await open(file, 'r');
    try {
      for (let position = 0; ; ) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        bytes += bytesRead;
      }
    } finally {
      await handle.close();
    }
  }
  return bytes / ((performance.now() - started) / 1000);
}

/** Sequential write of `bytes` in 64 MiB writes, then fsync, as the engine writes and commits a shard. */
async function diskWriteRate(dir: string, bytes: number): Promise<number> {
  const file = join(dir, 'write-test.bin');
  const buffer = Buffer.alloc(64 << 20, 0x5a);
  const started = performance.now();
  const handle = await open(file, 'w');
  try {
    for (let position = 0; position < bytes; position += buffer.length) await handle.write(buffer, 0, buffer.length, position);
    await handle.sync();
  } finally {
    await handle.close();
  }
  const rate = bytes / ((performance.now() - started) / 1000);
  await rm(file, { force: true });
  return rate;
}

/**
 * The I/O floor of a merge: its input files read front to back (each its own stream) while
 * `outBytes` are written and fsynced, all at once, past the page cache where the system allows
 * (8 MiB reads and writes, four in flight in each stream): the seconds a merge of those bytes cannot beat on
 * this disk, which shares its bandwidth between the reads and the writes. Seconds.
 */
async function ioFloor(files: string[], outBytes: number, dir: string): Promise<number> {
  const piece = 8 << 20;
  const depth = 4;
  const direct = constants.O_DIRECT ?? 0;
  // Page-aligned memory, as direct I/O needs (the engine's buffer pool takes its own from a HostHeap too).
  const memory = HostHeap.ownMemory().allocate((files.length + 1) * depth * piece);
  const buffer = (stream: number, k: number) => memory.subarray((stream * depth + (k % depth)) * piece, (stream * depth + (k % depth) + 1) * piece);
  /** `depth` operations in flight over `count` pieces. */
  const stream = async (count: number, op: (k: number) => Promise<unknown>) => {
    const inFlight = new Set<Promise<unknown>>();
    for (let k = 0; k < count; k++) {
      const p: Promise<unknown> = op(k).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= depth) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  };
  const read = async (file: string, index: number) => {
    const handle = await open(file, constants.O_RDONLY | direct).catch(() => open(file, 'r'));
    try {
      const { size } = await handle.stat();
      await stream(Math.ceil(size / piece), (k) => handle.read(buffer(index, k), 0, piece, k * piece));
    } finally {
      await handle.close();
    }
  };
  const write = async () => {
    const file = join(dir, 'io-floor.bin');
    const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | direct).catch(() => open(file, 'w'));
    try {
      await stream(Math.ceil(outBytes / piece), (k) => handle.write(buffer(files.length, k), 0, piece, k * piece));
      await handle.sync();
    } finally {
      await handle.close();
      await rm(file, { force: true });
    }
  };
  const started = performance.now();
  await Promise.all([...files.map(read), write()]);
  return (performance.now() - started) / 1000;
}

const DARE_TIES: TaskArithmeticParams = {
  start: 0,
  weights: [0.7, 0.5],
  scales: [1.9, 2.1],
  masks: [{ kind: 'random', key: 1, density: 0.5 }, { kind: 'random', key: 2, density: 0.5 }],
  consensus: true,
  normalize: true,
  divisor: 1.2,
  lambda: 1,
  step: 'F32',
};

const TIES: TaskArithmeticParams = {
  ...DARE_TIES,
  scales: [1, 1],
  masks: [
    { kind: 'magnitude', keep: { bits: 0x3c000000, before: 1 << 20 } },
    { kind: 'magnitude', keep: { bits: 0x3b800000, before: Infinity } },
  ],
};

/** Each backend's kernels alone on 32 M bf16 elements in memory: what the device adds when I/O is free. */
async function kernelRates(devices: Device[]): Promise<string[]> {
  const n = 32 << 20;
  const a = new Uint16Array(n);
  const b = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = 0x3c00 + ((i * 7919) & 0x7ff);
    b[i] = 0x3c00 + ((i * 104729) & 0x7ff);
  }
  const host = (data: Uint16Array): HostArray => ({ dtype: 'BF16', data });
  const out = new Uint16Array(n);
  const lines: string[] = [];
  const { selectBackend } = await import('../src/main/engine/compute/select-backend');
  const { ReferenceBackend } = await import('../src/main/engine/compute/reference');
  const backends: [string, ComputeBackend][] = [['reference', new ReferenceBackend()]];
  for (const device of devices) backends.push([device, (await selectBackend({ device })).backend]);
  for (const [name, backend] of backends) {
    const size = name === 'reference' ? n / 8 : n;
    // As the engine hands them over: in the backend's own memory where it has some (the buffer pool's).
    const pinned = (data: Uint16Array): Uint16Array => {
      if (!backend.allocateHost) return data.subarray(0, size);
      const bytes = backend.allocateHost(size * 2);
      bytes.set(new Uint8Array(data.buffer, 0, size * 2));
      return new Uint16Array(bytes.buffer, bytes.byteOffset, size);
    };
    const [ha, hb, ho] = [pinned(a), pinned(b), pinned(out)].map(host) as [HostArray, HostArray, HostArray];
    const counts = [new Float64Array(65536), new Float64Array(65536)];
    const calls: [string, () => Promise<unknown>, number][] = [
      ['linear', () => backend.linear([ha, hb], [0.6, 0.4], true, ho), 2],
      ['nearswap', () => backend.nearswap(ha, hb, 0.001, ho), 2],
      ['blend2', () => backend.blend2(0.6, ha, 0.4, hb, ho), 2],
      // dare_ties of two fine-tunes (the same two arrays as base and model twice): masks, weights, sign election, normalize.
      ['dare_ties', () => backend.taskArithmetic(ha, [hb, ha], DARE_TIES, ho), 3],
      // ties' last pass: magnitude thresholds, with ties cut part way.
      ['ties', () => backend.taskArithmetic(ha, [hb, ha], TIES, ho), 3],
      // ties' first rank pass: the radix histogram of |δ| of two models.
      ['histogram', () => backend.deltaHistogram(ha, [hb, ha], { step: 'F32', prefixes: [undefined, undefined] }, counts), 3],
      // dare's L1 rescale sums (f64, in index order) of two models.
      ['l1 sums', () => backend.deltaSums(ha, [hb, ha], { step: 'F32', start: 0, masks: DARE_TIES.masks }, new Float64Array(4)), 3],
      // karcher's and nuslerp's Gram sums (f64, in index order) of three models: six chains.
      ['gram', () => backend.gramSums([ha, hb, ha], new Float64Array(9)), 3],
    ];
    for (const [kernel, run, inputs] of calls) {
      await run();
      const started = performance.now();
      for (let r = 0; r < 3; r++) await run();
      const seconds = (performance.now() - started) / 1000 / 3;
      lines.push(`  ${name.padEnd(9)} ${kernel.padEnd(9)} ${(size / seconds / 1e9).toFixed(2).padStart(6)} G elements/s ${gb((size * 2 * inputs) / seconds).toFixed(2).padStart(6)} GB/s in   (${backend.description})`);
    }
    await backend.dispose();
  }
  return lines;
}

/** Runs one merge in a fresh Node process and returns what it measured. */
function runChild(spec: RunSpec): Promise<RunResult> {
  const script = fileURLToPath(import.meta.url);
  return new Promise((resolvePromise) => {
    // From source through tsx; the device kit's bundle (bench.mjs) runs as it is.
    const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const child = spawn(process.execPath, [...loader, script, '--child', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = spec.timeout ? setTimeout(() => child.kill('SIGKILL'), spec.timeout * 1000) : undefined;
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // dawn prints its notes (no Vulkan loader, reduced limits) on stderr: kept for a failure only.
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL' && spec.timeout) {
        void rm(partialFolderFor(spec.outDir), { recursive: true, force: true }).then(() => resolvePromise({ ok: false, reason: `stopped after --run-timeout ${spec.timeout} s` }));
        return;
      }
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolvePromise(JSON.parse(line) as RunResult);
      } catch {
        resolvePromise({ ok: false, reason: `child exited with ${code}: ${(out + err).trim().slice(-400)}` });
      }
    });
  });
}

/** The child: one merge through the engine, with its device, wall time, bytes and peak RSS. */
async function child(spec: RunSpec): Promise<RunResult> {
  // Sampled, not getrusage's maximum, which is inherited across exec from the parent.
  let peakRss = process.memoryUsage.rss();
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), 20);
  try {
    await rm(spec.outDir, { recursive: true, force: true });
    const { runMerge } = await import('../src/main/engine/run-merge');
    let device = '';
    let bytesRead = 0;
    let bytesWritten = 0;
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    await runMerge({
      recipeText: spec.recipeText,
      recipeFile: spec.recipeFile,
      outDir: spec.outDir,
      options: { device: spec.device, copyTokenizer: false, writeModelCard: false, overwrite: true, ...(spec.memoryBudget ? { memoryBudget: spec.memoryBudget } : {}), ...(spec.reads ? { reads: spec.reads } : {}), ...(spec.writes ? { writes: spec.writes } : {}) },
      onProgress: (event: ProgressEvent) => {
        if (event.type === 'device') device = event.description;
        if (event.type === 'warning') process.stderr.write(`warning: ${event.message}\n`);
        if (event.type === 'tensor') ({ bytesRead, bytesWritten } = event);
      },
    });
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    return { ok: true, device, seconds, bytesRead, bytesWritten, peakRss: Math.max(peakRss, process.memoryUsage.rss()), cpu: { user: cpu.user / 1e6, system: cpu.system / 1e6 } };
  } catch (error) {
    return { ok: false, reason: (error as Error).stack ?? String(error) };
  } finally {
    clearInterval(sampler);
  }
}

const paramsOf = (shape: ReturnType<typeof shapeFor>): number => tensorsOf(shape).reduce((sum, t) => sum + numelOf(t), 0);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r, i) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |${i === 0 ? `\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|` : ''}`).join('\n');
}

/** The journal's shard digest (XXH3-128, on the main thread as the engine runs it) on 1 GiB in memory. */
async function digestRate(): Promise<string> {
  const { ShardHasher } = await import('../src/main/engine/execute/shard-digest');
  const bytes = new Uint8Array(1 << 30);
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = i >>> 12;
  const hasher = new ShardHasher();
  const started = performance.now();
  for (let at = 0; at < bytes.length; at += 64 << 20) hasher.update(bytes.subarray(at, at + (64 << 20)));
  hasher.digest();
  return `${gb(bytes.length / ((performance.now() - started) / 1000)).toFixed(2)} GB/s`;
}

/** One device's output against the CPU's: a table cell, and a line with the details where they differ. */
async function compareWithCpu(kept: Map<Device, string>, device: Device, what: string): Promise<string> {
  const [cpuOut, deviceOut] = [kept.get('cpu'), kept.get(device)];
  if (!cpuOut || !deviceOut) return 'not run';
  // The GPU backend's promise: the CPU's bits (bf16 outputs within 1 ulp at worst).
  const equality = await compareOutputs(cpuOut, deviceOut, 'exact');
  const cell = equality.within ? 'same bits' : `≤ ${equality.worstUlps} ulp (${(100 * equality.offFraction).toPrecision(2)} % > 1 ulp)`;
  const where = equality.within ? '' : `; the worst in ${equality.worstTensor}${equality.note ? `, ${equality.note}` : ''}`;
  console.log(`${what} --device ${device} against --device cpu: ${equality.tensors} tensors, ${cell}${where}`);
  return cell;
}

async function main(): Promise<void> {
  const flags = parseArgs(process.argv.slice(2));
  if (typeof flags['child'] === 'string') {
    const result = await child(JSON.parse(flags['child']) as RunSpec);
    process.stdout.write(JSON.stringify(result) + '\n');
    process.exit(0);
  }
  const sizes = String(flags['params'] ?? '1e9').split(',').map((p) => parseCount(p, 'params'));
  const methods = flags['methods'] === 'all' ? Object.keys(RECIPES) : typeof flags['methods'] === 'string' ? flags['methods'].split(',') : DEFAULT_METHODS;
  for (const m of methods) if (!RECIPES[m]) throw new Error(`--methods: no bench recipe for "${m}" (${Object.keys(RECIPES).join(', ')})`);
  const devices = (typeof flags['devices'] === 'string' ? flags['devices'].split(',') : ['cpu', 'gpu']) as Device[];
  const cold = flags['cold'] === true;
  const root = resolve(typeof flags['dir'] === 'string' ? flags['dir'] : '.tmp/bench');
  const memoryBudget = typeof flags['budget'] === 'string' ? parseCount(flags['budget'], 'budget') : undefined;
  const [reads, writes] = (['reads', 'writes'] as const).map((flag) => {
    const mode = typeof flags[flag] === 'string' ? (flags[flag] as RunSpec['reads']) : undefined;
    if (mode && !['auto', 'direct', 'cached'].includes(mode)) throw new Error(`--${flag} must be auto, direct or cached, not "${mode}"`);
    return mode;
  });
  const outRoot = typeof flags['out'] === 'string' ? resolve(flags['out']) : undefined;
  const timeout = typeof flags['run-timeout'] === 'string' ? parseCount(flags['run-timeout'], 'run-timeout') : undefined;
  const deadline = typeof flags['deadline'] === 'string' ? parseCount(flags['deadline'], 'deadline') : undefined;
  const benchStarted = performance.now();
  const compare = flags['compare'] === true;
  if (compare && !devices.includes('cpu')) throw new Error('--compare compares each device with the CPU: add cpu to --devices');
  const repeat = typeof flags['repeat'] === 'string' ? Math.max(1, Math.round(parseCount(flags['repeat'], 'repeat'))) : 1;

  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${process.platform}`);
  console.log(`reads: ${cold ? 'cold (page cache dropped before each measurement)' : 'warm (whatever the page cache holds)'}; the engine's --reads ${reads ?? 'auto'} --writes ${writes ?? 'auto'}; merges written ${outRoot ? `under ${outRoot}` : 'beside the models'}\n`);
  if (flags['no-kernels'] !== true) {
    console.log('kernels alone, 32 M bf16 elements in memory (4 M for the reference), bf16 out; GB/s counts the bf16 inputs read (2, or 3 for the task-vector kernels):');
    for (const line of await kernelRates(devices)) console.log(line);
    console.log('');
    console.log(`the journal's shard digest (XXH3-128) on 1 GiB in memory, as the output is written: ${await digestRate()}`);
    console.log('');
  }
  const rows: string[][] = [['params', 'method', 'device', 'computed on', 'wall s', 'CPU s user+sys', 'read GB/s', '× disk read', '× I/O floor', 'peak RSS', ...(compare ? ['against the CPU'] : [])]];
  for (const params of sizes) {
    const shape = shapeFor(params);
    const label = `${(paramsOf(shape) / 1e9).toFixed(2)}B`;
    const dir = join(root, label);
    const models = { base: join(dir, 'base'), a: join(dir, 'tune-a'), b: join(dir, 'tune-b') };
    for (const [path, tune] of [[models.base, 0], [models.a, 1], [models.b, 2]] as const) {
      const started = performance.now();
      const { bytes, created } = await ensureModel(path, shape, 1, tune);
      if (created) console.log(`generated ${path}: ${shape.layers} layers, ${(bytes / 2 / 1e9).toFixed(2)} B params bf16 (${gb(bytes).toFixed(2)} GB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    const files = [...(await modelFiles(models.base)), ...(await modelFiles(models.a)), ...(await modelFiles(models.b))];
    const readRates: number[] = [];
    const writeRates: number[] = [];
    for (let r = 0; r < repeat; r++) {
      const rates: number[] = [];
      for (const readBytes of [16 << 20, 64 << 20]) {
        if (cold) dropCaches();
        rates.push(await diskReadRate(files, readBytes));
      }
      readRates.push(Math.max(...rates));
      writeRates.push(await diskWriteRate(dir, 1 << 30));
    }
    const disk = median(readRates);
    const write = median(writeRates);
    console.log(`${label}: sequential read of the three models ${gb(disk).toFixed(2)} GB/s (the faster of 16 and 64 MiB positional reads${cold ? ', cold' : ', warm'}${spread(readRates.map(gb))}); sequential write + fsync ${gb(write).toFixed(2)} GB/s${spread(writeRates.map(gb))}`);
    const recipeFile = join(dir, 'bench.yml');
    const floors = new Map<string, number>();
    await mkdir(dir, { recursive: true });
    const outParent = outRoot ?? dir;
    await mkdir(outParent, { recursive: true });
    for (const method of methods) {
      const recipeText = RECIPES[method]!(models.base, models.a, models.b);
      await writeFile(join(dir, `${method}.yml`), recipeText);
      /** Each device's output, kept for --compare until the method has run on them all. */
      const kept = new Map<Device, string>();
      const methodRows: [Device, string[]][] = [];
      for (const device of devices) {
        const outDir = join(outParent, `out-${method}-${device}`);
        const runs: RunResult[] = [];
        for (let r = 0; r < repeat; r++) {
          if (deadline && (performance.now() - benchStarted) / 1000 > deadline) {
            runs.push({ ok: false, reason: `skipped: past --deadline ${deadline} s` });
            break;
          }
          if (cold) dropCaches();
          runs.push(await runChild({ method, device, recipeText, recipeFile, outDir, ...(timeout ? { timeout } : {}), ...(memoryBudget ? { memoryBudget } : {}), ...(reads ? { reads } : {}), ...(writes ? { writes } : {}) }));
          const keep = compare && runs.at(-1)!.ok && r === repeat - 1;
          if (keep) kept.set(device, outDir);
          else await rm(outDir, { recursive: true, force: true });
          if (!runs.at(-1)!.ok) break;
        }
        const result = medianRun(runs);
        if (!result.ok) {
          console.log(`${label} ${method} --device ${device}: FAILED: ${result.reason}`);
          methodRows.push([device, [label, method, device, '—', '—', '—', '—', '—', '—', '—']]);
          continue;
        }
        const rate = result.bytesRead! / result.seconds!;
        console.log(`${label} ${method} --device ${device}: ${result.seconds!.toFixed(1)} s${spread(runs.map((r) => r.seconds!))}, ${gb(rate).toFixed(2)} GB/s read, peak RSS ${mib(result.peakRss!)} (${result.device})`);
        // The same files read while the same bytes are written, with no merge: the time it cannot beat.
        const inputs = [models.base, models.a, models.b].filter((m) => recipeText.includes(`${m}\n`));
        const key = `${inputs.join()}:${result.bytesWritten}`;
        if (!floors.has(key)) {
          const times: number[] = [];
          const inputFiles = (await Promise.all(inputs.map(modelFiles))).flat();
          for (let r = 0; r < repeat; r++) {
            if (cold) dropCaches();
            times.push(await ioFloor(inputFiles, result.bytesWritten!, outParent));
          }
          floors.set(key, median(times));
          console.log(`${label}: I/O floor of ${inputs.length} models read while ${gb(result.bytesWritten!).toFixed(2)} GB are written: ${median(times).toFixed(2)} s${spread(times)}`);
        }
        const floor = floors.get(key)!;
        methodRows.push([device, [label, method, device, result.device!.replace(/ \(.*$/, '').replace(/ — .*$/, ''), result.seconds!.toFixed(1), `${result.cpu!.user.toFixed(1)}+${result.cpu!.system.toFixed(1)}`, gb(rate).toFixed(2), (rate / disk).toFixed(2), (floor / result.seconds!).toFixed(2), mib(result.peakRss!)]]);
      }
      for (const [device, row] of methodRows) {
        if (compare) row.push(device === 'cpu' ? '—' : await compareWithCpu(kept, device, `${label} ${method}`));
        rows.push(row);
      }
      await Promise.all([...kept.values()].map((out) => rm(out, { recursive: true, force: true })));
    }
  }
  const text = table(rows);
  console.log(`\n${text}`);
  await writeFile(join(root, 'last-run.md'), text + '\n');
}

await main();
