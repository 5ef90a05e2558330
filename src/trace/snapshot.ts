/**
 * Sockets that exist before tracing starts: sock_diag (INET_DIAG, with inodes
 * and cookies) joined to /proc/PID/fd. A CLOSE_WAIT leak that began an hour ago
 * must be visible the moment tcptrace attaches. Each network namespace is
 * dumped once, from inside it (a pid in a container has its own sockets).
 */
import { readFileSync } from 'node:fs';
import { listPids, netnsInode, processComm, socketInodes } from '../sys/procfs.js';
import { native, type DiagSocket } from '../native.js';
import { logger } from '../log.js';
import { endpoint } from '../model/addr.js';
import type { PresentEvent } from '../model/events.js';

const log = logger('snapshot');

/** a process holding a socket: one of its fds, and its name */
export interface SocketHolder {
  pid: number;
  fd: number;
  comm: string;
}

export interface OwnedSocket {
  diag: DiagSocket;
  netns: number;
  pid: number;
  fd: number;
  comm: string;
  /** other pids holding the same socket */
  sharedWith: number[];
  /** every process holding it, with its fd and name (the owner first) */
  holders: SocketHolder[];
}

/** A process that vanished (or hides) while we looked simply contributes nothing. */
function orEmpty<T>(f: () => T, empty: T): T {
  try {
    return f();
  } catch {
    return empty;
  }
}

/**
 * Every TCP socket held by one of pids (all processes when pids is null), with
 * its owner; states: a bitmask of TCP states (1 << state) to dump, default all.
 */
export function snapshotSockets(pids: number[] | null, exclude: number = process.pid, states?: number): OwnedSocket[] {
  const holders = (pids ?? listPids()).filter((p) => p !== exclude);
  // inode -> holders, and the netns each holder lives in
  const byInode = new Map<number, { pid: number; fd: number }[]>();
  const netnsPids = new Map<number, number>(); // netns inode -> a pid inside it
  for (const pid of holders) {
    const fds = orEmpty(() => socketInodes(pid), new Map<number, number>());
    if (fds.size === 0) continue;
    const ns = orEmpty(() => netnsInode(pid), 0);
    if (ns && !netnsPids.has(ns)) netnsPids.set(ns, pid);
    for (const [inode, fd] of fds) {
      let list = byInode.get(inode);
      if (!list) byInode.set(inode, (list = []));
      list.push({ pid, fd });
    }
  }
  const out: OwnedSocket[] = [];
  const comms = new Map<number, string>();
  const comm = (pid: number): string => {
    if (!comms.has(pid)) comms.set(pid, orEmpty(() => processComm(pid), ''));
    return comms.get(pid)!;
  };
  for (const [ns, pid] of netnsPids) {
    let diags: DiagSocket[];
    try {
      diags = native().sockDiag({ netnsPid: pid === process.pid ? 0 : pid, ...(states === undefined ? {} : { states }) });
    } catch (err) {
      log.warn({ err, netns: ns, pid }, 'cannot enumerate the sockets of a network namespace');
      continue;
    }
    for (const d of diags) {
      const owners = d.inode ? byInode.get(d.inode) : undefined;
      if (!owners) continue;
      const first = owners.reduce((a, b) => (b.pid < a.pid ? b : a));
      const holders = [first, ...owners.filter((o) => o !== first)].map((o) => ({ ...o, comm: comm(o.pid) }));
      out.push({
        diag: d,
        netns: ns,
        ...holders[0],
        sharedWith: holders.filter((h) => h.pid !== first.pid).map((h) => h.pid),
        holders,
      });
    }
  }
  return out;
}

/** a dumped socket's local and remote endpoints, formatted as events have them */
export function diagEndpoints(d: DiagSocket): { local: string; remote: string } {
  return { local: endpoint(d.family, d.src, d.sport), remote: endpoint(d.family, d.dst, d.dport) };
}

export function toPresentEvent(s: OwnedSocket, ts: bigint): PresentEvent {
  const at = Number(ts);
  return {
    type: 'present',
    ts: at,
    cookie: s.diag.cookie,
    state: s.diag.state,
    family: s.diag.family,
    ...diagEndpoints(s.diag),
    netns: s.netns,
    pid: s.pid,
    fd: s.fd,
    comm: s.comm,
    inode: s.diag.inode,
    sharedWith: s.sharedWith,
  };
}

/** Descendants of pids (for --children), from /proc/PID/stat parent links. */
export function descendants(pids: number[]): number[] {
  const parent = new Map<number, number>();
  for (const pid of listPids()) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(pid, ppid);
    } catch {
      // exited
    }
  }
  const set = new Set(pids);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!set.has(pid) && set.has(ppid)) {
        set.add(pid);
        grew = true;
      }
    }
  }
  return [...set].filter((p) => !pids.includes(p));
}

/** true while pid exists and is not a zombie */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}
