/**
 * `tcptrace doctor` against real processes and the real kernel: each condition is
 * created for real (fd exhaustion under prlimit, a CLOSE_WAIT leak, a TIME_WAIT
 * storm, a listener that never accepts, a process in another network namespace)
 * and the verdict asserted through the CLI (`node bin/tcptrace.js doctor`).
 * Traffic stays on 127.0.0.1, mostly inside network namespaces created here.
 * Every process started is stopped by its pid; every namespace is deleted.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'bin/tcptrace.js');
const FIXTURE = join(ROOT, 'dist/test/doctor-fixture.js');
const IS_ROOT = process.getuid?.() === 0;
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const NEEDS_ROOT_NETNS = 'needs root: creates network namespaces with `ip netns` and enters them';

// ---------------------------------------------------------------- helpers

interface Verdict {
  check: string;
  status: 'OK' | 'WARN' | 'CRIT';
  subject: string;
  pid?: number;
  comm?: string;
  netns?: number;
  destination?: string;
  listener?: string;
  measured: number;
  figure: string;
}
interface Report {
  schema: string;
  status: string;
  exitCode: number;
  privileged: boolean;
  windowSeconds: number | null;
  verdicts: Verdict[];
  processes: { pid: number; comm: string; netns: number | null; fds: { open: number; soft: number | null } | null; closeWait: { count: number; persisted: number | null }; timeWaitServerSide: number }[];
  top: { closeWait: number[]; timeWait: number[]; established: number[] };
  netns: {
    id: number;
    name: string | null;
    own: boolean;
    examined: boolean;
    states: Record<string, number>;
    closeWait: { total: number; unowned: number };
    timeWait: { total: number; serverSide: number; clientSide: number; maxBuckets: number | null };
    ephemeral: { available: number; destinations: { destination: string; inUse: number; timeWait: number; reusableTimeWait: number; effective: number; percent: number }[] };
    listeners: { address: string; queue: number; backlog: number; owners: { pid: number }[] }[];
    counters: Record<string, { total: number; delta: number | null }> | null;
  }[];
  settings: { name: string; value: string | null; perNetns?: Record<string, string | null> }[];
  limitations: { kind: string; missing: string; reason: string; pids?: number[]; netns?: number }[];
}

interface Fixture {
  pid: number;
  send(cmd: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): void;
}

const started: { child: ChildProcess; pid: number }[] = [];
const namespaces: string[] = [];

after(() => {
  for (const f of started) {
    for (const pid of new Set([f.pid, f.child.pid])) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  for (const ns of namespaces) spawnSync('ip', ['netns', 'delete', ns]);
});

/** Starts the fixture (optionally inside a netns and/or as nobody) and waits for its ready line. */
function startFixture(opts: { netns?: string; nobody?: boolean; args?: string[] } = {}): Promise<Fixture> {
  const argv = [process.execPath, FIXTURE, ...(opts.args ?? [])];
  if (opts.nobody) argv.unshift('setpriv', ...NOBODY);
  if (opts.netns) argv.unshift('ip', 'netns', 'exec', opts.netns);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  const entry = { child, pid: child.pid ?? 0 };
  started.push(entry);
  const waiting: ((o: Record<string, unknown>) => void)[] = [];
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (l) => waiting.shift()?.(JSON.parse(l) as Record<string, unknown>));
  const next = (what: string, timeoutMs: number): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`fixture: no answer to ${what} within ${timeoutMs} ms`)), timeoutMs);
      waiting.push((o) => (clearTimeout(t), resolve(o)));
    });
  return next('start', 10_000).then((ready) => {
    entry.pid = Number(ready.pid);
    return {
      pid: entry.pid,
      send: (cmd: string, timeoutMs = 20_000) => {
        const p = next(cmd, timeoutMs);
        child.stdin!.write(cmd + '\n');
        return p.then((o) => {
          if (!o.ok) throw new Error(`fixture ${cmd}: ${String(o.error)}`);
          return o;
        });
      },
      stop: () => {
        try {
          process.kill(entry.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      },
    };
  });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  report?: Report;
}

/** Runs `tcptrace doctor ARGS` (as nobody with setpriv when asked); parses JSON output. */
function doctor(args: string[], opts: { nobody?: boolean; timeoutMs?: number } = {}): Promise<Run> {
  const argv = [process.execPath, CLI, 'doctor', ...args];
  if (opts.nobody) argv.unshift('setpriv', ...NOBODY);
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20, cwd: ROOT }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      const run: Run = { code, stdout, stderr };
      if (args.includes('json') && !args.includes('--watch')) {
        try {
          run.report = JSON.parse(stdout) as Report;
        } catch {
          /* asserted by the caller */
        }
      }
      resolve(run);
    });
  });
}

function mustReport(run: Run): Report {
  assert.ok(run.report, `doctor printed no JSON (exit ${run.code}): ${run.stderr}\n${run.stdout.slice(0, 2000)}`);
  return run.report;
}

function verdictsFor(r: Report, check: string): Verdict[] {
  return r.verdicts.filter((v) => v.check === check);
}

let nsSeq = 0;
function makeNetns(sysctls: Record<string, string> = {}): string {
  const name = `tcptrace-doctor-${process.pid}-${nsSeq++}`;
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  assert.equal(add.status, 0, `ip netns add ${name}: ${add.stderr}`);
  namespaces.push(name);
  spawnSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  for (const [k, v] of Object.entries(sysctls)) setSysctl(name, k, v);
  return name;
}

function setSysctl(ns: string, key: string, value: string): void {
  const path = `/proc/sys/${key.replace(/\./g, '/')}`;
  const r = spawnSync('ip', ['netns', 'exec', ns, 'sh', '-c', `echo "$1" > "$2"`, 'sh', value, path], { encoding: 'utf8' });
  assert.equal(r.status, 0, `set ${key}=${value} in ${ns}: ${r.stderr}`);
}

function deleteNetns(name: string): void {
  spawnSync('ip', ['netns', 'delete', name]);
  namespaces.splice(namespaces.indexOf(name), 1);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- tests

describe('tcptrace doctor', { timeout: 110_000 }, () => {
  test('--help documents the verdict exit codes; bad usage exits 64; a missing pid exits 67', async () => {
    const help = await doctor(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /0\s+every check OK/);
    assert.match(help.stdout, /1\s+at least one WARN/);
    assert.match(help.stdout, /2\s+at least one CRIT/);
    assert.equal((await doctor(['--pid', 'abc'])).code, 64);
    assert.equal((await doctor(['--sample', '-1'])).code, 64);
    assert.equal((await doctor(['--format', 'xml'])).code, 64);
    // pid_max is at most 2^22: this pid cannot exist
    const gone = await doctor(['--pid', '4194304', '--sample', '0']);
    assert.equal(gone.code, 67, gone.stderr);
    assert.match(gone.stderr, /no such process/);
  });

  test('fd soft limit lowered with prlimit, then nearly exhausted: CRIT naming the pid', async () => {
    const f = await startFixture();
    try {
      const lim = spawnSync('prlimit', ['--pid', String(f.pid), '--nofile=100:4096'], { encoding: 'utf8' });
      assert.equal(lim.status, 0, `prlimit: ${lim.stderr}`);
      const warn = await f.send('fill 85');
      assert.equal(warn.fds, 85);
      let r = mustReport(await doctor(['--pid', String(f.pid), '--format', 'json', '--sample', '0']));
      let v = verdictsFor(r, 'fd-limit').find((x) => x.pid === f.pid);
      assert.equal(v?.status, 'WARN', JSON.stringify(r.verdicts));
      const crit = await f.send('fill 97');
      assert.equal(crit.fds, 97);
      const run = await doctor(['--pid', String(f.pid), '--format', 'json', '--sample', '0']);
      r = mustReport(run);
      v = verdictsFor(r, 'fd-limit').find((x) => x.pid === f.pid);
      assert.equal(v?.status, 'CRIT');
      assert.equal(v?.comm, 'node');
      assert.match(v!.subject, new RegExp(`pid ${f.pid} \\(node\\)`));
      assert.equal(v?.measured, 97);
      assert.equal(run.code, 2, 'CRIT exits 2');
      assert.equal(r.exitCode, 2);
      const p = r.processes.find((x) => x.pid === f.pid);
      assert.equal(p?.fds?.soft, 100);
      // text: the verdict table names the pid with the figure and the threshold
      const text = await doctor(['--pid', String(f.pid), '--sample', '0']);
      assert.equal(text.code, 2);
      assert.match(text.stdout, new RegExp(`CRIT\\s+fd-limit\\s+pid ${f.pid} \\(node\\)\\s+97 of 100 fds \\(97%\\)\\s+80% / 95% of soft limit`));
    } finally {
      f.stop();
    }
  });

  test('CLOSE_WAIT leak: WARN for a few, CRIT for many, pid named, advice is `tcptrace --pid N`', async () => {
    const server = await startFixture();
    const client = await startFixture();
    try {
      const { port } = (await server.send('listen 0 leak')) as { port: number };
      await client.send(`connect 127.0.0.1 ${port} 2`);
      await server.send('accepted 2'); // an unaccepted socket has no fd yet, so no owner
      await client.send('closeall');
      await sleep(200);
      let r = mustReport(await doctor(['--pid', String(server.pid), '--format', 'json', '--sample', '0.3']));
      let v = verdictsFor(r, 'close-wait').find((x) => x.pid === server.pid);
      assert.equal(v?.status, 'WARN', JSON.stringify(r.verdicts));
      assert.equal(v?.measured, 2);
      assert.equal(r.processes.find((p) => p.pid === server.pid)?.closeWait.persisted, 2, 'both lasted the window');
      await client.send(`connect 127.0.0.1 ${port} 40`);
      await server.send('accepted 42');
      await client.send('closeall');
      await sleep(200);
      const run = await doctor(['--pid', String(server.pid), '--format', 'json', '--sample', '0.3']);
      r = mustReport(run);
      v = verdictsFor(r, 'close-wait').find((x) => x.pid === server.pid);
      assert.equal(v?.status, 'CRIT', JSON.stringify(v));
      assert.equal(v?.measured, 42);
      assert.equal(run.code, 2);
      assert.deepEqual(r.top.closeWait, [server.pid]);
      const text = await doctor(['--pid', String(server.pid), '--sample', '0']);
      assert.match(text.stdout, new RegExp(`CRIT\\s+close-wait\\s+pid ${server.pid} \\(node\\)\\s+42 sockets`));
      assert.match(text.stdout, new RegExp(`No sysctl releases a CLOSE_WAIT socket.*\`tcptrace --pid ${server.pid}\``));
      // without --pid: the whole box, the leaker still named
      const all = mustReport(await doctor(['--format', 'json', '--sample', '0']));
      assert.ok(verdictsFor(all, 'close-wait').some((x) => x.pid === server.pid && x.status === 'CRIT'));
      assert.ok(all.netns.find((n) => n.own)!.closeWait.total >= 42);

      // not root: the box-wide dump still shows the sockets; the owner is root's, so not named
      if (IS_ROOT) {
        const nb = await doctor(['--format', 'json', '--sample', '0.3'], { nobody: true });
        const rep = mustReport(nb);
        assert.equal(rep.privileged, false);
        const fdsLimit = rep.limitations.find((l) => l.kind === 'process-fds');
        assert.ok(fdsLimit?.pids?.includes(server.pid), 'says it could not read the leaker\'s fds');
        const unowned = verdictsFor(rep, 'close-wait').find((x) => x.pid === undefined && x.status !== 'OK');
        assert.ok(unowned && unowned.measured >= 42, `unattributed CLOSE_WAIT reported: ${JSON.stringify(rep.verdicts)}`);
        assert.ok(nb.code >= 1);
        const nbText = await doctor(['--pid', String(server.pid), '--sample', '0'], { nobody: true });
        assert.match(nbText.stdout, /as uid 65534 \(not root: reduced view\)/);
        assert.match(nbText.stdout, /Not seen:[\s\S]*\/proc\/PID\/fd of another user's process needs root/);
      }
    } finally {
      server.stop();
      client.stop();
    }
  });

  test('not root (setpriv): sees its own processes, names what it cannot see', async (t) => {
    if (!IS_ROOT) return t.skip('needs root: uses setpriv to become uid 65534 and compare');
    const mine = await startFixture({ nobody: true });
    const rootOwned = await startFixture();
    try {
      const { port } = (await mine.send('listen 0 leak')) as { port: number };
      await mine.send(`connect 127.0.0.1 ${port} 3`);
      await mine.send('accepted 3');
      await mine.send('closeall');
      await sleep(200);
      const run = await doctor(['--pid', String(mine.pid), '--pid', String(rootOwned.pid), '--format', 'json', '--sample', '0.3'], { nobody: true });
      const r = mustReport(run);
      assert.equal(r.privileged, false);
      const v = verdictsFor(r, 'close-wait').find((x) => x.pid === mine.pid);
      assert.equal(v?.status, 'WARN', 'its own process is fully visible');
      const hidden = r.limitations.find((l) => l.kind === 'process-fds');
      assert.deepEqual(hidden?.pids, [rootOwned.pid]);
      assert.match(hidden!.reason, /needs root/);
      assert.equal(r.processes.find((p) => p.pid === rootOwned.pid)?.fds, null);
      assert.equal(run.code, 1);
    } finally {
      mine.stop();
      rootOwned.stop();
    }
  });

  test('a process in another network namespace is examined inside it', async (t) => {
    if (!IS_ROOT) return t.skip(NEEDS_ROOT_NETNS);
    const ns = makeNetns({ 'net.core.somaxconn': '77' });
    const server = await startFixture({ netns: ns });
    const client = await startFixture({ netns: ns });
    try {
      const { port } = (await server.send('listen 7001 leak 50')) as { port: number };
      assert.equal(port, 7001);
      await client.send('connect 127.0.0.1 7001 5');
      await server.send('accepted 5');
      await client.send('closeall');
      await sleep(200);
      const r = mustReport(await doctor(['--pid', String(server.pid), '--format', 'json', '--sample', '0.3']));
      assert.equal(r.netns.length, 1, 'only the namespace of the pid');
      const n = r.netns[0]!;
      assert.equal(n.own, false);
      assert.equal(n.name, ns);
      assert.equal(n.examined, true);
      assert.equal(n.closeWait.total, 5);
      assert.deepEqual(n.listeners.map((l) => [l.address, l.backlog, l.owners[0]?.pid]), [['127.0.0.1:7001', 50, server.pid]]);
      assert.equal(r.processes[0]?.netns, n.id);
      const v = verdictsFor(r, 'close-wait').find((x) => x.pid === server.pid);
      assert.equal(v?.status, 'WARN');
      assert.equal(v?.netns, n.id);
      // its own sysctls (read inside it), not ours
      assert.equal(r.settings.find((s) => s.name === 'net.core.somaxconn')?.perNetns?.[String(n.id)], '77');
      // as nobody: cannot enter it, and says so
      const nb = mustReport(await doctor(['--pid', String(server.pid), '--format', 'json', '--sample', '0'], { nobody: true }));
      const lim = nb.limitations.filter((l) => l.pids?.includes(server.pid));
      assert.ok(lim.length > 0, JSON.stringify(nb.limitations));
      assert.ok(!nb.netns.some((x) => x.examined && x.id === n.id), 'the other namespace is not examined without root');
    } finally {
      server.stop();
      client.stop();
    }
  });

  test('TIME_WAIT storm: client churning connections exhausts a narrowed port range', async (t) => {
    if (!IS_ROOT) return t.skip(NEEDS_ROOT_NETNS);
    const ns = makeNetns({
      'net.ipv4.ip_local_port_range': '40000 40999',
      'net.ipv4.tcp_tw_reuse': '0',
      'net.ipv4.tcp_max_tw_buckets': '1000',
    });
    const server = await startFixture({ netns: ns });
    const closer = await startFixture({ netns: ns });
    const client = await startFixture({ netns: ns });
    try {
      await server.send('listen 8080 normal');
      await closer.send('listen 8081 close-first');
      // the server closes first: TIME_WAIT on its side, attributed to its listener
      const a = await client.send('churn 127.0.0.1 8081 40 10 peer-first');
      assert.equal(a.done, 40);
      // the client closes first: TIME_WAIT holds its ephemeral ports
      const b = await client.send('churn 127.0.0.1 8080 950 20', 60_000);
      assert.equal(b.done, 950);
      const run = await doctor(['--pid', String(client.pid), '--pid', String(closer.pid), '--format', 'json', '--sample', '0.3']);
      const r = mustReport(run);
      const n = r.netns[0]!;
      // a connection or two may end without TIME_WAIT (a crossed FIN); the verdicts have margin.
      // Both sides get it: under a loaded full suite the server side saw 39 of 40 twice.
      assert.ok(n.timeWait.clientSide >= 930, JSON.stringify(n.timeWait));
      assert.ok(n.timeWait.serverSide >= 38, JSON.stringify(n.timeWait));
      assert.equal(n.timeWait.maxBuckets, 1000);
      const dest = n.ephemeral.destinations.find((d) => d.destination === '127.0.0.1:8080');
      assert.equal(n.ephemeral.available, 1000);
      assert.ok(dest && dest.inUse >= 930 && dest.timeWait >= 930 && dest.reusableTimeWait === 0, JSON.stringify(dest));
      const ports = verdictsFor(r, 'ephemeral-ports').find((v) => v.destination === '127.0.0.1:8080');
      assert.equal(ports?.status, 'CRIT', JSON.stringify(ports));
      const tw = verdictsFor(r, 'time-wait')[0];
      assert.equal(tw?.status, 'CRIT');
      assert.ok(tw!.measured >= 90);
      assert.equal(run.code, 2);
      assert.deepEqual(r.top.timeWait, [closer.pid], 'server-side TIME_WAIT is attributed to the listener that closed first');
      assert.ok(r.processes.find((p) => p.pid === closer.pid)!.timeWaitServerSide >= 38);

      // tcp_tw_reuse=1 lets connect() take TIME_WAIT ports older than 1 s: no longer near EADDRNOTAVAIL
      setSysctl(ns, 'net.ipv4.tcp_tw_reuse', '1');
      await sleep(1100);
      const r2 = mustReport(await doctor(['--pid', String(client.pid), '--format', 'json', '--sample', '0']));
      const dest2 = r2.netns[0]!.ephemeral.destinations.find((d) => d.destination === '127.0.0.1:8080');
      assert.ok(dest2 && dest2.reusableTimeWait >= 930 && dest2.effective < 50, JSON.stringify(dest2));
      assert.notEqual(verdictsFor(r2, 'ephemeral-ports').find((v) => v.destination === '127.0.0.1:8080')?.status ?? 'OK', 'CRIT');
      assert.equal(verdictsFor(r2, 'time-wait')[0]?.status, 'CRIT', 'the TIME_WAIT count itself is unchanged');
    } finally {
      server.stop();
      closer.stop();
      client.stop();
    }
  });

  test('a listener that never accepts: accept queue full, ListenOverflows rises during the window', async (t) => {
    if (!IS_ROOT) return t.skip(NEEDS_ROOT_NETNS);
    const ns = makeNetns();
    const listener = await startFixture({ netns: ns, args: ['noaccept', '9000', '4', '60'] });
    const client = await startFixture({ netns: ns });
    try {
      await client.send('connect 127.0.0.1 9000 5'); // fills the queue (backlog 4 holds 5)
      await client.send('burst 127.0.0.1 9000 60 50'); // 3 s of new SYNs, dropped
      const run = await doctor(['--pid', String(listener.pid), '--format', 'json', '--sample', '1']);
      const r = mustReport(run);
      const n = r.netns[0]!;
      const l = n.listeners.find((x) => x.address === '127.0.0.1:9000');
      assert.ok(l && l.backlog === 4 && l.queue >= 4, JSON.stringify(n.listeners));
      const q = verdictsFor(r, 'accept-queue').find((v) => v.listener === '127.0.0.1:9000');
      assert.equal(q?.status, 'CRIT');
      assert.equal(q?.pid, listener.pid);
      assert.ok((n.counters?.ListenOverflows?.delta ?? 0) > 0, JSON.stringify(n.counters));
      const lo = verdictsFor(r, 'listen-overflows')[0];
      assert.ok(lo && lo.status !== 'OK', JSON.stringify(lo));
      assert.equal(run.code, 2);
    } finally {
      listener.stop();
      client.stop();
    }
  });

  test('a quiet namespace is OK (exit 0); --watch re-measures and shows rates', async (t) => {
    if (!IS_ROOT) return t.skip(NEEDS_ROOT_NETNS);
    const ns = makeNetns();
    const server = await startFixture({ netns: ns });
    const client = await startFixture({ netns: ns });
    try {
      const { port } = (await server.send('listen 7100 leak')) as { port: number };
      const quiet = await doctor(['--pid', String(server.pid), '--format', 'json', '--sample', '0.2']);
      assert.equal(quiet.code, 0, quiet.stdout);
      assert.equal(mustReport(quiet).status, 'OK');
      // three rounds 0.5 s apart; the leak grows after the first one
      const lines: string[] = [];
      const watch = spawn(process.execPath, [CLI, 'doctor', '--pid', String(server.pid), '--format', 'json', '--sample', '0', '--watch', '0.5', '--count', '3'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      started.push({ child: watch, pid: watch.pid ?? 0 });
      const exited = new Promise<number>((resolve) => watch.on('exit', (code) => resolve(code ?? -1)));
      const firstRound = new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no first --watch round within 10 s')), 10_000);
        createInterface({ input: watch.stdout! }).on('line', (l) => {
          lines.push(l);
          if (lines.length === 1) (clearTimeout(t), resolve());
        });
      });
      await firstRound;
      await client.send(`connect 127.0.0.1 ${port} 10`);
      await server.send('accepted 10');
      await client.send('closeall');
      const code = await Promise.race([exited, sleep(15_000).then(() => -2)]);
      assert.ok(code >= 0, 'doctor --watch --count 3 ended by itself');
      const rounds = lines.map((l) => JSON.parse(l) as Report & { round: number; netns: { closeWait: { new: number | null } }[] });
      assert.equal(rounds.length, 3);
      assert.deepEqual(rounds.map((x) => x.round), [1, 2, 3]);
      const newCw = rounds.slice(1).reduce((s, x) => s + (x.netns[0]!.closeWait.new ?? 0), 0);
      assert.equal(newCw, 10, 'the new CLOSE_WAIT appear in the deltas');
      assert.equal(code, rounds[2]!.exitCode);
      assert.ok(code >= 1);
      const text = await doctor(['--pid', String(server.pid), '--sample', '0', '--watch', '0.2', '--count', '2']);
      assert.match(text.stdout, /--- round 2, .* since the previous ---/);
      assert.match(text.stdout, /CLOSE_WAIT 10 \(\+0, 0\/s\), TIME_WAIT \d+ \(\+\d+, [\d.]+\/s\)/);
    } finally {
      server.stop();
      client.stop();
      deleteNetns(ns);
    }
  });
});
