/**
 * What the Electron main process lets in, as plain functions of plain data (no Electron import at
 * run time), so each rule is tested without Electron's binary: the window's options, which pages it
 * may show, which requests it may make, who may call the contract, and the Content-Security-Policy.
 */
import { relative, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserWindowConstructorOptions } from 'electron';
import { isChannel, validateRequest, type Channel, type Handlers } from '../shared/contract';

/** Where the app's own pages come from: the dev server (`ELECTRON_RENDERER_URL`) or the built renderer folder. */
export interface PageOrigin {
  rendererUrl?: string | undefined;
  rendererDir: string;
}

/**
 * The renderer runs sandboxed with context isolation and no Node: the preload's `window.alloy` is
 * its only way out. No webviews, no insecure content, no navigation by dropping a file.
 */
export function windowOptions(preload: string): BrowserWindowConstructorOptions {
  return {
    width: 1280,
    height: 820,
    title: 'Alloy',
    webPreferences: {
      preload,
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
    },
  };
}

/** The policy every response to the window carries; the renderer needs nothing beyond its own files. */
export const APP_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; " +
  "object-src 'none'; base-uri 'none'; form-action 'none'; frame-src 'none'; frame-ancestors 'none'";

/** A response's headers with the app's CSP in place of any the response carried. */
export function withAppCsp(headers: Record<string, string[]> = {}): Record<string, string[]> {
  const kept = Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'content-security-policy'));
  return { ...kept, 'Content-Security-Policy': [APP_CSP] };
}

/** Whether `url` is one of the app's own pages: the dev server's origin, or a file inside the renderer folder. */
export function isAppPage(url: string, origin: PageOrigin): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (origin.rendererUrl) return parsed.origin === new URL(origin.rendererUrl).origin;
  return parsed.protocol === 'file:' && isInside(origin.rendererDir, fileURLToPath(parsed));
}

/** Whether `path` is `dir` itself or below it (`../`, a sibling with the same prefix and other roots are not). */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The window may navigate only between the app's own pages. */
export function mayNavigate(url: string, origin: PageOrigin): boolean {
  return isAppPage(url, origin);
}

/** No new windows, ever (links with target=_blank, window.open). */
export function windowOpenDecision(): { action: 'deny' } {
  return { action: 'deny' };
}

/** Requests the window may make: its own pages and files, devtools; never remote content. */
export function mayRequest(url: string, origin: PageOrigin): boolean {
  if (url.startsWith('devtools:') || url.startsWith('data:')) return true;
  if (origin.rendererUrl && url.startsWith('ws:')) return new URL(url).host === new URL(origin.rendererUrl).host;
  return isAppPage(url, origin);
}

/** Camera, microphone, notifications, geolocation…: the app asks for none, so every request is refused. */
export function permissionDecision(): false {
  return false;
}

/**
 * The one IPC entry point: the sender must be one of the app's pages, the channel one of the
 * contract's, the payload valid against its schema; only then is the handler called.
 */
export async function invokeFromRenderer(handlers: Handlers, origin: PageOrigin, senderUrl: string | undefined, channel: unknown, request: unknown): Promise<unknown> {
  if (!senderUrl || !isAppPage(senderUrl, origin)) throw new Error('refused: not the Alloy window');
  if (typeof channel !== 'string' || !isChannel(channel)) throw new Error(`unknown channel ${String(channel)}`);
  const handler = handlers[channel] as (r: unknown) => Promise<unknown>;
  return handler(validateRequest(channel as Channel, request));
}
