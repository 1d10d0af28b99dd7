/**
 * The Electron main process: one sandboxed, context-isolated window showing the UI from the app:// origin, the
 * app services behind the contract (the same ones `lrnet serve` uses), native folder dialogs and the menu.
 *
 * Started by main/entry.mjs (which registers tsx, so the TypeScript sources run as they are).
 */
import { app, BrowserWindow, Menu, dialog, ipcMain, protocol, session, shell } from 'electron';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPC_CHANNELS, type LiveEvent } from '../app/contract.ts';
import { createServices, type AppServices } from '../app/services.ts';
import { CONTENT_TYPES } from '../app/host/server.ts';
import { createInvokeHandler, forwardEvents } from './ipc.ts';
import { buildMenuTemplate } from './menu.ts';
import { APP_SCHEME, APP_URL, ELECTRON_CSP, allowNavigation, externalUrl, resolveAppPath, webPreferences } from './security.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RENDERER_DIR = path.resolve(HERE, '..', 'renderer', 'dist');
/** Built by `vite build --config main/vite.config.js` (npm start and npm run dist do it). */
const PRELOAD = path.resolve(HERE, '..', 'out', 'main', 'preload.cjs');

protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true } }]);
app.enableSandbox();

// One instance owns the database and its runs; a second start focuses the first window instead.
if (!app.requestSingleInstanceLock()) {
  app.quit();
} else {
  app.on('second-instance', () => {
    const win = BrowserWindow.getAllWindows()[0];
    if (win) {
      if (win.isMinimized()) win.restore();
      win.focus();
    }
  });
  void app.whenReady().then(start).catch((error: unknown) => {
    dialog.showErrorBox('lrnet could not start', error instanceof Error ? error.message : String(error));
    app.exit(1);
  });
}

// Every web contents, present and future: no navigation away from the app, no new windows, no webviews.
app.on('web-contents-created', (_event, contents) => {
  contents.on('will-navigate', (event, url) => {
    if (!allowNavigation(url)) event.preventDefault();
  });
  contents.on('will-redirect', (event, url) => {
    if (!allowNavigation(url)) event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    const external = externalUrl(url);
    if (external) void shell.openExternal(external);
    return { action: 'deny' };
  });
});

async function start(): Promise<void> {
  // The UI asks for nothing: camera, notifications, geolocation... are all refused.
  session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  session.defaultSession.setPermissionCheckHandler(() => false);

  protocol.handle(APP_SCHEME, async (request) => {
    const file = resolveAppPath(request.url, RENDERER_DIR, path.join, path.sep);
    if (!file || !existsSync(file)) return new Response('not found', { status: 404 });
    return new Response(await fs.readFile(file), {
      headers: { 'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-security-policy': ELECTRON_CSP, 'x-content-type-options': 'nosniff' },
    });
  });

  const services = await createServices({
    shell: 'electron',
    async pickFolder(purpose, defaultPath) {
      const options: Electron.OpenDialogOptions = {
        title: purpose === 'data-folder' ? 'Choose the dataset folder' : 'Choose where to export',
        buttonLabel: purpose === 'data-folder' ? 'Use This Folder' : 'Export Here',
        properties: ['openDirectory', 'createDirectory'],
        ...(defaultPath ? { defaultPath } : {}),
      };
      const win = BrowserWindow.getFocusedWindow();
      const result = win ? await dialog.showOpenDialog(win, options) : await dialog.showOpenDialog(options);
      return result.canceled ? null : (result.filePaths[0] ?? null);
    },
  });
  ipcMain.handle(IPC_CHANNELS.invoke, createInvokeHandler(services));

  const navigate = (hash: string) => {
    const win = BrowserWindow.getFocusedWindow() ?? BrowserWindow.getAllWindows()[0];
    win?.webContents.send(IPC_CHANNELS.event, { type: 'navigate', hash } satisfies LiveEvent);
  };
  Menu.setApplicationMenu(Menu.buildFromTemplate(buildMenuTemplate({
    navigate,
    openDataFolder: () => void shell.openPath(services.info.dataFolder),
    showDatabaseLocation: () => shell.showItemInFolder(services.info.databasePath),
  }, { platform: process.platform, packaged: app.isPackaged, appName: app.name })));

  await openWindow(services);
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) void openWindow(services);
  });
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit();
  });
  // Stop running runs (each writes a checkpoint and can be resumed) and close the store before quitting.
  let closing = false;
  app.on('before-quit', (event) => {
    if (closing) return;
    event.preventDefault();
    closing = true;
    void services.close().finally(() => app.quit());
  });
}

async function openWindow(services: AppServices): Promise<void> {
  const win = new BrowserWindow({
    width: 1440,
    height: 900,
    minWidth: 1024,
    minHeight: 640,
    show: false,
    title: 'lrnet',
    backgroundColor: '#f5f6f8',
    webPreferences: webPreferences(PRELOAD),
  });
  win.once('ready-to-show', () => win.show());
  const stop = forwardEvents((listener) => services.subscribe(listener), win.webContents);
  win.on('closed', stop);
  await win.loadURL(APP_URL);
}
