/**
 * Leak attribution on real binaries: the report must name the code path that
 * acquired the leaked sockets and saw their EOF, on -O2 builds with and
 * without frame pointers, and in Node with a perf map; the well-behaved path
 * is never reported; a fast-churn well-behaved server yields no leak at all;
 * the leaked count equals ss's CLOSE_WAIT count for the pid.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildC, FIXTURES, needKernelBtf, needRoot, sleep, ssCloseWait, ssCloseWaitFds, startServer, startTcptrace, requests, type Server } from './helpers/proc.js';

const skip = needRoot() ?? needKernelBtf();

interface Frame {
  symbol: string;
  file?: string;
  line?: number;
  inlined?: { symbol: string }[];
}
const names = (frames: Frame[] | null) => (frames ?? []).flatMap((f) => [f.symbol, ...(f.inlined ?? []).map((i) => i.symbol)]);

async function traceLeaks(server: Server, during: () => void, extra: string[] = []): Promise<{ doc: any; ss: Set<string> }> {
  const t = startTcptrace(['--pid', String(server.pid), '--format', 'json', '--leak-after', '1', ...extra]);
  await t.ready;
  during();
  await sleep(1300); // past --leak-after
  const ss = ssCloseWait(server.pid);
  const r = await t.stop();
  assert.equal(r.code, 0, r.stderr);
  return { doc: JSON.parse(r.stdout), ss };
}

for (const [label, flags] of [
  ['-O2 without frame pointers', ['-O2', '-g', '-fomit-frame-pointer']],
  ['-O2 with frame pointers', ['-O2', '-g', '-fno-omit-frame-pointer']],
] as const) {
  describe(`C server, ${label}`, { skip: skip ?? false }, () => {
    let server: Server;
    let doc: any;
    let ss: Set<string>;
    before(async () => {
      server = await startServer(buildC('attrib_server', [...flags]));
      requests(server.port, 'quote', 2); // leaks that predate attach
      ({ doc, ss } = await traceLeaks(server, () => {
        requests(server.port, 'quote', 4);
        requests(server.port, 'health', 4);
      }));
    });
    after(() => server?.stop());

    test('the leaked count equals ss\'s CLOSE_WAIT count for the pid', () => {
      const leaked = doc.leaks.reduce((a: number, g: any) => a + g.count, 0);
      assert.equal(ss.size, 6);
      assert.equal(leaked, 6);
      assert.deepEqual(new Set(doc.leaks.flatMap((g: any) => g.sockets.map((s: any) => `${s.local} ${s.remote}`))), ss);
    });

    test('the group names the leaking function, with file:line', () => {
      const g = doc.leaks.find((x: any) => x.origin === 'accept');
      assert.ok(g, 'an accept group');
      assert.equal(g.count, 4);
      assert.equal(g.pid, server.pid);
      assert.ok(names(g.stacks.io).includes('handle_quote'), `first-write stack: ${names(g.stacks.io).join(' < ')}`);
      const quote = g.stacks.io.find((f: Frame) => f.symbol === 'handle_quote');
      assert.match(quote.file, /attrib_server\.c$/);
      assert.ok(quote.line > 0);
      assert.ok(names(g.stacks.eof).includes('read_until_eof'), `EOF stack: ${names(g.stacks.eof).join(' < ')}`);
      for (const site of ['acquire', 'io', 'eof']) {
        assert.ok(names(g.stacks[site]).includes('serve_clients'), `${site} stack reaches serve_clients`);
        assert.ok(names(g.stacks[site]).includes('main'), `${site} stack reaches main`);
      }
      assert.ok(['accept4', 'accept_client'].includes(names(g.stacks.acquire)[0]), 'frame #0 of the acquire stack is the accept call');
    });

    test('the well-behaved path is never reported as a leak, and its CLOSE_WAIT time is', () => {
      for (const g of doc.leaks) for (const site of ['acquire', 'io', 'eof']) assert.ok(!names(g.stacks[site]).includes('handle_health'));
      const closed = doc.closedCloseWait.find((c: any) => c.pid === server.pid);
      assert.ok(closed && closed.closed >= 4, 'the health path closed its sockets');
      assert.ok(closed.p90Ms < 1000);
    });

    test('leaks from before attach are reported as preexisting', () => {
      const g = doc.leaks.find((x: any) => x.origin === 'preexisting');
      assert.equal(g?.count, 2);
      assert.equal(g.ageSince, 'attach');
      assert.deepEqual(g.stacks, { acquire: null, io: null, read: null, eof: null });
      assert.ok(g.notes.some((n: string) => /before tcptrace attached/.test(n)));
    });
  });
}

describe('a fast-churn well-behaved server', { skip: skip ?? false }, () => {
  let server: Server;
  after(() => server?.stop());
  test('yields no leak at all', async () => {
    server = await startServer(buildC('attrib_server', ['-O2', '-g']));
    const { doc, ss } = await traceLeaks(server, () => requests(server.port, 'health', 300));
    assert.equal(ss.size, 0);
    assert.deepEqual(doc.leaks, []);
    // --pid -f json: the kernel summarises, and counts what it kept (SYN_RECV, ESTABLISHED of each socket)
    const seen = doc.counts.transitions + doc.counts.summarisedInKernel;
    assert.ok(seen >= 300 * 4, `saw ${seen} transitions`);
    assert.ok(doc.counts.summarisedInKernel >= 300 * 2, `${doc.counts.summarisedInKernel} summarised in the kernel`);
    assert.equal(doc.counts.lost, 0);
  });
});

describe('the kernel summary (--pid -f json) reports what the full event stream reports', { skip: skip ?? false }, () => {
  let server: Server;
  after(() => server?.stop());
  test('same states, CLOSE_WAIT sockets, leak groups and stacks, side by side on the same traffic', async () => {
    server = await startServer(buildC('attrib_server', ['-O2', '-g']));
    requests(server.port, 'quote', 2); // leaks that predate attach
    // both attached at once: one keeps held sockets in the kernel, one streams every event
    const args = ['--pid', String(server.pid), '--format', 'json', '--leak-after', '1'];
    const summary = startTcptrace(args);
    const full = startTcptrace([...args, '--no-kernel-summary']);
    await Promise.all([summary.ready, full.ready]);
    // enough health requests that the kernel recognises the stacks: held stack ids are then sent on publish
    requests(server.port, 'health', 60);
    requests(server.port, 'quote', 5);
    requests(server.port, 'health', 20);
    await sleep(1300);
    const [rs, rf] = await Promise.all([summary.stop(), full.stop()]);
    assert.equal(rs.code, 0, rs.stderr);
    assert.equal(rf.code, 0, rf.stderr);
    const s = JSON.parse(rs.stdout);
    const f = JSON.parse(rf.stdout);
    assert.equal(s.summary, true);
    assert.equal(f.summary, false);
    assert.equal(f.counts.summarisedInKernel, 0);
    assert.ok(s.counts.summarisedInKernel >= 85 * 2, `${s.counts.summarisedInKernel} transitions summarised`);
    assert.equal(s.counts.transitions + s.counts.summarisedInKernel, f.counts.transitions, 'every transition seen, sent or counted');
    assert.ok(s.counts.events < f.counts.events, `${s.counts.events} records sent against ${f.counts.events}`);
    assert.ok(s.stacks.deduped > 0, 'some stacks recognised in the kernel (held, then sent on publish)');
    // the server accepts and writes from the same depth each time: later walks are recalled from the memo
    assert.ok(s.stacks.recalled > 0 && f.stacks.recalled > 0, `recalled ${s.stacks.recalled} / ${f.stacks.recalled}`);
    assert.equal(s.counts.lost + f.counts.lost, 0);

    assert.deepEqual(s.states, f.states);
    const cw = (r: any) => r.closeWait.map((e: any) => `${e.pid} ${e.fd} ${e.local} ${e.remote} ${e.origin} ${e.since}`).sort();
    assert.deepEqual(cw(s), cw(f));
    assert.equal(s.closeWait.length, 7);
    const groups = (r: any) =>
      r.leaks.map((g: any) => ({ pid: g.pid, origin: g.origin, count: g.count, acquire: names(g.stacks.acquire), io: names(g.stacks.io), eof: names(g.stacks.eof) }));
    assert.deepEqual(groups(s), groups(f));
    assert.ok(groups(s).some((g: any) => g.origin === 'accept' && g.count === 5 && g.io.includes('handle_quote')), JSON.stringify(groups(s)));
    const closed = (r: any) => r.closedCloseWait.map((c: any) => `${c.pid} ${c.origin} ${c.closed} ${names(c.acquire).join('<')}`).sort();
    assert.deepEqual(closed(s), closed(f));
  });
});

describe('Node server with a perf map (allowHalfOpen, a handler that never ends)', { skip: skip ?? false }, () => {
  let server: Server;
  let doc: any;
  let ss: Set<string>;
  before(async () => {
    server = await startServer(process.execPath, ['--perf-basic-prof-only-functions', '--interpreted-frames-native-stack', join(FIXTURES, 'node_attrib.mjs')]);
    ({ doc, ss } = await traceLeaks(server, () => {
      requests(server.port, 'quote', 3);
      requests(server.port, 'health', 3);
    }));
  });
  after(async () => {
    await server?.stop();
    rmSync(`/tmp/perf-${server?.pid}.map`, { force: true });
  });

  test('names the JavaScript handler that leaks, and counts what ss counts', () => {
    assert.equal(ss.size, 3);
    const leaked = doc.leaks.reduce((a: number, g: any) => a + g.count, 0);
    assert.equal(leaked, 3);
    const g = doc.leaks[0];
    const io = names(g.stacks.io);
    assert.ok(io.some((s) => /^JS:.*replyQuote .*node_attrib\.mjs:\d+/.test(s)), `first-write stack: ${io.join(' < ')}`);
    assert.ok(!io.some((s) => /replyHealth/.test(s)));
    assert.ok(names(g.stacks.acquire).includes('uv__accept') || names(g.stacks.acquire).includes('accept4'));
  });
});

/** Starts a client fixture that waits for a line on stdin, traces it, lets it go. */
async function traceClient(cmd: string, args: string[], expect: number): Promise<{ pid: number; doc: any; ss: Set<string>; ssFds: Map<string, number> }> {
  const { spawn } = await import('node:child_process');
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
  try {
    const t = startTcptrace(['--pid', String(proc.pid), '--format', 'json', '--leak-after', '1']);
    await t.ready;
    const done = new Promise<void>((resolve) => proc.stdout!.on('data', (d: Buffer) => d.toString().includes('DONE') && resolve()));
    proc.stdin!.write('go\n');
    await Promise.race([done, sleep(20_000)]);
    // the server closes idle connections on its own schedule: wait for the FINs, then past --leak-after
    for (let i = 0; i < 100 && ssCloseWait(proc.pid!).size < expect; i++) await sleep(100);
    await sleep(1300);
    const ss = ssCloseWait(proc.pid!);
    const ssFds = ssCloseWaitFds(proc.pid!);
    const r = await t.stop();
    assert.equal(r.code, 0, r.stderr);
    return { pid: proc.pid!, doc: JSON.parse(r.stdout), ss, ssFds };
  } finally {
    try {
      process.kill(-proc.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    proc.stdout?.destroy();
    proc.stdin?.destroy();
  }
}

describe('clients that never close', { skip: skip ?? false }, () => {
  let http: Server;
  before(async () => {
    http = await startServer(process.execPath, [join(FIXTURES, 'http_server.mjs')]);
  });
  after(() => http?.stop());

  test('Python http.client without close(): counted like ss, acquired by connect, and the Python function named (test/35 has every interpreter)', async () => {
    const { pid, doc, ss, ssFds } = await traceClient('python3', [join(FIXTURES, 'leaky_client.py'), String(http.port), '3'], 3);
    assert.equal(ss.size, 3);
    const g = doc.leaks.find((x: any) => x.pid === pid);
    assert.equal(g?.count, 3, `leaks ${JSON.stringify(doc.leaks.map((x: any) => [x.pid, x.count, x.oldestMs]))}; closeWait ${JSON.stringify(doc.closeWait)}`);
    assert.equal(g.origin, 'connect');
    // connect() is not hooked: the SYN_SENT transition reads the fd from the syscall's registers
    assert.deepEqual(g.sockets.map((x: any) => [`${x.local} ${x.remote}`, x.fd]).sort(), [...ssFds].sort());
    const acq = names(g.stacks.acquire);
    assert.equal(acq[0], 'connect');
    assert.ok(acq.includes('sock_connect'), acq.join(' < '));
    assert.ok(g.stacks.acquire.some((f: any) => f.kind === 'python' && f.symbol === 'fetch_quote' && /leaky_client\.py$/.test(f.file)), acq.join(' < '));
    assert.ok(!g.notes.some((n: string) => /not named/.test(n)), g.notes.join('; '));
  });

  test('Go client that never closes: the group names main.dialQuote', { skip: spawnSync('sh', ['-c', 'command -v go']).status === 0 ? false : 'needs the Go toolchain (golang-go, installed by scripts/setup.sh)' }, async () => {
    const { mkdirSync, copyFileSync } = await import('node:fs');
    const { WORK } = await import('./helpers/proc.js');
    const dir = join(WORK, 'go-client');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(FIXTURES, 'leaky_client.go'), join(dir, 'main.go'));
    const env = { ...process.env, GOCACHE: join(dir, 'cache'), GOPATH: join(dir, 'gopath'), GO111MODULE: 'off', GOFLAGS: '' };
    const b = spawnSync('go', ['build', '-o', 'leaky_client', 'main.go'], { cwd: dir, env, encoding: 'utf8', timeout: 180_000 });
    assert.equal(b.status, 0, b.stderr);
    const { pid, doc, ss, ssFds } = await traceClient(join(dir, 'leaky_client'), [String(http.port), '3'], 3);
    assert.equal(ss.size, 3);
    const g = doc.leaks.find((x: any) => x.pid === pid);
    assert.equal(g?.count, 3, `leaks ${JSON.stringify(doc.leaks.map((x: any) => [x.pid, x.count, x.oldestMs]))}; closeWait ${JSON.stringify(doc.closeWait)}`);
    assert.equal(g.origin, 'connect');
    // connect() is not hooked: the SYN_SENT transition reads the fd from the syscall's registers
    assert.deepEqual(g.sockets.map((x: any) => [`${x.local} ${x.remote}`, x.fd]).sort(), [...ssFds].sort());
    assert.ok(names(g.stacks.acquire).includes('main.dialQuote'), names(g.stacks.acquire).join(' < '));
    assert.ok(names(g.stacks.io).includes('main.dialQuote'));
  });
});

describe('tcptrace record keeps --leak-after for tcptrace report', { skip: skip ?? false }, () => {
  let server: Server;
  after(() => server?.stop());
  test('report uses the recorded threshold unless told otherwise', async () => {
    const { WORK, runTcptrace } = await import('./helpers/proc.js');
    server = await startServer(buildC('attrib_server', ['-O2', '-g']));
    const file = join(WORK, 'leak-after.tcptrace');
    const t = startTcptrace(['record', '-o', file, '--pid', String(server.pid), '--leak-after', '1']);
    await t.ready;
    requests(server.port, 'quote', 2);
    await sleep(1300);
    const r = await t.stop();
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse((await runTcptrace(['report', file, '--format', 'json'])).stdout);
    assert.equal(doc.leakAfterMs, 1000);
    assert.equal(doc.leaks.reduce((a: number, g: any) => a + g.count, 0), 2);
    assert.ok(names(doc.leaks[0].stacks.io).includes('handle_quote'), 'frames come from the recording');
    const strict = JSON.parse((await runTcptrace(['report', file, '--format', 'json', '--leak-after', '30'])).stdout);
    assert.deepEqual(strict.leaks, []);
  });
});
