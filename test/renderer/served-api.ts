import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { AlloyApi, EventName } from '../../src/shared/contract';

export interface ServedApi {
  api: AlloyApi;
  /** What the server printed (stdout and stderr), to check that no secret is ever logged. */
  output: () => string;
  close: () => Promise<void>;
}

/**
 * The web mode as a browser meets it: `alloy serve` in its own process, its contract reached over
 * HTTP and its events over the WebSocket. Component tests that download use it, because happy-dom
 * replaces this process's `fetch` with a browser's (same-origin rules, a response cache), while the
 * services must talk to the Hub with Node's own, as they do in the app.
 *
 * `hfHome` is the server's whole Hugging Face home (cache, token file): no HF_* variable of the
 * machine running the tests leaks in.
 */
export async function servedApi(params: { hubUrl: string; hfHome: string; configDir: string }): Promise<ServedApi> {
  const env: NodeJS.ProcessEnv = { ...process.env, HF_HOME: params.hfHome, HF_ENDPOINT: params.hubUrl, HF_HUB_DISABLE_TELEMETRY: '1' };
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_TOKEN_PATH', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'XDG_CACHE_HOME']) delete env[name];
  const server = spawn(
    process.execPath,
    ['bin/alloy.mjs', 'serve', '--port', '0', '--output-root', join(params.configDir, 'merges'), '--settings-file', join(params.configDir, 'settings.json')],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  server.stdout.on('data', (chunk) => (output += chunk));
  server.stderr.on('data', (chunk) => (output += chunk));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server printed no address: ${output}`)), 30_000);
    server.stdout.on('data', () => {
      const match = /running at (http:\/\/\S+?)\/?\s/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    server.on('exit', (code) => reject(new Error(`the server exited with ${code}: ${output}`)));
  });

  const listeners = new Map<EventName, Set<(payload: unknown) => void>>();
  const socket = new WebSocket(`${address.replace(/^http/, 'ws')}/api/events`);
  socket.on('message', (data) => {
    const { event, payload } = JSON.parse(String(data)) as { event: EventName; payload: unknown };
    for (const listener of listeners.get(event) ?? []) listener(payload);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });

  const api: AlloyApi = {
    async invoke(channel, body) {
      const { status, text } = await post(`${address}/api/invoke/${channel}`, JSON.stringify(body));
      const answer = JSON.parse(text) as { result?: unknown; error?: string };
      if (status !== 200) throw new Error(answer.error ?? `${channel} failed (${status})`);
      return answer.result as never;
    },
    on(event, listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener as (payload: unknown) => void);
      return () => set.delete(listener as (payload: unknown) => void);
    },
  };
  return {
    api,
    output: () => output,
    close: async () => {
      socket.close();
      if (server.exitCode !== null) return;
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      // alloy serve stops on SIGTERM (as on Ctrl-C): a server still running after 10 s is a bug to see.
      const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      if (server.signalCode === 'SIGKILL') throw new Error(`alloy serve did not stop on SIGTERM:\n${output}`);
    },
  };
}

function post(url: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
