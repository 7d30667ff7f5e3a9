import { app, BrowserWindow, ipcMain, session, type IpcMainInvokeEvent } from 'electron';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isChannel, validateRequest, type EventName, EVENT_NAMES } from '../shared/contract';
import { createServices, type Services } from './services';
import { resolveAppPaths } from './services/paths';

const here = fileURLToPath(new URL('.', import.meta.url));
const paths = resolveAppPaths(join(here, 'index.js'));
const rendererUrl = process.env['ELECTRON_RENDERER_URL'];
let window: BrowserWindow | undefined;

function isOurPage(url: string): boolean {
  try {
    const parsed = new URL(url);
    if (rendererUrl) return parsed.origin === new URL(rendererUrl).origin;
    return parsed.protocol === 'file:' && fileURLToPath(parsed).startsWith(paths.renderer);
  } catch {
    return false;
  }
}

function createWindow(): BrowserWindow {
  const win = new BrowserWindow({
    width: 1280,
    height: 820,
    title: 'Alloy',
    webPreferences: {
      preload: join(here, '../preload/index.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
    },
  });
  win.webContents.on('will-navigate', (event, url) => {
    if (!isOurPage(url)) event.preventDefault();
  });
  win.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  if (rendererUrl) void win.loadURL(rendererUrl);
  else void win.loadFile(join(paths.renderer, 'index.html'));
  return win;
}

/** One IPC channel: the sender must be our page, the request must match the contract. */
function mountContract(services: Services): void {
  ipcMain.handle('alloy:invoke', async (event: IpcMainInvokeEvent, channel: unknown, request: unknown) => {
    if (!event.senderFrame || !isOurPage(event.senderFrame.url)) throw new Error('refused: not the Alloy window');
    if (typeof channel !== 'string' || !isChannel(channel)) throw new Error(`unknown channel ${String(channel)}`);
    const handler = services.handlers[channel] as (r: unknown) => Promise<unknown>;
    return handler(validateRequest(channel, request));
  });
  for (const name of EVENT_NAMES) services.events.on(name, (payload) => window?.webContents.send('alloy:event', name, payload));
}

app.whenReady().then(() => {
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  // dawn.node cannot read GPU buffers back inside Electron, so merges run in plain Node.
  const services = createServices({ paths, nodeBinary: process.env['ALLOY_NODE'] || 'node', outputRoot: paths.defaultOutputRoot, settingsFile: paths.settingsFile });
  mountContract(services);
  window = createWindow();
  app.on('before-quit', () => services.jobs.stopAll());
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) window = createWindow();
  });
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});
