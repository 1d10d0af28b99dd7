/**
 * Where lrnet keeps its data when no --db is given. The store itself opens whatever path it is handed; these helpers
 * only pick the platform's conventional per-user data folder.
 */
import { statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** File name of the database inside the data folder. */
export const DATABASE_FILE_NAME = 'lrnet.db';

/**
 * The per-user data folder: `$LRNET_HOME` when set, else `%APPDATA%\lrnet` on Windows,
 * `~/Library/Application Support/lrnet` on macOS and `$XDG_DATA_HOME/lrnet` (default `~/.local/share/lrnet`) elsewhere.
 * The arguments exist for tests; callers pass nothing.
 */
export function defaultDataFolder(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = os.homedir(),
): string {
  const p = platform === 'win32' ? path.win32 : path.posix;
  const override = env['LRNET_HOME'];
  if (override) return p.resolve(override);
  switch (platform) {
    case 'win32':
      return p.join(env['APPDATA'] || p.join(home, 'AppData', 'Roaming'), 'lrnet');
    case 'darwin':
      return p.join(home, 'Library', 'Application Support', 'lrnet');
    default: {
      // The XDG spec says relative values are invalid and must be ignored.
      const xdg = env['XDG_DATA_HOME'];
      return p.join(xdg && p.isAbsolute(xdg) ? xdg : p.join(home, '.local', 'share'), 'lrnet');
    }
  }
}

/** The database path used when no --db is given: `<defaultDataFolder()>/lrnet.db`. */
export function defaultDatabasePath(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  home: string = os.homedir(),
): string {
  const p = platform === 'win32' ? path.win32 : path.posix;
  return p.join(defaultDataFolder(env, platform, home), DATABASE_FILE_NAME);
}

/**
 * The file that stands where `folder` or one of the folders above it would have to be (so the folder can never be
 * made); undefined when there is none.
 */
export function fileBlockingFolder(folder: string): string | undefined {
  for (let p = path.resolve(folder); ; p = path.dirname(p)) {
    try {
      return statSync(p).isDirectory() ? undefined : p;
    } catch {
      // Not there yet: mkdir would make it; look further up.
    }
    if (path.dirname(p) === p) return undefined;
  }
}
