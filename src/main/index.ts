import { app, BrowserWindow, dialog, ipcMain, safeStorage, session, shell, type IpcMainInvokeEvent } from 'electron';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EVENT_NAMES } from '../shared/contract';
import { invokeFromRenderer, mayNavigate, mayRequest, permissionDecision, windowOpenDecision, windowOptions, withAppCsp, type PageOrigin } from './app-security';
import { createServices, type Services } from './services';
import { createHubTokenStore, type TokenCipher } from './services/downloads/hub-token-store';
import { resolveAppPaths } from './services/paths';

const here = fileURLToPath(new URL('.', import.meta.url));
const paths = resolveAppPaths(join(here, 'index.js'));
const origin: PageOrigin = { rendererUrl: process.env['ELECTRON_RENDERER_URL'], rendererDir: paths.renderer };
let window: BrowserWindow | undefined;

function createWindow(): BrowserWindow {
  const win = new BrowserWindow(windowOptions(join(here, '../preload/index.cjs')));
  win.webContents.on('will-navigate', (event, url) => {
    if (!mayNavigate(url, origin)) event.preventDefault();
  });
  win.webContents.on('will-redirect', (event, url) => {
    if (!mayNavigate(url, origin)) event.preventDefault();
  });
  win.webContents.setWindowOpenHandler(windowOpenDecision);
  if (origin.rendererUrl) void win.loadURL(origin.rendererUrl);
  else void win.loadFile(join(paths.renderer, 'index.html'));
  return win;
}

/** What the window's session lets through: the app's CSP on every response, no remote requests, no permissions. */
function lockDownSession(): void {
  const { webRequest } = session.defaultSession;
  webRequest.onHeadersReceived((details, callback) => callback({ responseHeaders: withAppCsp(details.responseHeaders) }));
  webRequest.onBeforeRequest((details, callback) => callback({ cancel: !mayRequest(details.url, origin) }));
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(permissionDecision()));
  session.defaultSession.setPermissionCheckHandler(permissionDecision);
}

/** One IPC channel: the sender must be our page, the request must match the contract. */
function mountContract(services: Services): void {
  ipcMain.handle('alloy:invoke', (event: IpcMainInvokeEvent, channel: unknown, request: unknown) =>
    invokeFromRenderer(services.handlers, origin, event.senderFrame?.url, channel, request),
  );
  for (const name of EVENT_NAMES) services.events.on(name, (payload) => window?.webContents.send('alloy:event', name, payload));
}

/** The OS keychain through safeStorage, for the Hub token. */
const keychain: TokenCipher = {
  // On Linux without a secret service Electron's 'basic_text' backend uses a key written in its source: no better than plain text.
  isAvailable: async () =>
    (await safeStorage.isAsyncEncryptionAvailable()) && !(process.platform === 'linux' && safeStorage.getSelectedStorageBackend() === 'basic_text'),
  encrypt: (plain) => safeStorage.encryptStringAsync(plain),
  decrypt: (encrypted) => safeStorage.decryptStringAsync(encrypted),
};

app.whenReady().then(async () => {
  lockDownSession();
  // Encrypted on disk where the OS has a keychain, else kept in memory until the app quits (Settings says which).
  const tokenStore = await createHubTokenStore({ file: join(dirname(paths.settingsFile), 'hub-token.enc'), cipher: keychain });
  // dawn.node cannot read GPU buffers back inside Electron, so merges run in plain Node.
  const services = createServices({
    paths,
    nodeBinary: process.env['ALLOY_NODE'] || 'node',
    outputRoot: paths.defaultOutputRoot,
    settingsFile: paths.settingsFile,
    tokenStore,
    openFolder: (path) => shell.openPath(path),
    pickFolder: async () => {
      const options = { title: 'A folder of models', properties: ['openDirectory' as const] };
      const picked = await (window ? dialog.showOpenDialog(window, options) : dialog.showOpenDialog(options));
      return picked.canceled ? undefined : picked.filePaths[0];
    },
  });
  mountContract(services);
  window = createWindow();
  // Quitting waits for the services to stop: merges keep what they wrote and come back resumable, as in
  // web mode (alloy serve); analyses and downloads stop. Then the quit goes on.
  let stopped = false;
  let stopping = false;
  app.on('before-quit', (event) => {
    if (stopped) return;
    event.preventDefault();
    if (stopping) return;
    stopping = true;
    void services.stop().finally(() => {
      stopped = true;
      app.quit();
    });
  });
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) window = createWindow();
  });
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});
