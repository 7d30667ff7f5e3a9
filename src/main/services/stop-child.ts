import type { ChildProcess } from 'node:child_process';

/** Sends `signal` to an engine, then SIGKILL if it is still there after `graceMs`; resolves once `ended` does. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number, ended: Promise<unknown> | undefined): Promise<void> {
  child.kill(signal);
  const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await ended;
  clearTimeout(killer);
}
