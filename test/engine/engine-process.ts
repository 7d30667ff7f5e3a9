import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { splitmix32, writeLlamaModel, type LlamaShape } from '../../src/main/engine/demo/make-demo-models';
import type { ProgressEvent } from '../../src/shared/progress';

export const CLI = resolve('out/cli/alloy.mjs');

/** A running `alloy` CLI process (the bundle global-setup builds), its JSON progress lines collected. */
export interface EngineProcess {
  child: ChildProcess;
  events: ProgressEvent[];
  /** Resolves at exit: the exit code (null when killed by a signal), the signal, and stderr. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** Resolves with the first progress event that matches, or undefined if the process exits first. */
  waitFor(match: (event: ProgressEvent) => boolean): Promise<ProgressEvent | undefined>;
}

/** Starts `node out/cli/alloy.mjs ARGS`, optionally under another program (like `prlimit --fsize=N`). */
export function startEngine(args: string[], wrapper: string[] = []): EngineProcess {
  const command = [...wrapper, process.execPath, CLI, ...args];
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: ProgressEvent[] = [];
  const waiters: { match: (e: ProgressEvent) => boolean; resolve: (e: ProgressEvent | undefined) => void }[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const event = parseEvent(line);
    if (!event) return;
    events.push(event);
    for (const waiter of waiters.filter((w) => w.match(event))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(event);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((done) => {
    child.on('close', (code, signal) => {
      for (const waiter of waiters.splice(0)) waiter.resolve(undefined);
      done({ code, signal, stderr });
    });
  });
  const waitFor = (match: (event: ProgressEvent) => boolean) => {
    const seen = events.find(match);
    if (seen) return Promise.resolve(seen);
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(undefined);
    return new Promise<ProgressEvent | undefined>((resolve) => waiters.push({ match, resolve }));
  };
  return { child, events, exited, waitFor };
}

function parseEvent(line: string): ProgressEvent | undefined {
  try {
    return JSON.parse(line) as ProgressEvent;
  } catch {
    return undefined;
  }
}

/** Every file of a folder by name with its bytes (one level: model folders are flat). */
export async function folderFiles(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) files.set(name, await readFile(join(dir, name)));
  return files;
}

/** The names of the files that differ between two folders (missing on either side included). */
export async function differingFiles(a: string, b: string): Promise<string[]> {
  const [left, right] = await Promise.all([folderFiles(a), folderFiles(b)]);
  const names = new Set([...left.keys(), ...right.keys()]);
  return [...names].filter((name) => !left.get(name) || !right.get(name) || !left.get(name)!.equals(right.get(name)!));
}

/** The tests' random moments, reproducible from the seed they print. */
export const seededRandom = splitmix32;

/** Two generated Llama models (3.3 MB each) under `root/models` and a linear recipe of them; its output is about 3.4 MB. */
export async function writeTwoModelFixture(root: string): Promise<{ recipe: string; modelRoot: string }> {
  const shape: LlamaShape = { hidden: 128, intermediate: 384, layers: 8, heads: 4, kvHeads: 2, vocab: 512 };
  const modelRoot = join(root, 'models');
  await writeLlamaModel(join(modelRoot, 'a'), { name: 'a', seed: 11 }, shape);
  await writeLlamaModel(join(modelRoot, 'b'), { name: 'b', seed: 12, baseSeed: 11 }, shape);
  const recipe = join(root, 'recipe.yml');
  const models = '  - model: a\n    parameters: {weight: 0.7}\n  - model: b\n    parameters: {weight: 0.3}\n';
  await writeFile(recipe, `merge_method: linear\nmodels:\n${models}dtype: float32\nout_dtype: bfloat16\n`);
  return { recipe, modelRoot };
}
