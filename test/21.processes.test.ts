/**
 * Other shapes of real programs: a Node server whose handlers forget
 * socket.end() (allowHalfOpen), and a forking C server whose children hold the
 * leaked sockets (--children). The CLOSE_WAIT set must equal `ss` for the pids.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { buildC, FIXTURES, needKernelBtf, needRoot, runClient, sleep, ssCloseWait, ssCloseWaitHolders, startServer, startTcptrace, type Server } from './helpers/proc.js';

const skip = needRoot() ?? needKernelBtf();

/**
 * Traces with `args` while `leak` leaking and `good` well-behaved clients talk to
 * port; `snapshot` (what ss says) runs once they settled, before the trace stops.
 */
async function traceClients<T>(args: string[], port: number, leak: number, good: number, settleMs: number, snapshot: () => T): Promise<{ report: any; seen: T }> {
  const t = startTcptrace([...args, '--format', 'json']);
  await t.ready;
  runClient(port, 'leak', leak);
  runClient(port, 'good', good, true);
  await sleep(settleMs);
  const seen = snapshot();
  const r = await t.stop();
  assert.equal(r.code, 0, r.stderr);
  return { report: JSON.parse(r.stdout), seen };
}

describe('a Node server that never ends half-closed sockets', { skip: skip ?? false }, () => {
  let server: Server;
  let report: any;
  let ss: Set<string>;
  before(async () => {
    server = await startServer(process.execPath, [join(FIXTURES, 'node_server.mjs')]);
    ({ report, seen: ss } = await traceClients(['--pid', String(server.pid)], server.port, 4, 3, 400, () => ssCloseWait(server.pid)));
  });
  after(() => server?.stop());

  test('reports the 4 leaked sockets, with fds, and only those', () => {
    assert.equal(ss.size, 4);
    assert.deepEqual(new Set(report.closeWait.map((e: any) => `${e.local} ${e.remote}`)), ss);
    for (const e of report.closeWait) {
      assert.equal(e.pid, server.pid);
      assert.equal(e.origin, 'accept');
      assert.ok(e.fd >= 0, 'fd known from accept4');
    }
  });
});

/**
 * A forking server: the parent accepts, forks a child that handles the socket, and closes its
 * own fd. With --children the fork is followed; without it the child is untraced, and no
 * transition says the parent closed its copy: the holders read at the end name the child.
 */
for (const children of [true, false]) {
  describe(`a forking server traced ${children ? 'with' : 'without'} --children`, { skip: skip ?? false }, () => {
    let server: Server;
    let report: any;
    let holders: Map<string, number>;
    before(async () => {
      server = await startServer(buildC('leaky_server', ['-O2', '-g']), ['0', 'fork']);
      // ss names the child processes that hold the sockets
      const args = ['--pid', String(server.pid), '--leak-after', '0.1', ...(children ? ['--children'] : [])];
      ({ report, seen: holders } = await traceClients(args, server.port, 3, 2, 500, () =>
        new Map([...ssCloseWaitHolders()].filter(([k]) => k.startsWith(`127.0.0.1:${server.port} `))),
      ));
    });
    after(() => server?.stop()); // the whole process group: parent and forked children

    test('each leaked socket is reported with the child that holds it, not the parent that accepted it', () => {
      assert.equal(holders.size, 3);
      const ours = new Map(report.closeWait.map((e: any) => [`${e.local} ${e.remote}`, e.pid]));
      assert.deepEqual(ours, holders);
      for (const e of report.closeWait) {
        assert.equal(e.acquiredBy, server.pid, 'accepted by the parent');
        assert.notEqual(e.pid, server.pid, 'held by a forked child');
        assert.equal(e.comm, 'leaky_server');
        assert.ok(e.fd >= 3, `the child's fd: ${e.fd}`);
      }
      const notes = report.leaks.flatMap((g: any) => g.notes);
      assert.ok(notes.some((n: string) => /which closed its fd/.test(n)), `notes: ${notes.join(' | ')}`);
    });
  });
}

describe('more --pid targets than the kernel checks without a map lookup', { skip: skip ?? false }, () => {
  let server: Server;
  let report: any;
  let ss: Set<string>;
  const idle: ChildProcess[] = [];
  before(async () => {
    // 8 idle targets fill the fast list (TT_FAST_TARGETS); the server is the 9th, found in the targets map
    for (let i = 0; i < 8; i++) idle.push(spawn('sleep', ['60'], { stdio: 'ignore' }));
    server = await startServer(process.execPath, [join(FIXTURES, 'node_server.mjs')]);
    const pids = [...idle.map((p) => p.pid!), server.pid].flatMap((p) => ['--pid', String(p)]);
    // every call sent (no summary): the calls count below is what the hooks saw of the 9th target
    ({ report, seen: ss } = await traceClients([...pids, '--no-kernel-summary'], server.port, 2, 2, 400, () => ssCloseWait(server.pid)));
  });
  after(() => {
    for (const p of idle) p.kill('SIGKILL');
    server?.stop();
  });

  test('the 9th target is traced: accepts claimed with their fds, closes seen', () => {
    assert.equal(ss.size, 2);
    assert.deepEqual(new Set(report.closeWait.map((e: any) => `${e.local} ${e.remote}`)), ss);
    for (const e of report.closeWait) {
      assert.equal(e.pid, server.pid);
      assert.equal(e.origin, 'accept');
      assert.ok(e.fd >= 0, 'fd known from accept4: the accept hook saw a target');
    }
    assert.ok(report.counts.calls >= 4 + 2, `${report.counts.calls} accept/close calls seen, expected 4 accepts and 2 closes`);
  });
});
