#!/usr/bin/env node
// Entry point of the `lrnet` command. The project ships TypeScript sources and runs them through tsx,
// so there is no build step between editing and running.
import { register } from 'tsx/esm/api';

// A reader that stops early (`lrnet data list | head`) closes the pipe: the output is no longer wanted, so stop
// quietly, as other command-line tools do, instead of dying on an unhandled EPIPE.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

register();
const { main } = await import('../app/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
