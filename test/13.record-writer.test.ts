/**
 * The recording writer against the real page cache and disk: a regular file
 * is written with direct I/O (native/direct_writer.h), so the cache holds at
 * most its partial last block, and a killed writer leaves every flush; through
 * the page cache, what it wrote leaves the cache one flush behind
 * (write-behind, native/write_behind.h); the bytes on disk are the bytes
 * written either way; outputs that are not regular files (a pipe, /dev/null)
 * are written without fsync, direct I/O or write-behind. Needs no root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { replay } from '../src/record/reader.js';
import { RecordWriter } from '../src/record/writer.js';
import { zeroCounters, type SessionEnd, type SessionInfo } from '../src/trace/types.js';
import { needRoot, WORK } from './helpers/proc.js';

const MB = 1 << 20;
const END: SessionEnd = { endedNs: 0n, reason: 'stopped', exitedPids: [], counters: zeroCounters() };
/** a header for recordings read back by the reader (it refuses a file without one) */
const INFO: SessionInfo = {
  tool: { name: 'tcptrace', version: 'test' },
  host: 'test',
  kernel: 'synthetic',
  bootId: 'test',
  clock: { monotonicNs: 1n, wallNs: 1n },
  attach: { mode: 'tp_btf', chosenBy: 'option', hooks: {}, programs: [] },
  selectors: { pids: null, children: false },
  stacks: null,
  owners: 'agent',
  startedNs: 1n,
};

/** bytes of the file in the page cache, from fincore(1) (util-linux) */
function resident(path: string): number | null {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : null;
}

const noFincore = spawnSync('fincore', ['--version']).status === 0 ? false : 'fincore (util-linux) is not installed';

/** each chunk whole, in order, after its frame head */
function assertChunks(back: Buffer, chunks: Buffer[]): void {
  let at = 0;
  for (const [i, c] of chunks.entries()) {
    at = back.indexOf(c.subarray(0, 64), at);
    assert.ok(at >= 0 && back.subarray(at, at + c.length).equals(c), `chunk ${i + 1} is in the file, whole`);
    at += c.length;
  }
}

test('a recording through the page cache leaves it one flush behind, and reads back intact', { skip: noFincore }, async () => {
  mkdirSync(WORK, { recursive: true });
  const file = join(WORK, 'write-behind.tcptrace');
  try {
    const w = new RecordWriter(file, 60_000, { direct: false });
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
    await w.finish(END);
    assertChunks(readFileSync(file), chunks);
  } finally {
    rmSync(file, { force: true });
  }
});

test('a recording written with direct I/O stays out of the page cache, and reads back intact', { skip: noFincore }, async () => {
  mkdirSync(WORK, { recursive: true });
  const file = join(WORK, 'direct.tcptrace');
  try {
    const w = new RecordWriter(file, 60_000);
    assert.equal(w.mode, 'direct');
    // odd sizes: the frames straddle blocks, and each flush leaves a partial one; the 20 MB
    // one is more than one direct write takes (16 MiB): the rest waits for the next flush
    const chunks = [8, 20, 8, 8].map((mb, i) => Buffer.alloc(mb * MB + 1000 * i + 8, i + 1));
    for (const c of chunks) {
      w.batch(c); // past 8 MB: flushed at once
      await w.idle();
    }
    assert.ok(w.bytesWritten >= 40 * MB, `${w.bytesWritten} bytes written`);
    assert.ok(w.bytesWritten % 4096 === 0, `direct I/O wrote whole blocks (${w.bytesWritten} bytes)`);
    assert.equal(statSync(file).size, w.bytesWritten, 'nothing past the whole blocks while they were written');
    // a flush with less than a block pending writes it through the page cache, after the whole ones
    w.flush();
    const size = statSync(file).size;
    assert.ok(size > w.bytesWritten && size < w.bytesWritten + 4096, `file ${size} bytes, ${w.bytesWritten} written direct`);
    const res = resident(file)!;
    assert.ok(res <= 2 * 4096, `${res} bytes of ${(size / MB).toFixed(1)} MB in the page cache`);
    await w.finish(END);
    const back = readFileSync(file);
    assert.equal(back.length, w.bytesWritten);
    assertChunks(back, chunks);
  } finally {
    rmSync(file, { force: true });
  }
});

/** the recording's end frame, read back by the reader */
async function recordedEnd(file: string): Promise<SessionEnd> {
  let end: SessionEnd | undefined;
  const r = await replay(file, { begin() {}, batch() {}, present() {}, stacks() {}, counters() {}, finish: (e) => void (end = e) });
  assert.equal(r.interrupted, false, 'the recording has its end frame');
  assert.equal(r.damagedFrames, 0);
  return end!;
}

test('past its backlog bound, direct I/O drops whole batches, and the recording counts them', async () => {
  mkdirSync(WORK, { recursive: true });
  const file = join(WORK, 'backlog.tcptrace');
  try {
    const w = new RecordWriter(file, 60_000, { backlogMax: 32 * MB });
    assert.equal(w.mode, 'direct');
    w.begin(INFO);
    // all in one tick: the first direct write cannot settle, so the rest back up behind it
    // (the backlog counts the bytes of the write in flight too: they are held until it settles)
    const chunks = [1, 2, 3, 4, 5].map((i) => Buffer.alloc(8 * MB, i));
    for (const c of chunks) w.batch(c);
    assert.deepEqual(w.shed, { batches: 2, bytes: 16 * MB });
    await w.finish(END);
    const end = await recordedEnd(file);
    assert.equal(end.counters.droppedBatches, 2);
    assert.equal(end.counters.droppedBytes, 16 * MB);
    assertChunks(readFileSync(file), chunks.slice(0, 3));
  } finally {
    rmSync(file, { force: true });
  }
});

test('on a file system that refuses direct I/O (ramfs), a recording goes through the page cache and reads back intact', { skip: needRoot() ?? false }, async (t) => {
  const dir = join(WORK, 'ramfs');
  mkdirSync(dir, { recursive: true });
  const mount = spawnSync('mount', ['-t', 'ramfs', 'ramfs', dir], { encoding: 'utf8' });
  if (mount.status !== 0) return t.skip(`cannot mount a ramfs: ${mount.stderr.trim() || mount.error?.message}`);
  try {
    const w = new RecordWriter(join(dir, 'r.tcptrace'), 60_000);
    assert.equal(w.mode, 'page cache');
    const chunks = [1, 2].map((i) => Buffer.alloc(8 * MB + 1000 * i + 8, i));
    for (const c of chunks) {
      w.batch(c);
      await w.idle();
    }
    await w.finish(END);
    await w.idle(); // the last write-behind job holds a descriptor of the file until it ends
    const back = readFileSync(join(dir, 'r.tcptrace'));
    assert.equal(back.length, w.bytesWritten);
    assertChunks(back, chunks);
  } finally {
    // lazily if still busy: never leave a mount behind
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
  }
});

test('a recording to /dev/null is written without fsync or write-behind', async () => {
  const w = new RecordWriter('/dev/null', 60_000);
  assert.equal(w.mode, 'stream');
  w.batch(Buffer.alloc(9 * MB, 7));
  await w.idle();
  assert.equal(w.bytesWritten > 9 * MB, true);
  await w.finish(END);
});
