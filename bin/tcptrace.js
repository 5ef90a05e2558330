#!/usr/bin/env node
// Entry point: the compiled CLI lives in dist/ (built by `npm install`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('tcptrace: not built yet: run `npm install` (or scripts/setup.sh as root) in the checkout');
  process.exit(1);
}
await import(cli.href);
