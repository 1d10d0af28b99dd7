/**
 * bin/check-imports.js (part of `npm run check`) run as a real process on small trees in a temporary folder: it
 * finds an import cycle also when its imports are type-only or dynamic, refuses an upward import inside app/,
 * accepts downward ones, and passes on this project.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHECKER = path.join(ROOT, 'bin/check-imports.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'lrnet-imports-'));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes the files of a tree (path -> source) into a new folder and runs the checker on it. */
function check(files: Record<string, string>): { code: number | null; stderr: string } {
  const root = mkdtempSync(path.join(tmp, 'tree-'));
  for (const [file, source] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), source);
  }
  const result = spawnSync(process.execPath, [CHECKER, root], { encoding: 'utf8', cwd: ROOT });
  return { code: result.status, stderr: result.stderr };
}

describe('bin/check-imports.js', () => {
  it('finds a cycle of two engine files that import each other only for types', () => {
    const { code, stderr } = check({
      'engine/a.ts': "import type { B } from './b.ts';\nexport type A = { b?: B };\n",
      'engine/b.ts': "import type { A } from './a.ts';\nexport type B = { a?: A };\n",
      'engine/c.ts': "import type { A } from './a.ts';\nexport type C = A;\n",
    });
    expect(code).toBe(1);
    expect(stderr).toContain('import cycle: engine/a.ts -> engine/b.ts -> engine/a.ts');
    expect(stderr).not.toContain('engine/c.ts');
    expect(stderr).toContain('1 import problem');
  });

  it('finds a cycle closed by a re-export and a dynamic import across engine/ and app/', () => {
    const { code, stderr } = check({
      'engine/x.ts': "export { y } from '../app/store/y.ts';\n",
      'app/store/y.ts': "export const y = 1;\nexport const load = () => import('../../engine/x.ts');\n",
    });
    expect(code).toBe(1);
    expect(stderr).toMatch(/import cycle: (engine\/x\.ts -> app\/store\/y\.ts -> engine\/x\.ts|app\/store\/y\.ts -> engine\/x\.ts -> app\/store\/y\.ts)/);
  });

  it('refuses an upward import inside app/ and accepts downward ones and imports within a folder', () => {
    const { code, stderr } = check({
      'app/contract.ts': 'export type Id = string;\n',
      'app/store/index.ts': "import type { Id } from '../contract.ts';\nimport { helper } from './helper.ts';\nexport const open = (id: Id) => helper(id);\n",
      'app/store/helper.ts': 'export const helper = (s: string) => s;\n',
      'app/store/bad.ts': "import { start } from '../runs/manager.ts';\nexport const x = start;\n",
      'app/runs/manager.ts': "import { open } from '../store/index.ts';\nexport const start = () => open('1');\n",
      'app/cli/main.ts': "import { start } from '../runs/manager.ts';\nstart();\n",
    });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([
      'app/store/bad.ts imports app/runs/manager.ts: inside app/, imports go only downward (contract.ts < store, data < export < runs < services.ts < host < cli)',
      '1 import problem (bin/check-imports.js)',
    ]);
  });

  it('names a new folder of app/ that has no layer yet', () => {
    const { code, stderr } = check({ 'app/sweeps/plan.ts': 'export const plan = 1;\n' });
    expect(code).toBe(1);
    expect(stderr).toContain('app/sweeps/plan.ts: app/sweeps has no layer; add it to APP_LAYERS in bin/check-imports.js');
  });

  it('passes on this project', () => {
    const result = spawnSync(process.execPath, [CHECKER], { encoding: 'utf8', cwd: ROOT });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
