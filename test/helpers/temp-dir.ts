/** Temporary folders for tests: made before, removed after, so no test leaves files behind or sees another's. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';

/**
 * A fresh folder named `prefix`... under the system temporary folder for each test (`each`) or for all the
 * tests of the file (`all`), removed after them; `created` receives its path before they run.
 */
export function useTempDir(prefix: string, scope: 'each' | 'all', created: (dir: string) => void): void {
  let dir = '';
  (scope === 'each' ? beforeEach : beforeAll)(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), prefix));
    created(dir);
  });
  (scope === 'each' ? afterEach : afterAll)(() => rmSync(dir, { recursive: true, force: true }));
}
