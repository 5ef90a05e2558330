/** Every error path: one clear line on stderr and its own exit code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { EXIT, TcptraceError, exitCodeFor } from '../src/errors.js';
import { planAttach } from '../src/attach/probe.js';
import type { KernelProbe } from '../src/native.js';
import { buildC, needRoot, possibleCpus, runClient, runTcptrace, sleep, startServer, startTcptrace, ROOT, WORK } from './helpers/proc.js';

const ok = { supported: true, reason: '' };
const probe = (over: Partial<KernelProbe>): KernelProbe => ({
  btf: ok, bpf: ok, ringbuf: ok, tp_btf: ok, raw_tp: ok, fexit: ok, kretprobe: ok, tracepoint: ok, syscallTracepoint: ok, sockIo: ok, btfWalk: ok,
  tracefs: { mounted: null }, ...over,
});

function oneLine(stderr: string): string {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${stderr}`);
  return lines[0];
}

test('unknown option: usage error 64', async () => {
  const r = await runTcptrace(['--bogus']);
  assert.equal(r.code, EXIT.USAGE);
  assert.match(r.stderr, /unknown option '--bogus'/);
});

test('--version / -V: the version from package.json; --verbose: libbpf, kernel, attach mode, build', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  for (const flag of ['--version', '-V']) {
    const r = await runTcptrace([flag]);
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.equal(r.stdout, `tcptrace ${pkg.version}\n`);
  }
  const v = await runTcptrace(['--verbose', '-V']);
  assert.equal(v.code, EXIT.OK, v.stderr);
  const libbpf = spawnSync('pkg-config', ['--modversion', 'libbpf'], { encoding: 'utf8' }).stdout.trim();
  assert.match(v.stdout, new RegExp(`^  libbpf  v${libbpf.replace(/\.\d+$/, '').replace(/\./g, '\\.')}\\b`, 'm'), v.stdout);
  assert.match(v.stdout, new RegExp(`^  kernel  ${release().replace(/[.+]/g, '\\$&')}$`, 'm'));
  assert.match(v.stdout, process.getuid?.() === 0 ? /^  attach  (tp_btf|fentry|raw_tp|kprobe|tracepoint) /m : /^  attach  not probed: needs root/m);
  const head = spawnSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  if (head) assert.match(v.stdout, new RegExp(`^  build   ${head}`, 'm'));
  // with anything else, --version is not answered alone: a subcommand keeps its meaning
  const other = await runTcptrace(['--version', 'features', '--format', 'bogus']);
  assert.equal(other.code, EXIT.USAGE);
});

test('a pid that is not a number: usage error 64', async () => {
  const r = await runTcptrace(['--pid', 'abc']);
  assert.equal(r.code, EXIT.USAGE);
  assert.match(r.stderr, /'abc' is not a process id/);
});

test('a pid that does not exist: 67', { skip: needRoot() ?? false }, async () => {
  const r = await runTcptrace(['--pid', '4194303']);
  assert.equal(r.code, EXIT.NO_SUCH_PROCESS);
  assert.equal(oneLine(r.stderr), 'tcptrace: no such process: 4194303');
});

test('not root: 77, and says how to fix it', { skip: process.getuid?.() === 0 ? false : 'needs root to drop privileges with setpriv' }, async () => {
  const r = await runTcptrace(['--pid', '1', '--duration', '1'], { uid: 65534 });
  assert.equal(r.code, EXIT.NOT_PERMITTED, r.stderr);
  assert.match(oneLine(r.stderr), /^tcptrace: not permitted to use BPF .*run as root, or grant CAP_BPF and CAP_PERFMON$/);
});

test('an attach mode this kernel lacks: 69 with the probe\'s reason', { skip: needRoot() ?? false }, async () => {
  const feats = JSON.parse((await runTcptrace(['features', '--format', 'json'])).stdout);
  const missing = feats.modes.find((m: any) => !m.usable);
  if (!missing) return; // every mode works here: nothing to refuse
  const r = await runTcptrace(['--attach-mode', missing.name, '--duration', '1']);
  assert.equal(r.code, EXIT.UNSUPPORTED_KERNEL);
  assert.match(oneLine(r.stderr), new RegExp(`attach mode '${missing.name}' is not available on this kernel`));
});

test('no kernel BTF / BPF disabled / no ring buffer: unsupported kernel, 69', () => {
  const cases: [Partial<KernelProbe>, RegExp][] = [
    [{ btf: { supported: false, reason: '/sys/kernel/btf/vmlinux: No such file or directory' } }, /kernel BTF is missing/],
    [{ bpf: { supported: false, reason: 'bpf(BPF_MAP_CREATE): Function not implemented' } }, /BPF is not available/],
    [{ ringbuf: { supported: false, reason: 'BPF ring buffer needs kernel 5.8+' } }, /ring buffer unavailable/],
  ];
  for (const [over, msg] of cases) {
    if (process.getuid?.() !== 0 && over.bpf) continue; // as non-root the same probe reads "not permitted"
    assert.throws(() => planAttach(undefined, probe(over)), (err: unknown) => {
      assert.ok(err instanceof TcptraceError);
      assert.match(err.message, msg);
      assert.equal(exitCodeFor(err), EXIT.UNSUPPORTED_KERNEL);
      return true;
    });
  }
});

test('report: a missing file is 66, a file that is not a recording is 65', async () => {
  const missing = await runTcptrace(['report', join(WORK, 'nope.tcptrace')]);
  assert.equal(missing.code, EXIT.NO_INPUT);
  assert.match(oneLine(missing.stderr), /cannot read .*nope\.tcptrace: ENOENT/);
  const junk = join(WORK, 'junk.tcptrace');
  writeFileSync(junk, Buffer.from('\u0000\u0000\u0000\u0003abcdefgh'));
  const bad = await runTcptrace(['report', junk]);
  assert.equal(bad.code, EXIT.BAD_INPUT);
  assert.equal(oneLine(bad.stderr).startsWith('tcptrace: '), true);
});

test('the traced process exits mid-trace: report what was seen, say so, exit 3', { skip: needRoot() ?? false }, async () => {
  const server = await startServer(buildC('leaky_server', ['-O2', '-g']));
  const t = startTcptrace(['--pid', String(server.pid), '--format', 'json']);
  await t.ready;
  await sleep(200);
  await server.stop();
  const r = await t.done;
  assert.equal(r.code, EXIT.TARGET_EXITED, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.equal(doc.endReason, 'target-exited');
  assert.deepEqual(doc.target.exited, [server.pid]);
  assert.ok(doc.warnings.some((w: string) => /exited during the trace/.test(w)));
  assert.match(r.stderr, /the traced process exited/);
});

test('record: an output file that cannot be created is 73', async () => {
  const r = await runTcptrace(['record', '-o', join(WORK, 'no-such-dir', 'x.tcptrace'), '--duration', '1']);
  assert.equal(r.code, EXIT.CANNOT_WRITE);
  assert.match(oneLine(r.stderr), /^tcptrace: cannot write .*x\.tcptrace: ENOENT/);
});

test('a full disk under --record: the trace stops, the live report is printed, exit 73, the recording reads', { skip: needRoot() ?? false }, async (t) => {
  const dir = join(WORK, 'full');
  mkdirSync(dir, { recursive: true });
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { encoding: 'utf8' });
  if (mount.status !== 0) return t.skip(`cannot mount a 64 KiB tmpfs to fill: ${mount.stderr.trim() || mount.error?.message}`);
  const server = await startServer(buildC('leaky_server', ['-O2', '-g']));
  try {
    const file = join(dir, 'full.tcptrace');
    const t = startTcptrace(['--pid', String(server.pid), '--format', 'json', '--record', file]);
    await t.ready;
    let done = false;
    void t.done.then(() => (done = true));
    // about 1 KB of records a connection: the file system fills within a flush or two
    for (let i = 0; i < 40 && !done; i++) {
      runClient(server.port, 'good', 50, true);
      await sleep(100);
    }
    assert.ok(done, 'tcptrace still running with its recording\'s file system full');
    const r = await t.done;
    assert.equal(r.code, EXIT.CANNOT_WRITE, r.stderr);
    assert.match(r.stderr.trim().split('\n').at(-1)!, /^tcptrace: cannot write .*full\.tcptrace: ENOSPC: .*no space left on device.*; the recording reads up to there \(\d+ bytes\)$/i);
    const live = JSON.parse(r.stdout);
    assert.equal(live.endReason, 'write-failed');
    assert.ok(live.counts.transitions > 0, 'the live report covers the trace');
    const rep = await runTcptrace(['report', file, '--format', 'json']);
    assert.equal(rep.code, 0, rep.stderr);
    const doc = JSON.parse(rep.stdout);
    assert.ok(doc.warnings.some((w: string) => /no end frame/.test(w)), doc.warnings.join('; '));
  } finally {
    await server.stop();
    spawnSync('umount', [dir]);
  }
});

test('one ring buffer per possible CPU by default; one shared ring with --no-ring-per-cpu, or when --ring-size leaves less than 64K a CPU', { skip: needRoot() ?? false }, async () => {
  const cpus = possibleCpus();
  const rings = async (...args: string[]) => {
    const r = await runTcptrace(['--duration', '0.5', '--format', 'json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).attach.rings;
  };
  assert.equal(await rings(), cpus > 1 ? cpus : 1, `${cpus} possible CPUs`);
  assert.equal(await rings('--no-ring-per-cpu'), 1);
  // the largest power of two under 64K a CPU
  assert.equal(await rings('--ring-size', `${2 ** Math.floor(Math.log2(64 * cpus - 1))}K`), 1, 'less than 64K a CPU');
});

test('--ring-size takes any power of two from 4K; anything else is a usage error', async () => {
  const { Command } = await import('commander');
  const { selectorOptions } = await import('../src/commands/options.js');
  const parse = (v: string) => {
    const cmd = new Command().exitOverride().configureOutput({ writeErr: () => {} });
    for (const o of selectorOptions()) cmd.addOption(o);
    return cmd.parse(['--ring-size', v], { from: 'user' }).opts().ringSize;
  };
  // commander hands the default (16M) to the parser as a second argument: it must not be a constraint
  assert.equal(parse('4M'), 4 << 20);
  assert.equal(parse('8192K'), 8 << 20);
  assert.equal(parse('64M'), 64 << 20);
  assert.throws(() => parse('3M'), /power of two/);
  assert.throws(() => parse('2K'), /power of two/);
  const r = await runTcptrace(['--ring-size', '3M']);
  assert.equal(r.code, EXIT.USAGE);
  assert.match(r.stderr, /'3M': the ring size must be a power of two, at least 4K/);
});
