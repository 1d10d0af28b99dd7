/**
 * The application menu as a template (Electron's MenuItemConstructorOptions), built from callbacks so it is
 * testable without Electron: main.ts passes the actions and calls Menu.buildFromTemplate.
 */
import type { MenuItemConstructorOptions } from 'electron';

export interface MenuActions {
  /** Shows a page of the UI by its hash route, e.g. "#/new". */
  navigate(hash: string): void;
  openDataFolder(): void;
  showDatabaseLocation(): void;
}

export interface MenuOptions {
  readonly platform: NodeJS.Platform;
  /** Developer tools and reload only in development builds. */
  readonly packaged: boolean;
  readonly appName: string;
}

export function buildMenuTemplate(actions: MenuActions, options: MenuOptions): MenuItemConstructorOptions[] {
  const mac = options.platform === 'darwin';
  const page = (label: string, hash: string, accelerator: string): MenuItemConstructorOptions => ({ label, accelerator, click: () => actions.navigate(hash) });
  const template: MenuItemConstructorOptions[] = [];
  if (mac) {
    template.push({
      label: options.appName,
      submenu: [{ role: 'about' }, { type: 'separator' }, { role: 'services' }, { type: 'separator' }, { role: 'hide' }, { role: 'hideOthers' }, { role: 'unhide' }, { type: 'separator' }, { role: 'quit' }],
    });
  }
  template.push({
    label: 'File',
    submenu: [
      page('New Run…', '#/new', 'CmdOrCtrl+N'),
      { type: 'separator' },
      { label: 'Open Data Folder', click: () => actions.openDataFolder() },
      { label: 'Show Database Location', click: () => actions.showDatabaseLocation() },
      { type: 'separator' },
      mac ? { role: 'close' } : { role: 'quit' },
    ],
  });
  template.push({ role: 'editMenu' });
  template.push({
    label: 'View',
    submenu: [
      page('Runs', '#/runs', 'CmdOrCtrl+1'),
      page('New Run', '#/new', 'CmdOrCtrl+2'),
      page('Compare', '#/compare', 'CmdOrCtrl+3'),
      page('Export', '#/export', 'CmdOrCtrl+4'),
      { type: 'separator' },
      { role: 'resetZoom' },
      { role: 'zoomIn' },
      { role: 'zoomOut' },
      { type: 'separator' },
      { role: 'togglefullscreen' },
      ...(options.packaged ? [] : [{ type: 'separator' } as const, { role: 'reload' } as const, { role: 'toggleDevTools' } as const]),
    ],
  });
  template.push({ role: 'windowMenu' });
  return template;
}
