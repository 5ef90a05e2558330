/**
 * `tcptrace export` of the committed recording (a real trace of
 * test/fixtures/leaky_server.c), no root needed: the Perfetto trace decodes
 * with protobufjs and with protoc, keeps the rules a reader relies on, and the
 * socket lives rebuilt from it equal the recording's own transitions; the leak
 * groups equal `report -f json`'s. Chrome JSON parses and nests. Bad input is
 * a one-line error with its exit code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FIXTURES, runTcptrace, WORK } from './helpers/proc.js';
import { readRecording } from './helpers/recording.js';
import { recordedStates } from './helpers/timeline-expect.js';
import { checkTrace, decodeTrace, PROTO, type CheckedTrace } from './helpers/perfetto-check.js';
import { EXIT } from '../src/errors.js';

const file = join(FIXTURES, 'recorded/leaky-server.tcptrace');

async function exported(args: string[], out: string): Promise<CheckedTrace> {
  const r = await runTcptrace(['export', file, '-o', out, ...args]);
  assert.equal(r.code, 0, r.stderr);
  const t = checkTrace(decodeTrace(out));
  assert.deepEqual(t.problems, []);
  return t;
}

test('the Perfetto export keeps every rule a reader relies on, and its sockets are the recording\'s', async () => {
  const out = join(WORK, 'leaky.pftrace');
  const t = await exported(['--leak-after', '1'], out);
  const rec = await readRecording(file);
  const expected = recordedStates(rec);
  assert.equal(t.sockets.length, 8, 'the recording holds 8 sockets of the server (2 leaked before attach, 3 during, 2 good, the listener)');
  for (const s of t.sockets) {
    const key = `${s.ann.local} ${s.ann.remote}`;
    assert.ok(expected.has(key), `socket ${key} is not in the recording`);
    const states = expected.get(key)!;
    // an active close (FIN_WAIT2 → CLOSE) leaves the kernel's timewait socket, drawn as a derived state
    // on a socket's own track (packed lanes end at CLOSE: the TIME_WAIT counter counts those)
    const derived = states[states.length - 1] === 'FIN_WAIT2' && s.end !== null && s.parentName !== 'closed' ? ['TIME_WAIT (derived)'] : [];
    assert.deepEqual(s.states, [...states, ...derived], `states of ${key}`);
  }
  // the clock ties the trace to the recording's clock and wall time
  const clock = t.packets[0].clock_snapshot;
  assert.equal(clock.primary_trace_clock, 3);
  assert.equal(clock.clocks[0].timestamp, Number(rec.info.startedNs));
  assert.equal(t.attributes.tool, `tcptrace ${rec.info.tool.version}`);
  assert.equal(t.attributes.kernel, rec.info.kernel);
});

test('leak groups are tracks of their own, equal to report -f json, and their sockets run off the edge', async () => {
  const t = await exported(['--leak-after', '1'], join(WORK, 'groups.pftrace'));
  const r = await runTcptrace(['report', file, '-f', 'json', '--leak-after', '1']);
  const report = JSON.parse(r.stdout);
  assert.ok(report.leaks.length >= 2);
  report.leaks.forEach((g: any, i: number) => {
    const members = t.sockets.filter((s) => s.parentName.startsWith(`leak #${i + 1}: `));
    assert.equal(members.length, g.count, `leak #${i + 1} has ${g.count} sockets`);
    assert.match(members[0].parentName, new RegExp(`^leak #${i + 1}: ${g.origin}.* ${g.count} sockets?, oldest`));
    assert.deepEqual(members.map((s) => s.ann.fd).sort(), g.sockets.map((x: any) => x.fd).sort());
    for (const s of members) {
      assert.equal(s.end, null, 'a leaked socket has no end');
      assert.equal(s.ann.open_at_end, true);
      assert.equal(s.correlation, i + 1);
      assert.equal(s.states[s.states.length - 1], 'CLOSE_WAIT');
    }
  });
  // the good requests closed: they have an end, and are in no leak group
  const closed = t.sockets.filter((s) => s.end !== null);
  assert.equal(closed.length, 2);
  for (const s of closed) assert.ok(!s.parentName.startsWith('leak'), `${s.name} closed, yet is under ${s.parentName}`);
  // the counters: the last CLOSE_WAIT value of the server is the report's count
  const cw = [...t.tracks.values()].find((d) => d.name === 'CLOSE_WAIT' && d.counter);
  const values = t.counters.get(cw!.uuid)!;
  assert.equal(values[values.length - 1].value, report.states.CLOSE_WAIT);
});

test('protoc decodes the export with the same schema (an independent parser)', { skip: existsSync('/usr/bin/protoc') ? false : 'protoc missing: apt-get install protobuf-compiler (scripts/setup.sh installs it)' }, async () => {
  const out = join(WORK, 'protoc.pftrace');
  const t = await exported([], out);
  const r = spawnSync('protoc', [`--proto_path=${join(PROTO, '..')}`, '--decode=perfetto.protos.Trace', PROTO], { input: readFileSync(out), encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal((r.stdout.match(/^packet \{/gm) ?? []).length, t.packets.length);
  assert.equal((r.stdout.match(/track_descriptor \{/g) ?? []).length, t.tracks.size);
  const raw = spawnSync('protoc', ['--decode_raw'], { input: readFileSync(out), encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(raw.status, 0, raw.stderr);
});

test('.pftrace.gz is the same trace, gzipped', async () => {
  const plain = join(WORK, 'same.pftrace');
  const gz = join(WORK, 'same.pftrace.gz');
  await exported([], plain);
  const r = await runTcptrace(['export', file, '-o', gz]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(gunzipSync(readFileSync(gz)), readFileSync(plain));
});

test('--pid and --from/--to narrow the picture', async () => {
  const rec = await readRecording(file);
  const pid = rec.info.selectors.pids![0];
  const mine = await exported(['--pid', String(pid)], join(WORK, 'pid.pftrace'));
  assert.equal(mine.sockets.length, 8);
  const none = await exported(['--pid', '1'], join(WORK, 'pid1.pftrace'));
  assert.equal(none.sockets.length, 0);
  // the first half second: the sockets alive then, cut at its end
  const early = await exported(['--from', '0', '--to', '0.5'], join(WORK, 'window.pftrace'));
  const limit = Number(rec.info.startedNs) + 0.5e9;
  assert.ok(early.sockets.length > 0 && early.sockets.length < 8, `${early.sockets.length} sockets in the first 0.5 s`);
  for (const s of early.sockets) {
    assert.ok(s.start <= limit);
    if (s.end !== null) assert.ok(s.end <= limit);
  }
});

/** the CLOSE_WAIT counter track's points of the trace (one process in the fixture) */
function closeWaitPoints(t: CheckedTrace): { ts: number; value: number }[] {
  const tracks = [...t.tracks.values()].filter((td) => td.name === 'CLOSE_WAIT' && td.counter);
  assert.equal(tracks.length, 1, 'one CLOSE_WAIT counter track');
  return t.counters.get(tracks[0].uuid) ?? [];
}

test('--from: each counter starts at the window with the count held from before, and never goes past the end', async () => {
  const rec = await readRecording(file);
  const started = Number(rec.info.startedNs);
  const whole = closeWaitPoints(await exported([], join(WORK, 'whole.pftrace')));
  const from = 2.0;
  const at = started + from * 1e9;
  const before = whole.filter((p) => p.ts <= at);
  const held = before[before.length - 1].value;
  assert.ok(held >= 2, `${held} sockets in CLOSE_WAIT at ${from} s (the 2 leaked before attach at least)`);
  const late = closeWaitPoints(await exported(['--from', String(from)], join(WORK, 'late.pftrace')));
  assert.deepEqual(late[0], { ts: at, value: held }, 'the window opens with the count held from before');
  assert.deepEqual(late.slice(1), whole.filter((p) => p.ts > at), 'and then the same changes');
  // the last value is the report's CLOSE_WAIT count, and no point lies past the recording's end
  const report = JSON.parse((await runTcptrace(['report', file, '-f', 'json'])).stdout);
  assert.equal(whole[whole.length - 1].value, report.closeWait.length);
  const endNs = Number(rec.end.endedNs);
  assert.ok(whole.every((p) => p.ts <= endNs), 'no counter point past the end');
});

test('Chrome JSON parses, its slices nest per socket, and its leak threads match the report', async () => {
  const out = join(WORK, 'leaky.json');
  const r = await runTcptrace(['export', file, '-o', out, '--leak-after', '1']);
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(readFileSync(out, 'utf8'));
  const evs: any[] = doc.traceEvents;
  assert.ok(evs.every((e) => ['M', 'X', 'i', 'C'].includes(e.ph)), 'only M, X, i and C events');
  const xs = evs.filter((e) => e.ph === 'X');
  assert.ok(xs.every((e) => e.dur >= 0 && e.ts >= 0));
  // per (pid, tid): the socket slice encloses its states and calls
  const byThread = new Map<string, any[]>();
  for (const e of evs) if (e.ph === 'X' || e.ph === 'i') byThread.set(`${e.pid}/${e.tid}`, [...(byThread.get(`${e.pid}/${e.tid}`) ?? []), e]);
  for (const [k, list] of byThread) {
    const life = list.find((e) => e.name === 'socket');
    assert.ok(life, `${k} has its life`);
    for (const e of list) assert.ok(e.ts >= life.ts - 0.01 && e.ts + (e.dur ?? 0) <= life.ts + life.dur + 0.01, `${k}: ${e.name} at ${e.ts} outside its socket [${life.ts}, +${life.dur}]`);
  }
  const report = JSON.parse((await runTcptrace(['report', file, '-f', 'json', '--leak-after', '1'])).stdout);
  const names = evs.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => e.args.name as string);
  report.leaks.forEach((g: any, i: number) => assert.equal(names.filter((n) => n.startsWith(`leak #${i + 1}:`)).length, g.count));
});

test('bad input: one line, and its exit code', async () => {
  const missing = await runTcptrace(['export', join(WORK, 'nope.tcptrace')]);
  assert.equal(missing.code, EXIT.NO_INPUT, missing.stderr);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  const notRec = join(WORK, 'not-a-recording.tcptrace');
  writeFileSync(notRec, 'hello, this is not a recording\n');
  const bad = await runTcptrace(['export', notRec, '-o', join(WORK, 'x.pftrace')]);
  assert.equal(bad.code, EXIT.BAD_INPUT, bad.stderr);
  const fmt = await runTcptrace(['export', file, '-f', 'svg']);
  assert.equal(fmt.code, EXIT.USAGE);
  const ext = await runTcptrace(['export', file, '-o', join(WORK, 'x.txt')]);
  assert.equal(ext.code, EXIT.USAGE);
  assert.match(ext.stderr, /cannot tell the export format/);
  const window = await runTcptrace(['export', file, '--from', '5', '--to', '1']);
  assert.equal(window.code, EXIT.USAGE);
  const denied = await runTcptrace(['export', file, '-o', '/proc/version.pftrace']);
  assert.equal(denied.code, EXIT.CANNOT_WRITE, denied.stderr);
  const same = await runTcptrace(['export', file, '-o', file, '-f', 'perfetto']);
  assert.equal(same.code, EXIT.USAGE);
});
