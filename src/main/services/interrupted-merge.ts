import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { partialFolderFor } from '../engine/execute/execute-plan';
import { ShardJournal } from '../engine/execute/shard-journal';

/**
 * What an interrupted merge into `outDir` left to resume from: the shards listed in the journal of
 * its hidden build folder, and in those of a multi-stage recipe's stages (`.OUT.stages/.NAME.alloy-partial`).
 * Undefined when no journal is there (the merge finished, was cancelled and cleaned up, or never started).
 */
export async function interruptedMerge(outDir: string): Promise<{ finishedShards: number } | undefined> {
  const stagesDir = join(dirname(outDir), `.${basename(outDir)}.stages`);
  const stageFolders = (await readdir(stagesDir).catch(() => [] as string[])).filter((name) => name.startsWith('.') && name.endsWith('.alloy-partial'));
  const counts = await Promise.all([partialFolderFor(outDir), ...stageFolders.map((name) => join(stagesDir, name))].map((dir) => ShardJournal.count(dir)));
  const found = counts.filter((count): count is number => count !== undefined);
  return found.length ? { finishedShards: found.reduce((sum, n) => sum + n, 0) } : undefined;
}
