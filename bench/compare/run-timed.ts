import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

export interface TimedRun {
  seconds: number;
  /** The process's peak resident set (VmHWM), sampled until it exits. */
  peakRss: number;
  code: number | null;
  output: string;
}

/** Runs a command, timing it and following its peak RSS through /proc. */
export function runTimed(command: string, args: string[], cwd: string): Promise<TimedRun> {
  return new Promise((resolveRun, reject) => {
    const started = performance.now();
    // Offline: mergekit's model card asks the Hub whether each model name is a repo.
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HF_HUB_OFFLINE: '1' } });
    let output = '';
    child.stdout.on('data', (d) => (output = (output + d).slice(-20000)));
    child.stderr.on('data', (d) => (output = (output + d).slice(-20000)));
    let peakRss = 0;
    const sample = async () => {
      const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
      const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
      if (kb) peakRss = Math.max(peakRss, Number(kb) * 1024);
    };
    const timer = setInterval(() => void sample(), 20);
    child.on('error', (error) => {
      clearInterval(timer);
      reject(error);
    });
    child.on('exit', (code) => {
      clearInterval(timer);
      resolveRun({ seconds: (performance.now() - started) / 1000, peakRss, code, output });
    });
  });
}
