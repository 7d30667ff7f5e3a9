import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ProgressEvent } from '../../src/shared/progress';
import { differingFiles, seededRandom, startEngine, writeTwoModelFixture, type EngineProcess } from './engine-process';
import { tempDir } from '../helpers';

const CHAINS = 4;
const KILLS_PER_CHAIN = 3;
const SEED = 20_251_124;

let root: string;
let fixture: { recipe: string; modelRoot: string };
let reference: string;
let tensorCount: number;

function mergeArgs(outDir: string, resume: boolean): string[] {
  const args = ['merge', fixture.recipe, outDir, '--model-root', fixture.modelRoot, '--out-shard-size', '200K'];
  return [...args, '--device', 'cpu', '--progress', 'jsonl', ...(resume ? ['--resume'] : [])];
}

/** What a kill may leave beside the target: nothing, the hidden build folder, or the whole output equal to the reference. */
async function expectNothingOrWholeOutput(parent: string): Promise<'nothing' | 'partial' | 'complete'> {
  const entries = await readdir(parent);
  expect(entries.every((e) => e === 'merged' || e === '.merged.alloy-partial')).toBe(true);
  if (entries.includes('merged')) {
    expect(await differingFiles(reference, join(parent, 'merged'))).toEqual([]);
    return 'complete';
  }
  return entries.length ? 'partial' : 'nothing';
}

/**
 * A random moment of the run: after its first event (planning, a resume's checks), after the n-th
 * tensor (shards being written, flushed, journaled), or after finalizing starts (side files, fsync,
 * rename), each followed by a random delay of up to 25 ms.
 */
async function waitForRandomMoment(engine: EngineProcess, random: () => number): Promise<void> {
  const anchor = Math.floor(random() * (tensorCount + 4));
  if (anchor === 0) await engine.waitFor(() => true);
  else if (anchor <= tensorCount) await engine.waitFor((e) => (e.type === 'tensor' && e.index >= anchor) || e.type === 'stage' && e.stage === 'finalize');
  else await engine.waitFor((e) => e.type === 'stage' && e.stage === 'finalize');
  await new Promise((r) => setTimeout(r, random() * 25));
}

/** Runs the merge (resuming after the first attempt), SIGKILLs it at a random moment, and checks what is left. */
async function killedAttempt(parent: string, resume: boolean, random: () => number) {
  const engine: EngineProcess = startEngine(mergeArgs(join(parent, 'merged'), resume));
  await waitForRandomMoment(engine, random);
  engine.child.kill('SIGKILL');
  const exit = await engine.exited;
  const resumedFrom = engine.events.find((e) => e.type === 'stage' && e.message.startsWith('resuming:'));
  return { killed: exit.signal === 'SIGKILL', left: await expectNothingOrWholeOutput(parent), reusedShards: reusedShardCount(resumedFrom) };
}

function reusedShardCount(event: ProgressEvent | undefined): number {
  const message = event && 'message' in event ? event.message : '';
  return Number(/resuming: (\d+)/.exec(message)?.[1] ?? 0);
}

async function finishWithResume(parent: string): Promise<void> {
  const engine = startEngine(mergeArgs(join(parent, 'merged'), true));
  const exit = await engine.exited;
  expect(exit.stderr).toBe('');
  expect(exit.code).toBe(0);
}

async function killChain(chain: number) {
  const parent = join(root, `chain-${chain}`);
  await mkdir(parent);
  const random = seededRandom(SEED + chain);
  const outcomes = [];
  for (let kill = 0; kill < KILLS_PER_CHAIN; kill++) {
    const outcome = await killedAttempt(parent, kill > 0, random);
    outcomes.push(outcome);
    if (outcome.left === 'complete') break;
  }
  if (outcomes.at(-1)!.left !== 'complete') await finishWithResume(parent);
  expect(await differingFiles(reference, join(parent, 'merged'))).toEqual([]);
  return outcomes;
}

describe('crash safety: kill -9 of the engine process', () => {
  beforeAll(async () => {
    root = await tempDir('alloy-kill-');
    fixture = await writeTwoModelFixture(root);
    await mkdir(join(root, 'reference'));
    reference = join(root, 'reference', 'merged');
    const engine = startEngine(mergeArgs(reference, false));
    expect((await engine.exited).code).toBe(0);
    tensorCount = engine.events.filter((e) => e.type === 'tensor').length;
    expect((await readdir(reference)).filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThanOrEqual(12);
  });

  it(`at ${CHAINS * KILLS_PER_CHAIN} random moments leaves no output or a whole one; --resume then gives the uninterrupted run's bits`, async () => {
    const outcomes = (await Promise.all(Array.from({ length: CHAINS }, (_, chain) => killChain(chain)))).flat();
    const tally = (left: string) => outcomes.filter((o) => o.left === left).length;
    console.log(`kill -9 (seed ${SEED}): ${outcomes.length} kills; left nothing ${tally('nothing')}, a hidden partial folder ${tally('partial')}, the whole output ${tally('complete')}; shards reused by resumes: ${outcomes.map((o) => o.reusedShards).join(',')}`);
    expect(outcomes.filter((o) => o.killed).length).toBeGreaterThanOrEqual(CHAINS * 2);
    expect(outcomes.some((o) => o.reusedShards > 0)).toBe(true);
  });
});
