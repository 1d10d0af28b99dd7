/**
 * A training worker: a child process that trains one run and reports over IPC (see protocol.ts). The manager forks
 * it with tsx's loader. The engine runs in a thread of this process (thread.ts) so that this thread stays free to
 * hear 'stop' and, above all, the IPC channel closing: a worker must never outlive its parent, or an orphan would go
 * on writing checkpoints into a run that has been marked interrupted and perhaps resumed elsewhere.
 */
import { isManagerMessage, type ManagerMessage, type WorkerMessage } from './protocol.ts';
import { startTrainingThread, TrainingFailedError, type TrainingThread } from './thread.ts';

if (!process.send) {
  process.stderr.write('app/runs/worker.ts is started by the run manager (child_process.fork), not by hand\n');
  process.exit(2);
}

let thread: TrainingThread | undefined;
let stopRequested = false;

function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) return resolve();
    process.send!(message, undefined, {}, () => resolve());
  });
}

/** The parent is gone (killed, crashed or closed the channel): nobody will record this run, so stop at once. */
process.on('disconnect', () => process.exit(0));

process.on('message', (message: unknown) => {
  if (isManagerMessage(message)) handle(message);
});

function handle(message: ManagerMessage): void {
  switch (message.type) {
    case 'stop':
      stopRequested = true;
      thread?.stop();
      return;
    case 'start':
      if (thread) return;
      void train(message);
      return;
  }
}

async function train(message: Extract<ManagerMessage, { type: 'start' }>): Promise<void> {
  thread = startTrainingThread(
    {
      config: message.config,
      checkpointDir: message.checkpointDir,
      checkpointPrefix: message.runId,
      ...(message.resumeFrom !== undefined ? { resumeFrom: message.resumeFrom } : {}),
    },
    (event) => {
      if (process.connected) process.send!({ type: 'event', event } satisfies WorkerMessage);
    },
  );
  if (stopRequested) thread.stop();
  let outcome: WorkerMessage;
  try {
    outcome = { type: 'done', result: await thread.result };
  } catch (error) {
    if (error instanceof TrainingFailedError) {
      const named = error.errorName === 'Error' ? error.message : `${error.errorName}: ${error.message}`;
      outcome = { type: 'failed', error: named, ...(error.threadStack !== undefined ? { stack: error.threadStack } : {}) };
    } else {
      outcome = { type: 'failed', error: error instanceof Error ? error.message : String(error) };
    }
  }
  await send(outcome);
  // The run is over and reported; leave without waiting for the thread's handles.
  process.exit(outcome.type === 'done' ? 0 : 1);
}

await send({ type: 'ready' });
