/**
 * `tcptrace agent` on the real kernel: a leaky C server (test/fixtures/
 * leaky_server.c) runs in a cgroup of its own, like a systemd service; the
 * agent's /metrics must show, for its pid and under its workload, the
 * CLOSE_WAIT sockets `ss` shows, those past --leak-after, and pass Debian's
 * `promtool check metrics`. Health and readiness endpoints answer; a bad
 * --listen and a port in use are one-line errors with their exit codes. Sockets
 * the kernel holds count in tcptrace_sockets (= ss); a service in a network
 * namespace of its own (ip netns) is traced and named like any other.
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
