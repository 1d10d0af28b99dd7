/** The run recorder keeps the newest checkpoints of a run, rows and files, and deletes the older ones. */
import { describe, it, expect } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from '../app/store/index.ts';
import { RunRecorder, KEEP_CHECKPOINTS } from '../app/runs/recorder.ts';
import { PRESETS } from '../engine/config.ts';

describe('RunRecorder checkpoints', () => {
  it(`keeps the newest ${KEEP_CHECKPOINTS} checkpoints and deletes the older rows and files`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lrnet-recorder-'));
    const store = openStore(path.join(dir, 'lrnet.db'));
    try {
      const config = PRESETS['mnist-ternary-quick'];
      const run = store.createRun({ name: 'pruning', preset: config.preset, config, seed: config.seed, appVersion: 'test' });
      const recorder = new RunRecorder(store, run.id, config, { onError: (e) => { throw e; } });
      const files: string[] = [];
      for (let epoch = 1; epoch <= 6; epoch++) {
        const file = path.join(dir, `step-${epoch * 10}.ckpt`);
        fs.writeFileSync(file, 'checkpoint');
        files.push(file);
        recorder.record({ type: 'checkpoint', phase: 'lr', epoch, step: epoch * 10, path: file, bytes: 10 });
      }
      recorder.close();
      const kept = store.getRun(run.id).checkpoints;
      expect(kept.map((c) => c.step)).toEqual([40, 50, 60]);
      expect(store.getRun(run.id).lastCheckpointId).toBe(kept.at(-1)!.id);
      expect(files.map((f) => fs.existsSync(f))).toEqual([false, false, false, true, true, true]);
    } finally {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
