/**
 * The `lrnet` command: dispatches to subcommands and turns expected errors into a message and an exit code.
 */
import { trainCommand, TRAIN_USAGE, UsageError } from './train.ts';
import { ConfigError } from '../../engine/config.ts';
import { TrainingError } from '../../engine/train.ts';
import { BackendError } from '../../engine/backends/index.ts';
import { CheckpointError } from '../../engine/checkpoint.ts';
import { isDatasetError } from '../../engine/data/index.ts';

const USAGE = `usage: lrnet COMMAND [options]

commands:
  train      train an LR-net (lrnet train --help)

Run "lrnet COMMAND --help" for a command's options.
`;

const COMMANDS: Record<string, { usage: string; run: (args: readonly string[]) => Promise<number> }> = {
  train: { usage: TRAIN_USAGE, run: trainCommand },
};

/** Runs the CLI with the given arguments (without "node lrnet"); returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`lrnet: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(command.usage);
    return 0;
  }
  try {
    return await command.run(args);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`lrnet ${name}: ${error.problems.length > 1 ? 'invalid options:\n' : ''}${error.problems.map((p) => (error.problems.length > 1 ? `  - ${p}` : p)).join('\n')}\n\nRun "lrnet ${name} --help" for the options.\n`);
      return 2;
    }
    if (error instanceof ConfigError || error instanceof TrainingError || error instanceof BackendError ||
        error instanceof CheckpointError || isDatasetError(error)) {
      process.stderr.write(`lrnet ${name}: ${(error as Error).message}\n`);
      return 1;
    }
    throw error;
  }
}
