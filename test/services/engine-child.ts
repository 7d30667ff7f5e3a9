import { readdirSync, readFileSync } from 'node:fs';

/**
 * The pid of the engine process this process started for a job (`run-job …/JOB_ID.json`), read from
 * /proc as `ps` would: the tests kill the real child, as a crash would.
 */
export function enginePid(jobId: string): number {
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (ppid === process.pid && cmdline.includes('run-job') && cmdline.includes(jobId)) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  throw new Error(`no engine process for job ${jobId}`);
}
