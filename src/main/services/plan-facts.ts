import { open } from 'node:fs/promises';
import { join } from 'node:path';
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

/** Cards are a few KB; a larger README.md is not one Alloy wrote, and is not read whole. */
const CARD_LIMIT = 1 << 20;

/** A finished merge's README.md, or null where the merge has not finished or wrote none. */
export async function readModelCard(job: JobInfo): Promise<string | null> {
  if (job.state !== 'done') return null;
  const file = join(job.outDir, 'README.md');
  const handle = await open(file, 'r').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!handle) return null;
  try {
    const buffer = Buffer.alloc(Math.min(CARD_LIMIT, (await handle.stat()).size));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}
