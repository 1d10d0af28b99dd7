/**
 * The cifar10-*-quick presets train end to end on CIFAR-10 files in the official binary format, read straight from
 * a cifar-10-binary.tar.gz, through the real `lrnet train` command. The generated images are learnable: each class
 * has its own colour under per-pixel noise, so a working pipeline beats chance (10%) by far.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CIFAR10_RECORD_BYTES, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES } from '../engine/data/cifar10.ts';
import { Random } from '../engine/random.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let tmp: string;
let archive: string;

/** Ten colours that stay apart after per-image standardization (no one is a scaled copy of another). */
const CLASS_COLOURS = [
  [60, 130, 200], [60, 200, 130], [130, 60, 200], [130, 200, 60], [200, 60, 130],
  [200, 130, 60], [60, 60, 200], [60, 200, 60], [200, 60, 60], [200, 200, 60],
];

/** One batch file: label byte, then the R, G and B planes; each class has its own colour, plus noise. */
function makeBatch(seed: number, records: number): Uint8Array {
  const rng = new Random(seed);
  const bytes = new Uint8Array(records * CIFAR10_RECORD_BYTES);
  for (let r = 0; r < records; r++) {
    const label = r % 10;
    const base = r * CIFAR10_RECORD_BYTES;
    bytes[base] = label;
    for (let channel = 0; channel < 3; channel++) {
      const level = CLASS_COLOURS[label]![channel]!;
      for (let i = 0; i < 1024; i++) bytes[base + 1 + channel * 1024 + i] = Math.min(255, level + rng.nextInt(60));
    }
  }
  return bytes;
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-cifar-train-'));
  const folder = path.join(tmp, 'cifar-10-batches-bin');
  fs.mkdirSync(folder);
  CIFAR10_TRAIN_FILES.forEach((file, i) => fs.writeFileSync(path.join(folder, file), makeBatch(i + 1, 60)));
  fs.writeFileSync(path.join(folder, CIFAR10_TEST_FILE), makeBatch(99, 100));
  archive = path.join(tmp, 'cifar-10-binary.tar.gz');
  execFileSync('tar', ['-czf', archive, '-C', tmp, 'cifar-10-batches-bin']);
  fs.rmSync(folder, { recursive: true });
});

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('CIFAR-10 training end to end', () => {
  it.each(['cifar10-ternary-quick', 'cifar10-binary-quick'])('%s trains on the official .tar.gz and reports its discrete nets', (preset) => {
    const run = spawnSync(process.execPath, [
      path.join(repo, 'bin/lrnet.js'), 'train', '--preset', preset, '--data', archive,
      '--train-limit', '140', '--validation', '40', '--test-limit', '50', '--batch', '20', '--eval-samples', '1', '--backend', 'wasm', '--json',
    ], { cwd: repo, env: { ...process.env, LRNET_HOME: path.join(tmp, `home-${preset}`) }, encoding: 'utf8', timeout: 300_000 });
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout.trim().split('\n').pop()!);
    expect(summary.preset).toBe(preset);
    expect(summary.dataset).toBe('cifar10');
    expect(summary.kind).toBe(preset.includes('binary') ? 'binary' : 'ternary');
    expect(run.stderr).toMatch(/dataset cifar10: 100 train, 40 validation, 50 test images/);
    for (const value of Object.values(summary.test as Record<string, number>)) {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThanOrEqual(1);
    }
    // Colour classes under noise: at least twice chance after one pretraining and one LR epoch on 100 images.
    expect(summary.test.expected).toBeGreaterThan(0.2);
  }, 300_000);
});
