/**
 * Without --pid: the whole system, in the mode this kernel chooses; this is
 * what `tcptrace record` runs. Nothing is filtered, so the kernel keeps no
 * owners map: records name their owner only at connect/listen, and the socket
 * table attributes the rest from the stream (present sockets, a listener's
 * children, accept). Asserts, on two servers and their clients: complete
 * ordered lifetimes, every transition attributed to the owner on both ends
 * (softirq ones too, and a child before accept()), accept and close() with the
 * owner's fds, the CLOSE_WAIT set of a pid equal to ss, and report == live.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildC, FIXTURES, needKernelBtf, needRoot, possibleCpus, runClient, runTcptrace, sleep, ssCloseWait, startServer, startTcptrace, WORK, type Server } from './helpers/proc.js';
import { lifetimes, peerPort, readRecording, stopRecordedTrace, type Recorded } from './helpers/recording.js';
import type { SockcallEvent, TransitionEvent } from '../src/model/events.js';
import { TCP } from '../src/model/states.js';
import { TT_CALL, TT_KIND } from '../src/generated/events.js';
import { AF_INET } from '../src/model/addr.js';

const skip = needRoot() ?? needKernelBtf();

describe('tcptrace without --pid (whole system)', { skip: skip ?? false }, () => {
  let leaky: Server;
  let node: Server;
  let live: Record<string, any>;
  let rec: Recorded;
  let ssLeaky: Set<string>;
  const ports = { leak: [] as number[], good: [] as number[], nodeLeak: [] as number[], nodeGood: [] as number[] };
  const file = join(WORK, 'whole-system.tcptrace');

  before(async () => {
    leaky = await startServer(buildC('leaky_server', ['-O2', '-g']));
    node = await startServer(process.execPath, [join(FIXTURES, 'node_server.mjs')]);
    const t = startTcptrace(['--format', 'json', '--record', file]);
    await t.ready;
    ports.leak = runClient(leaky.port, 'leak', 3);
    ports.good = runClient(leaky.port, 'good', 3, true);
    ports.nodeLeak = runClient(node.port, 'leak', 2);
    ports.nodeGood = runClient(node.port, 'good', 2, true);
    await sleep(400); // > 2 drain intervals
    ssLeaky = ssCloseWait(leaky.pid);
    ({ live, rec } = await stopRecordedTrace(t, file));
  });

  after(async () => {
    await leaky?.stop();
    await node?.stop();
  });

  const transitions = () => rec.events.filter((e): e is TransitionEvent => e.type === 'transition');
  const calls = (call: number) => rec.events.filter((e): e is SockcallEvent => e.type === 'sockcall' && e.call === call);

  test('nothing is filtered and nothing is lost; the agent attributes owners', () => {
    assert.equal(rec.info.owners, 'agent');
    // with no owner to carry, the kernel sends IPv4 transitions as compact records (tt_transition4);
    // the full ones are IPv6, or name their owner (connect, listen)
    const compact = rec.kinds.get(TT_KIND.TRANSITION4) ?? 0;
    assert.ok(compact > 50, `${compact} compact transitions`);
    assert.equal(compact, transitions().filter((e) => e.family === AF_INET && !e.ownerKnown).length);
    assert.equal(rec.kinds.get(TT_KIND.TRANSITION) ?? 0, transitions().filter((e) => e.family !== AF_INET || e.ownerKnown).length);
    assert.equal(live.target.pids, null);
    assert.equal(live.counts.lost, 0);
    assert.equal(live.counts.filteredInKernel, 0);
  });

  test('one ring buffer per CPU, merged into time order', () => {
    const cpus = possibleCpus();
    assert.equal(live.attach.rings, cpus > 1 ? cpus : 1, `${cpus} possible CPUs`);
    assert.equal(live.counts.outOfOrder, 0);
    // every record of the kernel in the recording is in time order, whichever CPU's ring it came from
    const ts = rec.events.filter((e) => e.type === 'transition' || e.type === 'sockcall').map((e) => (e as TransitionEvent | SockcallEvent).ts);
    assert.ok(ts.length > 50, `${ts.length} records`);
    for (let i = 1; i < ts.length; i++) assert.ok(ts[i] >= ts[i - 1], `record ${i} at ${ts[i]} after one at ${ts[i - 1]}`);
  });

  test('both servers\' sockets live complete and in order, owned by the server', () => {
    for (const [srv, leak, good] of [[leaky, ports.leak, ports.good], [node, ports.nodeLeak, ports.nodeGood]] as const) {
      const bySocket = lifetimes(rec, srv.port);
      for (const p of leak) {
        const evs = bySocket.get(p) ?? [];
        assert.deepEqual(evs.map((e) => `${e.oldState}>${e.newState}`), [`${TCP.LISTEN}>${TCP.SYN_RECV}`, `${TCP.SYN_RECV}>${TCP.ESTABLISHED}`, `${TCP.ESTABLISHED}>${TCP.CLOSE_WAIT}`], `leaked socket from port ${p}`);
      }
      for (const p of good) {
        const evs = bySocket.get(p) ?? [];
        assert.ok(evs.length >= 4, `good socket from port ${p}: ${evs.length} transitions`);
        assert.equal(evs[evs.length - 1].newState, TCP.CLOSE, `good socket from port ${p} ends in CLOSE`);
        for (let i = 1; i < evs.length; i++) assert.equal(evs[i].oldState, evs[i - 1].newState, `chain broken for port ${p}`);
      }
      for (const p of [...leak, ...good]) {
        for (const e of bySocket.get(p) ?? []) {
          const by = rec.owner.get(e);
          assert.equal(by?.pid, srv.pid, `${srv.port}<-${p} ${e.oldState}>${e.newState} attributed to ${by?.pid}`);
          // the kernel sent it without one: the table found the listener (LISTEN>SYN_RECV), then accept()
          assert.equal(e.ownerKnown, false, `${srv.port}<-${p} ${e.oldState}>${e.newState}: an owner from the kernel`);
        }
      }
    }
  });

  test('client sockets are owned by the client that connected them, in softirq too', () => {
    const all = transitions();
    const client: TransitionEvent[] = [];
    for (const p of [...ports.leak, ...ports.good, ...ports.nodeLeak, ...ports.nodeGood]) {
      const first = all.findIndex((e) => e.local.endsWith(`:${p}`) && e.remote.startsWith('127.0.0.1:'));
      assert.ok(first > 0, `no transition of client port ${p}`);
      // connect() moves the socket to SYN_SENT before it has a local port: the same sk, just before
      const connect = all.slice(0, first).reverse().find((e) => e.sk === all[first].sk);
      assert.ok(connect, `client port ${p}: no connect transition`);
      assert.equal(`${connect.oldState}>${connect.newState}`, `${TCP.CLOSE}>${TCP.SYN_SENT}`, `client port ${p} starts with connect`);
      const evs = [connect, ...all.slice(first).filter((e) => e.local.endsWith(`:${p}`))];
      // connect() names its owner in the kernel, the task on the CPU; the table carries it on
      assert.ok(connect.ownerKnown && connect.ownerPid === connect.cpuPid && connect.ownerFd >= 3, `client port ${p}: connect record owner ${connect.ownerPid} fd ${connect.ownerFd}`);
      for (const e of evs) {
        const by = rec.owner.get(e);
        assert.equal(by?.pid, connect.cpuPid, `client port ${p}: ${e.oldState}>${e.newState} attributed to ${by?.pid}, connected by ${connect.cpuPid}`);
        assert.equal(by?.comm, 'python3');
        assert.equal(by?.fd, connect.ownerFd);
      }
      client.push(...evs);
    }
    // the SYN-ACK reaches the client in the server's or a softirq's context, never its own
    assert.ok(client.some((e) => e.cpuPid !== rec.owner.get(e)?.pid), 'expected a client transition made while another task was on the CPU');
  });

  test('accept() and close() are reported with the owner\'s pid and fd', () => {
    const accepted = new Map(calls(TT_CALL.ACCEPT).map((a) => [`${a.local} ${peerPort(a.remote)}`, a]));
    for (const [srv, ps] of [[leaky, [...ports.leak, ...ports.good]], [node, [...ports.nodeLeak, ...ports.nodeGood]]] as const) {
      for (const p of ps) {
        const a = accepted.get(`127.0.0.1:${srv.port} ${p}`);
        assert.ok(a, `no accept for ${srv.port}<-${p}`);
        assert.equal(a.pid, srv.pid);
        assert.ok(a.fd >= 3);
      }
    }
    // the C server closes its good connections: the transition each close() makes carries it,
    // with the fd accept returned (no close() hook: releasing_call in bpf/tcpstate.bpf.c)
    const closes = rec.events.filter((e): e is TransitionEvent => e.type === 'transition' && e.call === TT_CALL.CLOSE && e.cpuPid === leaky.pid);
    for (const p of ports.good) {
      const c = closes.filter((x) => peerPort(x.remote) === p);
      assert.equal(c.length, 1, `close() of ${leaky.port}<-${p}: ${c.length} transitions carry it`);
      assert.equal(c[0].callFd, accepted.get(`127.0.0.1:${leaky.port} ${p}`)!.fd);
      assert.ok(c[0].oldState === TCP.CLOSE_WAIT || c[0].oldState === TCP.ESTABLISHED, `close() of ${leaky.port}<-${p} made ${c[0].oldState}>${c[0].newState}`);
    }
    assert.ok(!closes.some((x) => ports.leak.includes(peerPort(x.remote))), 'a leaked socket was reported closed');
    // nothing else is taken for a close: a peer's FIN processed while the server was in close() is not one
    assert.ok(closes.every((x) => x.local === `127.0.0.1:${leaky.port}` || x.local.endsWith(':0')), `closes of other sockets in the server's close(): ${closes.filter((x) => !x.local.endsWith(`:${leaky.port}`)).map((x) => `${x.local} ${x.oldState}>${x.newState}`).join(', ')}`);
  });

  test('the CLOSE_WAIT sockets of a pid are exactly those ss shows for it', () => {
    const ours = new Set(live.closeWait.filter((e: any) => e.pid === leaky.pid).map((e: any) => `${e.local} ${e.remote}`));
    assert.equal(ssLeaky.size, 3);
    assert.deepEqual(ours, ssLeaky);
  });

  test('tcptrace report on the recording gives the live report', async () => {
    const r = await runTcptrace(['report', file, '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), live);
  });
});

// The poller reads the rings in place (native/ring_map.h); with a ring per CPU it releases each
// only up to the first record it holds back for the merge. This traffic (about 5 MB/s of
// records here) fills 128K rings within the poller's 100-ms interval and wraps them many
// times: nothing is lost only if the kernel's watermark wake-ups reach the poller.
for (const shared of [false, true]) describe(`small ${shared ? 'shared ring that wraps' : 'per-CPU rings that wrap'} many times`, { skip: skip ?? false }, () => {
  const perRing = 128 * 1024;
  const ringSize = shared ? perRing : 2 ** Math.ceil(Math.log2(perRing * possibleCpus()));
  const connections = 3000;
  const file = join(WORK, `small-rings-${shared ? 'shared' : 'per-cpu'}.tcptrace`);
  let server: Server;
  let ports: number[] = [];
  let rec: Recorded;

  before(async () => {
    server = await startServer(process.execPath, [join(FIXTURES, 'node_server.mjs')]);
    const t = startTcptrace(['record', '-o', file, '--ring-size', `${ringSize / 1024}K`, ...(shared ? ['--no-ring-per-cpu'] : [])]);
    await t.ready;
    ports = runClient(server.port, 'good', connections, true);
    await sleep(300);
    const res = await t.stop('SIGINT');
    assert.equal(res.code, 0, `tcptrace exited ${res.code}: ${res.stderr}`);
    rec = await readRecording(file);
  });

  after(async () => {
    await server?.stop();
  });

  test(`every record submitted is read once, intact${shared ? '' : ' and in time order'}; none lost`, () => {
    const c = rec.end.counters;
    assert.equal(c.lost, 0, `lost ${c.lost} of ${c.events + c.lost} records`);
    const bytes = rec.batchBytes;
    assert.ok(bytes > 16 * perRing, `the rings wrapped: ${bytes} bytes of records through rings of ${perRing / 1024}K`);
    assert.equal(c.records, c.events, 'records read == records the kernel submitted');
    assert.equal(rec.events.length, c.records, 'records in the recording == records read');
    assert.equal(c.outOfOrder, 0);
    // one shared ring is in the order of reservation: a record's time is read before it
    if (shared) return;
    const ts = rec.events.map((e) => (e as TransitionEvent | SockcallEvent).ts);
    for (let i = 1; i < ts.length; i++) assert.ok(ts[i] >= ts[i - 1], `record ${i} at ${ts[i]} after one at ${ts[i - 1]}`);
  });

  test('every connection\'s server socket lives complete and in order', () => {
    assert.equal(ports.length, connections);
    const bySocket = lifetimes(rec, server.port);
    for (const p of ports) {
      const evs = bySocket.get(p) ?? [];
      assert.ok(evs.length >= 4, `socket from port ${p}: ${evs.length} transitions`);
      assert.equal(evs[0].oldState, TCP.LISTEN, `socket from port ${p} starts at the listener`);
      assert.equal(evs[evs.length - 1].newState, TCP.CLOSE, `socket from port ${p} ends in CLOSE`);
      for (let i = 1; i < evs.length; i++) assert.equal(evs[i].oldState, evs[i - 1].newState, `chain broken for port ${p}`);
    }
  });
});
