// `lrnet serve` builds the UI when renderer/dist is missing or older than its sources, as `npm start` does (the
// README opens the UI with `npx lrnet serve`; a fresh clone used to answer every page with HTTP 503).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isStale, type ViteTarget } from '../app/host/ui-build.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const temps: string[] = [];
let server: ChildProcess | undefined;

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

afterAll(() => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true });
});

/** Sets a file's modification time to `seconds` after the epoch. */
function touch(file: string, seconds: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (!fs.existsSync(file)) fs.writeFileSync(file, '');
  fs.utimesSync(file, seconds, seconds);
}

describe('isStale', () => {
  it('is stale when the output is missing or older than a file anywhere under a source folder, not otherwise', () => {
    const dir = tempDir('lrnet-stale-');
    const target: ViteTarget = {
      label: 'the UI',
      configFile: path.join(dir, 'vite.config.js'),
      output: path.join(dir, 'dist', 'index.html'),
      sources: [path.join(dir, 'src'), path.join(dir, 'index.html')],
    };
    touch(path.join(dir, 'src', 'pages', 'Runs.svelte'), 1000);
    touch(path.join(dir, 'index.html'), 1000);
    expect(isStale(target)).toBe(true);
    touch(target.output, 2000);
    expect(isStale(target)).toBe(false);
    touch(path.join(dir, 'src', 'pages', 'Runs.svelte'), 3000);
    expect(isStale(target)).toBe(true);
    touch(target.output, 3000);
    expect(isStale(target)).toBe(false);
    touch(path.join(dir, 'index.html'), 4000);
    expect(isStale(target)).toBe(true);
  });
});

/** A copy of this working tree as a fresh clone has it: tracked and untracked-but-not-ignored files, no renderer/dist. */
function freshClone(): string {
  const clone = tempDir('lrnet-clone-');
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f !== '' && !f.startsWith('renderer/dist/') && fs.statSync(path.join(ROOT, f), { throwIfNoEntry: false })?.isFile());
  for (const file of files) {
    fs.mkdirSync(path.dirname(path.join(clone, file)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, file), path.join(clone, file));
  }
  fs.symlinkSync(fs.realpathSync(path.join(ROOT, 'node_modules')), path.join(clone, 'node_modules'), 'dir');
  return clone;
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      })
      .on('error', reject);
  });
}

describe('lrnet serve on a fresh clone', () => {
  it('builds the UI (saying so on stderr), then answers the index page with 200', async () => {
    const clone = freshClone();
    const home = tempDir('lrnet-serve-home-');
    expect(fs.existsSync(path.join(clone, 'renderer', 'dist'))).toBe(false);
    let stdout = '';
    let stderr = '';
    const child = spawn(process.execPath, ['bin/lrnet.js', 'serve', '--port', '0', '--db', path.join(home, 'lrnet.db')], {
      cwd: clone,
      env: { ...process.env, LRNET_HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server = child;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL after 200 s; stdout: ${stdout}\nstderr: ${stderr}`)), 200_000);
      child.stdout.on('data', () => {
        const match = /http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(stdout);
        if (match) {
          clearTimeout(timer);
          resolve(match[0]);
        }
      });
      void exited.then((code) => reject(new Error(`lrnet serve exited with ${code}; stderr: ${stderr}`)));
    });
    expect(stderr).toContain('lrnet serve: building the UI ...');
    expect(fs.existsSync(path.join(clone, 'renderer', 'dist', 'index.html'))).toBe(true);

    // The token in the URL is traded for a cookie; the page itself comes with the cookie.
    const first = await get(url);
    expect(first.status).toBe(302);
    const cookie = String(first.headers['set-cookie']).split(';')[0]!;
    const page = await get(new URL('/', url).href, { cookie });
    expect(page.status).toBe(200);
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(page.body);
    expect(script, page.body).not.toBeNull();
    expect((await get(new URL(script![1]!, url).href, { cookie })).status).toBe(200);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 240_000);
});
