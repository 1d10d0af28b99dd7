/**
 * The Electron window's security settings and checks, kept free of Electron imports so they can be unit-tested
 * where Electron cannot run. main.ts applies them.
 */
import type { WebPreferences } from 'electron';
import { contentSecurityPolicy } from '../app/host/csp.ts';

/** The UI is served from this custom origin (a standard, secure scheme), never from file:// or the network. */
export const APP_SCHEME = 'app';
export const APP_HOST = 'lrnet';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_URL = `${APP_ORIGIN}/index.html`;

/** The window's CSP: the host's policy; the app origin is 'self', and IPC needs no connect-src. */
export const ELECTRON_CSP = contentSecurityPolicy();

/**
 * Renderer settings: an isolated, sandboxed page without Node, whose only door to the app is the preload bridge.
 * `preload` is the bundled bridge (out/main/preload.cjs).
 */
export function webPreferences(preload: string): WebPreferences {
  return {
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
    spellcheck: false,
  };
}

/** Whether a URL belongs to the app's own pages (scheme and host exactly; no look-alike hosts). */
export function isAppUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST;
  } catch {
    return false;
  }
}

/**
 * IPC is answered only for the app's own top frame: a frame from anywhere else (an iframe, a page navigated away
 * to) gets nothing, even if it somehow reached the bridge.
 */
export function isTrustedSender(frame: { url: string; parent?: unknown } | null | undefined): boolean {
  return frame !== null && frame !== undefined && (frame.parent === null || frame.parent === undefined) && isAppUrl(frame.url);
}

/** In-page navigation stays on the app's origin (hash routes); everything else is refused. */
export function allowNavigation(url: string): boolean {
  return isAppUrl(url);
}

/** Links to documentation may open in the system browser; nothing opens in a new app window. */
export function externalUrl(url: string): string | null {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

/**
 * The file for an app:// request inside the renderer folder, or null for a path that escapes it (../, encoded
 * slashes) or a request for another origin.
 */
export function resolveAppPath(url: string, rendererDir: string, join: (...parts: string[]) => string, sep: string): string | null {
  if (!isAppUrl(url)) return null;
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(url).pathname);
  } catch {
    return null;
  }
  if (pathname === '/' || pathname === '') pathname = '/index.html';
  if (pathname.includes('\0') || pathname.split('/').includes('..') || pathname.includes('\\')) return null;
  const file = join(rendererDir, ...pathname.split('/').filter(Boolean));
  return file.startsWith(rendererDir.endsWith(sep) ? rendererDir : rendererDir + sep) ? file : null;
}
