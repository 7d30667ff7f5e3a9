import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
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

/** A raw HTTP request with the headers a browser (or a rebinding attacker's page) would send. */
function raw(port: number, method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Opens the event WebSocket with these headers: 'open', or the HTTP status it was refused with. */
function upgrade(port: number, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/api/events`, { headers });
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(String(res.statusCode));
      res.resume();
    });
    ws.once('error', (error) => resolve(`error: ${error.message}`));
  });
}

describe('other web pages cannot use the API of a server without a token', () => {
  let server: Awaited<ReturnType<typeof startWebServer>>;
  beforeAll(async () => {
    server = await startWebServer({ services: { handlers, events }, rendererDir, port: 0 });
  });
  afterAll(() => server.close());

  it('refuses a request whose Host is not this server (DNS rebinding), on the API and the pages', async () => {
    const { port } = server;
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1:${port + 1}`, '127.0.0.1', `10.0.0.1:${port}`]) {
      const api = await raw(port, 'POST', '/api/invoke/job.list', { host }, '{}');
      expect(api.status, host).toBe(403);
      expect(api.text).toMatch(/Host/);
      expect((await raw(port, 'GET', '/', { host })).status, host).toBe(403);
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
      expect((await raw(port, 'POST', '/api/invoke/job.list', { host }, '{}')).status, host).toBe(200);
    }
  });

  it('refuses a request from a page of another origin, and takes the app\'s own page\'s', async () => {
    const { port } = server;
    const host = `127.0.0.1:${port}`;
    for (const origin of ['http://evil.example', `http://evil.example:${port}`, 'null', `https://127.0.0.1:${port}`, `http://127.0.0.1:${port + 1}`, 'http://127.0.0.1']) {
      const answer = await raw(port, 'POST', '/api/invoke/job.list', { host, origin }, '{}');
      expect(answer.status, origin).toBe(403);
      expect(answer.text).toMatch(/not the app's own/);
    }
    for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`]) {
      expect((await raw(port, 'POST', '/api/invoke/job.list', { host, origin }, '{}')).status, origin).toBe(200);
    }
    // Node's fetch, a script, sends no Origin: it is no web page.
    expect((await fetch(`http://127.0.0.1:${port}/api/invoke/job.list`, { method: 'POST', body: '{}' })).status).toBe(200);
  });

  it('refuses the event WebSocket to another origin or Host, and opens it to the app\'s page', async () => {
    const { port } = server;
    expect(await upgrade(port, { Origin: 'http://evil.example' })).toBe('403');
    expect(await upgrade(port, { Origin: 'null' })).toBe('403');
    expect(await upgrade(port, { Host: 'evil.example' })).toBe('403');
    expect(await upgrade(port, { Host: `evil.example:${port}`, Origin: `http://evil.example:${port}` })).toBe('403');
    expect(await upgrade(port, { Origin: `http://127.0.0.1:${port}` })).toBe('open');
    expect(await upgrade(port, {})).toBe('open');
  });
});
