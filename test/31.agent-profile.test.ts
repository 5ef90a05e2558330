/**
 * `tcptrace agent` names the code path, over time: a server with a leaking
 * handler and a closing one (test/fixtures/attrib_server.c) in a systemd-like
 * cgroup of its own, traced with the whole host. The pprof profile decodes
 * (pprof-format, and `go tool pprof -top`) and its leaked samples name the
 * leaking handler, never the closing one; the counters and the CLOSE_WAIT
 * duration histogram count what the program did; every CLOSE_WAIT series of
 * the host equals `ss` (the agent's own scrapes leave none); leak events are
 * written; a process that exits has its series at 0 for the grace period, then
 * none; SIGTERM exits 0 within a second.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { PREEXISTING_FRAME } from '../src/agent/profile.js';
import { freePort, get, sample, series, ServiceCgroup } from './helpers/agent.js';
import { buildC, needKernelBtf, needRoot, sleep, ssCloseWait, ssCloseWaitHolders, startServer, startTcptrace, WORK, type Running, requests, type Server } from './helpers/proc.js';

const skip = needRoot() ?? needKernelBtf();
const noGo = spawnSync('go', ['version']).status === 0 ? false : 'go is not installed (Debian package golang-go): no `go tool pprof`';

interface Decoded {
  types: string[];
  defaultType: string;
  samples: { values: number[]; frames: string[]; labels: Record<string, string | number> }[];
}

/** the profile as a reader sees it: sample types, and per sample its values, function names (innermost first, inlined included) and labels */
function decode(gz: Buffer): Decoded {
  const p = Profile.decode(gunzipSync(gz));
  const str = (i: unknown) => p.stringTable.strings[Number(i)];
  const fnName = new Map(p.function.map((f) => [Number(f.id), str(f.name)]));
  const loc = new Map(p.location.map((l) => [Number(l.id), l]));
  return {
    types: p.sampleType.map((t) => str(t.type)),
    defaultType: str(p.defaultSampleType),
    samples: p.sample.map((s) => ({
      values: s.value.map(Number),
      frames: s.locationId.flatMap((id) => loc.get(Number(id))!.line.map((l) => fnName.get(Number(l.functionId))!)),
      labels: Object.fromEntries(s.label.map((l) => [str(l.key), Number(l.str) ? str(l.str) : Number(l.num)])),
    })),
  };
}

describe('tcptrace agent: the pprof profile, counters and leak events of a leaky service', { skip: skip ?? false }, () => {
  let server: Server;
  let agent: Running;
  let port: number;
  let profile: Decoded;
  let profileFile: string;
  let metrics: string;
  let ss: Set<string>;
  let ssHost: Map<string, number>;
  const eventsFile = join(WORK, `agent-events-${process.pid}.jsonl`);
  const service = new ServiceCgroup(`tcptrace-agent-profile-${process.pid}`);

  before(async () => {
    server = await startServer(buildC('attrib_server', ['-O2', '-g']));
    service.add(server.pid);
    requests(server.port, 'quote', 2); // leaks that predate the agent
    port = await freePort();
    writeFileSync(eventsFile, '');
    agent = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--leak-after', '1', '--series-grace', '2', '--events', eventsFile]);
    await agent.ready;
    // scrapes of their own before the load: the agent's connections must leave no CLOSE_WAIT behind
    for (let i = 0; i < 3; i++) await get(port, '/metrics');
    requests(server.port, 'quote', 4);
    requests(server.port, 'health', 4);
    await sleep(2200); // past --leak-after, and the events checked
    ss = ssCloseWait(server.pid);
    ssHost = ssCloseWaitHolders();
    const gz = (await get(port, '/debug/pprof/close_wait')).body;
    profileFile = join(WORK, `close_wait-${process.pid}.pb.gz`);
    writeFileSync(profileFile, gz);
    profile = decode(gz);
    metrics = (await get(port, '/metrics')).text;
  });

  after(async () => {
    await agent?.stop('SIGINT');
    await server?.stop();
    assert.ok(await service.remove(), 'the test cgroup is removed');
  });

  test('the profile decodes: sample types, labels, and the leaked count equals ss', () => {
    assert.deepEqual(profile.types, ['leaked_sockets', 'close_wait_sockets', 'inuse_sockets', 'active_closes']);
    assert.equal(profile.defaultType, 'leaked_sockets');
    const mine = profile.samples.filter((s) => s.labels.pid === server.pid);
    assert.equal(ss.size, 6, 'ss: 2 leaks before the agent and 4 after');
    assert.equal(mine.reduce((n, s) => n + s.values[0], 0), ss.size, JSON.stringify(mine));
    assert.equal(mine.reduce((n, s) => n + s.values[1], 0), ss.size);
    for (const s of mine) {
      assert.equal(s.labels.comm, 'attrib_server');
      assert.equal(s.labels.workload, service.workload);
    }
  });

  test('the leaked samples name the leaking handler, never the closing one; older sockets have their own frame', () => {
    const mine = profile.samples.filter((s) => s.labels.pid === server.pid && s.values[0] > 0);
    const quote = mine.filter((s) => s.frames.includes('handle_quote'));
    assert.equal(quote.reduce((n, s) => n + s.values[0], 0), 4, JSON.stringify(mine));
    assert.ok(quote.every((s) => s.frames.includes('serve_clients') && s.frames.includes('main')));
    for (const s of profile.samples) if (s.values[0] > 0) assert.ok(!s.frames.includes('handle_health'), `a leaked sample names the closing path: ${s.frames.join(' < ')}`);
    const before = mine.filter((s) => s.labels.origin === 'preexisting');
    assert.equal(before.reduce((n, s) => n + s.values[0], 0), 2);
    assert.ok(before.every((s) => s.frames.length === 1 && s.frames[0] === PREEXISTING_FRAME));
  });

  test('go tool pprof reads it: -top names the leaking handler', { skip: noGo }, () => {
    const r = spawnSync('go', ['tool', 'pprof', '-top', '-sample_index=leaked_sockets', profileFile], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Type: leaked_sockets/);
    const row = r.stdout.split('\n').find((l) => / handle_quote$/.test(l));
    assert.ok(row, r.stdout);
    assert.equal(Number(row.trim().split(/\s+/)[3]), 4, `cum of handle_quote: ${row}`);
    assert.ok(!/handle_health/.test(r.stdout), r.stdout);
  });

  test('counters: entered and left CLOSE_WAIT, transitions, and how long the closed ones sat there', () => {
    const workload = service.workload;
    // 4 quote and 4 health connections reached CLOSE_WAIT after the agent started; the 4 health ones left it
    assert.equal(sample(metrics, 'tcptrace_close_wait_entered_total', { workload }), 8);
    assert.equal(sample(metrics, 'tcptrace_close_wait_closed_total', { workload }), 4);
    assert.equal(sample(metrics, 'tcptrace_transitions_total', { workload, from: 'ESTABLISHED', to: 'CLOSE_WAIT' }), 8);
    assert.equal(sample(metrics, 'tcptrace_transitions_total', { workload, from: 'CLOSE_WAIT', to: 'LAST_ACK' }), 4);
    assert.equal(sample(metrics, 'tcptrace_close_wait_duration_seconds_count', { workload }), 4);
    // the closing path closes at once: well under a second each
    assert.equal(sample(metrics, 'tcptrace_close_wait_duration_seconds_bucket', { workload, le: '1' }), 4);
  });

  test('every CLOSE_WAIT series of the host equals ss, and the agent leaves none of its own', () => {
    const perPid = new Map<number, number>();
    for (const pid of ssHost.values()) perPid.set(pid, (perPid.get(pid) ?? 0) + 1);
    const got = new Map(series(metrics, 'tcptrace_close_wait_sockets').filter((s) => s.value > 0).map((s) => [Number(s.labels.pid), s.value]));
    assert.ok(!got.has(0), 'no CLOSE_WAIT socket without a process');
    assert.ok(!got.has(agent.proc.pid!), "none of the agent's own");
    assert.equal(got.get(server.pid), perPid.get(server.pid));
    // other processes of the machine: the same as ss (a socket can close between the two reads)
    for (const [pid, n] of got) if (pid !== server.pid) assert.ok(Math.abs((perPid.get(pid) ?? 0) - n) <= 1, `pid ${pid}: agent ${n}, ss ${perPid.get(pid) ?? 0}`);
  });

  test('leak events: the groups that crossed --leak-after, naming their code path', () => {
    const events = readFileSync(eventsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const mine = events.filter((e) => e.pid === server.pid && e.event === 'leak_started');
    const quote = mine.find((e) => e.stack.some((f: string) => f.startsWith('handle_quote ')));
    assert.ok(quote, JSON.stringify(events));
    assert.equal(quote.count, 4);
    assert.equal(quote.workload, service.workload);
    assert.equal(quote.schema, 'tcptrace.leak-event/1');
    assert.match(quote.stack.find((f: string) => f.startsWith('handle_quote ')), /^handle_quote \(attrib_server\.c:\d+\)$/);
    assert.equal(mine.find((e) => e.origin === 'preexisting')?.count, 2);
    assert.ok(!events.some((e) => e.stack.some((f: string) => f.startsWith('handle_health'))));
  });

  test('a process that exits: its series read 0 for the grace period, then go; its leaks end', async () => {
    const labels = { pid: String(server.pid) };
    await server.stop();
    await sleep(1200);
    const during = (await get(port, '/metrics')).text;
    assert.equal(sample(during, 'tcptrace_close_wait_sockets', labels), 0, 'at 0 within the grace period');
    assert.equal(sample(during, 'tcptrace_leaked_sockets', labels), 0);
    await sleep(2000);
    const later = (await get(port, '/metrics')).text;
    assert.equal(sample(later, 'tcptrace_close_wait_sockets', labels), null, 'gone after the grace period');
    const ended = readFileSync(eventsFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.pid === server.pid && e.event === 'leak_ended');
    assert.equal(ended.length, 2, 'both leak groups ended');
  });

  test('SIGTERM: detached, exit 0 within a second', async () => {
    const t0 = performance.now();
    const r = await agent.stop('SIGTERM');
    const ms = performance.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(ms < 1000, `exited after ${Math.round(ms)} ms`);
  });
});
