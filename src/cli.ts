#!/usr/bin/env node
// Entry point of the `aegis-agent` command: argv in, exit code out.
import { main } from './cli/main.js';

process.exitCode = await main(process.argv.slice(2));
