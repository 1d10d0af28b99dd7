/** The real `lrnet` command (node bin/lrnet.js) as a child process, for the CLI tests. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const LRNET = path.join(ROOT, 'bin/lrnet.js');

/** What a finished lrnet process left: its exit code and everything it wrote. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** LRNET_HOME. */
  readonly home: string;
  /** The working folder (default: home). */
  readonly cwd?: string;
  /** Sees stderr as it arrives (and may signal the process). */
  readonly onStderr?: (text: string, child: ReturnType<typeof spawn>) => void;
}

/** Runs lrnet with `args` in `home`. */
export function runLrnet(args: readonly string[], options: CliOptions): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LRNET, ...args], {
      cwd: options.cwd ?? options.home,
      env: { ...process.env, LRNET_HOME: options.home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      options.onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
