/**
 * Small, synchronous readers of /proc and /proc/sys, shared by `doctor` and the
 * tracer (which joins sock_diag inodes to /proc/PID/fd for sockets that predate
 * attach). Parsers take text and are pure; readers map errno to TcptraceError:
 *   ENOENT / ESRCH  -> NO_SUCH_PROCESS (the pid is gone, or never was)
 *   EACCES / EPERM  -> NOT_PERMITTED   (another user's process: needs root / CAP_SYS_PTRACE)
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { TcptraceError } from '../errors.js';

type Pid = number | 'self';

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Turns a failed /proc read of `pid` into the error the CLI knows; rethrows anything else. */
export function procError(pid: Pid, what: string, err: unknown): Error {
  const code = errno(err);
  if (code === 'ENOENT' || code === 'ESRCH') return new TcptraceError('NO_SUCH_PROCESS', `no such process: pid ${pid}`);
  if (code === 'EACCES' || code === 'EPERM') {
    const hint = process.getuid?.() === 0 ? 'ptrace access refused even to root' : "another user's process: run as root";
    return new TcptraceError('NOT_PERMITTED', `not permitted to read ${what} (${hint})`);
  }
  return err instanceof Error ? err : new Error(String(err));
}

export function isProcError(err: unknown, code: 'NO_SUCH_PROCESS' | 'NOT_PERMITTED'): boolean {
  return err instanceof TcptraceError && err.code === code;
}

function readProc(pid: Pid, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch (err) {
    throw procError(pid, `/proc/${pid}/${file}`, err);
  }
}

/** All pids (thread-group leaders) in this pid namespace, ascending. */
export function listPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^[0-9]+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

/** The command name (/proc/PID/comm, at most 15 bytes). Readable for every process. */
export function processComm(pid: Pid): string {
  return readProc(pid, 'comm').replace(/\n$/, '');
}

export interface FdTable {
  /** number of open file descriptors */
  open: number;
  /** socket inode -> lowest fd that refers to it */
  sockets: Map<number, number>;
}

/**
 * One pass over /proc/PID/fd: how many fds are open and which are sockets.
 * An fd closed between readdir and readlink is skipped (not an error).
 */
export function fdTable(pid: Pid): FdTable {
  const dir = `/proc/${pid}/fd`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw procError(pid, dir, err);
  }
  const fds = names.map(Number).filter((n) => Number.isInteger(n)).sort((a, b) => a - b);
  const sockets = new Map<number, number>();
  let open = 0;
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`${dir}/${fd}`);
    } catch (err) {
      const code = errno(err);
      if (code === 'ENOENT') continue; // closed meanwhile
      throw procError(pid, dir, err);
    }
    open++;
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) {
      const inode = Number(m[1]);
      if (!sockets.has(inode)) sockets.set(inode, fd);
    }
  }
  return { open, sockets };
}

/** How many fds the process has open: one readdir of /proc/PID/fd, no readlink (fdTable says which are sockets). */
export function openFdCount(pid: Pid): number {
  const dir = `/proc/${pid}/fd`;
  try {
    return readdirSync(dir).length;
  } catch (err) {
    throw procError(pid, dir, err);
  }
}

/** Socket inode -> fd for every socket the process holds (the sock_diag join key). */
export function socketInodes(pid: Pid): Map<number, number> {
  return fdTable(pid).sockets;
}

export interface Limit {
  /** null = unlimited */
  soft: number | null;
  hard: number | null;
  units: string;
}

/** Parses /proc/PID/limits into {"Max open files": {soft, hard, units}, ...}. */
export function parseLimits(text: string): Record<string, Limit> {
  const out: Record<string, Limit> = {};
  for (const line of text.split('\n').slice(1)) {
    // "Max open files            1024                 524288               files     "
    const m = /^(.+?)\s{2,}(\S+)\s+(\S+)\s*(\S*)\s*$/.exec(line);
    if (!m) continue;
    const num = (s: string): number | null => (s === 'unlimited' ? null : Number(s));
    out[m[1]!.trim()] = { soft: num(m[2]!), hard: num(m[3]!), units: m[4] ?? '' };
  }
  return out;
}

/** RLIMIT_NOFILE of a process, from /proc/PID/limits (world-readable). */
export function nofileLimit(pid: Pid): Limit {
  const lim = parseLimits(readProc(pid, 'limits'))['Max open files'];
  if (!lim) throw new Error(`/proc/${pid}/limits has no "Max open files" line`);
  return lim;
}

/** Parses /proc/PID/status ("Key:\tvalue" lines). */
export function parseStatus(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

export interface ProcStatus {
  name: string;
  ppid: number;
  /** real, effective, saved, filesystem */
  uid: number[];
  /** pid in each nested pid namespace, outermost first */
  nspid: number[];
  /** true for kernel threads (no user memory, no fds of their own) */
  kernelThread: boolean;
}

export function processStatus(pid: Pid): ProcStatus {
  const s = parseStatus(readProc(pid, 'status'));
  const nums = (v: string | undefined): number[] => (v ? v.split(/\s+/).filter(Boolean).map(Number) : []);
  return {
    name: s.Name ?? '',
    ppid: Number(s.PPid ?? 0),
    uid: nums(s.Uid),
    nspid: nums(s.NSpid),
    kernelThread: s.Kthread !== undefined ? s.Kthread === '1' : isKernelThread(pid),
  };
}

const PF_KTHREAD = 0x00200000;

/** Kernel threads have no fds of their own; they are left out of per-process checks. */
export function isKernelThread(pid: Pid): boolean {
  const stat = readProc(pid, 'stat');
  // "pid (comm) state ppid pgrp session tty_nr tpgid flags ..."; comm may contain ") "
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[6]) & PF_KTHREAD) !== 0;
}

/** The network namespace of a process as its nsfs inode (readlink /proc/PID/ns/net = "net:[N]"). */
export function netnsInode(pid: Pid): number {
  let link: string;
  try {
    link = readlinkSync(`/proc/${pid}/ns/net`);
  } catch (err) {
    throw procError(pid, `/proc/${pid}/ns/net`, err);
  }
  const m = /^net:\[(\d+)\]$/.exec(link);
  if (!m) throw new Error(`unexpected /proc/${pid}/ns/net link: ${link}`);
  return Number(m[1]);
}

/**
 * Parses /proc/net/netstat or /proc/net/snmp: pairs of lines "TcpExt: Name1 Name2 ..." /
 * "TcpExt: 1 2 ...". Returns {TcpExt: {ListenOverflows: n, ...}, IpExt: {...}}.
 */
export function parseNetstat(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  const lines = text.split('\n').filter((l) => l.includes(':'));
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const [p1, ...names] = lines[i]!.trim().split(/\s+/);
    const [p2, ...values] = lines[i + 1]!.trim().split(/\s+/);
    if (!p1 || p1 !== p2) {
      i--; // resynchronise on a stray line
      continue;
    }
    const group = p1.slice(0, -1);
    const rec: Record<string, number> = (out[group] ??= {});
    names.forEach((n, j) => {
      const v = Number(values[j]);
      if (Number.isFinite(v)) rec[n] = v;
    });
  }
  return out;
}

/** /proc/PID/net/netstat: the counters of that process's network namespace ('self' = ours). */
export function readNetstat(pid: Pid = 'self'): Record<string, Record<string, number>> {
  return parseNetstat(readProc(pid, 'net/netstat'));
}

/** "net.ipv4.tcp_fin_timeout" -> "/proc/sys/net/ipv4/tcp_fin_timeout" */
export function sysctlPath(name: string): string {
  return `/proc/sys/${name.replace(/\./g, '/')}`;
}

/** The value of a sysctl in *this* process's namespaces, trimmed; null when absent or unreadable. */
export function readSysctl(name: string): string | null {
  try {
    return readFileSync(sysctlPath(name), 'utf8').trim();
  } catch {
    return null;
  }
}

/** Whitespace-separated integers of a sysctl value ("32768\t60999" -> [32768, 60999]). */
export function sysctlNumbers(value: string | null): number[] {
  if (value === null || value === '') return [];
  return value.split(/\s+/).map(Number).filter((n) => Number.isFinite(n));
}

/** Parses a port list such as net.ipv4.ip_local_reserved_ports ("8080,9000-9010") into [lo, hi] ranges. */
export function parsePortList(value: string | null): [number, number][] {
  if (!value) return [];
  const out: [number, number][] = [];
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (m) out.push([Number(m[1]), Number(m[2] ?? m[1])]);
  }
  return out;
}

export interface FileNr {
  /** file handles allocated */
  allocated: number;
  /** allocated but unused (always 0 since 2.6) */
  free: number;
  /** fs.file-max */
  max: number;
}

/** fs.file-nr: system-wide open file handles vs fs.file-max. */
export function parseFileNr(value: string): FileNr {
  const [allocated = 0, free = 0, max = 0] = sysctlNumbers(value);
  return { allocated, free, max };
}

export interface Mapping {
  start: number;
  end: number;
  perms: string;
  offset: number;
  inode: number;
  /** the mapped file ('' for anonymous memory; [heap], [stack] and the like as the kernel names them) */
  path: string;
}

/** /proc/PID/maps text -> mappings (file paths with spaces kept whole; " (deleted)" kept). */
export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ (\d+)\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push({ start: parseInt(m[1], 16), end: parseInt(m[2], 16), perms: m[3], offset: parseInt(m[4], 16), inode: Number(m[5]), path: m[6] });
  }
  return out;
}

export function processMaps(pid: Pid): Mapping[] {
  return parseMaps(readProc(pid, 'maps'));
}
