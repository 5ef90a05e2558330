/**
 * Damaged recordings (format version 4: frames with a marker, a sequence
 * number, a record count and CRC32Cs; src/record/format.ts): every intact
 * frame reads back, a damaged one is skipped and counted exactly (frames,
 * bytes, ring records), and a file that cannot be a recording is one clear
 * BAD_INPUT line, never a crash or a hang. Older versions still read: the
 * committed test/fixtures/recorded/v3-synthetic.tcptrace was written by the
 * version-3 RecordWriter from the same synthetic content as writeV4() below
 * (12 batches of compact transitions, a present frame, counters, an end).
 * No root needed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import * as G from '../src/generated/events.js';
import { decodeBatch } from '../src/decode.js';
import { EXIT, TcptraceError } from '../src/errors.js';
import type { TraceEvent } from '../src/model/events.js';
import { TCP } from '../src/model/states.js';
import { batchRecords, decodeFrame, FRAME_HEAD, FRAME_MARKER, FrameEncoder, readFrameHead } from '../src/record/format.js';
import { replay, type ReplayOptions, type ReplayResult } from '../src/record/reader.js';
import { RecordWriter } from '../src/record/writer.js';
import { zeroCounters, type SessionEnd, type SessionInfo, type TraceSink } from '../src/trace/types.js';
import { FIXTURES, runTcptrace, WORK } from './helpers/proc.js';

const DIR = join(WORK, 'damage');
mkdirSync(DIR, { recursive: true });
after(() => rmSync(DIR, { recursive: true, force: true }));
const file = (name: string) => join(DIR, `${name}.tcptrace`);

// ---- the synthetic recording (the v3 fixture holds the same content) ----

const STARTED = 1_000_000_000_000n;
const INFO: SessionInfo = {
  tool: { name: 'tcptrace', version: 'test' },
  host: 'test',
  kernel: 'synthetic',
  bootId: 'test',
  clock: { monotonicNs: STARTED, wallNs: 1_790_000_000_000_000_000n },
  attach: { mode: 'tp_btf', chosenBy: 'option', hooks: {}, programs: [] },
  selectors: { pids: null, children: false },
  stacks: null,
  owners: 'agent',
  startedNs: STARTED,
};
/** each socket's three transitions, record r being step r % 3 of socket r / 3 */
const STEPS = [
  [TCP.LISTEN, TCP.SYN_RECV],
  [TCP.SYN_RECV, TCP.ESTABLISHED],
  [TCP.ESTABLISHED, TCP.CLOSE_WAIT],
];
/** records per batch frame */
const SIZES = Array.from({ length: 12 }, (_, k) => 30 + ((k * 7) % 25));
const TOTAL = SIZES.reduce((a, b) => a + b, 0);

/** records from..from+n as compact transitions (tt_transition4), at the generated offsets */
function transitions(from: number, n: number): Buffer {
  const b = Buffer.alloc(n * G.SIZE_TRANSITION4);
  for (let i = 0; i < n; i++) {
    const r = from + i;
    const o = i * G.SIZE_TRANSITION4;
    const sock = Math.floor(r / 3);
    const [oldState, newState] = STEPS[r % 3];
    b.writeUInt16LE(G.TT_KIND.TRANSITION4, o + G.O_HDR_KIND);
    b.writeUInt16LE(G.SIZE_TRANSITION4, o + G.O_HDR_SIZE);
    b.writeUInt8(1, o + G.O_HDR_VERSION);
    b.writeBigUInt64LE(tsOf(r), o + G.O_HDR_TS_NS);
    b.writeBigUInt64LE(BigInt(0x10000 + sock * 64), o + G.O_TRANSITION4_SK);
    b.writeBigUInt64LE(BigInt(sock + 1), o + G.O_TRANSITION4_COOKIE);
    b.set([127, 0, 0, 1], o + G.O_TRANSITION4_SADDR);
    b.set([127, 0, 0, 1], o + G.O_TRANSITION4_DADDR);
    b.writeUInt16LE(8080, o + G.O_TRANSITION4_SPORT);
    b.writeUInt16LE((10000 + sock) & 0xffff, o + G.O_TRANSITION4_DPORT);
    b.writeUInt32LE(4242, o + G.O_TRANSITION4_CPU_TGID);
    b.writeUInt32LE(4242, o + G.O_TRANSITION4_CPU_TID);
    b.writeUInt32LE(4026531840, o + G.O_TRANSITION4_NETNS);
    b.writeUInt8(oldState, o + G.O_TRANSITION4_OLDSTATE);
    b.writeUInt8(newState, o + G.O_TRANSITION4_NEWSTATE);
    b.write('synthetic', o + G.O_TRANSITION4_CPU_COMM, 'latin1');
  }
  return b;
}

const tsOf = (r: number) => STARTED + BigInt(r + 1) * 1_000_000n;
/** the first record of batch k */
const firstOf = (k: number) => SIZES.slice(0, k).reduce((a, b) => a + b, 0);

/** writes the synthetic recording as this build does (version 4); bad: batches whose first record claims header version 2 */
async function writeV4(path: string, bad = new Set<number>()): Promise<void> {
  const w = new RecordWriter(path, 60_000, { direct: false });
  w.begin(INFO);
  w.present([{ type: 'present', ts: Number(STARTED), cookie: 9999n, state: TCP.LISTEN, pid: 4242, fd: 3, comm: 'synthetic', inode: 777, sharedWith: [], family: 2, local: '127.0.0.1:8080', remote: '0.0.0.0:0', netns: 4026531840 }]);
  let r = 0;
  for (const [k, n] of SIZES.entries()) {
    const batch = transitions(r, n);
    if (bad.has(k)) batch.writeUInt8(2, G.O_HDR_VERSION);
    w.batch(batch);
    r += n;
    if (k % 4 === 3) w.counters({ ...zeroCounters(), events: r, records: r, batches: k + 1 });
  }
  await w.finish({ endedNs: tsOf(r + 1), reason: 'stopped', exitedPids: [], counters: { ...zeroCounters(), events: r, records: r, batches: SIZES.length } });
}

// ---- reading back ----

interface ReadBack {
  r: ReplayResult;
  events: TraceEvent[];
  present: number;
  end: SessionEnd;
}

async function readBack(path: string, opts?: ReplayOptions): Promise<ReadBack> {
  const events: TraceEvent[] = [];
  let present = 0;
  let end: SessionEnd | undefined;
  const sink: TraceSink = {
    begin() {},
    batch: (buf) => decodeBatch(buf, events),
    present: (p) => void (present += p.length),
    stacks() {},
    counters() {},
    finish: (e) => void (end = e),
  };
  const r = await replay(path, sink, opts);
  return { r, events, present, end: end! };
}

/** the timestamps of every synthetic record but those of the batches lost */
function expectedTs(lostBatches: number[]): number[] {
  const out: number[] = [];
  for (const [k, n] of SIZES.entries()) if (!lostBatches.includes(k)) for (let r = firstOf(k); r < firstOf(k) + n; r++) out.push(Number(tsOf(r)));
  return out;
}

const tsList = (b: ReadBack) => b.events.map((e) => e.ts);

interface Span {
  off: number;
  /** head and payload */
  bytes: number;
  seq: number;
  t: string;
  records: number;
  /** the batch's index in SIZES, for batch frames */
  batch: number | null;
}

/** the frames of an intact version-4 file, walked by their heads */
function spans(data: Buffer): Span[] {
  const out: Span[] = [];
  let batch = 0;
  for (let off = 0; off < data.length; ) {
    const h = readFrameHead(data, off);
    assert.ok(h, `a frame head at byte ${off}`);
    const f = decodeFrame(data.subarray(off + FRAME_HEAD, off + FRAME_HEAD + h.length));
    const isBatch = f.t === 'batch';
    out.push({ off, bytes: FRAME_HEAD + h.length, seq: h.seq, t: f.t as string, records: isBatch ? batchRecords(f.data as Buffer) : 0, batch: isBatch ? batch++ : null });
    off += FRAME_HEAD + h.length;
  }
  return out;
}

const clean = file('clean');
let CLEAN: Buffer;
let FRAMES: Span[];
const batchSpan = (k: number) => FRAMES.find((s) => s.batch === k)!;

test('a version-4 recording: numbered frames, records counted before each, every record reads back', async () => {
  await writeV4(clean);
  CLEAN = readFileSync(clean);
  FRAMES = spans(CLEAN);
  assert.deepEqual(FRAMES.map((s) => s.seq), FRAMES.map((_, i) => i), 'frames numbered from 0, one by one');
  assert.deepEqual(
    FRAMES.map((s) => s.t),
    ['header', 'present', 'batch', 'batch', 'batch', 'batch', 'counters', 'batch', 'batch', 'batch', 'batch', 'counters', 'batch', 'batch', 'batch', 'batch', 'counters', 'end'],
  );
  let before = 0;
  for (const s of FRAMES) {
    assert.equal(readFrameHead(CLEAN, s.off)!.records, before, `frame ${s.seq} counts the records before it`);
    before += s.records;
  }
  assert.equal(before, TOTAL);
  const b = await readBack(clean);
  assert.deepEqual(tsList(b), expectedTs([]));
  assert.equal(b.present, 1);
  assert.equal(b.end.reason, 'stopped');
  assert.deepEqual(
    { ...b.r },
    { version: 4, frames: FRAMES.length, records: TOTAL, interrupted: false, truncatedBytes: 0, damagedFrames: 0, damagedBytes: 0, lostRecords: 0, damage: [] },
  );
});

test('the batch frame head is, with its data, the msgpack frame of the batch, byte for byte', () => {
  for (const n of [0, 1, 3, 800, 2979]) {
    const data = transitions(0, n); // 0 to 262,152 bytes: bin 8, 16 and 32
    const viaHead = Buffer.concat([new FrameEncoder().batchFrameHead(data), data]);
    assert.deepEqual(viaHead, new FrameEncoder().frame({ t: 'batch', data }), `${data.length} bytes`);
  }
});

test('the committed version-3 recording reads the same socket events as the same content written as version 4', async () => {
  const v3 = await readBack(join(FIXTURES, 'recorded/v3-synthetic.tcptrace'));
  const v4 = await readBack(clean);
  assert.equal(v3.r.version, 3);
  assert.deepEqual(v3.events, v4.events);
  assert.equal(v3.present, 1);
  assert.deepEqual(v3.end, v4.end);
  assert.deepEqual({ ...v3.r, version: 4 }, v4.r);
});

/** a damaged copy of the clean recording */
function damaged(name: string, damage: (d: Buffer) => Buffer | void): string {
  const copy = Buffer.from(CLEAN);
  writeFileSync(file(name), damage(copy) ?? copy);
  return file(name);
}

test('flipped bytes in a middle frame\'s payload: that frame is skipped, exactly, and the rest reads', async () => {
  const s = batchSpan(6);
  const path = damaged('flip-payload', (d) => {
    for (const i of [100, 101, 2000]) d[s.off + FRAME_HEAD + i] ^= 0x5a;
  });
  const b = await readBack(path);
  assert.deepEqual(tsList(b), expectedTs([6]));
  assert.deepEqual(b.r.damage, [{ offset: s.off, bytes: s.bytes, frames: 1, lostRecords: SIZES[6], why: `frame ${s.seq}: bad payload checksum` }]);
  assert.deepEqual([b.r.damagedFrames, b.r.damagedBytes, b.r.lostRecords, b.r.interrupted, b.r.truncatedBytes], [1, s.bytes, SIZES[6], false, 0]);
});

test('a flipped bit in a frame\'s length: the reader finds the next frame by its marker', async () => {
  const s = batchSpan(3);
  const b = await readBack(damaged('flip-length', (d) => void (d[s.off + 5] ^= 0x10)));
  assert.deepEqual(tsList(b), expectedTs([3]));
  assert.deepEqual(b.r.damage, [{ offset: s.off, bytes: s.bytes, frames: 1, lostRecords: SIZES[3], why: 'no frame head (bad marker or checksum)' }]);
});

test('a zeroed 4 KiB block in the middle: the frames it touches are lost, counted from the frames around it', async () => {
  const z = Math.floor(CLEAN.length / 2) - 1000;
  const hit = FRAMES.filter((s) => s.off < z + 4096 && s.off + s.bytes > z);
  assert.ok(hit.length >= 2, 'the block spans a frame boundary');
  const b = await readBack(damaged('zeroed', (d) => void d.fill(0, z, z + 4096)));
  const lostBatches = hit.filter((s) => s.batch !== null).map((s) => s.batch!);
  assert.deepEqual(tsList(b), expectedTs(lostBatches));
  const [first, last] = [hit[0], hit[hit.length - 1]];
  const lost = hit.reduce((a, s) => a + s.records, 0);
  assert.deepEqual([b.r.damagedFrames, b.r.damagedBytes, b.r.lostRecords], [hit.length, last.off + last.bytes - first.off, lost]);
  assert.equal(b.r.damage.length, 1, 'one stretch');
  assert.equal(b.r.damage[0].offset, first.off);
  assert.equal(b.r.interrupted, false);
});

test('a whole frame missing (no damaged byte): the sequence numbers and record counts say what was lost', async () => {
  const s = batchSpan(9);
  const b = await readBack(damaged('missing', (d) => Buffer.concat([d.subarray(0, s.off), d.subarray(s.off + s.bytes)])));
  assert.deepEqual(tsList(b), expectedTs([9]));
  assert.deepEqual(b.r.damage, [{ offset: s.off, bytes: 0, frames: 1, lostRecords: SIZES[9], why: `frame ${s.seq} missing` }]);
});

test('a truncated tail: the partial last frame is ignored, and the recording is interrupted, not damaged', async () => {
  const s = batchSpan(11);
  const b = await readBack(damaged('cut', (d) => d.subarray(0, s.off + 500)));
  assert.deepEqual(tsList(b), expectedTs([11]));
  assert.deepEqual([b.r.truncatedBytes, b.r.interrupted, b.r.damagedFrames, b.r.lostRecords], [500, true, 0, 0]);
  assert.equal(b.end.reason, 'interrupted');
  // cut inside a frame head: the same
  const h = await readBack(damaged('cut-head', (d) => d.subarray(0, s.off + 10)));
  assert.deepEqual([h.r.truncatedBytes, h.r.interrupted, h.r.damagedFrames, h.events.length], [10, true, 0, TOTAL - SIZES[11]]);
});

test('damage that runs to the end of the file: counted, its records unknown', async () => {
  const s = batchSpan(11);
  const b = await readBack(damaged('zero-tail', (d) => void d.fill(0, s.off + 200)));
  assert.deepEqual(tsList(b), expectedTs([11]));
  assert.deepEqual([b.r.damagedFrames, b.r.damagedBytes, b.r.lostRecords, b.r.interrupted, b.r.truncatedBytes], [1, CLEAN.length - s.off, null, true, 0]);
});

test('a batch whose records the analysis refuses (a malformed record in an intact frame) is counted as damaged, not fatal', async () => {
  const path = file('malformed');
  await writeV4(path, new Set([4]));
  const s = spans(readFileSync(path)).find((x) => x.batch === 4)!;
  const r = await runTcptrace(['report', path, '-f', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.deepEqual([doc.counts.damagedFrames, doc.counts.damagedBytes, doc.counts.lostRecords], [1, s.bytes, SIZES[4]]);
  assert.equal(doc.counts.transitions, TOTAL - SIZES[4], 'every other record analysed');
  assert.ok(doc.warnings.some((w: string) => new RegExp(`^1 damaged frame skipped: .* and ${SIZES[4]} records lost .*record version 2`).test(w)), doc.warnings.join('\n'));
});

test('tcptrace report of damaged recordings: exit 0, the damage in counts and in a warning', async () => {
  const flipped = damaged('cli-flip', (d) => void (d[batchSpan(2).off + FRAME_HEAD + 50] ^= 1));
  let r = await runTcptrace(['report', flipped, '-f', 'json']);
  assert.equal(r.code, 0, r.stderr);
  let doc = JSON.parse(r.stdout);
  assert.deepEqual([doc.counts.damagedFrames, doc.counts.damagedBytes, doc.counts.lostRecords], [1, batchSpan(2).bytes, SIZES[2]]);
  assert.equal(doc.counts.transitions, TOTAL - SIZES[2]);
  assert.ok(doc.warnings.some((w: string) => /^1 damaged frame skipped: [\d.]+ KiB and 44 records lost \(the first at byte [\d,]+: frame 4: bad payload checksum\)$/.test(w)), doc.warnings.join('\n'));
  // an intact one: zeros
  r = await runTcptrace(['report', clean, '-f', 'json']);
  doc = JSON.parse(r.stdout);
  assert.deepEqual([doc.counts.damagedFrames, doc.counts.damagedBytes, doc.counts.lostRecords, doc.warnings], [0, 0, 0, []]);
  // damage to the end: records unknown, JSON null
  r = await runTcptrace(['report', file('zero-tail'), '-f', 'json']);
  assert.equal(r.code, 0, r.stderr);
  doc = JSON.parse(r.stdout);
  assert.equal(doc.counts.lostRecords, null);
  assert.ok(doc.warnings.some((w: string) => /an unknown number of records lost/.test(w)));
  // the text report shows the warning too
  r = await runTcptrace(['report', flipped]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 damaged frame skipped/);
});

/** replay and the CLI both refuse the file: BAD_INPUT, one line */
async function assertBadInput(path: string, message: RegExp): Promise<void> {
  await assert.rejects(readBack(path), (err: unknown) => err instanceof TcptraceError && err.code === 'BAD_INPUT' && message.test(err.message));
  const r = await runTcptrace(['report', path, '-f', 'json']);
  assert.equal(r.code, EXIT.BAD_INPUT, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, message);
}

test('files that cannot be read as a recording: one BAD_INPUT line each', async () => {
  writeFileSync(file('empty'), '');
  await assertBadInput(file('empty'), /empty file \(0 bytes\): not a tcptrace recording/);
  for (let i = 0; i < 8; i++) {
    writeFileSync(file('random'), randomBytes(i < 4 ? 1 << 20 : 1 + i * 3));
    await assertBadInput(file('random'), /not a tcptrace recording|not a readable tcptrace recording/);
  }
  writeFileSync(file('text'), 'hello, this is not a recording\n'.repeat(100));
  await assertBadInput(file('text'), /: not a tcptrace recording$/m);
  const header = FRAMES[0];
  await assertBadInput(damaged('bad-header', (d) => void (d[header.off + FRAME_HEAD + 30] ^= 1)), /header frame is damaged \(bad payload checksum\)/);
  await assertBadInput(damaged('bad-header-head', (d) => void (d[header.off + 9] ^= 1)), /header frame is damaged \(its head does not check out\)/);
  await assertBadInput(damaged('bad-marker', (d) => void (d[0] = 0)), /header frame is damaged \(a frame follows at byte \d+\)/);
  await assertBadInput(damaged('cut-header', (d) => d.subarray(0, header.bytes - 1)), /cut short inside its header frame/);
  await assertBadInput(damaged('future', (d) => void (d[3] = 9)), /recording format version 9 \(this tcptrace reads versions 1, 2, 3, 4; it writes 4\)/);
});

test('a file that is only a header reads: no records, interrupted', async () => {
  const path = damaged('header-only', (d) => d.subarray(0, FRAMES[0].bytes));
  const b = await readBack(path);
  assert.deepEqual([b.r.frames, b.r.records, b.r.interrupted, b.r.damagedFrames, b.r.truncatedBytes, b.events.length], [1, 0, true, 0, 0, 0]);
  const r = await runTcptrace(['report', path, '-f', 'json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).counts.damagedFrames, 0);
});

test('never a hang: a recording whose body is frame markers and garbage reads in linear time', async () => {
  const junk = Buffer.alloc(8 << 20);
  for (let o = 0; o + 4 <= junk.length; o += 4) FRAME_MARKER.copy(junk, o);
  randomBytes(1 << 20).copy(junk, 4 << 20);
  const path = damaged('markers', (d) => Buffer.concat([d.subarray(0, FRAMES[0].bytes), junk, d.subarray(FRAMES[0].bytes)]));
  const t0 = performance.now();
  const b = await readBack(path);
  const ms = performance.now() - t0;
  assert.ok(ms < 10_000, `${ms.toFixed(0)} ms`);
  // the frames after the junk all read: the junk is one stretch that lost no frame
  assert.deepEqual(tsList(b), expectedTs([]));
  assert.deepEqual(b.r.damage, [{ offset: FRAMES[0].bytes, bytes: junk.length, frames: 0, lostRecords: 0, why: 'no frame head (bad marker or checksum)' }]);
});

/** the frames of a version-3 file: offset and bytes (length prefix included) */
function v3Spans(data: Buffer): { off: number; bytes: number; t: string }[] {
  const out = [];
  for (let off = 0; off + 4 <= data.length; ) {
    const len = data.readUInt32BE(off);
    out.push({ off, bytes: 4 + len, t: decodeFrame(data.subarray(off + 4, off + 4 + len)).t as string });
    off += 4 + len;
  }
  return out;
}

test('a version-3 frame that does not decode ends the replay there, counted, with everything before it', async () => {
  const v3 = readFileSync(join(FIXTURES, 'recorded/v3-synthetic.tcptrace'));
  const frames = v3Spans(v3);
  const batches = frames.filter((f) => f.t === 'batch');
  const bad = batches[5];
  for (const [name, damage] of [
    ['v3-garbage', (d: Buffer) => void (d[bad.off + 4] = 0xc1)], // a byte msgpack never uses
    ['v3-length', (d: Buffer) => void d.writeUInt32BE(0xfffffff0, bad.off)], // a length past MAX_FRAME: damage, not an allocation
  ] as const) {
    const copy = Buffer.from(v3);
    damage(copy);
    writeFileSync(file(name), copy);
    const b = await readBack(file(name));
    assert.deepEqual(tsList(b), expectedTs([5, 6, 7, 8, 9, 10, 11]), name);
    assert.deepEqual([b.r.damagedFrames, b.r.damagedBytes, b.r.lostRecords, b.r.interrupted, b.r.truncatedBytes], [1, v3.length - bad.off, null, true, 0], name);
    const r = await runTcptrace(['report', file(name), '-f', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).counts.damagedFrames, 1);
  }
  // cut mid-frame: a partial last frame, as before
  writeFileSync(file('v3-cut'), v3.subarray(0, bad.off + 7));
  const cut = await readBack(file('v3-cut'));
  assert.deepEqual([cut.r.truncatedBytes, cut.r.damagedFrames, cut.events.length], [7, 0, firstOf(5)]);
});

test('a recording larger than the reader\'s chunks: frames across chunk ends, one longer than a chunk, damage past the first', async () => {
  const sizes = [30_000, 120_000 /* 10.6 MB: longer than a chunk (8 MiB) */, 17_001, 30_000, 45_000, 30_000];
  const path = file('large');
  const w = new RecordWriter(path, 60_000, { direct: false });
  w.begin(INFO);
  for (let k = 0, r = 0; k < sizes.length; r += sizes[k++]) w.batch(transitions(r, sizes[k]));
  await w.finish({ endedNs: tsOf(0), reason: 'stopped', exitedPids: [], counters: zeroCounters() });
  /** the records' timestamps, in order, as the sink got them */
  const read = async (p: string) => {
    const ts: bigint[] = [];
    const sink: TraceSink = { begin() {}, present() {}, stacks() {}, counters() {}, finish() {}, batch: (buf) => void ts.push(...batchTs(buf)) };
    return { r: await replay(p, sink), ts };
  };
  const whole = await read(path);
  const all = sizes.flatMap((n, k) => Array.from({ length: n }, (_, i) => tsOf(sizes.slice(0, k).reduce((a, b) => a + b, 0) + i)));
  assert.equal(whole.ts.length, all.length);
  assert.ok(whole.ts.every((t, i) => t === all[i]), 'every record, in order');
  assert.deepEqual([whole.r.damagedFrames, whole.r.truncatedBytes, whole.r.interrupted], [0, 0, false]);

  const data = readFileSync(path);
  const s = spans(data).filter((x) => x.t === 'batch')[3];
  assert.ok(s.off > 8 << 20, 'the damaged frame is past the first chunk');
  data[s.off + s.bytes - 1] ^= 0xff;
  writeFileSync(file('large-damaged'), data);
  const hurt = await read(file('large-damaged'));
  const from = sizes.slice(0, 3).reduce((a, b) => a + b, 0);
  const rest = [...all.slice(0, from), ...all.slice(from + sizes[3])];
  assert.equal(hurt.ts.length, rest.length);
  assert.ok(hurt.ts.every((t, i) => t === rest[i]), 'every other record, in order');
  assert.deepEqual([hurt.r.damagedFrames, hurt.r.damagedBytes, hurt.r.lostRecords], [1, s.bytes, sizes[3]]);
});

/** the timestamps of a batch's records */
function batchTs(buf: Buffer): bigint[] {
  const out: bigint[] = [];
  for (let o = 0; o + G.SIZE_HDR <= buf.length; o += (buf.readUInt16LE(o + G.O_HDR_SIZE) + 7) & ~7) out.push(buf.readBigUInt64LE(o + G.O_HDR_TS_NS));
  return out;
}

test('progress: reported as the file is read, and once at its end', async () => {
  const seen: { bytesRead: number; totalBytes: number; records: number; frames: number }[] = [];
  let drains = 0;
  await readBack(clean, { onProgress: (p) => seen.push(p), drain: async () => void drains++ });
  assert.ok(seen.length >= 1 && seen.length <= 2, `${seen.length} calls for a small file`);
  assert.deepEqual(seen[seen.length - 1], { bytesRead: CLEAN.length, totalBytes: CLEAN.length, records: TOTAL, frames: FRAMES.length });
  assert.equal(drains, 1, 'one chunk read, one drain');
});
