#!/usr/bin/env node
// `npm test`: brings the build up to date, then runs every test file in
// dist/test with node's test runner, one file at a time (the kernel-facing
// tests attach BPF programs and measure real sockets; running them side by
// side would make them observe each other). Extra arguments go to node --test.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const build = spawnSync(process.execPath, [join(root, 'scripts/build.mjs')], { stdio: 'inherit', cwd: root });
if (build.status !== 0) process.exit(build.status ?? 1);

const dir = join(root, 'dist/test');
const only = process.env.TCPTRACE_TESTS; // e.g. "attribution,doctor" to run a subset (the "25." prefix is optional)
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => !only || only.split(',').some((n) => f.startsWith(n) || f.replace(/^\d+\./, '').startsWith(n)))
  .sort()
  .map((f) => join(dir, f));
// node --test with no files would discover and run everything: say so instead
if (files.length === 0) {
  console.error(`TCPTRACE_TESTS=${only}: no test file in dist/test matches`);
  process.exit(2);
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...process.argv.slice(2), ...files], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
