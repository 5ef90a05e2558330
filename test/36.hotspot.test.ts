/**
 * The first step of naming Java frames (issue 27): reading a live HotSpot JVM
 * from outside, with no flag and no attach API. For every JDK under
 * /usr/lib/jvm (Debian's OpenJDK 17, Temurin 25): its VMStructs tables read,
 * the VM release they hold equals the build `java -version` prints, the
 * offsets Java unwinding needs are all there (JDK 17's values as the
 * reference memo measured them), and every code heap lies in an executable
 * mapping of the process (/proc/PID/maps). A process with no JVM is none.
 *
 * Then Java frames in real leaks, traced with --pid, each JDK interpreted
 * (-Xint) and in its default tiered mode (the fixtures' code stays cold, so
 * interpreted): a client that leaks a
 * Socket, an NIO SocketChannel client, and a thread-pool server whose handler
 * keeps the socket on a bad request (named at its first read). The leak group
 * must name the leaking method with the file and line the fixture printed
 * from its own Thread.getStackTrace(), and the counts must equal ss. The JVMs
 * get no flag tcptrace needs (-Xint is the test's, to reach the interpreter).
 *
 * Under -Xcomp (compiled frames): main is a compiled frame with the line of
 * its call, postEntry has the fixture's line whether compiled on its own or
 * inlined, and with -XX:CompileCommand=inline it is inlined into main's frame
 * (its `inlined` list); no compiled frame's debug info fails to decode. A
 * compiled frame the JVM deoptimised under its running callee (DeoptClient)
 * is read at its original pc, with the line of its call. The
 * decoder itself is also tested on tables built here, damaged ones included.
 * On JDK 21+ a client that leaks from virtual threads (LeakyClient virtual) is named
 * at its connect; its first write and EOF read, after an unmount, are walked into
 * the carrier.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HotSpotProcess } from '../src/stacks/hotspot/process.js';
import { decodeScopes, unsigned5 } from '../src/stacks/hotspot/frames.js';
import { processMaps } from '../src/sys/procfs.js';
import { connect } from 'node:net';
import { startLineFixture, type LineFixture } from './helpers/fixture.js';
import { FIXTURES, needKernelBtf, needRoot, sleep, ssCloseWait, startServer, startTcptrace, stopGroup, type Server } from './helpers/proc.js';

const JVM = '/usr/lib/jvm';
const jdks = [...new Set((existsSync(JVM) ? readdirSync(JVM) : []).map((d) => join(JVM, d)).filter((d) => existsSync(join(d, 'bin/java')) && existsSync(join(d, 'lib/server/libjvm.so'))).map((d) => realpathSync(d)))].sort();

/** the fields and types the Java unwinder reads (names as VMStructs spells them on JDK 17 and 25) */
const FIELDS = ['Method::_constMethod', 'ConstMethod::_constants', 'ConstantPool::_pool_holder', 'Klass::_name', 'Symbol::_length', 'Symbol::_body', 'CodeBlob::_name', 'CodeBlob::_frame_size', 'JavaThread::_anchor', 'nmethod::_compile_id'];
const TYPES = ['Method', 'ConstMethod', 'ConstantPool', 'Symbol', 'nmethod', 'CodeBlob', 'JavaThread'];

if (!jdks.length) test('HotSpot JVMs', { skip: `no JDK with lib/server/libjvm.so under ${JVM}` }, () => {});

for (const jdk of jdks) {
  describe(`HotSpot in ${jdk}`, () => {
    test('VMStructs read from the live JVM: its release, the fields unwinding needs, its code heaps', async () => {
      const version = spawnSync(join(jdk, 'bin/java'), ['-version'], { encoding: 'utf8' }).stderr;
      const build = /Runtime Environment.*\(build ([^)]+)\)/.exec(version)?.[1];
      assert.ok(build, version);
      const proc = spawn(join(jdk, 'bin/java'), [join(FIXTURES, 'java/Sleep.java')], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
      try {
        let out = '';
        proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        for (let i = 0; i < 300 && !out.includes('READY'); i++) await sleep(100);
        assert.ok(out.includes('READY'), 'the JVM did not start');
        const h = HotSpotProcess.detect(proc.pid!);
        assert.ok(h, 'no JVM recognised');
        assert.equal(h.release, build);
        for (const f of FIELDS) assert.ok(h.vm.offsets.has(f), `VMStructs lacks ${f}`);
        for (const t of TYPES) assert.ok((h.vm.sizes.get(t) ?? 0) > 0, `VMTypes lacks ${t}`);
        if (build.startsWith('17.')) {
          // the reference memo's JDK 17.0.15 values (../shared/reference/interpreter-stacks.md)
          assert.equal(h.vm.offsets.get('Method::_constMethod'), 8);
          assert.equal(h.vm.sizes.get('ConstMethod'), 48);
          assert.equal(h.vm.sizes.get('ConstantPool'), 72);
          assert.equal(h.vm.offsets.get('Klass::_name'), 24);
          assert.equal(h.vm.offsets.get('nmethod::_compile_id'), 304);
        }
        assert.ok(h.heaps.length >= 1 && h.heaps.length <= 3, `${h.heaps.length} code heaps`);
        const exec = processMaps(proc.pid!).filter((m) => m.perms.includes('x'));
        for (const heap of h.heaps) {
          const inside = exec.some((m) => BigInt(m.start) <= heap.low && heap.high <= BigInt(m.end));
          assert.ok(inside, `code heap ${heap.low.toString(16)}-${heap.high.toString(16)} is not in an executable mapping`);
          assert.equal(h.heapOf(heap.low), heap);
          assert.ok(heap.log2SegmentSize >= 4 && heap.log2SegmentSize <= 12);
        }
      } finally {
        await stopGroup(proc);
      }
    });
  });
}

/** UNSIGNED5 as HotSpot writes it (unsigned5.hpp write_uint; JDK 17's CompressedWriteStream is x = 0) */
function u5(v: number, x: number): number[] {
  const L = 256 - x - 64;
  const out: number[] = [];
  for (let i = 0; i < 4 && v >= L; i++) {
    out.push(L + ((v - L) % 64) + x);
    v = Math.floor((v - L) / 64);
  }
  out.push(v + x);
  return out;
}

describe('compiled frames: the nmethod debug info decoder, on tables built here', () => {
  const layout = (excluded: number) => ({ pcDescSize: 16, pcOffsetAt: 0, scopeOffsetAt: 4, excluded });
  const pcDescs = (...pairs: [number, number][]) => {
    const b = Buffer.alloc(16 * pairs.length);
    pairs.forEach(([pc, scope], i) => (b.writeInt32LE(pc, 16 * i), b.writeInt32LE(scope, 16 * i + 4)));
    return b;
  };
  const metadata = (...ms: bigint[]) => {
    const b = Buffer.alloc(8 * ms.length);
    ms.forEach((m, i) => b.writeBigUInt64LE(m, 8 * i));
    return b;
  };

  test('UNSIGNED5 reads what HotSpot writes, with and without the excluded 0 byte', () => {
    for (const x of [0, 1])
      for (const v of [0, 1, 190, 191, 192, 193, 255, 256, 4095, 12_345, 1 << 20, 2 ** 31 - 1]) {
        const r = { pos: 0 };
        assert.equal(unsigned5(Buffer.from(u5(v, x)), r, x), v, `${v} (x = ${x})`);
        assert.equal(r.pos, u5(v, x).length);
      }
    assert.equal(unsigned5(Buffer.from([0]), { pos: 0 }, 1), null, 'an excluded byte');
    assert.equal(unsigned5(Buffer.from([200]), { pos: 0 }, 0), null, 'cut short');
  });

  test('a scope chain: the PcDesc at the pc, then inner to outer, metadata 1-based, bci + 1 stored', () => {
    for (const x of [0, 1]) {
      // offset 0 is the null scope; the outer method's scope is written first, the inlined one after it
      const outer = [...u5(0, x), ...u5(1, x), ...u5(11, x)];
      const inner = [...u5(1, x), ...u5(2, x), ...u5(5, x)];
      const scopes = Buffer.from([x, ...outer, ...inner]);
      const d = { pcs: pcDescs([-1, 0], [0x20, 1], [0x40, 1 + outer.length]), scopes, metadata: metadata(0x1000n, 0x2000n) };
      assert.deepEqual(decodeScopes(d, 0x40, layout(x)), [
        { method: 0x2000n, bci: 4 },
        { method: 0x1000n, bci: 10 },
      ]);
      assert.deepEqual(decodeScopes(d, 0x20, layout(x)), [{ method: 0x1000n, bci: 10 }]);
      assert.match(decodeScopes(d, 0x30, layout(x)) as string, /no PcDesc/, 'only an exact pc has debug info');
    }
  });

  test('damaged tables are errors, never a throw or a loop', () => {
    const x = 0;
    const meta = metadata(0x1000n);
    const one = (scopes: number[], at = 1) => decodeScopes({ pcs: pcDescs([8, at]), scopes: Buffer.from(scopes), metadata: meta }, 8, layout(x));
    assert.match(one([0, ...u5(1, x), ...u5(1, x), ...u5(1, x)]) as string, /broken/, 'a scope its own sender');
    assert.match(one([0, ...u5(5, x), ...u5(1, x), ...u5(1, x), 0, 0]) as string, /broken/, 'a sender after it');
    assert.match(one([0, ...u5(0, x), ...u5(2, x), ...u5(1, x)]) as string, /metadata index 2/, 'a method past the metadata');
    assert.match(one([0, ...u5(0, x), ...u5(0, x), ...u5(1, x)]) as string, /metadata index 0/);
    assert.match(one([0, ...u5(0, x), 250]) as string, /does not decode/, 'cut short');
    assert.match(one([0, 0], 7) as string, /broken/, 'a decode offset past the scopes');
    assert.equal(one([0], 0), 'no scope at this pc');
    // a chain longer than any inlining: each scope's sender the one before it
    const chain: number[] = [0];
    const offs: number[] = [];
    for (let i = 0; i < 100; i++) {
      offs.push(chain.length);
      chain.push(...u5(i ? offs[i - 1] : 0, x), ...u5(1, x), ...u5(1, x));
    }
    assert.match(one(chain, offs[99]) as string, /broken/);
    assert.equal((one(chain, offs[40]) as unknown[]).length, 41);
    assert.match(decodeScopes({ pcs: pcDescs([8, 1]), scopes: Buffer.from([0]), metadata: meta }, 8, { ...layout(x), pcDescSize: 4 }) as string, /layout/);
    // random bytes: any answer, but an answer
    let seed = 27;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed);
    for (let n = 0; n < 2000; n++) {
      const scopes = Buffer.from(Array.from({ length: 1 + (rnd() % 64) }, () => rnd() & 0xff));
      const pcs = Buffer.from(Array.from({ length: 16 * (rnd() % 4) + (rnd() % 3) }, () => rnd() & 0xff));
      if (pcs.length >= 4) pcs.writeInt32LE(8, 0);
      const r = decodeScopes({ pcs, scopes, metadata: meta }, 8, layout(rnd() & 1));
      assert.ok(typeof r === 'string' || (Array.isArray(r) && r.length <= 64));
    }
  });
});

test('a process without a JVM is none', () => {
  assert.equal(HotSpotProcess.detect(process.pid), null);
});

interface JFrame {
  symbol: string;
  file?: string;
  line?: number;
  kind?: string;
  jit?: boolean;
  inlined?: { symbol: string; file?: string; line?: number }[];
}
const describeStack = (frames: JFrame[] | null) =>
  (frames ?? [])
    .flatMap((f) => [...(f.inlined ?? []).map((i) => `(inlined) ${i.symbol}${i.line ? `:${i.line}` : ''}`), `${f.kind === 'java' ? (f.jit ? 'jit:' : 'j:') : ''}${f.symbol || '?'}${f.line ? `:${f.line}` : ''}`])
    .join(' < ');

/** the Java method `symbol` in a stack, as a frame of its own or inlined into one (frame: the index of the frame holding it) */
function javaFrame(frames: JFrame[], symbol: string): { frame: number; inlined: boolean; file?: string; line?: number; jit?: boolean } | null {
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    if (f.kind !== 'java') continue;
    const inl = (f.inlined ?? []).find((x) => x.symbol === symbol);
    if (inl) return { frame: i, inlined: true, file: inl.file, line: inl.line, jit: f.jit };
    if (f.symbol === symbol) return { frame: i, inlined: false, file: f.file, line: f.line, jit: f.jit };
  }
  return null;
}

/** "TRUTH [site] Class.method File.java:line" as the fixture printed it */
function truthOf(fx: LineFixture, site?: string): { symbol: string; file: string; line: number } {
  const re = site ? new RegExp(`^TRUTH ${site} (\\S+) (\\S+):(\\d+)$`) : /^TRUTH (\S+) (\S+):(\d+)$/;
  const m = fx.lines.map((l) => re.exec(l)).find((x) => x);
  assert.ok(m, `no ground truth${site ? ` for ${site}` : ''}: ${JSON.stringify(fx.lines)}`);
  return { symbol: m[1], file: m[2], line: Number(m[3]) };
}

function assertNamed(frames: JFrame[] | null, truth: { symbol: string; file: string; line: number }, what: string): void {
  const f = (frames ?? []).find((x) => x.kind === 'java' && x.symbol === truth.symbol);
  assert.ok(f, `${what}: no Java frame ${truth.symbol} in ${describeStack(frames)}`);
  assert.equal(f.file, truth.file, `${what}: ${truth.symbol}'s file`);
  assert.equal(f.line, truth.line, `${what}: ${truth.symbol}'s line`);
}

async function traceJava(fx: LineFixture, expect: number, work: () => Promise<void>, seeDoc?: (doc: any) => void): Promise<any[]> {
  const pid = fx.proc.pid!;
  const t = startTcptrace(['--pid', String(pid), '--format', 'json', '--leak-after', '1']);
  await t.ready;
  await work();
  for (let i = 0; i < 100 && ssCloseWait(pid).size < expect; i++) await sleep(100);
  await sleep(1300);
  const ss = ssCloseWait(pid);
  const r = await t.stop();
  assert.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  seeDoc?.(doc);
  assert.equal(ss.size, expect, 'ss CLOSE_WAIT sockets of the fixture');
  const mine = doc.leaks.filter((g: any) => g.pid === pid);
  assert.equal(mine.reduce((a: number, g: any) => a + g.count, 0), expect, JSON.stringify(doc.leaks.map((g: any) => [g.pid, g.count])));
  assert.deepEqual(new Set(mine.flatMap((g: any) => g.sockets.map((x: any) => `${x.local} ${x.remote}`))), ss);
  for (const g of mine) assert.ok(!g.notes.some((n: string) => /perf map|PreserveFramePointer/.test(n)), g.notes.join('; '));
  return mine;
}

const traceSkip = needRoot() ?? needKernelBtf();
for (const jdk of jdks) {
  for (const mode of [['-Xint'], []]) {
    describe(`${jdk} ${mode.join(' ') || 'default (tiered)'}: Java frames of live leaks`, { skip: traceSkip ?? false }, () => {
      let http10: Server;
      const java = join(jdk, 'bin/java');
      before(async () => {
        http10 = await startServer(process.execPath, [join(FIXTURES, 'http10_server.mjs')]);
      });
      after(() => http10?.stop());

      for (const [what, method, extra] of [['a Socket', 'postEntry', []], ['an NIO SocketChannel', 'fetchRates', ['nio']]] as const) {
        const fixture = 'LeakyClient';
        test(`${what} never closed: the group names ${fixture}.${method} at the fixture's line; counts = ss`, async () => {
          const fx = startLineFixture(java, [...mode, join(FIXTURES, `java/${fixture}.java`), String(http10.port), '3', ...extra]);
          try {
            const groups = await traceJava(fx, 3, async () => {
              await sleep(200);
              fx.proc.stdin!.write('go\n');
              await fx.waitFor(/^DONE/, 60_000);
            });
            const truth = truthOf(fx);
            assert.equal(truth.symbol, `${fixture}.${method}`);
            for (const g of groups) {
              assertNamed(g.stacks.acquire, truth, 'acquire (connect)');
              assert.ok(g.stacks.acquire.some((f: JFrame) => f.kind === 'java' && f.symbol === `${fixture}.main`), describeStack(g.stacks.acquire));
            }
          } finally {
            await stopGroup(fx.proc);
          }
        });
      }

      test('LeakyServer (thread pool): the accept loop and, at the first read, the handler handleInvoice are named; counts = ss', async () => {
        const fx = startLineFixture(java, [...mode, join(FIXTURES, 'java/LeakyServer.java')]);
        try {
          const port = Number((await fx.waitFor(/^PORT \d+/, 60_000)).split(' ')[1]);
          const groups = await traceJava(fx, 3, async () => {
            fx.proc.stdin!.write('go\n');
            await fx.waitFor(/^TRUTH accept/);
            for (const p of ['BAD invoice', 'GET /', 'BAD invoice', 'GET /', 'BAD invoice']) {
              await new Promise<void>((resolve, reject) => {
                const c = connect(port, '127.0.0.1', () => c.write(p));
                c.on('error', reject);
                if (p.startsWith('BAD')) {
                  setTimeout(() => c.end(), 150);
                  c.on('finish', () => resolve());
                } else {
                  c.on('data', () => c.end());
                  c.on('close', () => resolve());
                }
              });
            }
          });
          const read = truthOf(fx, 'read');
          const accept = truthOf(fx, 'accept');
          assert.equal(groups.length, 1, groups.map((g: any) => describeStack(g.stacks.read)).join('\n'));
          assertNamed(groups[0].stacks.acquire, accept, 'acquire (accept)');
          assertNamed(groups[0].stacks.read, read, 'first read');
        } finally {
          await stopGroup(fx.proc);
        }
      });
    });
  }
}

for (const jdk of jdks) {
  describe(`${jdk} -Xcomp: compiled Java frames walked and named`, { skip: traceSkip ?? (existsSync(join(jdk, 'bin/javac')) ? false : `no javac in ${jdk}`) }, () => {
    let http10: Server;
    let classes = '';
    before(async () => {
      http10 = await startServer(process.execPath, [join(FIXTURES, 'http10_server.mjs')]);
      classes = mkdtempSync('/tmp/tcptrace-javac-');
      const c = spawnSync(join(jdk, 'bin/javac'), ['-d', classes, join(FIXTURES, 'java/LeakyClient.java'), join(FIXTURES, 'java/DeoptClient.java')], { encoding: 'utf8' });
      assert.equal(c.status, 0, c.stderr);
    });
    after(async () => {
      await http10?.stop();
      if (classes) rmSync(classes, { recursive: true, force: true });
    });

    // ground truth: LeakyClient.java's lines of the calls (postEntry's new Socket, main's postEntry(port)), as its TRUTH line prints the first
    const MAIN_CALL = 49;
    for (const [what, flags] of [
      ['every method compiled', []],
      ['postEntry inlined into main (CompileCommand inline)', ['-XX:CompileCommand=quiet', '-XX:CompileCommand=inline,LeakyClient::postEntry']],
    ] as const) {
      test(`${what}: the leak group names LeakyClient.postEntry and main with the lines of their calls, and the walk reaches the call stub and JavaCalls::call_helper; counts = ss`, async (t) => {
        const fx = startLineFixture(join(jdk, 'bin/java'), ['-Xcomp', ...flags, '-cp', classes, 'LeakyClient', String(http10.port), '3']);
        try {
          let doc: any;
          const groups = await traceJava(
            fx,
            3,
            async () => {
              await sleep(500);
              fx.proc.stdin!.write('go\n');
              await fx.waitFor(/^DONE/, 90_000);
            },
            (d) => (doc = d),
          );
          const truth = truthOf(fx);
          assert.equal(truth.symbol, 'LeakyClient.postEntry');
          for (const g of groups) {
            const st: JFrame[] = g.stacks.acquire;
            t.diagnostic(describeStack(st));
            const main = javaFrame(st, 'LeakyClient.main');
            const post = javaFrame(st, 'LeakyClient.postEntry');
            assert.ok(main && post, describeStack(st));
            assert.equal(main.inlined, false, `main is a frame of its own: ${describeStack(st)}`);
            assert.equal(main.jit, true, `main is compiled: ${describeStack(st)}`);
            assert.equal(main.line, MAIN_CALL, `main's line: ${describeStack(st)}`);
            assert.equal(post.file, truth.file);
            assert.equal(post.line, truth.line, `postEntry's line: ${describeStack(st)}`);
            if (flags.some((f) => f.startsWith('-XX:CompileCommand=inline,'))) {
              // inlined: inside main's compiled frame, marked so, innermost first
              assert.equal(post.inlined, true, `postEntry inlined into main: ${describeStack(st)}`);
              assert.equal(post.frame, main.frame, describeStack(st));
            }
            const stub = st.findIndex((f) => /^\[StubRoutines/.test(f.symbol));
            assert.ok(stub > 0 && /^JavaCalls::call_helper/.test(st[stub + 1]?.symbol ?? ''), describeStack(st));
          }
          // every compiled frame's debug info decoded
          const java = doc.stacks?.java;
          assert.ok(java, JSON.stringify(doc.stacks));
          assert.equal(java.scopesUnread, 0, JSON.stringify(java));
          if (flags.some((f) => f.startsWith('-XX:CompileCommand=inline,'))) assert.ok(java.inlined > 0, JSON.stringify(java));
        } finally {
          await stopGroup(fx.proc);
        }
      });
    }

    test('a compiled frame deoptimised while its callee runs (a class load breaks what it inlined): read at its original pc, with the line of its call', async (t) => {
      // C2 only: under tiered -Xcomp serve's frame ran its C1 (tier 3) code, which this class load did not deoptimise
      const fx = startLineFixture(join(jdk, 'bin/java'), ['-Xcomp', '-XX:-TieredCompilation', '-XX:CompileCommand=quiet', '-XX:CompileCommand=dontinline,DeoptClient::loop', '-XX:CompileCommand=dontinline,DeoptClient::serve', '-cp', classes, 'DeoptClient', String(http10.port)]);
      try {
        await fx.waitFor(/^READY/, 60_000);
        let doc: any;
        const groups = await traceJava(
          fx,
          1,
          async () => {
            await sleep(300);
            fx.proc.stdin!.write('load\n');
            await fx.waitFor(/^LOADED/, 60_000);
            fx.proc.stdin!.write('leak\n');
            await fx.waitFor(/^LEAKED/, 60_000);
          },
          (d) => (doc = d),
        );
        const truth = truthOf(fx);
        assert.equal(truth.symbol, 'DeoptClient.serve');
        for (const g of groups) {
          const st: JFrame[] = g.stacks.acquire;
          t.diagnostic(describeStack(st));
          const serve = javaFrame(st, 'DeoptClient.serve');
          assert.ok(serve, describeStack(st));
          assert.equal(serve.inlined, false, describeStack(st));
          assert.equal(serve.jit, true, `serve is compiled: ${describeStack(st)}`);
          assert.equal(serve.line, truth.line, `serve's line: ${describeStack(st)}`);
          assert.ok(javaFrame(st, 'DeoptClient.main'), describeStack(st));
        }
        const java = doc.stacks?.java;
        assert.ok(java?.deoptimized >= 1, `serve's frame was deoptimised: ${JSON.stringify(java)}`);
        assert.equal(java.scopesUnread, 0, JSON.stringify(java));
      } finally {
        await stopGroup(fx.proc);
      }
    });
  });
}

/** the JDK's feature release, from its release file (JAVA_VERSION="25.0.3"); 0 when it does not say */
function featureRelease(jdk: string): number {
  try {
    const m = /^JAVA_VERSION="(\d+)/m.exec(readFileSync(join(jdk, 'release'), 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

for (const jdk of jdks) {
  const release = featureRelease(jdk);
  const vtSkip = traceSkip ?? (release >= 21 ? false : `${jdk} is JDK ${release || '?'}: virtual threads are JDK 21+`);
  describe(`${jdk} virtual threads: Java frames of a leak made on a virtual thread`, { skip: vtSkip }, () => {
    let http10: Server;
    before(async () => {
      http10 = await startServer(process.execPath, [join(FIXTURES, 'http10_server.mjs')]);
    });
    after(() => http10?.stop());

    test('each request on a virtual thread of its own: the connect names LeakyClient.postEntry at its line, down to the carrier; the first write and EOF read (after an unmount) cross the continuation into the carrier; counts = ss', async () => {
      const fx = startLineFixture(join(jdk, 'bin/java'), [join(FIXTURES, 'java/LeakyClient.java'), String(http10.port), '3', 'virtual']);
      try {
        const groups = await traceJava(fx, 3, async () => {
          await sleep(200);
          fx.proc.stdin!.write('go\n');
          await fx.waitFor(/^DONE/, 60_000);
        });
        const truth = truthOf(fx);
        assert.equal(truth.symbol, 'LeakyClient.postEntry');
        for (const g of groups) {
          assertNamed(g.stacks.acquire, truth, 'acquire (connect)');
          // mounted from the start: the whole virtual thread down to its continuation entry, then its carrier
          for (const m of ['LeakyClient.lambda$onVirtualThread$0', 'java.lang.VirtualThread.run']) assert.ok(javaFrame(g.stacks.acquire, m), `${m} in ${describeStack(g.stacks.acquire)}`);
          // after an unmount only the top frames are thawed back: the walk crosses the continuation's
          // return barrier into the carrier; postEntry, when thawed, has its line (docs/java.md)
          for (const site of ['io', 'eof']) {
            const st: JFrame[] = g.stacks[site] ?? [];
            assert.ok(javaFrame(st, 'java.lang.VirtualThread.runContinuation'), `${site} reaches the carrier: ${describeStack(st)}`);
            const f = javaFrame(st, 'LeakyClient.postEntry');
            if (!f) continue;
            assert.equal(f.file, 'LeakyClient.java');
            assert.ok(f.line! > truth.line, `${site}: postEntry at line ${f.line}, after the connect at ${truth.line}`);
          }
        }
      } finally {
        await stopGroup(fx.proc);
      }
    });
  });
}
