/**
 * The recording writer against the real page cache: what it wrote leaves the
 * cache one flush behind (write-behind, native/write_behind.h), the bytes on
 * disk are the bytes written, and outputs that are not regular files (a pipe,
 * /dev/null) are written without fsync or write-behind. Needs no root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RecordWriter } from '../src/record/writer.js';
import { zeroCounters, type SessionEnd } from '../src/trace/types.js';
import { WORK } from './helpers/proc.js';

const MB = 1 << 20;
const END: SessionEnd = { endedNs: 0n, reason: 'stopped', exitedPids: [], counters: zeroCounters() };

/** bytes of the file in the page cache, from fincore(1) (util-linux) */
function resident(path: string): number | null {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : null;
}

const noFincore = spawnSync('fincore', ['--version']).status === 0 ? false : 'fincore (util-linux) is not installed';

test('a recording leaves the page cache one flush behind, and reads back intact', { skip: noFincore }, async () => {
  mkdirSync(WORK, { recursive: true });
  const file = join(WORK, 'write-behind.tcptrace');
  try {
    const w = new RecordWriter(file, 60_000);
    const chunks = [1, 2, 3, 4].map((i) => Buffer.alloc(8 * MB, i));
    for (const c of chunks) {
      w.batch(c); // 8 MB: flushed at once
      await w.idle();
    }
    const size = statSync(file).size;
    assert.equal(size, w.bytesWritten);
    assert.ok(size >= 32 * MB, `${size} bytes written`);
    const res = resident(file)!;
    // the last flush's writeback is started, the three before it are dropped
    assert.ok(res <= 9 * MB, `${(res / MB).toFixed(1)} MB of ${(size / MB).toFixed(1)} MB still in the page cache`);
    w.finish(END);
    const back = readFileSync(file);
    // each chunk whole, in order, after its frame head
    let at = 0;
    for (const [i, c] of chunks.entries()) {
      at = back.indexOf(c.subarray(0, 64), at);
      assert.ok(at >= 0 && back.subarray(at, at + c.length).equals(c), `chunk ${i + 1} is in the file, whole`);
      at += c.length;
    }
  } finally {
    rmSync(file, { force: true });
  }
});

test('a recording to /dev/null is written without fsync or write-behind', async () => {
  const w = new RecordWriter('/dev/null', 60_000);
  w.batch(Buffer.alloc(9 * MB, 7));
  await w.idle();
  assert.equal(w.bytesWritten > 9 * MB, true);
  w.finish(END);
});
