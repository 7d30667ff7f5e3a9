import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The pid of the engine process that `parent` (default: this process) started for a job
 * (`run-job …/JOB_ID.json`), read from /proc as `ps` would: the tests kill the real child, as a crash
 * would. Waits for it: right after spawn the child may not have exec'd the engine yet.
 */
export async function enginePid(jobId: string, parent = process.pid, timeoutMs = 10_000): Promise<number> {
  const start = Date.now();
  for (;;) {
    for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        if (ppid === parent && cmdline.includes('run-job') && cmdline.includes(jobId)) return Number(entry);
      } catch {
        // The process ended while we looked.
      }
    }
    if (Date.now() - start > timeoutMs) throw new Error(`no engine process for job ${jobId}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Every engine process (`run-job …JOB_ID…`) that `parent` is running now. */
export function enginePids(jobId: string, parent = process.pid): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (ppid === parent && cmdline.includes('run-job') && cmdline.includes(jobId)) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

/** Whole shard lines in the journals of these build folders (the header line left out). */
function journaledShards(buildFolders: string[]): number {
  let shards = 0;
  for (const dir of buildFolders) {
    try {
      const lines = readFileSync(join(dir, 'alloy-journal.jsonl'), 'utf8').split('\n');
      shards += Math.max(0, lines.length - 2);
    } catch {
      // Not started yet.
    }
  }
  return shards;
}

/**
 * Lets the engine run in short steps (SIGCONT, a few ms, SIGSTOP) until its journals list at least
 * `shards` finished shards, then SIGKILLs it: a kill mid-merge whatever the machine's load, where
 * waiting on progress events could find the engine done (its events wait in the pipe while it works).
 * `kill` may kill more (the app around it). Returns the shards journaled when it was killed.
 */
export async function killAfterShards(pid: number, buildFolders: string[], shards = 1, kill: () => void = () => process.kill(pid, 'SIGKILL')): Promise<number> {
  process.kill(pid, 'SIGSTOP');
  for (;;) {
    const done = journaledShards(buildFolders);
    if (done >= shards) {
      kill();
      return done;
    }
    process.kill(pid, 'SIGCONT');
    await new Promise((r) => setTimeout(r, 3));
    process.kill(pid, 'SIGSTOP');
  }
}
