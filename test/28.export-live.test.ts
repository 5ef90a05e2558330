/**
 * Exports of a real trace, on the real kernel: test/fixtures/attrib_server.c
 * leaks on its "quote" path and closes on its "health" path; it is recorded
 * with stacks and exported live (`record --export`) and offline (`export`).
 * The Perfetto trace keeps every rule, its sockets' states are the
 * recording's, its leak group is the quote path with its stacks (never the
 * health path), its CLOSE_WAIT counter ends at what `ss` shows, and the live
 * and offline exports tell the same story.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { batchRecords, decodeFrame, FRAME_HEAD, readFrameHead } from '../src/record/format.js';
import { buildC, FIXTURES, needKernelBtf, needRoot, runTcptrace, sleep, ssCloseWait, startServer, startTcptrace, WORK, type Server } from './helpers/proc.js';
import { readRecording } from './helpers/recording.js';
import { checkTrace, decodeTrace, type CheckedTrace, type RebuiltSocket } from './helpers/perfetto-check.js';
import { recordedStates } from './helpers/timeline-expect.js';

const skip = needRoot() ?? needKernelBtf();

function requests(port: number, payload: string, count: number): void {
  const r = spawnSync('python3', [join(FIXTURES, 'request.py'), String(port), payload, String(count)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`request.py failed: ${r.stderr}`);
}

const byTuple = (a: RebuiltSocket, b: RebuiltSocket) => `${a.ann.local} ${a.ann.remote}`.localeCompare(`${b.ann.local} ${b.ann.remote}`);

describe('export of a recorded leaky server with stacks', { skip: skip ?? false }, () => {
  let server: Server;
  let ssAtEnd: Set<string>;
  let live: CheckedTrace;
  let offline: CheckedTrace;
  let report: any;
  const rec = join(WORK, 'export-live.tcptrace');
  const livePf = join(WORK, 'export-live.pftrace');
  const offlinePf = join(WORK, 'export-offline.pftrace');

  before(async () => {
    server = await startServer(buildC('attrib_server', ['-O2', '-g']));
    requests(server.port, 'quote', 1); // a leak that predates the trace
    const t = startTcptrace(['record', '-o', rec, '--pid', String(server.pid), '--leak-after', '1', '--export', livePf]);
    await t.ready;
    requests(server.port, 'health', 6);
    requests(server.port, 'quote', 4);
    requests(server.port, 'health', 3);
    await sleep(1300); // past --leak-after
    ssAtEnd = ssCloseWait(server.pid);
    const r = await t.stop('SIGINT');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /wrote .*export-live\.pftrace .*open it in https:\/\/ui\.perfetto\.dev/);
    live = checkTrace(decodeTrace(livePf));
    const o = await runTcptrace(['export', rec, '-o', offlinePf]);
    assert.equal(o.code, 0, o.stderr);
    offline = checkTrace(decodeTrace(offlinePf));
    report = JSON.parse((await runTcptrace(['report', rec, '-f', 'json'])).stdout);
  });

  after(() => server?.stop());

  test('both exports keep every rule a reader relies on', () => {
    assert.deepEqual(live.problems, []);
    assert.deepEqual(offline.problems, []);
  });

  test('the live recording\'s frames count their records as a walk of their batches does (the ring poller counts them while copying)', () => {
    const data = readFileSync(rec);
    let before = 0;
    let batches = 0;
    for (let off = 0; off < data.length; ) {
      const h = readFrameHead(data, off);
      assert.ok(h, `a frame head at byte ${off}`);
      assert.equal(h.records, before, `frame ${h.seq}: records before it`);
      const f = decodeFrame(data.subarray(off + FRAME_HEAD, off + FRAME_HEAD + h.length));
      if (f.t === 'batch') {
        before += batchRecords(f.data as Buffer);
        batches++;
      }
      off += FRAME_HEAD + h.length;
    }
    assert.ok(batches >= 1 && before > 20, `${batches} batches, ${before} records`);
  });

  test('each socket\'s states are the recording\'s', async () => {
    const expected = recordedStates(await readRecording(rec));
    assert.ok(offline.sockets.length >= 14, `${offline.sockets.length} sockets`);
    for (const s of offline.sockets) {
      const key = `${s.ann.local} ${s.ann.remote}`;
      const states = expected.get(key);
      assert.ok(states, `${key} is not in the recording`);
      const derived = states[states.length - 1] === 'FIN_WAIT2' && s.end !== null && s.parentName !== 'closed' ? ['TIME_WAIT (derived)'] : [];
      assert.deepEqual(s.states, [...states, ...derived], `states of ${key}`);
    }
  });

  test('the leak group is the quote path, with its stacks; the health path is never in it', () => {
    assert.equal(report.leaks.length >= 1, true);
    const g = report.leaks.find((x: any) => x.origin === 'accept');
    const i = report.leaks.indexOf(g);
    const members = offline.sockets.filter((s) => s.parentName.startsWith(`leak #${i + 1}: `));
    assert.equal(members.length, 4, 'the 4 quote requests made while tracing');
    // titled by the first frame of the program's own code (accept_client is a tail call at -O2)
    assert.match(members[0].parentName, /^leak #\d+: accept @ (accept_client|serve_clients) — 4 sockets, oldest/, members[0].parentName);
    // the report's acquire stack, innermost first, inlined functions before the function they are in
    const acquire = (g.stacks.acquire as any[]).flatMap((f) => [...(f.inlined ?? []).map((x: any) => x.symbol), f.symbol || `${f.module}+${f.moduleOffset}`]);
    assert.ok(acquire.includes('serve_clients'), acquire.join(' < '));
    for (const s of members) {
      assert.deepEqual(s.acquire, acquire, 'the socket\'s life carries the acquire stack');
      // handle_quote tail-calls read_until_eof at -O2: its first write names it, the EOF read the reader
      const write = s.calls.find((c) => c.name === 'first write');
      assert.ok(write, `${s.name}: no first write instant (${s.calls.map((c) => c.name).join(', ')})`);
      assert.ok(write.stack.includes('handle_quote'), `first write stack: ${write.stack.join(' < ')}`);
      const eof = s.calls.find((c) => c.name === 'EOF read');
      assert.ok(eof, `${s.name}: no EOF read instant`);
      assert.ok(eof.stack.includes('read_until_eof'), `EOF stack: ${eof.stack.join(' < ')}`);
      assert.equal(s.end, null);
    }
    const leaked = new Set(members.map((s) => s.track));
    const health = offline.sockets.filter((s) => s.calls.some((c) => c.name === 'first write' && c.stack.includes('handle_health')));
    assert.ok(health.length >= 9, `${health.length} health sockets have their first write stack`);
    for (const s of health) {
      assert.ok(!leaked.has(s.track) && !s.parentName.startsWith('leak'), `a health socket is under ${s.parentName}`);
      assert.notEqual(s.end, null, 'the health path closes');
      assert.ok(s.calls.some((c) => c.name === 'close'), `${s.name} shows its close()`);
    }
  });

  test('the CLOSE_WAIT counter ends at what ss shows', () => {
    const cw = [...offline.tracks.values()].find((d) => d.name === 'CLOSE_WAIT' && d.counter);
    assert.ok(cw);
    const values = offline.counters.get(cw.uuid)!;
    assert.equal(values[values.length - 1].value, ssAtEnd.size);
    assert.equal(ssAtEnd.size, 5);
  });

  test('the live export tells what the offline one tells', () => {
    const summary = (t: CheckedTrace) => [...t.sockets].sort(byTuple).map((s) => ({ tuple: `${s.ann.local} ${s.ann.remote}`, states: s.states, leak: s.parentName.startsWith('leak') ? s.parentName : null, acquire: s.acquire }));
    assert.deepEqual(summary(live), summary(offline));
  });
});
