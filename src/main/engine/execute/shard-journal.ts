import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { MergePlan } from '../plan/types';
import { shardDigestOfFile, ShardHasher } from './shard-digest';

/** The journal's name inside the hidden folder a merge is built in; it never reaches the output. */
export const JOURNAL_FILE = 'alloy-journal.jsonl';
/** 3: shards described by their XXH3-128 (2: the SHA-256 of their 8 MiB pieces' SHA-256s; 1: their SHA-256). */
const JOURNAL_VERSION = 3;

/** One shard that was written, flushed and renamed to its final name. */
export interface FinishedShard {
  file: string;
  bytes: number;
  /** `shard-digest.ts`: its XXH3-128, hex. */
  digest: string;
}

interface JournalHeader {
  journal: 'alloy-shards';
  version: typeof JOURNAL_VERSION;
  planHash: string;
}

/**
 * What a shard's bytes depend on: the plan (tensors, inputs, offsets, parameters, shard layout), the
 * torch thread count whose summation order is reproduced, and the size and time of every input file.
 */
export async function hashPlan(plan: MergePlan, torchThreads: number): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(plan)).update(`\0torchThreads=${torchThreads}`);
  const files = [...new Set(plan.tensors.flatMap((t) => t.inputs.flatMap((i) => [i.file, ...(i.parts ?? []).map((p) => p.file)])))].sort();
  for (const file of files) {
    const info = await stat(file).catch(() => undefined);
    hash.update(`\0${file}:${info?.size ?? -1}:${info?.mtimeMs ?? -1}`);
  }
  return hash.digest('hex');
}

/** Reads a finished shard back and describes it for the journal. */
export async function describeShard(dir: string, file: string, hasher?: ShardHasher): Promise<FinishedShard> {
  const path = join(dir, file);
  const { size } = await stat(path);
  return { file, bytes: size, digest: await shardDigestOfFile(path, hasher) };
}

/**
 * An append-only record of the shards a merge has finished, one JSON line each after a header line
 * naming the plan's hash. Each line is flushed before the next shard starts, so after a crash every
 * line that can be read whole names a shard that is whole on disk; a torn last line is ignored.
 */
export class ShardJournal {
  private constructor(
    readonly path: string,
    readonly planHash: string,
  ) {}

  /** Starts an empty journal in `dir` (replacing any). */
  static async start(dir: string, planHash: string): Promise<ShardJournal> {
    const journal = new ShardJournal(join(dir, JOURNAL_FILE), planHash);
    const header: JournalHeader = { journal: 'alloy-shards', version: JOURNAL_VERSION, planHash };
    await appendDurably(journal.path, JSON.stringify(header) + '\n', 'w');
    return journal;
  }

  /** The journal `dir` holds and the shards it lists; 'none' when there is none, 'other-plan' when it was written for another plan. */
  static async read(dir: string, planHash: string): Promise<{ journal: ShardJournal; finished: FinishedShard[] } | 'none' | 'other-plan'> {
    const text = await readFile(join(dir, JOURNAL_FILE), 'utf8').catch(() => undefined);
    if (text === undefined) return 'none';
    const [headerLine, ...lines] = completeLines(text);
    const header = parseLine(headerLine) as Partial<JournalHeader> | undefined;
    if (header?.journal !== 'alloy-shards' || header.version !== JOURNAL_VERSION) return 'none';
    if (header.planHash !== planHash) return 'other-plan';
    const finished = lines.map(parseLine).filter(isFinishedShard);
    return { journal: new ShardJournal(join(dir, JOURNAL_FILE), planHash), finished };
  }

  /** How many finished shards the journal in `dir` lists, whatever plan it was for; undefined when there is none. */
  static async count(dir: string): Promise<number | undefined> {
    const text = await readFile(join(dir, JOURNAL_FILE), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    const [headerLine, ...lines] = completeLines(text);
    const header = parseLine(headerLine) as Partial<JournalHeader> | undefined;
    if (header?.journal !== 'alloy-shards' || header.version !== JOURNAL_VERSION) return undefined;
    return lines.map(parseLine).filter(isFinishedShard).length;
  }

  async record(shard: FinishedShard): Promise<void> {
    await appendDurably(this.path, JSON.stringify(shard) + '\n', 'a');
  }
}

/** Lines that end in a newline: a line cut short by a crash is left out. */
function completeLines(text: string): string[] {
  const lines = text.split('\n');
  lines.pop();
  return lines;
}

function parseLine(line: string | undefined): unknown {
  try {
    return line === undefined ? undefined : JSON.parse(line);
  } catch {
    return undefined;
  }
}

function isFinishedShard(value: unknown): value is FinishedShard {
  const v = value as Partial<FinishedShard> | undefined;
  return typeof v?.file === 'string' && typeof v.bytes === 'number' && typeof v.digest === 'string' && /^[0-9a-f]{32}$/.test(v.digest);
}

async function appendDurably(path: string, text: string, flags: 'w' | 'a'): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.write(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The journal's shards whose files are still there with the recorded size and digest; the others are to be written again. */
export async function verifyFinishedShards(dir: string, finished: FinishedShard[]): Promise<{ kept: FinishedShard[]; dropped: string[] }> {
  const kept: FinishedShard[] = [];
  const dropped: string[] = [];
  const hasher = new ShardHasher();
  for (const shard of finished) {
    const info = await stat(join(dir, shard.file)).catch(() => undefined);
    const intact = info?.size === shard.bytes && (await shardDigestOfFile(join(dir, shard.file), hasher)) === shard.digest;
    if (intact) kept.push(shard);
    else dropped.push(shard.file);
  }
  return { kept, dropped };
}
