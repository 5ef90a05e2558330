/**
 * One measurement of the box: every process (or the --pid ones) with its fds,
 * RLIMIT_NOFILE and network namespace; every network namespace involved with a
 * sock_diag dump of its TCP sockets, its TcpExt counters and its net.* sysctls;
 * the system-wide fs.* file counters. Nothing here judges; verdicts.ts does.
 *
 * What cannot be read is recorded as a Limitation (not an error) so that an
 * unprivileged run still reports what it can, and says what it could not see.
 */
import { readdirSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { native, type DiagSocket } from '../native.js';
import { TcptraceError } from '../errors.js';
import { logger } from '../log.js';
import {
  fdTable,
  isProcError,
  listPids,
  netnsInode,
  nofileLimit,
  parseFileNr,
  processComm,
  processStatus,
  readNetstat,
  readSysctl,
  sysctlNumbers,
  sysctlPath,
  type FileNr,
  type Limit,
} from '../sys/procfs.js';

const log = logger('doctor');

/** Per-network-namespace sysctls doctor reads (and explains, see settings.ts). */
export const NETNS_SYSCTLS = [
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_tw_reuse',
  'net.ipv4.tcp_tw_reuse_delay',
  'net.ipv4.tcp_timestamps',
  'net.ipv4.tcp_max_tw_buckets',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
  'net.core.somaxconn',
  'net.ipv4.tcp_max_syn_backlog',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.tcp_abort_on_overflow',
] as const;

/** TcpExt counters kept from /proc/PID/net/netstat. */
export const NETSTAT_COUNTERS = ['ListenOverflows', 'ListenDrops', 'TCPTimeWaitOverflow', 'TW', 'TCPAbortOnTimeout'] as const;

export interface ProcessSample {
  pid: number;
  comm: string;
  uid: number | null;
  /** nsfs inode of its network namespace; null when /proc/PID/ns/net is not readable */
  netns: number | null;
  /** null when /proc/PID/fd is not readable */
  fds: { open: number; sockets: Map<number, number> } | null;
  nofile: Limit | null;
}

export interface NetnsSample {
  id: number;
  /** name under /run/netns (ip netns), if any */
  name: string | null;
  /** the namespace tcptrace itself runs in */
  own: boolean;
  /** the process through which it was entered (null for our own) */
  viaPid: number | null;
  pids: number[];
  sockets: DiagSocket[] | null;
  netstat: Record<string, number> | null;
  sysctls: Record<string, string | null> | null;
}

export type LimitationKind = 'process-fds' | 'process-netns' | 'netns-enter' | 'netns-sysctls' | 'system';

export interface Limitation {
  kind: LimitationKind;
  /** what is missing from the report, in words */
  missing: string;
  /** why: the failed read and its error */
  reason: string;
  pids?: number[];
  netns?: number;
}

export interface Sample {
  /** wall clock, ms since the epoch */
  takenAt: number;
  /** monotonic ms (performance.now) for rates */
  mono: number;
  uid: number;
  processes: ProcessSample[];
  netns: NetnsSample[];
  system: { fileNr: FileNr | null; nrOpen: number | null };
  limitations: Limitation[];
}

export interface MeasureOptions {
  /** examine only these pids (and their namespaces); undefined = every process */
  pids?: number[];
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** name of each `ip netns` namespace by nsfs inode */
function netnsNames(): Map<number, string> {
  const out = new Map<number, string>();
  for (const dir of ['/run/netns', '/var/run/netns']) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        out.set(statSync(`${dir}/${n}`).ino, n);
      } catch {
        /* a stale entry */
      }
    }
  }
  return out;
}

function readOwnSysctls(): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const name of NETNS_SYSCTLS) out[name] = readSysctl(name);
  return out;
}

/**
 * net.* sysctls are per network namespace and /proc/sys shows the reader's, so
 * another namespace's are read by a short-lived `nsenter --net` (needs root).
 */
function readForeignSysctls(pid: number): Record<string, string | null> {
  const paths = NETNS_SYSCTLS.map(sysctlPath);
  const r = spawnSync('nsenter', [`--net=/proc/${pid}/ns/net`, '--', 'grep', '-H', '', ...paths], {
    encoding: 'utf8',
    timeout: 5000,
  });
  if (r.error) throw r.error;
  if (r.status !== 0 && !r.stdout) throw new Error((r.stderr || `nsenter exited ${r.status}`).trim());
  const byPath = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) byPath.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  const out: Record<string, string | null> = {};
  NETNS_SYSCTLS.forEach((name, i) => {
    // an empty file (ip_local_reserved_ports) prints nothing: present but empty
    out[name] = byPath.get(paths[i]!) ?? (name === 'net.ipv4.ip_local_reserved_ports' ? '' : null);
  });
  return out;
}

function pickCounters(all: Record<string, Record<string, number>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of NETSTAT_COUNTERS) out[c] = all.TcpExt?.[c] ?? 0;
  return out;
}

export function measure(opts: MeasureOptions): Sample {
  const uid = process.getuid?.() ?? -1;
  const limitations: Limitation[] = [];
  const explicit = opts.pids !== undefined;
  const candidates = opts.pids ?? listPids().filter((p) => p !== process.pid);
  const ownNs = netnsInode('self');

  const processes: ProcessSample[] = [];
  const hiddenFds: number[] = [];
  const hiddenNs: number[] = [];
  let hiddenReason = '';
  for (const pid of candidates) {
    let comm: string;
    let procUid: number | null = null;
    try {
      comm = processComm(pid);
      const st = processStatus(pid);
      if (!explicit && st.kernelThread) continue;
      procUid = st.uid[0] ?? null;
    } catch (err) {
      if (explicit) throw err instanceof TcptraceError ? err : new TcptraceError('NO_SUCH_PROCESS', `pid ${pid}: ${errText(err)}`);
      continue; // exited during the scan
    }
    const p: ProcessSample = { pid, comm, uid: procUid, netns: null, fds: null, nofile: null };
    try {
      p.netns = netnsInode(pid);
    } catch (err) {
      if (isProcError(err, 'NO_SUCH_PROCESS') && !explicit) continue;
      if (isProcError(err, 'NO_SUCH_PROCESS')) throw err;
      hiddenNs.push(pid);
    }
    try {
      p.fds = fdTable(pid);
    } catch (err) {
      if (isProcError(err, 'NO_SUCH_PROCESS')) {
        if (explicit) throw err;
        continue;
      }
      hiddenFds.push(pid);
      hiddenReason = errText(err);
    }
    try {
      p.nofile = nofileLimit(pid);
    } catch (err) {
      log.debug({ pid, err: errText(err) }, 'limits unreadable');
    }
    processes.push(p);
  }
  const named = (pids: number[]): string => {
    const byPid = new Map(processes.map((p) => [p.pid, p.comm]));
    const list = pids.slice(0, 5).map((p) => `pid ${p} (${byPid.get(p) ?? '?'})`).join(', ');
    return pids.length > 5 ? `${list} and ${pids.length - 5} more` : list;
  };
  const refused = '(ptrace access refused: the process is not dumpable, has capabilities this one lacks, or an LSM denies it)';
  const whyNot = (file: string): string =>
    uid === 0 ? `${file} of these processes is not readable even as root ${refused}` : `${file} of another user's process needs root (or CAP_SYS_PTRACE)`;
  if (hiddenFds.length) {
    limitations.push({
      kind: 'process-fds',
      missing: `open fds, fd-limit and close-wait verdicts, and socket ownership of ${hiddenFds.length} process(es): ${named(hiddenFds)}`,
      reason: `${whyNot('/proc/PID/fd')}; e.g. ${hiddenReason}`,
      pids: hiddenFds,
    });
  }
  if (hiddenNs.length) {
    limitations.push({
      kind: 'process-netns',
      missing: `the network namespace of ${hiddenNs.length} process(es): ${named(hiddenNs)}; a namespace of theirs other than this one is not examined`,
      reason: whyNot('/proc/PID/ns/net'),
      pids: hiddenNs,
    });
  }

  // Which namespaces: with --pid, those of the pids; otherwise ours and every one a visible process is in.
  const names = netnsNames();
  const nsPids = new Map<number, number[]>();
  if (!explicit) nsPids.set(ownNs, []);
  for (const p of processes) {
    if (p.netns === null) continue;
    const list = nsPids.get(p.netns) ?? [];
    list.push(p.pid);
    nsPids.set(p.netns, list);
  }
  if (explicit && nsPids.size === 0) nsPids.set(ownNs, []); // none readable: at least our own
  const netns: NetnsSample[] = [];
  for (const [id, pids] of [...nsPids.entries()].sort((a, b) => (a[0] === ownNs ? -1 : b[0] === ownNs ? 1 : a[0] - b[0]))) {
    const own = id === ownNs;
    const ns: NetnsSample = { id, name: names.get(id) ?? null, own, viaPid: null, pids, sockets: null, netstat: null, sysctls: null };
    // enter through the first of its processes that is still there
    const errors: string[] = [];
    for (const via of own ? [0] : pids) {
      try {
        ns.sockets = own ? native().sockDiag() : native().sockDiag({ netnsPid: via });
        if (!own) ns.viaPid = via;
        break;
      } catch (err) {
        errors.push(errText(err));
        if (!/ESRCH|ENOENT|No such/i.test(errText(err))) break;
      }
    }
    if (!ns.sockets) {
      limitations.push({
        kind: 'netns-enter',
        netns: id,
        pids,
        missing: `network namespace net:[${id}]${ns.name ? ` (ip netns ${ns.name})` : ''} of pid ${pids.join(', ')}: its sockets, listeners, TIME_WAIT and ephemeral ports`,
        reason: `${errors[0] ?? 'no process to enter it through'}${uid !== 0 ? ' (entering another network namespace needs root: CAP_SYS_ADMIN)' : ''}`,
      });
      netns.push(ns);
      continue;
    }
    const statPid = own ? 'self' : ns.viaPid!;
    try {
      ns.netstat = pickCounters(readNetstat(statPid));
    } catch (err) {
      log.debug({ netns: id, err: errText(err) }, 'netstat unreadable');
    }
    try {
      ns.sysctls = own ? readOwnSysctls() : readForeignSysctls(ns.viaPid!);
    } catch (err) {
      limitations.push({
        kind: 'netns-sysctls',
        netns: id,
        missing: `net.* settings of net:[${id}] (port range, tcp_tw_reuse, somaxconn...): ephemeral-port and time-wait verdicts use this namespace's values instead`,
        reason: errText(err),
      });
      ns.sysctls = readOwnSysctls();
    }
    netns.push(ns);
  }

  const fileNr = readSysctl('fs.file-nr');
  const nrOpen = sysctlNumbers(readSysctl('fs.nr_open'))[0] ?? null;
  if (fileNr === null) {
    limitations.push({ kind: 'system', missing: 'fs.file-nr / fs.file-max', reason: '/proc/sys/fs/file-nr not readable' });
  }
  return {
    takenAt: Date.now(),
    mono: performance.now(),
    uid,
    processes,
    netns,
    system: { fileNr: fileNr === null ? null : parseFileNr(fileNr), nrOpen },
    limitations,
  };
}
