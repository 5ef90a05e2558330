/**
 * The addon's unwinder and symbolizer (native/stacks) on real processes, below
 * the BPF layer: test/fixtures/stacks/run.sh builds C and C++ fixtures with and
 * without frame pointers, stripped, with a .gnu_debuglink, a dlopen'ed plugin,
 * JIT code with a perf map, captures their registers and stacks with ptrace,
 * and checks every unwound and named frame (36 checks). It prints its own
 * per-frame costs; none of them is asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { needRoot, ROOT, WORK } from './helpers/proc.js';

test('unwinder and symbolizer name every frame of the stack fixtures', { skip: needRoot() ?? false }, () => {
  const r = spawnSync('sh', [join(ROOT, 'test/fixtures/stacks/run.sh')], {
    encoding: 'utf8',
    env: { ...process.env, BUILD_DIR: join(WORK, 'stacks') },
    timeout: 180_000,
  });
  const tail = `${r.stdout}${r.stderr}`.trim().split('\n').slice(-30).join('\n');
  assert.equal(r.status, 0, tail);
  assert.match(r.stdout, /\b(\d+) passed, 0 failed\s*$/, tail);
});
