/**
 * The Electron shell's pure parts, tested where Electron cannot run: window security settings, the CSP, which
 * frames may call the app, what the app:// protocol may serve, the IPC handler and its handler map, the menu, and
 * the bundled preload bridge (run against a fake `electron` module).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import type { MenuItemConstructorOptions } from 'electron';
import { IPC_CHANNELS, METHODS, type LiveEvent } from '../app/contract.ts';
import { createServices, type AppServices } from '../app/services.ts';
import { APP_URL, ELECTRON_CSP, allowNavigation, externalUrl, isTrustedSender, resolveAppPath, webPreferences } from '../main/security.ts';
import { createInvokeHandler, forwardEvents } from '../main/ipc.ts';
import { buildMenuTemplate } from '../main/menu.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
let home: string;
let services: AppServices;

beforeAll(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-electron-'));
  services = await createServices({ shell: 'electron', databasePath: path.join(home, 'lrnet.db'), concurrency: 1, pickFolder: async () => '/picked' });
});

afterAll(async () => {
  await services?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

const top = (url: string) => ({ url, parent: null });

describe('window security', () => {
  it('isolates and sandboxes the page, without Node, webviews or insecure content', () => {
    const prefs = webPreferences('/app/out/main/preload.cjs');
    expect(prefs).toMatchObject({
      preload: '/app/out/main/preload.cjs', contextIsolation: true, sandbox: true, nodeIntegration: false, nodeIntegrationInWorker: false,
      nodeIntegrationInSubFrames: false, webSecurity: true, allowRunningInsecureContent: false, webviewTag: false,
    });
  });

  it('has a strict CSP: own scripts only, no eval, no plugins, no framing, no forms', () => {
    const directives = Object.fromEntries(ELECTRON_CSP.split('; ').map((d) => [d.split(' ')[0], d.split(' ').slice(1)]));
    expect(directives['default-src']).toEqual(["'self'"]);
    expect(directives['script-src']).toEqual(["'self'"]);
    expect(ELECTRON_CSP).not.toContain('unsafe-eval');
    expect(directives['object-src']).toEqual(["'none'"]);
    expect(directives['frame-ancestors']).toEqual(["'none'"]);
    expect(directives['form-action']).toEqual(["'none'"]);
    expect(directives['base-uri']).toEqual(["'none'"]);
    expect(directives['connect-src']).toEqual(["'self'"]);
  });

  it('answers IPC only from the app\'s own top frame', () => {
    expect(isTrustedSender(top(APP_URL))).toBe(true);
    expect(isTrustedSender(top('app://lrnet/index.html#/compare?ids=a'))).toBe(true);
    expect(isTrustedSender({ url: APP_URL, parent: {} })).toBe(false);
    for (const url of ['https://evil.example/', 'app://lrnet.evil/index.html', 'app://evil/index.html', 'file:///etc/passwd', 'http://127.0.0.1:8421/', 'about:blank', 'not a url']) {
      expect(isTrustedSender(top(url)), url).toBe(false);
    }
    expect(isTrustedSender(null)).toBe(false);
  });

  it('keeps navigation on the app and opens only https links outside', () => {
    expect(allowNavigation('app://lrnet/index.html#/runs')).toBe(true);
    expect(allowNavigation('https://example.com/')).toBe(false);
    expect(allowNavigation('file:///tmp/x.html')).toBe(false);
    expect(externalUrl('https://arxiv.org/abs/1710.07739')).toBe('https://arxiv.org/abs/1710.07739');
    expect(externalUrl('javascript:alert(1)')).toBeNull();
    expect(externalUrl('file:///etc/passwd')).toBeNull();
  });

  it('serves only files inside the built renderer from app://', () => {
    const dir = '/opt/lrnet/renderer/dist';
    const resolve = (url: string) => resolveAppPath(url, dir, path.posix.join, '/');
    expect(resolve('app://lrnet/')).toBe(`${dir}/index.html`);
    expect(resolve('app://lrnet/assets/index-abc.js')).toBe(`${dir}/assets/index-abc.js`);
    expect(resolve('app://lrnet/assets/..%2f..%2fsecret')).toBeNull();
    expect(resolve('app://lrnet/a%5c..%5csecret')).toBeNull();
    expect(resolve('app://lrnet/a%00b')).toBeNull();
    expect(resolve('app://other/index.html')).toBeNull();
    // The URL parser folds ../ (also written %2e%2e) before we see it: the result stays inside.
    expect(resolve('app://lrnet/../../etc/passwd')).toBe(`${dir}/etc/passwd`);
    expect(resolve('app://lrnet/%2e%2e/%2e%2e/etc/passwd')).toBe(`${dir}/etc/passwd`);
  });
});

describe('IPC', () => {
  it('has one handler per contract method', () => {
    expect(Object.keys(services.handlers).sort()).toEqual([...METHODS].sort());
  });

  it('refuses a foreign frame without touching the services', async () => {
    const calls: unknown[] = [];
    const handler = createInvokeHandler({ call: async (...args) => (calls.push(args), { ok: true, value: null }) }, () => {});
    const refused = await handler({ senderFrame: top('https://evil.example/') }, 'runs.delete', { id: 'abc' });
    expect(refused).toMatchObject({ ok: false, error: { code: 'invalid-request' } });
    expect(await handler({ senderFrame: null }, 'app.info', {})).toMatchObject({ ok: false });
    expect(calls).toEqual([]);
  });

  it('validates every payload against the contract before a handler runs', async () => {
    const handler = createInvokeHandler(services, () => {});
    const info = await handler({ senderFrame: top(APP_URL) }, 'app.info', {});
    expect(info).toMatchObject({ ok: true, value: { shell: 'electron', nativeDialogs: true, defaultPreset: 'mnist-ternary-quick' } });
    const bad = await handler({ senderFrame: top(APP_URL) }, 'runs.stop', { id: '../../etc', force: true });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.error.code).toBe('invalid-request');
      expect(bad.error.problems).toEqual(['unknown field "force" (expected id)', 'id: expected a run id (letters and digits), got "../../etc"']);
    }
    expect(await handler({ senderFrame: top(APP_URL) }, 'fs.readFile', {})).toMatchObject({ ok: false, error: { code: 'unknown-method' } });
    expect(await handler({ senderFrame: top(APP_URL) }, 'dialog.pickFolder', { purpose: 'data-folder' })).toEqual({ ok: true, value: { path: '/picked' } });
  });

  it('forwards live events to the window until it is destroyed or unsubscribed', () => {
    const sent: [string, LiveEvent][] = [];
    let destroyed = false;
    let listener: ((e: LiveEvent) => void) | undefined;
    const stop = forwardEvents((l) => ((listener = l), () => (listener = undefined)), {
      isDestroyed: () => destroyed,
      send: (channel, event) => sent.push([channel, event]),
      getURL: () => APP_URL,
    });
    listener!({ type: 'run-deleted', runId: 'a' });
    destroyed = true;
    listener!({ type: 'run-deleted', runId: 'b' });
    stop();
    expect(listener).toBeUndefined();
    expect(sent).toEqual([[IPC_CHANNELS.event, { type: 'run-deleted', runId: 'a' }]]);
  });
});

describe('application menu', () => {
  const actions = () => {
    const log: string[] = [];
    return { log, actions: { navigate: (h: string) => log.push(`navigate ${h}`), openDataFolder: () => log.push('open'), showDatabaseLocation: () => log.push('db') } };
  };
  const find = (items: MenuItemConstructorOptions[], label: string): MenuItemConstructorOptions | undefined => {
    for (const item of items) {
      if (item.label === label) return item;
      const sub = Array.isArray(item.submenu) ? find(item.submenu, label) : undefined;
      if (sub) return sub;
    }
    return undefined;
  };

  it('offers New Run, the pages and the data folder; developer items only in development', () => {
    const { log, actions: a } = actions();
    const dev = buildMenuTemplate(a, { platform: 'linux', packaged: false, appName: 'lrnet' });
    const newRun = find(dev, 'New Run…')!;
    expect(newRun.accelerator).toBe('CmdOrCtrl+N');
    (newRun.click as () => void)();
    (find(dev, 'Compare')!.click as () => void)();
    (find(dev, 'Open Data Folder')!.click as () => void)();
    expect(log).toEqual(['navigate #/new', 'navigate #/compare', 'open']);
    const roles = (t: MenuItemConstructorOptions[]) => JSON.stringify(t).match(/"role":"\w+"/g) ?? [];
    expect(roles(dev)).toContain('"role":"toggleDevTools"');
    expect(roles(buildMenuTemplate(a, { platform: 'linux', packaged: true, appName: 'lrnet' }))).not.toContain('"role":"toggleDevTools"');
    expect(buildMenuTemplate(a, { platform: 'darwin', packaged: true, appName: 'lrnet' })[0]!.label).toBe('lrnet');
  });
});

describe('preload bridge', () => {
  it('bundles to one CommonJS file that exposes only invoke and onEvent over the contract channels', async () => {
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-preload-'));
    try {
      await build({ configFile: path.join(ROOT, 'main', 'vite.config.js'), logLevel: 'warn', build: { outDir } });
      const code = fs.readFileSync(path.join(outDir, 'preload.cjs'), 'utf8');
      expect([...code.matchAll(/require\(["']([^"']+)["']\)/g)].map((m) => m[1])).toEqual(['electron']);

      const exposed: Record<string, Record<string, (...args: unknown[]) => unknown>> = {};
      const invoked: unknown[][] = [];
      const handlers = new Map<string, (...args: unknown[]) => void>();
      const electron = {
        contextBridge: { exposeInMainWorld: (name: string, api: Record<string, (...args: unknown[]) => unknown>) => (exposed[name] = api) },
        ipcRenderer: {
          invoke: async (...args: unknown[]) => (invoked.push(args), { ok: true, value: 42 }),
          on: (channel: string, fn: (...args: unknown[]) => void) => handlers.set(channel, fn),
          removeListener: (channel: string) => handlers.delete(channel),
        },
      };
      vm.runInNewContext(code, { require: (name: string) => (name === 'electron' ? electron : undefined), module: { exports: {} }, exports: {} });
      expect(Object.keys(exposed)).toEqual(['lrnet']);
      expect(Object.keys(exposed['lrnet']!).sort()).toEqual(['invoke', 'onEvent']);
      expect(await exposed['lrnet']!['invoke']!('runs.get', { id: 'a' })).toEqual({ ok: true, value: 42 });
      expect(invoked).toEqual([[IPC_CHANNELS.invoke, 'runs.get', { id: 'a' }]]);
      const heard: unknown[] = [];
      const off = exposed['lrnet']!['onEvent']!((e: unknown) => heard.push(e)) as () => void;
      handlers.get(IPC_CHANNELS.event)!({ sender: 'ipc' }, { type: 'run-deleted', runId: 'x' });
      off();
      expect(handlers.has(IPC_CHANNELS.event)).toBe(false);
      // The renderer gets the event, never Electron's IpcRendererEvent (which would leak `sender`).
      expect(heard).toEqual([{ type: 'run-deleted', runId: 'x' }]);
    } finally {
      fs.rmSync(outDir, { recursive: true, force: true });
    }
  });
});
