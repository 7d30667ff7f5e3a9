import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Handlers } from '../../src/shared/contract';
import { EventBus } from '../../src/main/services/events';
import { startWebServer } from '../../src/main/web/server';
import { tempDir } from '../helpers';

let rendererDir: string;
const events = new EventBus();
const handlers = {
  'library.list': async () => [],
  'methods.list': async () => [],
  'recipe.demo': async () => ({ name: 'demo', recipe: 'merge_method: linear\n' }),
  'recipe.plan': async () => ({ ok: false, problems: [{ message: 'nope', line: 1 }] }),
  'job.start': async () => {
    throw new Error('the engine is busy');
  },
  'job.cancel': async () => {
    throw new Error('no job');
  },
  'job.list': async () => [],
} as unknown as Handlers;

beforeAll(async () => {
  rendererDir = join(await tempDir(), 'renderer');
  await mkdir(join(rendererDir, 'assets'), { recursive: true });
  await writeFile(join(rendererDir, 'index.html'), '<!doctype html><title>Alloy</title>');
  await writeFile(join(rendererDir, 'assets', 'app.js'), 'console.log(1)');
  await writeFile(join(rendererDir, '..', 'secret.txt'), 'private');
});

describe('the web mode server', () => {
  let server: Awaited<ReturnType<typeof startWebServer>>;
  beforeAll(async () => {
    server = await startWebServer({ services: { handlers, events }, rendererDir, port: 0 });
  });
  afterAll(() => server.close());
  const url = (path: string) => `http://127.0.0.1:${server.port}${path}`;

  it('serves the renderer with a strict Content-Security-Policy, and the app for unknown paths', async () => {
    const page = await fetch(url('/'));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect((await fetch(url('/assets/app.js'))).headers.get('content-type')).toMatch(/javascript/);
    expect(await (await fetch(url('/library'))).text()).toContain('<title>Alloy</title>');
  });

  it('never serves files outside the renderer folder', async () => {
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/assets/%2e%2e/%2e%2e/secret.txt']) {
      const body = await (await fetch(url(path))).text();
      expect(body).not.toContain('private');
    }
  });

  it('invokes handlers, validating each request against the contract', async () => {
    const ok = await fetch(url('/api/invoke/recipe.demo'), { method: 'POST', body: '{}' });
    expect(await ok.json()).toEqual({ result: { name: 'demo', recipe: 'merge_method: linear\n' } });
    const bad = await fetch(url('/api/invoke/job.start'), { method: 'POST', body: JSON.stringify({ recipe: 'x', outputName: '../../etc' }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/^job\.start: outputName: /);
    const extra = await fetch(url('/api/invoke/job.list'), { method: 'POST', body: JSON.stringify({ sneaky: 1 }) });
    expect(extra.status).toBe(400);
    expect((await fetch(url('/api/invoke/fs.delete'), { method: 'POST', body: '{}' })).status).toBe(404);
    const failing = await fetch(url('/api/invoke/job.start'), { method: 'POST', body: JSON.stringify({ recipe: 'x', outputName: 'ok' }) });
    expect(failing.status).toBe(500);
    expect(((await failing.json()) as { error: string }).error).toBe('the engine is busy');
  });

  it('pushes service events over the WebSocket', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/api/events`);
    await new Promise((resolve) => ws.once('open', resolve));
    const message = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    events.emit('job.progress', { jobId: 'j1', event: { type: 'warning', message: 'hi' } });
    expect(JSON.parse(await message)).toEqual({ event: 'job.progress', payload: { jobId: 'j1', event: { type: 'warning', message: 'hi' } } });
    ws.close();
  });
});

describe('access control', () => {
  it('refuses a non-loopback address without a token', async () => {
    await expect(startWebServer({ services: { handlers, events }, rendererDir, host: '0.0.0.0', port: 0 })).rejects.toThrow(/without an access token/);
  });

  it('demands the token on every API call once one is set', async () => {
    const server = await startWebServer({ services: { handlers, events }, rendererDir, port: 0, token: 's3cret' });
    try {
      expect(server.url).toMatch(/\?token=s3cret$/);
      const base = `http://127.0.0.1:${server.port}/api/invoke/job.list`;
      expect((await fetch(base, { method: 'POST', body: '{}' })).status).toBe(401);
      expect((await fetch(base, { method: 'POST', body: '{}', headers: { 'x-alloy-token': 'wrong' } })).status).toBe(401);
      expect((await fetch(base, { method: 'POST', body: '{}', headers: { 'x-alloy-token': 's3cret' } })).status).toBe(200);
      expect((await fetch(`${base}?token=s3cret`, { method: 'POST', body: '{}' })).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
