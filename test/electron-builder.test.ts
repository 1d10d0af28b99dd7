/**
 * electron-builder.yml: parsed with `yaml`, checked with electron-builder's own configuration validator (its JSON
 * schema, node_modules/app-builder-lib/scheme.json) when it is installed, and for what this app needs: the three
 * platforms' targets, a stated Electron version, native modules rebuilt for Electron, and files that exist.
 */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const config = parse(fs.readFileSync(path.join(ROOT, 'electron-builder.yml'), 'utf8')) as Record<string, unknown> & {
  linux: { target: string[] };
  mac: { target: string[] };
  win: { target: string[] };
  files: string[];
  extraMetadata: { main: string };
};
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** electron-builder's validator, or undefined when app-builder-lib is not installed. */
function validator(): ((config: unknown) => Promise<void>) | undefined {
  try {
    const { validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as { validateConfiguration: (c: unknown, log: { isEnabled: boolean; add(): void }) => Promise<void> };
    return (c) => validateConfiguration(c, { isEnabled: false, add() {} });
  } catch {
    return undefined;
  }
}

describe('electron-builder.yml', () => {
  it('passes electron-builder\'s own schema validation', async () => {
    const validate = validator();
    if (!validate) {
      expect(fs.existsSync(path.join(ROOT, 'node_modules', 'app-builder-lib'))).toBe(false);
      return;
    }
    await expect(validate(config)).resolves.toBeUndefined();
    // The validator is real: a misplaced option is refused.
    await expect(validate({ ...config, linux: { ...config.linux, hardenedRuntime: true } })).rejects.toThrow(/configuration\.linux/);
  });

  it('builds AppImage and deb for Linux, dmg for macOS and an NSIS installer for Windows', () => {
    expect(config.linux.target).toEqual(['AppImage', 'deb']);
    expect(config.mac.target).toEqual(['dmg']);
    expect(config.win.target).toEqual(['nsis']);
    expect(config['appId']).toMatch(/^[a-z0-9.-]+$/);
    expect(config['productName']).toBe('lrnet');
  });

  it('states the Electron version of the installed electron package and rebuilds native modules for it', () => {
    const declared = pkg.optionalDependencies?.['electron'] ?? pkg.devDependencies['electron'];
    expect(declared).toBeDefined();
    expect(config['electronVersion']).toMatch(/^\d+\.\d+\.\d+$/);
    const installed = path.join(ROOT, 'node_modules', 'electron', 'package.json');
    if (fs.existsSync(installed)) expect(config['electronVersion']).toBe((JSON.parse(fs.readFileSync(installed, 'utf8')) as { version: string }).version);
    expect(config['npmRebuild']).toBe(true);
    expect(pkg.dependencies['better-sqlite3']).toBeDefined();
    expect(config['asarUnpack']).toEqual(expect.arrayContaining(['**/*.node', 'node_modules/better-sqlite3/**']));
    // electron-builder refuses electron among the production dependencies.
    expect(pkg.dependencies['electron']).toBeUndefined();
  });

  it('packages an entry that exists, the built UI and the preload, and `npm run dist` builds them first', () => {
    expect(fs.existsSync(path.join(ROOT, config.extraMetadata.main))).toBe(true);
    expect(config.files).toEqual(expect.arrayContaining(['renderer/dist/**', 'out/main/preload.cjs', 'main/**/*.{ts,mjs}', 'app/**/*.ts', 'engine/**/*.ts']));
    const dist = pkg.scripts['dist'] ?? '';
    expect(dist).toContain('build:renderer');
    expect(dist).toContain('main/vite.config.js');
    expect(dist).toContain('electron-builder');
    expect(pkg.dependencies['tsx']).toBeDefined();
  });
});
