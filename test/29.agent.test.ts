/**
 * `tcptrace agent` on the real kernel: a leaky C server (test/fixtures/
 * leaky_server.c) runs in a cgroup of its own, like a systemd service; the
 * agent's /metrics must show, for its pid and under its workload, the
 * CLOSE_WAIT sockets `ss` shows, those past --leak-after, and pass Debian's
 * `promtool check metrics`. Health and readiness endpoints answer; a bad
 * --listen and a port in use are one-line errors with their exit codes. Sockets
 * the kernel holds count in tcptrace_sockets (= ss); a service in a network
 * namespace of its own (ip netns) is traced and named like any other. CLOSE_WAIT
 * stays shorter than --close-wait-min are counted in the kernel and never reach
 * the agent one by one: a Python server that closes 0.2 s after the client's FIN
 * shows in the counters and the duration histogram, never in a gauge; one that
 * closes 2.5 s after, and its leaks, show in the gauges (= ss), aged from the FIN;
 * so do leaks accepted after their FIN from a listener older than the agent. The
 * transitions of the sockets the kernel holds count per workload (held_counts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT } from '../src/errors.js';
import { freePort, get, sample, ServiceCgroup } from './helpers/agent.js';
import { buildC, FIXTURES, needKernelBtf, needRoot, runClient, runTcptrace, sleep, ssCloseWait, startServer, startTcptrace, stopPid, type Running, type Server } from './helpers/proc.js';

const skip = needRoot() ?? needKernelBtf();
const noPromtool = spawnSync('promtool', ['--version']).status === 0 ? false : 'promtool is not installed (Debian package prometheus)';

describe('tcptrace agent: metrics of a leaky service', { skip: skip ?? false }, () => {
  let server: Server;
  let agent: Running;
  let port: number;
  let metrics: string;
  let ss: Set<string>;
  const service = new ServiceCgroup(`tcptrace-agent-test-${process.pid}`);

  before(async () => {
    server = await startServer(buildC('leaky_server', ['-O2', '-g']));
    service.add(server.pid); // as a systemd service would run: its own cgroup under system.slice
    runClient(server.port, 'leak', 2); // leaks that predate the agent
    port = await freePort();
    agent = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--leak-after', '1']);
    await agent.ready;
    runClient(server.port, 'leak', 3);
    runClient(server.port, 'good', 2, true);
    await sleep(1500); // every leak past --leak-after
    ss = ssCloseWait(server.pid);
    metrics = (await get(port, '/metrics')).text;
  });

  after(async () => {
    await agent?.stop('SIGINT');
    await server?.stop();
    assert.ok(await service.remove(), 'the test cgroup is removed');
  });

  test('the CLOSE_WAIT gauges of the server equal ss, under its workload', () => {
    assert.equal(ss.size, 5, 'ss: 2 leaks before the agent and 3 after');
    const workload = service.workload;
    const labels = { workload, pid: String(server.pid), comm: 'leaky_server' };
    assert.equal(sample(metrics, 'tcptrace_close_wait_sockets', labels), ss.size, metrics.split('\n').filter((l) => l.includes('close_wait')).join('\n'));
    assert.equal(sample(metrics, 'tcptrace_leaked_sockets', labels), 5);
    const oldest = sample(metrics, 'tcptrace_close_wait_oldest_seconds', labels)!;
    assert.ok(oldest >= 1.4 && oldest < 60, `oldest ${oldest} s`);
    assert.equal(sample(metrics, 'tcptrace_sockets', { workload, state: 'CLOSE_WAIT' }), 5);
    assert.equal(sample(metrics, 'tcptrace_sockets', { workload, state: 'LISTEN' }), 1);
    if (service.dir) assert.equal(sample(metrics, 'tcptrace_workload_info', { workload, kind: 'systemd', unit: service.unit }), 1);
    // fds against the limit, read here from the server's own /proc: 5 leaked + listener + stdio at least
    const fds = readdirSync(`/proc/${server.pid}/fd`).length;
    assert.equal(sample(metrics, 'tcptrace_process_open_fds', labels), fds);
    const soft = /^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${server.pid}/limits`, 'utf8'))![1];
    assert.equal(sample(metrics, 'tcptrace_process_max_fds', labels), Number(soft));
    assert.ok(!/tcptrace_process_open_fds\{[^}]*pid="1"/.test(metrics), 'fd gauges only for processes with CLOSE_WAIT sockets');
    assert.ok(sample(metrics, 'tcptrace_build_info', {}) === 1);
    assert.ok(sample(metrics, 'tcptrace_events_total', {})! > 0);
    assert.match(metrics, /^process_resident_memory_bytes \d/m, "prom-client's process metrics");
    // no series of a process that holds no CLOSE_WAIT socket, and no addresses or ports in any label
    assert.ok(!/tcptrace_close_wait_sockets\{[^}]*pid="1"/.test(metrics));
    assert.ok(!/127\.0\.0\.1|:\d{4,5}"/.test(metrics.split('\n').filter((l) => l.startsWith('tcptrace_')).join('\n')), 'no address in a label');
  });

  test('sockets the kernel holds count in tcptrace_sockets: ESTABLISHED = ss', async () => {
    // a client that opens 6 connections, sends "leak" on each (the server keeps them and reads
    // no more) and holds them: the server's 6 stay ESTABLISHED, most of them never published
    const holder = spawn('python3', ['-c', `import socket,sys,time
s=[socket.create_connection(("127.0.0.1",${server.port})) for _ in range(6)]
for x in s: x.sendall(b"leak")
print("held",flush=True); time.sleep(60)`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise((r) => holder.stdout!.once('data', r));
      await sleep(6000); // the held sockets are walked at most every 5 s
      const est = spawnSync('ss', ['-tanpH', 'state', 'established'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`pid=${server.pid},`)).length;
      assert.equal(est, 6, 'ss: the server holds 6 ESTABLISHED sockets');
      const m = (await get(port, '/metrics')).text;
      assert.equal(sample(m, 'tcptrace_sockets', { workload: service.workload, state: 'ESTABLISHED' }), est, m.split('\n').filter((l) => l.startsWith('tcptrace_sockets') || l.startsWith('tcptrace_summarised')).join('\n'));
    } finally {
      await stopPid(holder);
    }
  });

  test('the exposition passes promtool check metrics', { skip: noPromtool }, () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal((r.stdout + r.stderr).trim(), '', 'no lint findings');
  });

  test('health, readiness, and nothing else', async () => {
    assert.equal((await get(port, '/-/healthy')).status, 200);
    assert.equal((await get(port, '/-/ready')).status, 200);
    assert.equal((await get(port, '/nope')).status, 404);
    assert.match((await get(port, '/metrics')).type, /^text\/plain; version=0\.0\.4/);
    const post = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
  });

  test('a bad --listen, and a port in use: one line each, and their exit codes', async () => {
    const bad = await runTcptrace(['agent', '--listen', 'nowhere']);
    assert.equal(bad.code, EXIT.USAGE, bad.stderr);
    // the error, then commander's pointer to --help (as every usage error)
    assert.match(bad.stderr.trim().split('\n')[0], /'nowhere' is not HOST:PORT/);
    const busy = await runTcptrace(['agent', '--listen', `127.0.0.1:${port}`]);
    assert.equal(busy.code, EXIT.CANNOT_LISTEN, busy.stderr);
    assert.match(busy.stderr, /cannot listen on 127\.0\.0\.1:\d+: the address is in use/);
    assert.equal(busy.stderr.trim().split('\n').length, 1, busy.stderr);
  });
});

describe('tcptrace agent: a service in a network namespace of its own', { skip: skip ?? false }, () => {
  const ns = `tcptrace-agent-${process.pid}`;
  const service = new ServiceCgroup(`tcptrace-netns-test-${process.pid}`);
  let server: Server | undefined;
  let agent: Running | undefined;
  let port: number;

  before(async () => {
    const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
    assert.equal(add.status, 0, `ip netns add: ${add.stderr}`);
    spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    port = await freePort();
    agent = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--leak-after', '1']);
    await agent.ready;
    // ip netns exec enters the namespace and execs: the pid is the server's own
    server = await startServer('ip', ['netns', 'exec', ns, buildC('leaky_server', ['-O2', '-g'])]);
    service.add(server.pid);
  });

  after(async () => {
    await agent?.stop('SIGTERM');
    await server?.stop();
    spawnSync('ip', ['netns', 'delete', ns]);
    assert.ok(!spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(ns), 'the namespace is removed');
    assert.ok(await service.remove(), 'the test cgroup is removed');
  });

  test("its leaks are traced and named: the namespace's ss, under its workload", async () => {
    const c = spawnSync('ip', ['netns', 'exec', ns, 'python3', join(FIXTURES, 'client.py'), String(server!.port), 'leak', '3'], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr);
    await sleep(1500);
    // ground truth inside the namespace: the host's ss does not see its sockets
    const inside = spawnSync('ip', ['netns', 'exec', ns, 'ss', '-tanpH', 'state', 'close-wait'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`pid=${server!.pid},`)).length;
    assert.equal(inside, 3);
    const m = (await get(port, '/metrics')).text;
    const labels = { workload: service.workload, pid: String(server!.pid), comm: 'leaky_server' };
    assert.equal(sample(m, 'tcptrace_close_wait_sockets', labels), inside);
    assert.equal(sample(m, 'tcptrace_leaked_sockets', labels), inside);
  });
});

describe('tcptrace agent: CLOSE_WAIT that does not last, next to a slow close and a leak', { skip: skip ?? false }, () => {
  const service = new ServiceCgroup(`tcptrace-brief-test-${process.pid}`);
  let server: Server;
  let queued: Server; // accepts only on SIGUSR1
  let agent: Running;
  let port: number;
  let labels: Record<string, string>;
  const metrics = async () => (await get(port, '/metrics')).text;
  const of = (m: string, name: string, extra: Record<string, string> = {}) => sample(m, name, { workload: service.workload, ...extra }) ?? 0;
  /** polls /metrics until ok(m) or the deadline; returns the last exposition */
  const until = async (ok: (m: string) => boolean, ms: number): Promise<string> => {
    const end = Date.now() + ms;
    let m = await metrics();
    while (!ok(m) && Date.now() < end) {
      await sleep(100);
      m = await metrics();
    }
    return m;
  };
  const client = (payload: string, n: number, to = server) => {
    const c = spawnSync('python3', [join(FIXTURES, 'client.py'), String(to.port), payload, String(n)], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr);
  };

  before(async () => {
    server = await startServer('python3', [join(FIXTURES, 'slow_close.py')]);
    service.add(server.pid);
    labels = { workload: service.workload, pid: String(server.pid), comm: 'python3' };
    // its listener predates the agent (the agent seeds it at start), and its children get their FIN before accept()
    queued = await startServer('python3', [join(FIXTURES, 'slow_close.py'), '--accept-on-usr1']);
    service.add(queued.pid);
    port = await freePort();
    agent = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--leak-after', '3', '--close-wait-min', '1']);
    await agent.ready;
  });

  after(async () => {
    await agent?.stop('SIGINT');
    await server?.stop();
    await queued?.stop();
    assert.ok(await service.remove(), 'the test cgroup is removed');
  });

  test('20 CLOSE_WAITs of 0.2 s: in the counters, every transition and the histogram; none sent late, none left in a gauge', async () => {
    const late0 = sample(await metrics(), 'tcptrace_close_wait_published_late_total', {}) ?? 0;
    client('close-after 0.2', 20);
    const lastAck = { from: 'LAST_ACK', to: 'CLOSE' };
    const m = await until((x) => of(x, 'tcptrace_close_wait_closed_total') >= 20 && of(x, 'tcptrace_transitions_total', lastAck) >= 20, 5000);
    const cw = m.split('\n').filter((l) => l.includes(service.workload) && /close_wait|transitions/.test(l)).join('\n');
    assert.equal(of(m, 'tcptrace_close_wait_entered_total'), 20, cw);
    assert.equal(of(m, 'tcptrace_close_wait_closed_total'), 20, cw);
    assert.equal(of(m, 'tcptrace_transitions_total', { from: 'ESTABLISHED', to: 'CLOSE_WAIT' }), 20, cw);
    assert.equal(of(m, 'tcptrace_transitions_total', { from: 'CLOSE_WAIT', to: 'LAST_ACK' }), 20, cw);
    // the rest of each socket's life, kept in the kernel too (held_counts.bpf.h): one each
    for (const [from, to] of [['LISTEN', 'SYN_RECV'], ['SYN_RECV', 'ESTABLISHED'], ['LAST_ACK', 'CLOSE']]) {
      assert.equal(of(m, 'tcptrace_transitions_total', { from: from!, to: to! }), 20, `${from} -> ${to}\n${cw}`);
    }
    assert.equal(of(m, 'tcptrace_close_wait_duration_seconds_count'), 20, cw);
    assert.equal(of(m, 'tcptrace_close_wait_duration_seconds_bucket', { le: '0.1' }), 0, cw);
    assert.equal(of(m, 'tcptrace_close_wait_duration_seconds_bucket', { le: '0.5' }), 20, cw);
    assert.equal(of(m, 'tcptrace_close_wait_duration_seconds_bucket', { le: '+Inf' }), 20, cw);
    const sum = of(m, 'tcptrace_close_wait_duration_seconds_sum');
    assert.ok(sum >= 20 * 0.2 && sum < 20 * 0.5, `sum ${sum} s for 20 stays of 0.2 s`);
    // 0, or no series at all: the first socket of a code path (its stack copied in full) reaches the agent at once
    assert.ok(!sample(m, 'tcptrace_close_wait_sockets', labels), 'none in the CLOSE_WAIT gauge: none stayed --close-wait-min');
    assert.equal(sample(m, 'tcptrace_close_wait_published_late_total', {}), late0, 'none sent to the agent');
    assert.equal(ssCloseWait(server.pid).size, 0);
  });

  test('a close after 2.5 s and two leaks: in the gauges (= ss) aged from the FIN, then the close in the histogram', async () => {
    const before = await metrics();
    const [count0, sum0, le1, le5] = [
      of(before, 'tcptrace_close_wait_duration_seconds_count'),
      of(before, 'tcptrace_close_wait_duration_seconds_sum'),
      of(before, 'tcptrace_close_wait_duration_seconds_bucket', { le: '1' }),
      of(before, 'tcptrace_close_wait_duration_seconds_bucket', { le: '5' }),
    ];
    const sent = Date.now();
    client('close-after 2.5', 3);
    client('leak', 2);
    let m = await until((x) => sample(x, 'tcptrace_close_wait_sockets', labels) === 5, 2300);
    const ss = ssCloseWait(server.pid).size;
    const waited = (Date.now() - sent) / 1000;
    assert.equal(ss, 5, 'ss: 3 slow closes and 2 leaks in CLOSE_WAIT');
    assert.equal(sample(m, 'tcptrace_close_wait_sockets', labels), ss, m.split('\n').filter((l) => l.includes('close_wait')).join('\n'));
    const oldest = sample(m, 'tcptrace_close_wait_oldest_seconds', labels)!;
    assert.ok(oldest >= 1 && oldest <= waited + 0.2, `oldest ${oldest} s, ${waited} s after the FINs: aged from entering CLOSE_WAIT`);
    assert.equal(of(m, 'tcptrace_close_wait_entered_total'), 25);
    m = await until((x) => of(x, 'tcptrace_close_wait_duration_seconds_count') >= count0 + 3 && sample(x, 'tcptrace_leaked_sockets', labels) === 2, 6000);
    assert.equal(of(m, 'tcptrace_close_wait_duration_seconds_count'), count0 + 3);
    assert.equal(of(m, 'tcptrace_close_wait_closed_total'), 23);
    const took = of(m, 'tcptrace_close_wait_duration_seconds_sum') - sum0;
    assert.ok(took >= 3 * 2.5 && took < 3 * 3.5, `3 closes after 2.5 s took ${took} s`);
    assert.equal(of(m, 'tcptrace_close_wait_duration_seconds_bucket', { le: '1' }), le1);
    assert.equal(of(m, 'tcptrace_close_wait_duration_seconds_bucket', { le: '5' }), le5 + 3);
    assert.equal(ssCloseWait(server.pid).size, 2);
    assert.equal(sample(m, 'tcptrace_close_wait_sockets', labels), 2);
    assert.equal(sample(m, 'tcptrace_leaked_sockets', labels), 2, 'the leaks, past --leak-after 3');
  });

  test('accepted after the FIN, from a listener older than the agent: the leaks reach the gauges (= ss), past --leak-after', async () => {
    client('leak', 3, queued); // handshake, payload and FIN while the server is not accepting
    process.kill(queued.pid, 'SIGUSR1');
    const q = { workload: service.workload, pid: String(queued.pid), comm: 'python3' };
    // they linger from their accept (linger.bpf.h): 1 s, then --leak-after 3
    const m = await until((x) => sample(x, 'tcptrace_leaked_sockets', q) === 3, 7000);
    const ss = ssCloseWait(queued.pid).size;
    assert.equal(ss, 3, 'ss: the 3 accepted in CLOSE_WAIT');
    assert.equal(sample(m, 'tcptrace_close_wait_sockets', q), ss, m.split('\n').filter((l) => l.includes('close_wait')).join('\n'));
    assert.equal(sample(m, 'tcptrace_leaked_sockets', q), 3);
  });
});
