/**
 * Python frames from live CPython processes, with no flag and no restart: for
 * Debian's /usr/bin/python3.11 (static, non-PIE) and every pyenv CPython
 * 3.11-3.13 on the machine (shared libpython, PIE), three leaky services
 * (test/fixtures/python/leaks.py): an http.client client that keeps its
 * connections, an asyncio client that never closes its writer, and a threaded
 * server whose error path keeps the socket in a registry. The leak group must
 * name the leaking Python function with the file and line the fixture itself
 * printed (traceback.extract_stack() on the line of the call), the closing
 * path must be in no leak group, and the counts must equal ss. An interpreter
 * tcptrace does not know (3.10) must say so, not name frames wrongly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { freePort, get } from './helpers/agent.js';
import { startLineFixture, type LineFixture } from './helpers/fixture.js';
import { FIXTURES, needKernelBtf, needRoot, runTcptrace, sleep, ssCloseWait, startServer, startTcptrace, stopGroup, WORK, type Server } from './helpers/proc.js';

const skip = needRoot() ?? needKernelBtf();
const FIXTURE = join(FIXTURES, 'python/leaks.py');
const PYENV = '/root/.pyenv/versions';

interface Frame {
  symbol: string;
  file?: string;
  line?: number;
  kind?: string;
  reason?: string;
}
interface Truth {
  site: string;
  qualname: string;
  file: string;
  line: number;
}

/** Every CPython 3.11-3.13 here: Debian's, then pyenv's, by minor version. */
function interpreters(): { label: string; path: string; minor: number }[] {
  const out: { label: string; path: string; minor: number }[] = [];
  if (existsSync('/usr/bin/python3.11')) out.push({ label: 'Debian python3.11', path: '/usr/bin/python3.11', minor: 11 });
  const versions = existsSync(PYENV) ? readdirSync(PYENV) : [];
  for (const v of versions.sort()) {
    const m = /^3\.(\d+)\.\d+$/.exec(v);
    if (!m || Number(m[1]) < 11 || Number(m[1]) > 13) continue;
    const path = join(PYENV, v, 'bin/python3');
    if (existsSync(path)) out.push({ label: `pyenv ${v}`, path, minor: Number(m[1]) });
  }
  return out;
}

const found = interpreters();

/** A fixture process that waits for a line on stdin; its stdout lines collected. */
const startFixture = (python: string, args: string[]): LineFixture => startLineFixture(python, [FIXTURE, ...args]);

const truthOf = (lines: string[], site: string): Truth => {
  const l = lines.map((x) => (x.startsWith('{') ? (JSON.parse(x) as Truth) : null)).find((x) => x?.site === site);
  assert.ok(l, `the fixture printed no ground truth for ${site}: ${JSON.stringify(lines)}`);
  return l;
};

const pyFrames = (frames: Frame[] | null) => (frames ?? []).filter((f) => f.kind === 'python');
const describeStack = (frames: Frame[] | null) => (frames ?? []).map((f) => `${f.kind === 'python' ? 'py:' : ''}${f.symbol || '?'}${f.line ? `:${f.line}` : ''}`).join(' < ');

/** Traces the fixture while `work` runs, until ss shows `expect` CLOSE_WAIT sockets and past --leak-after. */
async function traceFixture(pid: number, expect: number, work: () => Promise<void>, extra: string[] = []): Promise<{ doc: any; ss: Set<string> }> {
  const t = startTcptrace(['--pid', String(pid), '--format', 'json', '--leak-after', '1', ...extra]);
  try {
    await t.ready;
    await work();
    for (let i = 0; i < 100 && ssCloseWait(pid).size < expect; i++) await sleep(100);
    await sleep(1300);
  } finally {
    var r = await t.stop();
  }
  assert.equal(r.code, 0, r.stderr);
  return { doc: JSON.parse(r.stdout), ss: ssCloseWait(pid) };
}

function assertCounts(doc: any, pid: number, ss: Set<string>, expect: number): any[] {
  assert.equal(ss.size, expect, `ss shows ${ss.size} CLOSE_WAIT sockets for the fixture`);
  const mine = doc.leaks.filter((g: any) => g.pid === pid);
  assert.equal(mine.reduce((a: number, g: any) => a + g.count, 0), expect, JSON.stringify(doc.leaks.map((g: any) => [g.pid, g.count])));
  assert.deepEqual(new Set(mine.flatMap((g: any) => g.sockets.map((s: any) => `${s.local} ${s.remote}`))), ss);
  return mine;
}

function assertNamed(frames: Frame[] | null, truth: Truth, what: string): void {
  const f = pyFrames(frames).find((x) => x.symbol === truth.qualname);
  assert.ok(f, `${what}: no Python frame ${truth.qualname} in ${describeStack(frames)}`);
  assert.equal(f.file, truth.file, `${what}: ${truth.qualname}'s file`);
  assert.equal(f.line, truth.line, `${what}: ${truth.qualname}'s line`);
}

/** A client mode of the fixture, traced from before its first connection until its `count` leaks are past --leak-after. */
async function traceClientMode(python: string, mode: string, port: number, count: number, check: (doc: any, groups: any[], lines: string[]) => void, extra: string[] = []): Promise<void> {
  const fx = startFixture(python, [mode, String(port), String(count)]);
  try {
    const { doc, ss } = await traceFixture(fx.proc.pid!, count, async () => {
      fx.proc.stdin!.write('go\n');
      await fx.waitFor(/^DONE/);
    }, extra);
    check(doc, assertCounts(doc, fx.proc.pid!, ss, count), fx.lines);
  } finally {
    await stopGroup(fx.proc);
  }
}

for (const py of found) {
  describe(`${py.label}: Python frames of a live process`, { skip: skip ?? false }, () => {
    let http: Server;
    let http10: Server;
    before(async () => {
      http = await startServer(process.execPath, [join(FIXTURES, 'http_server.mjs')]);
      http10 = await startServer(process.execPath, [join(FIXTURES, 'http10_server.mjs')]);
    });
    after(async () => {
      await http?.stop();
      await http10?.stop();
    });

    test('a child forked (no exec) from a traced CPython: its first connection already has its Python frames (the kernel copies its parent\'s entry); counts = ss', async () => {
      const fx = startFixture(py.path, ['fork-http-client', String(http.port), '3']);
      try {
        const t = startTcptrace(['--pid', String(fx.proc.pid), '--children', '--format', 'json', '--leak-after', '1']);
        let child = 0;
        try {
          await t.ready;
          fx.proc.stdin!.write('go\n');
          child = Number((await fx.waitFor(/^CHILD \d+/)).split(' ')[1]);
          await fx.waitFor(/^DONE/);
          for (let i = 0; i < 100 && ssCloseWait(child).size < 3; i++) await sleep(100);
          await sleep(1300);
        } finally {
          var r = await t.stop();
        }
        assert.equal(r.code, 0, r.stderr);
        const doc = JSON.parse(r.stdout);
        const groups = assertCounts(doc, child, ssCloseWait(child), 3);
        // one group: without its parent's entry the child's first stack would have native frames only (a group of its own)
        assert.equal(groups.length, 1, groups.map((g: any) => `${g.count}: ${describeStack(g.stacks.acquire)}`).join('\n'));
        assertNamed(groups[0].stacks.acquire, truthOf(fx.lines, 'connect'), 'acquire (connect) in the forked child');
      } finally {
        await stopGroup(fx.proc);
      }
    });

    test('http.client kept open: the group names CatalogClient.fetch_catalog at the fixture\'s line; the closing path is in no group; counts = ss', async () => {
      await traceClientMode(py.path, 'http-client', http.port, 3, (doc, groups, lines) => {
        const truth = truthOf(lines, 'connect');
        assert.equal(groups.length, 1, groups.map((g: any) => describeStack(g.stacks.acquire)).join('\n'));
        assertNamed(groups[0].stacks.acquire, truth, 'acquire (connect)');
        assertNamed(groups[0].stacks.io, truth, 'first write');
        // the interpreter's own frames are replaced, and http.client's frames are named too
        assert.ok(!groups[0].stacks.acquire.some((f: Frame) => f.symbol === '_PyEval_EvalFrameDefault'), describeStack(groups[0].stacks.acquire));
        assert.ok(pyFrames(groups[0].stacks.acquire).some((f) => f.symbol === 'HTTPConnection.connect' && /http\/client\.py$/.test(f.file ?? '')));
        for (const g of doc.leaks) for (const s of ['acquire', 'io', 'eof']) assert.ok(!pyFrames(g.stacks[s]).some((f) => f.symbol === 'CatalogClient.fetch_and_close'), 'the closing path is in a leak group');
        assert.ok(!groups[0].notes.some((n: string) => /not named/.test(n)), groups[0].notes.join('; '));
        assert.ok(doc.stacks.deduped + doc.stacks.recalled > 0, `the kernel recognised no Python stack: ${JSON.stringify(doc.stacks)}`);
      });
    });

    test('asyncio.open_connection, writer never closed: the group names the coroutine fetch_prices and its caller', async () => {
      await traceClientMode(py.path, 'asyncio-client', http10.port, 3, (_doc, groups, lines) => {
        const truth = truthOf(lines, 'connect');
        for (const g of groups) {
          assertNamed(g.stacks.acquire, truth, 'acquire (connect)');
          assert.ok(pyFrames(g.stacks.acquire).some((f) => f.symbol === 'asyncio_client'), describeStack(g.stacks.acquire));
          assert.ok(pyFrames(g.stacks.acquire).some((f) => f.symbol === 'BaseEventLoop.create_connection'), describeStack(g.stacks.acquire));
        }
      });
    });

    test('a generator that connects, and a C function (sorted) that calls back into Python: each frame in its place', async () => {
      await traceClientMode(py.path, 'generator-client', http10.port, 2, (_doc, groups, lines) => {
        const truth = truthOf(lines, 'connect');
        for (const g of groups) {
          assertNamed(g.stacks.acquire, truth, 'acquire (connect) in a generator');
          const names = pyFrames(g.stacks.acquire).map((f) => f.symbol);
          assert.ok(names.indexOf('connect_lazily') < names.indexOf('generator_client'), names.join(' < '));
        }
      });
      await traceClientMode(py.path, 'reentry-client', http10.port, 2, (_doc, groups, lines) => {
        const truth = truthOf(lines, 'connect');
        const caller = truthOf(lines, 'caller');
        for (const g of groups) {
          const st: Frame[] = g.stacks.acquire;
          assertNamed(st, truth, 'acquire (connect) in a key function');
          assertNamed(st, caller, 'the Python caller of sorted()');
          const inner = st.findIndex((f) => f.kind === 'python' && f.symbol === 'open_for');
          const outer = st.findIndex((f) => f.kind === 'python' && f.symbol === 'reentry_client');
          // the C frames of sorted() sit between the two Python runs, none of them an eval loop left unreplaced
          const between = st.slice(inner + 1, outer);
          assert.ok(inner >= 0 && outer > inner + 1 && between.every((f) => f.kind !== 'python'), describeStack(st));
          assert.ok(!between.some((f) => f.symbol === '_PyEval_EvalFrameDefault'), describeStack(st));
        }
      });
    });

    test('threaded server, a handler that keeps the socket on an error path: the accept loop serve_orders and, at the first read, the handler handle_order are named; counts = ss', async () => {
      const fx = startFixture(py.path, ['threaded-server']);
      try {
        const port = Number((await fx.waitFor(/^READY \d+/)).split(' ')[1]);
        const { doc, ss } = await traceFixture(fx.proc.pid!, 3, async () => {
          fx.proc.stdin!.write('go\n');
          await fx.waitFor(/"site": "accept"/);
          for (const p of ['BAD order', 'GET /', 'BAD order', 'GET /', 'BAD order']) {
            await new Promise<void>((resolve, reject) => {
              const c = connect(port, '127.0.0.1', () => c.write(p));
              c.on('error', reject);
              if (p.startsWith('BAD')) {
                // our FIN goes out; the handler never closes its side: done once ours is sent
                setTimeout(() => c.end(), 100);
                c.on('finish', () => resolve());
              } else {
                c.on('data', () => c.end());
                c.on('close', () => resolve());
              }
            });
          }
        });
        const groups = assertCounts(doc, fx.proc.pid!, ss, 3);
        assert.equal(groups.length, 1, groups.map((g: any) => describeStack(g.stacks.acquire)).join('\n'));
        assertNamed(groups[0].stacks.acquire, truthOf(fx.lines, 'accept'), 'acquire (accept)');
        assert.equal(groups[0].origin, 'accept');
        // the first read names the handler thread that took the request and kept the socket
        assertNamed(groups[0].stacks.read, truthOf(fx.lines, 'read'), 'first read');
        assert.ok(!pyFrames(groups[0].stacks.read).some((f) => f.symbol === 'serve_orders'), 'the handler thread has its own stack');
      } finally {
        await stopGroup(fx.proc);
      }
    });
  });
}

for (const minor of [11, 12, 13]) {
  if (!found.some((p) => p.minor === minor)) {
    test(`CPython 3.${minor} frames`, { skip: `no CPython 3.${minor} on this machine (looked for /usr/bin/python3.${minor} and ${PYENV}/3.${minor}.*/bin/python3)` }, () => {});
  }
}

/** Lets a client fixture run, until ss shows its `expect` CLOSE_WAIT sockets, and `afterMs` more. */
async function letItLeak(fx: ReturnType<typeof startFixture>, expect: number, afterMs: number): Promise<void> {
  fx.proc.stdin!.write('go\n');
  await fx.waitFor(/^DONE/);
  for (let i = 0; i < 100 && ssCloseWait(fx.proc.pid!).size < expect; i++) await sleep(100);
  await sleep(afterMs);
}

/** The keep-alive HTTP server (closes idle connections after 100 ms) for the tests of one describe. */
function keepHttpServer(): () => Server {
  let server: Server;
  before(async () => {
    server = await startServer(process.execPath, [join(FIXTURES, 'http_server.mjs')]);
  });
  after(() => server?.stop());
  return () => server;
}

const older = existsSync(PYENV) ? readdirSync(PYENV).filter((v) => /^3\.10\.\d+$/.test(v)) : [];
describe('an interpreter tcptrace does not know', { skip: skip ?? (older.length ? false : `no CPython 3.10 under ${PYENV} to check it with`) }, () => {
  const http = keepHttpServer();

  test('CPython 3.10: the counts still equal ss, no Python frame is named, and the report says why', async () => {
    await traceClientMode(join(PYENV, older[0], 'bin/python3'), 'http-client', http().port, 2, (_doc, groups) => {
      for (const g of groups) {
        assert.equal(pyFrames(g.stacks.acquire).length, 0);
        assert.ok(g.notes.some((n: string) => /before 3\.11/.test(n)), g.notes.join('; '));
      }
    });
  });
});

describe('--no-python-frames', { skip: skip ?? (found.length ? false : 'no CPython 3.11-3.13 on this machine') }, () => {
  const http = keepHttpServer();

  test('the process is not read: interpreter frames only, the counts still equal ss', async () => {
    await traceClientMode(found[0].path, 'http-client', http().port, 2, (doc, groups) => {
      for (const g of groups) assert.equal(pyFrames(g.stacks.acquire).length, 0, describeStack(g.stacks.acquire));
      assert.ok(groups.some((g) => g.stacks.acquire?.some((f: Frame) => f.symbol === '_PyEval_EvalFrameDefault')));
      assert.equal(doc.stacks.python, undefined);
    }, ['--no-python-frames']);
  });
});

describe('tcptrace agent: a Python service running before the agent', { skip: skip ?? (found.length ? false : 'no CPython 3.11-3.13 on this machine') }, () => {
  const http = keepHttpServer();

  test('is recognised at attach: the pprof leaked samples name CatalogClient.fetch_catalog, their count = ss', async () => {
    const fx = startFixture(found[0].path, ['http-client', String(http().port), '3']);
    const port = await freePort();
    const agent = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--leak-after', '1']);
    try {
      await agent.ready;
      await letItLeak(fx, 3, 1500);
      const ss = ssCloseWait(fx.proc.pid!);
      const p = Profile.decode(gunzipSync((await get(port, '/debug/pprof/close_wait')).body));
      const str = (i: unknown) => p.stringTable.strings[Number(i)];
      const fn = new Map(p.function.map((f) => [Number(f.id), { name: str(f.name), file: str(f.filename) }]));
      const loc = new Map(p.location.map((l) => [Number(l.id), l]));
      const mine = p.sample.filter((x) => x.label.some((l) => str(l.key) === 'pid' && Number(l.num) === fx.proc.pid));
      assert.equal(ss.size, 3);
      assert.equal(mine.reduce((n, x) => n + Number(x.value[0]), 0), ss.size, 'leaked_sockets = ss');
      const truth = truthOf(fx.lines, 'connect');
      for (const x of mine.filter((y) => Number(y.value[0]) > 0)) {
        const lines = x.locationId.flatMap((id) => loc.get(Number(id))!.line.map((l) => ({ ...fn.get(Number(l.functionId))!, line: Number(l.line) })));
        assert.ok(lines.some((l) => l.name === truth.qualname && l.file === truth.file && l.line === truth.line), lines.map((l) => `${l.name}:${l.line}`).join(' < '));
      }
    } finally {
      await agent.stop('SIGINT');
      await stopGroup(fx.proc);
    }
  });
});

describe('a CPython started after a whole-host trace began', { skip: skip ?? (found.length ? false : 'no CPython 3.11-3.13 on this machine') }, () => {
  const http = keepHttpServer();

  test('its first stack, captured before it was recognised, says why it has no Python frames; the next names CatalogClient.fetch_catalog; counts = ss', async () => {
    const t = startTcptrace(['--stacks', '--format', 'json', '--leak-after', '1']);
    let fx: ReturnType<typeof startFixture> | undefined;
    try {
      await t.ready;
      fx = startFixture(found[0].path, ['http-client', String(http().port), '2']);
      await letItLeak(fx, 2, 1300);
    } finally {
      var r = await t.stop();
      var ss = fx ? ssCloseWait(fx.proc.pid!) : new Set<string>();
      if (fx) await stopGroup(fx.proc);
    }
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    const groups = assertCounts(doc, fx!.proc.pid!, ss, 2);
    const truth = truthOf(fx!.lines, 'connect');
    const named = groups.filter((g: any) => pyFrames(g.stacks.acquire).length);
    const bare = groups.filter((g: any) => !pyFrames(g.stacks.acquire).length);
    assert.ok(named.length >= 1, groups.map((g: any) => describeStack(g.stacks.acquire)).join('\n'));
    for (const g of named) assertNamed(g.stacks.acquire, truth, 'acquire after recognition');
    // the first connection of the process came before its recognition (the first stack is where it is recognised)
    for (const g of bare) {
      assert.ok(g.notes.some((n: string) => /before tcptrace recognised this CPython/.test(n)), g.notes.join('; '));
      assert.ok(!g.notes.some((n: string) => /not named here/.test(n)), g.notes.join('; '));
    }
  });
});

describe('a recording of a Python service', { skip: skip ?? (found.length ? false : 'no CPython 3.11-3.13 on this machine') }, () => {
  const http = keepHttpServer();

  test('keeps the Python frames: tcptrace report names CatalogClient.fetch_catalog (kind python, file, line) in text and JSON', async () => {
    const { mkdirSync } = await import('node:fs');
    mkdirSync(WORK, { recursive: true });
    const file = join(WORK, `python-${process.pid}.tcptrace`);
    const fx = startFixture(found[0].path, ['http-client', String(http().port), '2']);
    const rec = startTcptrace(['record', '-o', file, '--pid', String(fx.proc.pid)]);
    try {
      await rec.ready;
      await letItLeak(fx, 2, 300);
    } finally {
      const r = await rec.stop();
      assert.equal(r.code, 0, r.stderr);
      await stopGroup(fx.proc);
    }
    const truth = truthOf(fx.lines, 'connect');
    const json = await runTcptrace(['report', file, '--format', 'json', '--leak-after', '0.1']);
    assert.equal(json.code, 0, json.stderr);
    const g = JSON.parse(json.stdout).leaks.find((x: any) => x.origin === 'connect');
    assert.ok(g, json.stdout.slice(0, 2000));
    assertNamed(g.stacks.acquire, truth, 'recorded acquire stack');
    const text = await runTcptrace(['report', file, '--leak-after', '0.1']);
    assert.match(text.stdout, new RegExp(`CatalogClient\\.fetch_catalog\\s+python\\s+${truth.file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:${truth.line}`));
  });
});
