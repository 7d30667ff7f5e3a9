import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createServices } from '../../src/main/services';
import { resolveAppPaths } from '../../src/main/services/paths';

async function finishedMerge(openFolder?: (path: string) => Promise<string>, pickFolder?: () => Promise<string | undefined>) {
  const services = createServices({
    paths: resolveAppPaths(fileURLToPath(import.meta.url)),
    nodeBinary: process.execPath,
    outputRoot: mkdtempSync(join(tmpdir(), 'alloy-folder-')),
    ...(openFolder ? { openFolder } : {}),
    ...(pickFolder ? { pickFolder } : {}),
  });
  const { handlers } = services;
  const job = await handlers['job.start']({ recipe: await readFile('resources/demo/linear.yml', 'utf8'), outputName: 'card-and-folder' });
  const early = await handlers['job.card']({ id: job.id });
  for (const start = Date.now(); services.jobs.get(job.id)?.state === 'running'; await new Promise((r) => setTimeout(r, 50))) {
    if (Date.now() - start > 30_000) throw new Error('the merge did not finish');
  }
  return { handlers, job: services.jobs.get(job.id)!, early };
}

describe('a finished merge: its card and its folder; what the face can do', () => {
  it('gives the README.md the engine wrote, and none before the merge is done', async () => {
    const { handlers, job, early } = await finishedMerge();
    expect(early.markdown).toBeNull();
    expect(job.state).toBe('done');
    const { markdown } = await handlers['job.card']({ id: job.id });
    expect(markdown).toBe(await readFile(join(job.outDir, 'README.md'), 'utf8'));
    await expect(handlers['job.card']({ id: 'no-such-job' })).rejects.toThrow('no merge with id no-such-job');
  });

  it('opens the output folder, and only it, where the face can; elsewhere says where it is', async () => {
    const opened: string[] = [];
    const desktop = await finishedMerge(async (path) => (opened.push(path), ''));
    expect(await desktop.handlers['job.openFolder']({ id: desktop.job.id })).toEqual({ opened: true, path: desktop.job.outDir });
    expect(opened).toEqual([desktop.job.outDir]);
    const failing = await finishedMerge(async () => 'no application is registered for folders');
    expect(await failing.handlers['job.openFolder']({ id: failing.job.id })).toMatchObject({ opened: false, message: 'no application is registered for folders' });
    const web = await finishedMerge();
    expect(await web.handlers['job.openFolder']({ id: web.job.id })).toMatchObject({ opened: false, path: web.job.outDir, message: expect.stringMatching(/copy the path/) });
  });

  it('says what the face can do, and picks a folder only where a desktop dialog exists', async () => {
    const desktop = await finishedMerge(async () => '', async () => '/home/me/models');
    expect(await desktop.handlers['app.capabilities']({})).toEqual({ openFolder: true, pickFolder: true });
    expect(await desktop.handlers['library.pickFolder']({})).toEqual({ path: '/home/me/models' });
    const cancelled = await finishedMerge(undefined, async () => undefined);
    expect(await cancelled.handlers['library.pickFolder']({})).toEqual({ path: null });
    const web = await finishedMerge();
    expect(await web.handlers['app.capabilities']({})).toEqual({ openFolder: false, pickFolder: false });
    await expect(web.handlers['library.pickFolder']({})).rejects.toThrow(/type the folder's path/);
  });
});
