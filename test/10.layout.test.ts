/**
 * The decoder's offsets are generated from the BTF of bpf/tcpstate.h; this test
 * checks them against the host C compiler, the one that compiled the addon:
 * a C program prints offsetof/sizeof for every field the generator emitted.
 * Runs without root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAYOUT } from '../src/generated/events.js';
import { ROOT, WORK } from './helpers/proc.js';

test('generated offsets equal the host compiler\'s layout of bpf/tcpstate.h', () => {
  const lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "tcpstate.h"', 'int main(void) {'];
  for (const [struct, l] of Object.entries(LAYOUT)) {
    lines.push(`  printf("${struct} size %zu\\n", sizeof(struct ${struct}));`);
    for (const field of Object.keys(l.fields)) {
      lines.push(`  printf("${struct}.${field} %zu %zu\\n", offsetof(struct ${struct}, ${field}), sizeof(((struct ${struct} *)0)->${field}));`);
    }
  }
  lines.push('  return 0;', '}');
  const src = join(WORK, 'layout.c');
  const bin = join(WORK, 'layout');
  writeFileSync(src, lines.join('\n'));
  const cc = spawnSync('gcc', ['-I', join(ROOT, 'bpf'), '-o', bin, src], { encoding: 'utf8' });
  assert.equal(cc.status, 0, cc.stderr);
  const out = spawnSync(bin, { encoding: 'utf8' }).stdout;
  let checked = 0;
  for (const [struct, l] of Object.entries(LAYOUT)) {
    assert.match(out, new RegExp(`^${struct} size ${l.size}$`, 'm'), `${struct} size`);
    for (const [field, f] of Object.entries(l.fields) as [string, { offset: number; size: number }][]) {
      assert.match(out, new RegExp(`^${struct}\\.${field} ${f.offset} ${f.size}$`, 'm'), `${struct}.${field}`);
      checked++;
    }
  }
  assert.ok(checked > 40, `only ${checked} fields checked`);
});
