import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { ContractError, isChannel, validateRequest, type EventName, EVENT_NAMES } from '../../shared/contract';
import type { Services } from '../services';

export interface WebServerParams {
  services: Pick<Services, 'handlers' | 'events'>;
  /** The built renderer (out/renderer). */
  rendererDir: string;
  host?: string;
  port?: number;
  /** Required for any address but loopback; every API call must then carry it. */
  token?: string;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.ico': 'image/x-icon',
};

const MAX_BODY = 2_000_000;

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Serves the renderer and the contract (POST /api/invoke/:channel, WebSocket /api/events) on one port. */
export async function startWebServer(params: WebServerParams): Promise<{ url: string; port: number; close: () => Promise<void> }> {
  const host = params.host ?? '127.0.0.1';
  if (!isLoopback(host) && !params.token) {
    throw new Error(`refusing to listen on ${host} without an access token (--token); only loopback addresses are open without one`);
  }
  let port = 0;
  const server = createServer((req, res) => {
    const refused = foreign(req, host, port);
    if (refused) return send(res, 403, { error: refused });
    handle(req, res, params).catch((error: Error) => send(res, 500, { error: error.message }));
  });
  const sockets = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const refused = foreign(req, host, port);
    if (refused) {
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(refused)}\r\n\r\n${refused}`);
      return;
    }
    if (url.pathname !== '/api/events' || !authorized(req, url, params.token)) {
      socket.destroy();
      return;
    }
    sockets.handleUpgrade(req, socket, head, (ws) => subscribe(ws, params.services.events));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(params.port ?? 5317, host, resolve);
  });
  port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${port}/${params.token ? `?token=${encodeURIComponent(params.token)}` : ''}`;
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of sockets.clients) ws.terminate();
        sockets.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function subscribe(ws: WebSocket, events: Services['events']): void {
  const offs = EVENT_NAMES.map((event) => events.on(event, (payload) => ws.send(JSON.stringify({ event, payload }))));
  ws.on('close', () => offs.forEach((off) => off()));
}

const WILDCARD = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

/** How a listening address is written in a Host header (an IPv6 address in brackets), lower case. */
function hostName(host: string): string {
  const name = host.toLowerCase();
  return name.includes(':') ? `[${name}]` : name;
}

/**
 * Why a request is not the app's own, or undefined when it is. Web pages of other origins can reach
 * a loopback server (a form, fetch, a WebSocket) and a DNS rebinding gives them its origin's name for
 * our address, so without a token the origin is the only guard: the Host header must name this server
 * (a loopback name on loopback, the configured host otherwise; any host on a wildcard address, which
 * needs a token), and an Origin header, which browsers send on every cross-origin request, every POST
 * and every WebSocket, must be the server's own.
 */
function foreign(req: IncomingMessage, listening: string, port: number): string | undefined {
  const hostHeader = (req.headers.host ?? '').toLowerCase();
  const names = isLoopback(listening) ? [hostName(listening), '127.0.0.1', 'localhost', '[::1]'] : [hostName(listening)];
  const allowed = new Set(names.flatMap((name) => (port === 80 ? [`${name}:80`, name] : [`${name}:${port}`])));
  if (!WILDCARD.has(listening) && !allowed.has(hostHeader)) return `refused: the Host "${req.headers.host ?? ''}" is not this server (${[...allowed][0]})`;
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  const own = WILDCARD.has(listening) ? new Set([hostHeader]) : allowed;
  let originHost: string | undefined;
  try {
    const url = new URL(origin);
    if (url.protocol === 'http:' && url.pathname === '/' && !url.username && !url.password) originHost = url.port ? url.host : `${url.host}:80`;
  } catch {
    originHost = undefined;
  }
  if (originHost === undefined || !(own.has(originHost) || own.has(originHost.replace(/:80$/, '')))) return `refused: requests from the page at ${origin} are not the app's own`;
  return undefined;
}

function authorized(req: IncomingMessage, url: URL, token: string | undefined): boolean {
  if (!token) return true;
  return req.headers['x-alloy-token'] === token || url.searchParams.get('token') === token;
}

async function handle(req: IncomingMessage, res: ServerResponse, params: WebServerParams): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname.startsWith('/api/')) {
    if (!authorized(req, url, params.token)) return send(res, 401, { error: 'missing or wrong access token' });
    const match = /^\/api\/invoke\/([\w.]+)$/.exec(url.pathname);
    if (!match || req.method !== 'POST') return send(res, 404, { error: `no API at ${req.method} ${url.pathname}` });
    const channel = match[1]!;
    if (!isChannel(channel)) return send(res, 404, { error: `unknown channel "${channel}"` });
    let request: unknown;
    try {
      request = validateRequest(channel, JSON.parse((await readBody(req)) || '{}'));
    } catch (error) {
      return send(res, 400, { error: error instanceof ContractError ? error.message : `${channel}: body is not valid JSON` });
    }
    const handler = params.services.handlers[channel] as (r: unknown) => Promise<unknown>;
    try {
      return send(res, 200, { result: await handler(request) });
    } catch (error) {
      return send(res, 500, { error: (error as Error).message });
    }
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method not allowed' });
  return serveStatic(req, res, url, params);
}

async function serveStatic(req: IncomingMessage, res: ServerResponse, url: URL, params: WebServerParams): Promise<void> {
  const root = normalize(params.rendererDir);
  let path = normalize(join(root, decodeURIComponent(url.pathname)));
  if (path !== root && !path.startsWith(root + sep)) return send(res, 403, { error: 'outside the app' });
  let info = await stat(path).catch(() => undefined);
  if (!info || info.isDirectory()) {
    path = join(root, 'index.html');
    info = await stat(path).catch(() => undefined);
    if (!info) return send(res, 404, { error: 'the renderer is not built: run npm run build' });
  }
  const type = MIME[extname(path)] ?? 'application/octet-stream';
  const headers: Record<string, string> = { 'content-type': type, 'content-length': String(info.size), 'x-content-type-options': 'nosniff' };
  if (type.startsWith('text/html')) {
    const host = req.headers.host ?? 'localhost';
    headers['content-security-policy'] = `default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws://${host}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'`;
    headers['cache-control'] = 'no-cache';
  }
  res.writeHead(200, headers);
  if (req.method === 'HEAD') return void res.end();
  createReadStream(path).pipe(res);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
