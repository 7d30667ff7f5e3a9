import type { JobInfo } from '../../shared/contract';
import { freeBytes as freeBytesOnDisk } from './downloads/check-free-space';

/** Free bytes on the disk that holds `path`; undefined where no file system answers. */
export async function freeBytes(path: string): Promise<number | undefined> {
  const free = await freeBytesOnDisk(path);
  return Number.isFinite(free) ? free : undefined;
}

/** Bytes per second the latest finished merge wrote, over its whole run: a plan's time estimate on this machine. */
export function lastWriteRate(jobs: readonly JobInfo[]): number | undefined {
  const done = jobs
    .filter((j) => j.state === 'done' && j.lastProgress?.type === 'done')
    .sort((a, b) => (b.finishedAt ?? 0) - (a.finishedAt ?? 0));
  for (const job of done) {
    const event = job.lastProgress;
    if (event?.type === 'done' && event.seconds > 0 && event.bytesWritten > 0) return event.bytesWritten / event.seconds;
  }
  return undefined;
}
