import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  APP_CSP,
  invokeFromRenderer,
  isAppPage,
  mayNavigate,
  mayRequest,
  permissionDecision,
  windowOpenDecision,
  windowOptions,
  withAppCsp,
  type PageOrigin,
} from '../../src/main/app-security';
import { createServices, type Services } from '../../src/main/services';
import { resolveAppPaths } from '../../src/main/services/paths';
import { ContractError, validateRequest } from '../../src/shared/contract';
import { tempDir } from '../helpers';

let built: PageOrigin;
let services: Services;
let outputRoot: string;
const dev: PageOrigin = { rendererUrl: 'http://localhost:5173/', rendererDir: '/nowhere' };
const page = (path: string) => pathToFileURL(join(built.rendererDir, path)).href;

beforeAll(async () => {
  const root = await tempDir('alloy-app-');
  built = { rendererDir: join(root, 'out', 'renderer') };
  await mkdir(built.rendererDir, { recursive: true });
  outputRoot = join(root, 'merges');
  services = createServices({ paths: resolveAppPaths(fileURLToPath(import.meta.url)), nodeBinary: process.execPath, outputRoot, workDir: join(root, 'jobs') });
});

describe('the Electron window (src/main/app-security.ts, as src/main/index.ts uses it)', () => {
  it('runs the renderer sandboxed, isolated, without Node, webviews or insecure content', () => {
    const options = windowOptions('/app/out/preload/index.cjs');
    expect(options.webPreferences).toEqual({
      preload: '/app/out/preload/index.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false,
      experimentalFeatures: false,
      navigateOnDragDrop: false,
      safeDialogs: true,
    });
  });

  it('navigates only between its own pages: no other file, folder, scheme or origin', () => {
    expect(mayNavigate(page('index.html'), built)).toBe(true);
    expect(mayNavigate(`${page('index.html')}#/plan`, built)).toBe(true);
    const refused = [
      `${pathToFileURL(dirname(built.rendererDir)).href}/secret.html`,
      page('../renderer-evil/index.html'),
      `${pathToFileURL(built.rendererDir).href}-evil/index.html`,
      `${pathToFileURL(built.rendererDir).href}/%2e%2e/x.html`,
      'file:///etc/passwd',
      'https://example.com/',
      'http://127.0.0.1:5317/',
      'javascript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'about:blank',
      'not a url',
      '',
    ];
    for (const url of refused) expect([url, mayNavigate(url, built)]).toEqual([url, false]);
    expect(mayNavigate('http://localhost:5173/#/library', dev)).toBe(true);
    for (const url of ['http://localhost:5174/', 'http://localhost.evil.example:5173/', 'https://localhost:5173/', page('index.html')]) {
      expect([url, mayNavigate(url, dev)]).toEqual([url, false]);
    }
  });

  it('opens no new windows and grants no permission', () => {
    expect(windowOpenDecision()).toEqual({ action: 'deny' });
    expect(permissionDecision()).toBe(false);
  });

  it('loads no remote content: only its own files, data: images and devtools', () => {
    for (const url of [page('assets/index.js'), page('assets/logo.svg'), 'data:image/png;base64,AA==', 'devtools://devtools/bundled/inspector.html']) {
      expect([url, mayRequest(url, built)]).toEqual([url, true]);
    }
    for (const url of ['https://cdn.example.com/vue.js', 'http://127.0.0.1:8080/x', 'ws://example.com/', 'file:///etc/passwd', 'ftp://example.com/']) {
      expect([url, mayRequest(url, built)]).toEqual([url, false]);
    }
    expect(mayRequest('ws://localhost:5173/', dev)).toBe(true);
    expect(mayRequest('ws://localhost:9999/', dev)).toBe(false);
  });

  it("sends a strict Content-Security-Policy, replacing any the response carried", () => {
    const headers = withAppCsp({ 'content-security-policy': ["default-src *"], 'Content-Type': ['text/html'] });
    expect(headers).toEqual({ 'Content-Type': ['text/html'], 'Content-Security-Policy': [APP_CSP] });
    const directives = new Map(APP_CSP.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values]));
    expect(directives.get('default-src')).toEqual(["'none'"]);
    expect(directives.get('script-src')).toEqual(["'self'"]);
    expect(directives.get('connect-src')).toEqual(["'self'"]);
    for (const name of ['object-src', 'frame-src', 'frame-ancestors', 'form-action', 'base-uri']) expect(directives.get(name)).toEqual(["'none'"]);
    expect(APP_CSP).not.toMatch(/unsafe-eval|\*|https?:/);
  });

  it('src/main/index.ts builds its window, navigation, session and IPC from these functions', async () => {
    const source = await readFile('src/main/index.ts', 'utf8');
    for (const use of [
      'new BrowserWindow(windowOptions(',
      "on('will-navigate', (event, url) => {\n    if (!mayNavigate(url, origin)) event.preventDefault();",
      'setWindowOpenHandler(windowOpenDecision)',
      'withAppCsp(details.responseHeaders)',
      'cancel: !mayRequest(details.url, origin)',
      'setPermissionRequestHandler',
      'invokeFromRenderer(services.handlers, origin, event.senderFrame?.url, channel, request)',
    ]) {
      expect(source).toContain(use);
    }
    expect(source.match(/ipcMain\.(handle|on)\(/g)).toEqual(['ipcMain.handle(']);
  });
});

describe('IPC from the renderer (one entry point, validated against the contract)', () => {
  it('answers a valid request from the app page', async () => {
    const methods = (await invokeFromRenderer(services.handlers, built, page('index.html'), 'methods.list', {})) as { name: string }[];
    expect(methods.map((m) => m.name)).toContain('linear');
  });

  it('refuses other senders, unknown channels and payloads that do not match the schema', async () => {
    await expect(invokeFromRenderer(services.handlers, built, 'https://evil.example/', 'methods.list', {})).rejects.toThrow('refused: not the Alloy window');
    await expect(invokeFromRenderer(services.handlers, built, undefined, 'methods.list', {})).rejects.toThrow('refused');
    for (const channel of ['__proto__', 'constructor', 'toString', 'job.delete', 42]) {
      await expect(invokeFromRenderer(services.handlers, built, page('index.html'), channel, {})).rejects.toThrow(/unknown channel/);
    }
    await expect(invokeFromRenderer(services.handlers, built, page('index.html'), 'methods.list', { extra: 1 })).rejects.toBeInstanceOf(ContractError);
    await expect(invokeFromRenderer(services.handlers, built, page('index.html'), 'job.cancel', { id: 7 })).rejects.toThrow(/job\.cancel: id: /);
  });

  it('confines output folders from the renderer to the output root: no "../", separators or absolute paths', async () => {
    for (const outputName of ['../escape', '..', '.', '/etc', 'a/b', 'a\\b', '.hidden', '', 'x\u0000y', 'merged\n']) {
      await expect(invokeFromRenderer(services.handlers, built, page('index.html'), 'job.start', { recipe: 'merge_method: linear', outputName })).rejects.toThrow(/job\.start: outputName: /);
    }
  });

  it('any output name the contract accepts lands directly inside the output root (2,000 generated names)', () => {
    const names = fc.oneof(fc.string({ maxLength: 20 }), fc.stringMatching(/^[A-Za-z0-9._\/\\-]{1,12}$/), fc.constantFrom('..', '../x', 'a/../..', 'ok-name', 'v1.2'));
    fc.assert(
      fc.property(names, (outputName) => {
        let accepted: string;
        try {
          accepted = validateRequest('job.start', { recipe: 'x', outputName }).outputName;
        } catch {
          return;
        }
        expect(dirname(join(outputRoot, accepted))).toBe(outputRoot);
        expect(accepted.startsWith('.')).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});
