#!/usr/bin/env node
// Entry point of the `lrnet` command. The project ships TypeScript sources and runs them through tsx,
// so there is no build step between editing and running.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../app/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
