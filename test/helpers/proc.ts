/**
 * Test helpers: real processes, started and stopped by pid; tcptrace itself run
 * as a child process through its CLI. Every wait is bounded.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
export const FIXTURES = join(ROOT, 'test/fixtures');
export const CLI = join(ROOT, 'bin/tcptrace.js');
export const WORK = join(tmpdir(), `tcptrace-test-${process.pid}`);
mkdirSync(WORK, { recursive: true });
// one folder per test process (compiled fixtures, recordings): gone with it, as its children are
process.on('exit', () => rmSync(WORK, { recursive: true, force: true }));

/** null when root, else the reason to skip */
export function needRoot(): string | null {
  return process.getuid?.() === 0 ? null : 'needs root (BPF): run the tests as root';
}

/** the possible CPUs, as libbpf counts them (a ring buffer each): from "0-1" or "0,2-5" */
export function possibleCpus(): number {
  return readFileSync('/sys/devices/system/cpu/possible', 'utf8')
    .trim()
    .split(',')
    .reduce((n, r) => {
      const [a, b] = r.split('-').map(Number);
      return n + (b === undefined ? 1 : b - a + 1);
    }, 0);
}

export function needKernelBtf(): string | null {
  return existsSync('/sys/kernel/btf/vmlinux') ? null : 'needs kernel BTF (/sys/kernel/btf/vmlinux)';
}

/** The running kernel is at least major.minor (uname -r) */
export function kernelAtLeast(major: number, minor: number): boolean {
  const [maj, min] = release().split('.').map((x) => parseInt(x, 10));
  return maj > major || (maj === major && min >= minor);
}

/** Compiles a C fixture once per run (cached by source mtime). */
export function buildC(name: string, flags: string[] = ['-O2', '-g']): string {
  const src = join(FIXTURES, `${name}.c`);
  // one folder per flag set: the binary keeps its name (it is the comm tcptrace reports)
  const dir = join(WORK, flags.join('').replace(/[^a-zA-Z0-9]/g, '_') || 'default');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, name);
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return out;
  const r = spawnSync('gcc', [...flags, '-o', out, src], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${name}.c failed: ${r.stderr}`);
  return out;
}

export interface Server {
  pid: number;
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a fixture that prints "PORT n" and returns once it listens. */
export function startServer(cmd: string, args: string[] = [], timeoutMs = 10_000): Promise<Server> {
  // its own process group, so that stop() also stops what it forks (kill -PGID, by pid)
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${cmd} did not print its port within ${timeoutMs} ms`));
    }, timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited early (${code})`));
    });
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.removeAllListeners('exit');
        resolve({ pid: proc.pid!, port: Number(m[1]), proc, stop: () => stopGroup(proc) });
      }
    });
  });
}

/** Stops a process started detached, and everything it forked, by its process group id. */
export async function stopGroup(proc: ChildProcess): Promise<void> {
  try {
    process.kill(-proc.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
  await stopPid(proc);
  proc.stdout?.destroy();
}

export function stopPid(proc: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(), 5000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    process.kill(proc.pid!, signal);
  });
}

/** Python client: COUNT connections with PAYLOAD; returns the client-side local ports. */
export function runClient(port: number, payload: string, count: number, waitReply = false): number[] {
  const args = [join(FIXTURES, 'client.py'), String(port), payload, String(count)];
  if (waitReply) args.push('--wait-reply');
  const r = spawnSync('python3', args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`client failed: ${r.stderr}`);
  return [...r.stdout.matchAll(/LOCALPORT (\d+)/g)].map((m) => Number(m[1]));
}

/** Python client (request.py): COUNT request/reply exchanges sending PAYLOAD, each closed by the client after the reply. */
export function requests(port: number, payload: string, count: number): void {
  const r = spawnSync('python3', [join(FIXTURES, 'request.py'), String(port), payload, String(count)], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`request.py failed: ${r.stderr}`);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  proc: ChildProcess;
  ready: Promise<void>;
  done: Promise<RunResult>;
  stop(signal?: NodeJS.Signals): Promise<RunResult>;
}

/** Starts the CLI; `ready` resolves once it says it is tracing (or recording). */
/** wrap: a command that execs the rest (setpriv, sh -c '... exec "$@"'): the pid stays tcptrace's */
export function startTcptrace(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; wrap?: string[] } = {}): Running {
  const argv = [...(opts.wrap ?? []), process.execPath, CLI, ...args];
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  let stdout = '';
  let stderr = '';
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => ((readyResolve = res), (readyReject = rej)));
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (/tcptrace: (tracing|recording|agent tracing)/.test(stderr)) readyResolve();
  });
  const timeout = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const done = new Promise<RunResult>((resolve) => {
    proc.on('exit', (code, signal) => {
      clearTimeout(timeout);
      readyReject(new Error(`tcptrace exited before it was ready (code ${code}): ${stderr}`));
      // stdout may still be draining
      setImmediate(() => resolve({ code, signal, stdout, stderr }));
    });
  });
  ready.catch(() => {});
  return {
    proc,
    ready,
    done,
    async stop(signal: NodeJS.Signals = 'SIGINT') {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, signal);
      return done;
    },
  };
}

export function runTcptrace(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; uid?: number } = {}): Promise<RunResult> {
  if (opts.uid !== undefined) {
    const full = ['--reuid', String(opts.uid), '--regid', String(opts.uid), '--clear-groups', process.execPath, CLI, ...args];
    const proc = spawn('setpriv', full, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    return collect(proc, opts.timeoutMs);
  }
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  return collect(proc, opts.timeoutMs);
}

function collect(proc: ChildProcess, timeoutMs = 60_000): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => proc.on('close', (code, signal) => (clearTimeout(timer), resolve({ code, signal, stdout, stderr }))));
}

/** `ss` view of CLOSE_WAIT sockets: "local remote" -> holder pid (first one ss names). */
export function ssCloseWaitHolders(): Map<string, number> {
  const r = spawnSync('ss', ['-tanpH', 'state', 'close-wait'], { encoding: 'utf8' });
  const out = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const m = /pid=(\d+),/.exec(cols[4] ?? '');
    if (m) out.set(`${cols[2]} ${cols[3]}`, Number(m[1]));
  }
  return out;
}

/** `ss` view of the pid's CLOSE_WAIT sockets: "local remote" -> the pid's fd for it. */
export function ssCloseWaitFds(pid: number): Map<string, number> {
  const r = spawnSync('ss', ['-tanpH', 'state', 'close-wait'], { encoding: 'utf8' });
  const out = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const m = new RegExp(`pid=${pid},fd=(\\d+)\\)`).exec(cols[4] ?? '');
    if (m) out.set(`${cols[2]} ${cols[3]}`, Number(m[1]));
  }
  return out;
}

/** `ss` view of the pid's CLOSE_WAIT sockets: set of "local remote". */
export function ssCloseWait(pid: number): Set<string> {
  return new Set([...ssCloseWaitHolders()].filter(([, p]) => p === pid).map(([k]) => k));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** ids of the BPF programs a process holds (program and link fds), from /proc/PID/fdinfo */
export function bpfProgIdsOf(pid: number): number[] {
  const ids = new Set<number>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return [];
  }
  for (const fd of fds) {
    try {
      const m = /^prog_id:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return [...ids];
}

/** ids of every loaded BPF program, from bpftool */
export function loadedBpfProgIds(): number[] {
  const r = spawnSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool prog show failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { id: number }[]).map((p) => p.id);
}

/** Programs are freed after an RCU grace period (perf-event links from a workqueue): wait, bounded, for them to go. */
export async function stillLoaded(ids: number[]): Promise<number[]> {
  for (let i = 0; i < 50; i++) {
    const left = loadedBpfProgIds().filter((id) => ids.includes(id));
    if (!left.length) return [];
    await sleep(100);
  }
  return loadedBpfProgIds().filter((id) => ids.includes(id));
}
