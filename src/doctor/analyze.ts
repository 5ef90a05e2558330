/**
 * Turns two consecutive samples (previous may be absent) into per-namespace and
 * per-process figures: sockets per state, TIME_WAIT by active closer, ephemeral
 * ports per destination, accept queues, counter deltas. Pure: no I/O.
 */
import type { DiagSocket } from '../native.js';
import { parsePortList, sysctlNumbers } from '../sys/procfs.js';
import type { NetnsSample, ProcessSample, Sample } from './measure.js';
import { ST, emptyStateCounts, hostPort, isLoopback, isWildcard, normalizeAddr, stateName } from './tcp.js';

/** Linux keeps TIME_WAIT for TCP_TIMEWAIT_LEN, a compile-time 60 s. */
export const TIME_WAIT_MS = 60_000;

export interface Owner {
  pid: number;
  comm: string;
  fd: number;
}

export interface ProcessFigures {
  pid: number;
  comm: string;
  uid: number | null;
  netns: number | null;
  /** null: /proc/PID/fd not readable */
  fds: { open: number; sockets: number; soft: number | null; hard: number | null } | null;
  /** TCP sockets it holds, per state (a socket shared after fork counts in each holder) */
  states: Record<string, number>;
  closeWait: { count: number; persisted: number | null; new: number | null };
  /** TIME_WAIT sockets left by connections its listeners accepted and it closed first */
  timeWaitServerSide: number;
}

export interface DestinationFigures {
  source: string;
  destination: string;
  /** distinct local ports in the ephemeral range used toward this destination */
  inUse: number;
  timeWait: number;
  /** TIME_WAIT ports connect() may take over now (tcp_tw_reuse applies and they are older than the delay) */
  reusableTimeWait: number;
  /** inUse - reusableTimeWait: ports connect() cannot use */
  effective: number;
  available: number;
  percent: number;
  twReuseApplies: boolean;
  processes: { pid: number; comm: string }[];
}

export interface ListenerFigures {
  address: string;
  queue: number;
  backlog: number;
  percent: number;
  owners: { pid: number; comm: string }[];
}

export interface CounterFigures {
  total: number;
  delta: number | null;
}

export interface NetnsFigures {
  id: number;
  name: string | null;
  own: boolean;
  viaPid: number | null;
  pids: number[];
  examined: boolean;
  total: number;
  states: Record<string, number>;
  /** sockets with an inode that no visible process holds */
  unowned: number;
  closeWait: { total: number; unowned: number; unownedPersisted: number | null; new: number | null; perSecond: number | null };
  timeWait: {
    total: number;
    /** this host accepted the connection and closed first */
    serverSide: number;
    /** this host connected out and closed first */
    clientSide: number;
    maxBuckets: number | null;
    new: number | null;
    perSecond: number | null;
    byListener: { listener: string; count: number; pid: number | null; comm: string | null }[];
    byDestination: { destination: string; count: number }[];
  };
  ephemeral: {
    range: [number, number] | null;
    reserved: number;
    available: number;
    twReuse: number | null;
    twReuseDelayMs: number;
    timestamps: number | null;
    /** distinct ephemeral local ports in use toward any destination (what bind(port 0) competes for) */
    inUseAnyDestination: number;
    destinations: DestinationFigures[];
  };
  listeners: ListenerFigures[];
  counters: Record<string, CounterFigures> | null;
  sysctls: Record<string, string | null> | null;
}

export interface Figures {
  windowSeconds: number | null;
  processes: ProcessFigures[];
  netns: NetnsFigures[];
  system: { fileNr: { allocated: number; max: number; percent: number } | null; nrOpen: number | null };
}

function pct(n: number, d: number): number {
  if (d <= 0) return n > 0 ? 100 : 0;
  return Math.round((n / d) * 1000) / 10;
}

function cookiesIn(ns: NetnsSample | undefined, state: number): Set<bigint> | null {
  if (!ns?.sockets) return null;
  const out = new Set<bigint>();
  for (const s of ns.sockets) if (s.state === state) out.add(s.cookie);
  return out;
}

function num(v: string | null | undefined): number | null {
  const n = sysctlNumbers(v ?? null)[0];
  return n === undefined ? null : n;
}

export function ownersByInode(processes: ProcessSample[]): Map<number, Owner[]> {
  const out = new Map<number, Owner[]>();
  for (const p of processes) {
    if (!p.fds) continue;
    for (const [inode, fd] of p.fds.sockets) {
      const list = out.get(inode) ?? [];
      list.push({ pid: p.pid, comm: p.comm, fd });
      out.set(inode, list);
    }
  }
  return out;
}

export function analyze(cur: Sample, prev: Sample | undefined): Figures {
  const windowSeconds = prev ? Math.max(0.001, (cur.mono - prev.mono) / 1000) : null;
  const owners = ownersByInode(cur.processes);
  const procs = new Map<number, ProcessFigures>();
  for (const p of cur.processes) {
    procs.set(p.pid, {
      pid: p.pid,
      comm: p.comm,
      uid: p.uid,
      netns: p.netns,
      fds: p.fds ? { open: p.fds.open, sockets: p.fds.sockets.size, soft: p.nofile?.soft ?? null, hard: p.nofile?.hard ?? null } : null,
      states: emptyStateCounts(),
      closeWait: { count: 0, persisted: prev ? 0 : null, new: prev ? 0 : null },
      timeWaitServerSide: 0,
    });
  }
  const netns = cur.netns.map((ns) => analyzeNetns(ns, prev?.netns.find((p) => p.id === ns.id), owners, procs, windowSeconds));
  const fnr = cur.system.fileNr;
  return {
    windowSeconds,
    processes: [...procs.values()],
    netns,
    system: { fileNr: fnr ? { allocated: fnr.allocated, max: fnr.max, percent: pct(fnr.allocated, fnr.max) } : null, nrOpen: cur.system.nrOpen },
  };
}

function analyzeNetns(
  ns: NetnsSample,
  prev: NetnsSample | undefined,
  owners: Map<number, Owner[]>,
  procs: Map<number, ProcessFigures>,
  windowSeconds: number | null,
): NetnsFigures {
  const sysctls = ns.sysctls;
  const [lo, hi] = sysctlNumbers(sysctls?.['net.ipv4.ip_local_port_range'] ?? null);
  const range: [number, number] | null = lo !== undefined && hi !== undefined ? [lo, hi] : null;
  let reserved = 0;
  if (range) {
    for (const [a, b] of parsePortList(sysctls?.['net.ipv4.ip_local_reserved_ports'] ?? null)) {
      const from = Math.max(a, range[0]);
      const to = Math.min(b, range[1]);
      if (to >= from) reserved += to - from + 1;
    }
  }
  const available = range ? range[1] - range[0] + 1 - reserved : 0;
  const twReuse = num(sysctls?.['net.ipv4.tcp_tw_reuse']);
  const twReuseDelayMs = num(sysctls?.['net.ipv4.tcp_tw_reuse_delay']) ?? 1000;
  const timestamps = num(sysctls?.['net.ipv4.tcp_timestamps']);
  const out: NetnsFigures = {
    id: ns.id,
    name: ns.name,
    own: ns.own,
    viaPid: ns.viaPid,
    pids: ns.pids,
    examined: ns.sockets !== null,
    total: 0,
    states: emptyStateCounts(),
    unowned: 0,
    closeWait: { total: 0, unowned: 0, unownedPersisted: null, new: null, perSecond: null },
    timeWait: {
      total: 0,
      serverSide: 0,
      clientSide: 0,
      maxBuckets: num(sysctls?.['net.ipv4.tcp_max_tw_buckets']),
      new: null,
      perSecond: null,
      byListener: [],
      byDestination: [],
    },
    ephemeral: { range, reserved, available, twReuse, twReuseDelayMs, timestamps, inUseAnyDestination: 0, destinations: [] },
    listeners: [],
    counters: null,
    sysctls,
  };
  if (ns.netstat) {
    out.counters = {};
    for (const [k, v] of Object.entries(ns.netstat)) {
      const before = prev?.netstat?.[k];
      out.counters[k] = { total: v, delta: before === undefined ? null : v - before };
    }
  }
  if (!ns.sockets) return out;
  const socks = ns.sockets;
  out.total = socks.length;

  // listeners, and the ports they own (accepted connections share the listener's port)
  const listenerByPort = new Map<number, DiagSocket[]>();
  for (const s of socks) {
    if (s.state !== ST.LISTEN) continue;
    const list = listenerByPort.get(s.sport) ?? [];
    list.push(s);
    listenerByPort.set(s.sport, list);
    const own = (owners.get(s.inode) ?? []).map((o) => ({ pid: o.pid, comm: o.comm }));
    out.listeners.push({ address: hostPort(s.src, s.sport), queue: s.rqueue, backlog: s.wqueue, percent: pct(s.rqueue, s.wqueue), owners: own });
  }
  const listenerOf = (s: DiagSocket): DiagSocket | undefined =>
    listenerByPort.get(s.sport)?.find((l) => isWildcard(l.src) || normalizeAddr(l.src) === normalizeAddr(s.src));

  const prevCw = cookiesIn(prev, ST.CLOSE_WAIT);
  const prevTw = cookiesIn(prev, ST.TIME_WAIT);
  const byListener = new Map<string, { listener: string; count: number; pid: number | null; comm: string | null }>();
  const byTwDest = new Map<string, number>();
  interface Dest { source: string; destination: string; ports: Set<number>; tw: number; reusable: number; loop: boolean; pids: Map<number, string> }
  const dests = new Map<string, Dest>();
  const anyPorts = new Set<number>();
  let newCw = 0;
  let newTw = 0;
  let unownedPersisted = 0;

  for (const s of socks) {
    const name = stateName(s.state);
    out.states[name] = (out.states[name] ?? 0) + 1;
    const own = s.inode ? owners.get(s.inode) : undefined;
    if (s.inode && !own) out.unowned++;
    for (const o of own ?? []) {
      const p = procs.get(o.pid);
      if (p) p.states[name] = (p.states[name] ?? 0) + 1;
    }
    if (s.state === ST.CLOSE_WAIT) {
      out.closeWait.total++;
      const persisted = prevCw?.has(s.cookie) ?? false;
      if (prevCw && !persisted) newCw++;
      if (!own) {
        out.closeWait.unowned++;
        if (persisted) unownedPersisted++;
      }
      for (const o of own ?? []) {
        const cw = procs.get(o.pid)?.closeWait;
        if (!cw) continue;
        cw.count++;
        if (prevCw) {
          if (persisted) cw.persisted!++;
          else cw.new!++;
        }
      }
    }
    const listener = s.state === ST.LISTEN ? undefined : listenerOf(s);
    if (s.state === ST.TIME_WAIT) {
      out.timeWait.total++;
      if (prevTw && !prevTw.has(s.cookie)) newTw++;
      if (listener) {
        out.timeWait.serverSide++;
        const key = hostPort(listener.src, listener.sport);
        const lo = owners.get(listener.inode)?.[0];
        const e = byListener.get(key) ?? { listener: key, count: 0, pid: lo?.pid ?? null, comm: lo?.comm ?? null };
        e.count++;
        byListener.set(key, e);
        if (lo) {
          const p = procs.get(lo.pid);
          if (p) p.timeWaitServerSide++;
        }
      } else {
        out.timeWait.clientSide++;
        const key = hostPort(s.dst, s.dport);
        byTwDest.set(key, (byTwDest.get(key) ?? 0) + 1);
      }
    }
    // ephemeral ports: outgoing sockets (not listeners, not accepted ones, not request socks)
    if (
      range &&
      s.state !== ST.LISTEN &&
      s.state !== ST.SYN_RECV &&
      s.state !== ST.NEW_SYN_RECV &&
      !listener &&
      s.sport >= range[0] &&
      s.sport <= range[1]
    ) {
      anyPorts.add(s.sport);
      const src = normalizeAddr(s.src);
      const dst = isWildcard(s.dst) && s.dport === 0 ? '*' : hostPort(s.dst, s.dport);
      const key = `${src}|${dst}`;
      let d = dests.get(key);
      if (!d) {
        d = { source: src, destination: dst, ports: new Set(), tw: 0, reusable: 0, loop: isLoopback(s.src) || isLoopback(s.dst), pids: new Map() };
        dests.set(key, d);
      }
      d.ports.add(s.sport);
      if (s.state === ST.TIME_WAIT) {
        d.tw++;
        if (TIME_WAIT_MS - s.expiresMs > twReuseDelayMs) d.reusable++;
      }
      for (const o of own ?? []) d.pids.set(o.pid, o.comm);
    }
  }
  if (prevCw) {
    out.closeWait.new = newCw;
    out.closeWait.unownedPersisted = unownedPersisted;
    out.closeWait.perSecond = windowSeconds ? Math.round((newCw / windowSeconds) * 10) / 10 : null;
  }
  if (prevTw) {
    out.timeWait.new = newTw;
    out.timeWait.perSecond = windowSeconds ? Math.round((newTw / windowSeconds) * 10) / 10 : null;
  }
  out.timeWait.byListener = [...byListener.values()].sort((a, b) => b.count - a.count);
  out.timeWait.byDestination = [...byTwDest.entries()].map(([destination, count]) => ({ destination, count })).sort((a, b) => b.count - a.count);
  out.ephemeral.inUseAnyDestination = anyPorts.size;
  out.ephemeral.destinations = [...dests.values()]
    .filter((d) => d.destination !== '*')
    .map((d) => {
      const applies = (timestamps ?? 0) > 0 && (twReuse === 1 || (twReuse === 2 && d.loop));
      const reusable = applies ? d.reusable : 0;
      const effective = d.ports.size - reusable;
      return {
        source: d.source,
        destination: d.destination,
        inUse: d.ports.size,
        timeWait: d.tw,
        reusableTimeWait: reusable,
        effective,
        available,
        percent: pct(effective, available),
        twReuseApplies: applies,
        processes: [...d.pids.entries()].map(([pid, comm]) => ({ pid, comm })),
      };
    })
    .sort((a, b) => b.effective - a.effective || b.inUse - a.inUse);
  out.listeners.sort((a, b) => b.percent - a.percent || b.queue - a.queue);
  return out;
}
