/** src/doctor analysis and verdicts on synthetic samples: classification and thresholds, no kernel needed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DiagSocket } from '../src/native.js';
import type { NetnsSample, ProcessSample, Sample } from '../src/doctor/measure.js';
import { buildReport } from '../src/doctor/report.js';
import { renderText } from '../src/doctor/render.js';
import { THRESHOLDS } from '../src/doctor/verdicts.js';

let cookie = 1n;
function sock(state: number, src: string, sport: number, dst: string, dport: number, extra: Partial<DiagSocket> = {}): DiagSocket {
  return { family: 2, state, src, sport, dst, dport, inode: 0, uid: 0, rqueue: 0, wqueue: 0, timer: 0, retrans: 0, expiresMs: 0, ifindex: 0, cookie: cookie++, ...extra };
}

const SYSCTLS = {
  'net.ipv4.ip_local_port_range': '40000\t40099',
  'net.ipv4.ip_local_reserved_ports': '40090-40099',
  'net.ipv4.tcp_tw_reuse': '2',
  'net.ipv4.tcp_tw_reuse_delay': '1000',
  'net.ipv4.tcp_timestamps': '1',
  'net.ipv4.tcp_max_tw_buckets': '100',
  'net.core.somaxconn': '4096',
};

function sample(sockets: DiagSocket[], processes: ProcessSample[], netstat: Record<string, number>, mono: number): Sample {
  const ns: NetnsSample = { id: 4026531840, name: null, own: true, viaPid: null, pids: processes.map((p) => p.pid), sockets, netstat, sysctls: SYSCTLS };
  return { takenAt: 0, mono, uid: 0, processes, netns: [ns], system: { fileNr: { allocated: 10, free: 0, max: 100 }, nrOpen: 1048576 }, limitations: [] };
}

test('TIME_WAIT by active closer, ephemeral ports per destination, reuse, queues, overflows', () => {
  const listener = sock(10, '0.0.0.0', 8080, '0.0.0.0', 0, { inode: 100, rqueue: 5, wqueue: 4 });
  const cw = Array.from({ length: 12 }, (_, i) => sock(8, '10.0.0.1', 8080, '10.0.0.9', 50000 + i, { inode: 200 + i }));
  const serverTw = Array.from({ length: 10 }, (_, i) => sock(6, '10.0.0.1', 8080, '10.0.0.9', 51000 + i));
  // outgoing to a remote service: 60 TIME_WAIT (30 old enough), 10 established
  const clientTw = Array.from({ length: 60 }, (_, i) => sock(6, '10.0.0.1', 40000 + i, '10.0.0.7', 443, { expiresMs: i < 30 ? 10_000 : 59_900 }));
  const clientEst = Array.from({ length: 10 }, (_, i) => sock(1, '10.0.0.1', 40060 + i, '10.0.0.7', 443, { inode: 300 + i }));
  const server: ProcessSample = {
    pid: 10,
    comm: 'srv',
    uid: 0,
    netns: 4026531840,
    fds: { open: 40, sockets: new Map([[100, 3], ...cw.map((s, i) => [s.inode, 10 + i] as [number, number])]) },
    nofile: { soft: 42, hard: 42, units: 'files' },
  };
  const client: ProcessSample = { pid: 11, comm: 'cli', uid: 0, netns: 4026531840, fds: { open: 20, sockets: new Map(clientEst.map((s, i) => [s.inode, 5 + i] as [number, number])) }, nofile: { soft: 1024, hard: 4096, units: 'files' } };
  const all = [listener, ...cw, ...serverTw, ...clientTw, ...clientEst];
  const prev = sample(all.filter((s) => s.state !== 6), [server, client], { ListenOverflows: 100, ListenDrops: 100 }, 0);
  const cur = sample(all, [server, client], { ListenOverflows: 130, ListenDrops: 131 }, 2000);
  const r = buildReport(cur, prev, { pids: null, round: 1 });
  const ns = r.netns[0]!;

  assert.equal(r.windowSeconds, 2);
  assert.equal(ns.timeWait.serverSide, 10);
  assert.equal(ns.timeWait.clientSide, 60);
  assert.equal(ns.timeWait.new, 70);
  assert.equal(ns.timeWait.perSecond, 35);
  assert.deepEqual(ns.timeWait.byListener, [{ listener: '0.0.0.0:8080', count: 10, pid: 10, comm: 'srv' }]);
  assert.equal(r.processes.find((p) => p.pid === 10)!.timeWaitServerSide, 10);

  assert.equal(ns.ephemeral.available, 90, '100 ports minus 10 reserved');
  const d = ns.ephemeral.destinations[0]!;
  assert.equal(d.destination, '10.0.0.7:443');
  assert.equal(d.inUse, 70);
  assert.equal(d.timeWait, 60);
  assert.equal(d.twReuseApplies, false, 'tcp_tw_reuse=2 is loopback only');
  assert.equal(d.effective, 70);
  assert.deepEqual(d.processes, [{ pid: 11, comm: 'cli' }]);

  const by = (check: string) => r.verdicts.filter((v) => v.check === check);
  assert.equal(by('ephemeral-ports')[0]!.status, 'WARN'); // 70/90 = 77.8%
  assert.equal(by('time-wait')[0]!.status, 'WARN'); // 70/100
  assert.equal(by('accept-queue')[0]!.status, 'CRIT'); // 5 of 4
  assert.equal(by('accept-queue')[0]!.pid, 10);
  assert.equal(by('listen-overflows')[0]!.status, 'CRIT'); // 30 in 2 s = 15/s
  assert.equal(by('close-wait')[0]!.status, 'CRIT'); // 12 and 30% of fds
  assert.equal(by('close-wait')[0]!.measured, 12);
  assert.equal(by('fd-limit')[0]!.status, 'CRIT'); // 40 of 42
  assert.equal(r.status, 'CRIT');
  assert.equal(r.exitCode, 2);

  // tcp_tw_reuse=1: the 30 TIME_WAIT older than 1 s no longer count against connect()
  const cur1 = sample(all, [server, client], { ListenOverflows: 130, ListenDrops: 131 }, 2000);
  cur1.netns[0]!.sysctls = { ...SYSCTLS, 'net.ipv4.tcp_tw_reuse': '1' };
  const d1 = buildReport(cur1, prev, { pids: null, round: 1 }).netns[0]!.ephemeral.destinations[0]!;
  assert.equal(d1.reusableTimeWait, 30);
  assert.equal(d1.effective, 40);

  const text = renderText(r, { details: true });
  assert.match(text, /^CRIT\s+fd-limit\s+pid 10 \(srv\)\s+40 of 42 fds \(95.2%\)\s+80% \/ 95% of soft limit$/m);
  assert.match(text, /overall: CRIT \(exit 2\)/);
});

test('CLOSE_WAIT that appeared during the window alone is not a warning; lasting ones are', () => {
  const s = sock(8, '127.0.0.1', 8080, '127.0.0.1', 50000, { inode: 7 });
  const p: ProcessSample = { pid: 5, comm: 'x', uid: 0, netns: 4026531840, fds: { open: 50, sockets: new Map([[7, 9]]) }, nofile: { soft: 1024, hard: 1024, units: 'files' } };
  const fresh = buildReport(sample([s], [p], {}, 1000), sample([], [p], {}, 0), { pids: [5], round: 1 });
  assert.equal(fresh.verdicts.find((v) => v.check === 'close-wait')!.status, 'OK');
  const lasting = buildReport(sample([s], [p], {}, 1000), sample([s], [p], {}, 0), { pids: [5], round: 1 });
  assert.equal(lasting.verdicts.find((v) => v.check === 'close-wait')!.status, 'WARN');
  const single = buildReport(sample([s], [p], {}, 1000), undefined, { pids: [5], round: 1 });
  assert.equal(single.verdicts.find((v) => v.check === 'close-wait')!.status, 'WARN', 'one snapshot: count-based');
  assert.equal(THRESHOLDS.closeWait.warn, 1);
});
