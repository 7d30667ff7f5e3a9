import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { shardDigestOfFile } from '../../src/main/engine/execute/shard-digest';
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

/** `direct`: reads and writes past the page cache (odd chains), which must leave the same bits. */
function mergeArgs(outDir: string, resume: boolean, recipe = fixture.recipe, direct = false): string[] {
  const args = ['merge', recipe, outDir, '--model-root', fixture.modelRoot, '--out-shard-size', '200K'];
  return [...args, '--device', 'cpu', '--progress', 'jsonl', ...(resume ? ['--resume'] : []), ...(direct ? ['--reads', 'direct', '--writes', 'direct'] : [])];
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
async function killedAttempt(parent: string, resume: boolean, random: () => number, direct: boolean) {
  const engine: EngineProcess = startEngine(mergeArgs(join(parent, 'merged'), resume, fixture.recipe, direct));
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

async function finishWithResume(parent: string, direct: boolean): Promise<void> {
  const engine = startEngine(mergeArgs(join(parent, 'merged'), true, fixture.recipe, direct));
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
    const outcome = await killedAttempt(parent, kill > 0, random, chain % 2 === 1);
    outcomes.push(outcome);
    if (outcome.left === 'complete') break;
  }
  if (outcomes.at(-1)!.left !== 'complete') await finishWithResume(parent, chain % 2 === 1);
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

  it(`at ${CHAINS * KILLS_PER_CHAIN} random moments (half the chains reading and writing past the page cache) leaves no output or a whole one; --resume then gives the uninterrupted run's bits`, async () => {
    const outcomes = (await Promise.all(Array.from({ length: CHAINS }, (_, chain) => killChain(chain)))).flat();
    const tally = (left: string) => outcomes.filter((o) => o.left === left).length;
    console.log(`kill -9 (seed ${SEED}): ${outcomes.length} kills; left nothing ${tally('nothing')}, a hidden partial folder ${tally('partial')}, the whole output ${tally('complete')}; shards reused by resumes: ${outcomes.map((o) => o.reusedShards).join(',')}`);
    expect(outcomes.filter((o) => o.killed).length).toBeGreaterThanOrEqual(CHAINS * 2);
    expect(outcomes.some((o) => o.reusedShards > 0)).toBe(true);
  });

  it('--resume writes again a finished shard that no longer matches its journal entry, and still gives the uninterrupted bits', async () => {
    const parent = await interruptedHalfway('tampered');
    const journal = (await readFile(join(parent, '.merged.alloy-partial', 'alloy-journal.jsonl'), 'utf8')).trim().split('\n').slice(1).map((l) => JSON.parse(l) as { file: string; digest: string });
    expect(journal.length).toBeGreaterThan(0);
    // Each digest was taken as the shard was written; read back, the file gives it again.
    for (const entry of journal) expect(await shardDigestOfFile(join(parent, '.merged.alloy-partial', entry.file))).toBe(entry.digest);
    const victim = join(parent, '.merged.alloy-partial', journal[0]!.file);
    const bytes = await readFile(victim);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0x40, bytes.length - 1);
    await writeFile(victim, bytes);
    const engine = startEngine(mergeArgs(join(parent, 'merged'), true));
    expect((await engine.exited).code).toBe(0);
    expect(engine.events).toContainEqual({ type: 'warning', message: `${journal[0]!.file} no longer matches its journal entry; writing it again` });
    expect(reusedShardCount(engine.events.find((e) => e.type === 'stage' && e.message.startsWith('resuming:')))).toBe(journal.length - 1);
    expect(await differingFiles(reference, join(parent, 'merged'))).toEqual([]);
  });

  it('--resume after the recipe changed starts over, with a warning, and writes the new recipe\'s model', async () => {
    const parent = await interruptedHalfway('changed');
    const changed = join(root, 'changed.yml');
    await writeFile(changed, (await readFile(fixture.recipe, 'utf8')).replace('weight: 0.7', 'weight: 0.6'));
    const engine = startEngine(mergeArgs(join(parent, 'merged'), true, changed));
    expect((await engine.exited).code).toBe(0);
    expect(engine.events).toContainEqual({ type: 'warning', message: expect.stringMatching(/was for another recipe, models or options; starting from the beginning$/) });
    expect(engine.events.filter((e) => e.type === 'tensor').length).toBe(tensorCount);
    const differing = await differingFiles(reference, join(parent, 'merged'));
    expect(differing.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(0);
  });
});

/** A merge SIGKILLed once half its tensors are written: the hidden folder holds a journal with finished shards. */
async function interruptedHalfway(name: string): Promise<string> {
  const parent = join(root, name);
  await mkdir(parent);
  const engine = startEngine(mergeArgs(join(parent, 'merged'), false));
  await engine.waitFor((e) => e.type === 'tensor' && e.index >= tensorCount / 2);
  engine.child.kill('SIGKILL');
  expect((await engine.exited).signal).toBe('SIGKILL');
  return parent;
}
