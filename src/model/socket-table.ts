/**
 * The socket table: every traced socket from its first event to TCP_CLOSE.
 * Keyed by the kernel's struct sock address, which the kernel reuses: after
 * CLOSE the record is retired, and the same address later is a new socket.
 * Retired sockets are summarised, not kept, so memory stays bounded under churn.
 */
import { TT_CALL, TT_ORIGIN } from '../generated/events.js';
import type { Endpoints, PresentEvent, SockcallEvent, TraceEvent, TransitionEvent } from './events.js';
import { TCP } from './states.js';
import type { ResolvedStack, Site } from '../stacks/types.js';

export type Origin = 'accept' | 'connect' | 'listen' | 'preexisting' | 'accept-pending' | 'unknown';

const ORIGIN_NAMES: Record<number, Origin> = {
  [TT_ORIGIN.UNKNOWN]: 'unknown',
  [TT_ORIGIN.ACCEPT]: 'accept',
  [TT_ORIGIN.CONNECT]: 'connect',
  [TT_ORIGIN.LISTEN]: 'listen',
  [TT_ORIGIN.PREEXISTING]: 'preexisting',
  [TT_ORIGIN.ACCEPT_PENDING]: 'accept-pending',
};

export function originName(o: number): Origin {
  return ORIGIN_NAMES[o] ?? 'unknown';
}

export interface SocketRecord {
  serial: number;
  sk: number | bigint;
  family: number;
  local: string;
  remote: string;
  netns: number;
  pid: number; // owner; 0 when unknown
  comm: string;
  fd: number; // -1 when unknown
  origin: Origin;
  state: number;
  /** when the current state began; null when it began before tracing */
  stateSince: number | null;
  firstSeen: number;
  /** present at attach (sock_diag) rather than seen being created */
  preexisting: boolean;
  /** only known from the attach snapshot so far: no event seen for it yet */
  snapshotOnly: boolean;
  fdClosedAt: number | null;
  shutdownAt: number | null;
  sharedWith: number[];
  /** transitions seen for this socket */
  transitions: number;
  /** stack ids at its sites (see ResolvedStack.stackId) */
  stacks: Partial<Record<Site, number>>;
}

/** How long sockets of one code path sat in CLOSE_WAIT before their owner closed them. */
export interface CloseWaitHistory {
  pid: number;
  comm: string;
  origin: Origin;
  acquireStack?: number;
  count: number;
  maxNs: number;
  /** the most recent durations (bounded), for quantiles */
  recentNs: number[];
}

/** What a transition did to the table, for live output. */
export interface Applied {
  rec: SocketRecord;
  /** ns spent in the old state, or null when the old state began before tracing */
  inOldNs: number | null;
  duplicate: boolean;
}

export interface TableCounts {
  transitions: number;
  sockcalls: number;
  forks: number;
  present: number;
  duplicatesAfterAttach: number;
  retired: number;
}

export class SocketTable {
  readonly live = new Map<number | bigint, SocketRecord>();
  readonly counts: TableCounts = { transitions: 0, sockcalls: 0, forks: 0, present: 0, duplicatesAfterAttach: 0, retired: 0 };
  /** pids whose sockets are targets; null: every socket (whole-system mode) */
  readonly targets: Set<number> | null;
  /** CLOSE_WAIT durations of sockets that were closed, by (pid, origin, acquire stack) */
  readonly closedCloseWait = new Map<string, CloseWaitHistory>();
  /** stacks that arrived before their socket's first transition (connect/listen), by sk */
  private pendingStacks = new Map<number, ResolvedStack[]>();
  private serial = 0;

  constructor(targets: Iterable<number> | null) {
    this.targets = targets ? new Set(targets) : null;
  }

  apply(ev: TraceEvent): Applied | null {
    switch (ev.type) {
      case 'transition':
        return this.applyTransition(ev);
      case 'sockcall':
        this.applySockcall(ev);
        return null;
      case 'present':
        this.applyPresent(ev);
        return null;
      case 'fork':
        this.applyFork(ev.parentPid, ev.childPid);
        return null;
    }
  }

  isTarget(rec: SocketRecord): boolean {
    return this.targets === null ? true : this.targets.has(rec.pid);
  }

  /**
   * Who holds the socket now: the owner, unless the owner closed its fd while
   * a process it forked still holds a copy (same fd number, inherited).
   */
  holder(rec: SocketRecord): { pid: number; fd: number } {
    if (rec.fdClosedAt !== null && rec.sharedWith.length) return { pid: rec.sharedWith[0], fd: rec.fd };
    return { pid: rec.pid, fd: rec.fd };
  }

  private create(ev: Endpoints & { sk: number | bigint; ts: number }): SocketRecord {
    const rec: SocketRecord = {
      serial: ++this.serial,
      sk: ev.sk,
      family: ev.family,
      local: ev.local,
      remote: ev.remote,
      netns: ev.netns,
      pid: 0,
      comm: '',
      fd: -1,
      origin: 'unknown',
      state: TCP.CLOSE,
      stateSince: null,
      firstSeen: ev.ts,
      preexisting: false,
      snapshotOnly: false,
      fdClosedAt: null,
      shutdownAt: null,
      sharedWith: [],
      transitions: 0,
      stacks: {},
    };
    this.live.set(ev.sk, rec);
    const waiting = typeof ev.sk === 'number' ? this.pendingStacks.get(ev.sk) : undefined;
    if (waiting) {
      this.pendingStacks.delete(ev.sk as number);
      for (const st of waiting) if (st.ts <= ev.ts && rec.stacks[st.site] === undefined) rec.stacks[st.site] = st.stackId;
    }
    return rec;
  }

  /** Attaches a stack to its socket (the first one of each site wins). */
  attachStack(st: ResolvedStack): void {
    if (st.cookie !== 0n) this.adopt(st.cookie, st.sk);
    const rec = this.live.get(st.sk);
    if (rec) {
      if (rec.stacks[st.site] === undefined) rec.stacks[st.site] = st.stackId;
      return;
    }
    // connect()/listen() stacks come before the transition that creates the record
    let list = this.pendingStacks.get(st.sk);
    if (!list) this.pendingStacks.set(st.sk, (list = []));
    list.push(st);
    if (this.pendingStacks.size > 4096) this.prunePending(st.ts);
  }

  private prunePending(now: number): void {
    for (const [sk, list] of this.pendingStacks) {
      if (now - list[list.length - 1].ts > 10e9) this.pendingStacks.delete(sk);
    }
  }

  private applyTransition(ev: TransitionEvent): Applied {
    this.counts.transitions++;
    const sk = ev.sk;
    const cookie = ev.cookie;
    if (cookie !== 0n) this.adopt(cookie, sk);
    let rec = this.live.get(sk);
    if (rec && rec.snapshotOnly) {
      rec.snapshotOnly = false;
      // The attach snapshot was taken after this change happened: it is already reflected.
      if (ev.newState === rec.state && ev.ts <= rec.firstSeen) {
        this.counts.duplicatesAfterAttach++;
        return { rec, inOldNs: null, duplicate: true };
      }
    }
    let fresh = false;
    if (!rec) {
      rec = this.create({ sk, family: ev.family, local: ev.local, remote: ev.remote, netns: ev.netns, ts: ev.ts });
      fresh = true;
      // a socket first seen mid-life: its old state began before we saw it
      // (a listener's child starts in SYN_RECV; LISTEN is its parent's state, not its own)
      rec.stateSince = ev.oldState === TCP.CLOSE ? ev.ts : null;
      rec.state = ev.oldState;
    }
    // The tuple fills in as the socket progresses (a connecting socket learns its
    // local port); at CLOSE the kernel has already released the port (shows :0).
    // (connect() sets SYN_SENT before it picks the local port). Strings are only
    // built when something is missing: most transitions change nothing here.
    if (!fresh && ev.newState !== TCP.CLOSE && rec.local.endsWith(':0') && ev.localPort !== 0) {
      rec.local = ev.local;
      rec.remote = ev.remote;
    }
    if (ev.ownerKnown) {
      const pid = ev.ownerPid;
      if (rec.pid !== pid || !rec.comm) {
        rec.pid = pid;
        rec.comm = ev.ownerComm;
      }
      const fd = ev.ownerFd;
      if (fd >= 0) rec.fd = fd;
      // the table may know more than the kernel's copy: never go back from accept to accept-pending
      const origin = originName(ev.origin);
      if (!rec.preexisting && !(rec.origin === 'accept' && origin === 'accept-pending')) rec.origin = origin;
    }
    const ts = ev.ts;
    const oldState = ev.oldState;
    const newState = ev.newState;
    const inOldNs = rec.stateSince === null ? null : ts - rec.stateSince;
    rec.transitions++;
    if (oldState === TCP.CLOSE_WAIT && newState !== TCP.CLOSE_WAIT && inOldNs !== null && rec.pid) this.noteClosedCloseWait(rec, inOldNs);
    rec.state = newState;
    rec.stateSince = ts;
    if (newState === TCP.CLOSE) {
      this.live.delete(rec.sk);
      this.counts.retired++;
    }
    return { rec, inOldNs, duplicate: false };
  }

  private applySockcall(ev: SockcallEvent): void {
    this.counts.sockcalls++;
    if (ev.cookie !== 0n) this.adopt(ev.cookie, ev.sk);
    let rec = this.live.get(ev.sk);
    if (ev.call === TT_CALL.ACCEPT) {
      if (!rec) {
        if (ev.state === TCP.CLOSE) return; // reset before accept(): nothing will follow
        rec = this.create(ev);
        rec.state = ev.state;
      }
      rec.pid = ev.pid;
      rec.comm = ev.comm;
      rec.fd = ev.fd;
      rec.origin = 'accept';
      rec.snapshotOnly = false;
      return;
    }
    if (!rec) return;
    if (ev.call === TT_CALL.CLOSE) {
      rec.fdClosedAt = ev.ts;
    } else if (ev.call === TT_CALL.SHUTDOWN) {
      rec.shutdownAt = ev.ts;
    }
  }

  private noteClosedCloseWait(rec: SocketRecord, ns: number): void {
    const key = `${rec.pid}|${rec.origin}|${rec.stacks.acquire ?? '-'}`;
    let h = this.closedCloseWait.get(key);
    if (!h) {
      h = { pid: rec.pid, comm: rec.comm, origin: rec.origin, acquireStack: rec.stacks.acquire, count: 0, maxNs: 0, recentNs: [] };
      this.closedCloseWait.set(key, h);
    }
    h.count++;
    if (ns > h.maxNs) h.maxNs = ns;
    if (h.recentNs.length >= 1000) h.recentNs.shift();
    h.recentNs.push(ns);
  }

  /** A forked child inherits every open fd: the parent's sockets are now shared with it. */
  private applyFork(parent: number, child: number): void {
    this.counts.forks++;
    if (this.targets && this.targets.has(parent)) this.targets.add(child);
    for (const rec of this.live.values()) {
      // only sockets in the fd table: a connection still in the accept queue is not inherited
      if (rec.pid === parent && rec.fd >= 0 && rec.fdClosedAt === null && !rec.sharedWith.includes(child)) rec.sharedWith.push(child);
    }
  }

  private applyPresent(ev: PresentEvent): void {
    this.counts.present++;
    // Sockets are keyed by sk in events but present records only know the cookie:
    // they are keyed by a synthetic negative-free key until an event names the sk.
    const key = presentKey(ev.cookie);
    let rec = this.live.get(key);
    if (!rec) {
      rec = this.create({ ...ev, sk: key });
      rec.state = ev.state;
      rec.preexisting = true;
      rec.snapshotOnly = true;
      rec.origin = 'preexisting';
    }
    rec.pid = ev.pid;
    rec.comm = ev.comm;
    rec.fd = ev.fd;
    rec.sharedWith = ev.sharedWith;
  }

  /** Links a pre-existing socket (known by cookie) to its kernel address once an event names both. */
  adopt(cookie: bigint, sk: number): void {
    const key = presentKey(cookie);
    const rec = this.live.get(key);
    if (!rec || this.live.has(sk)) return;
    this.live.delete(key);
    rec.sk = sk;
    this.live.set(sk, rec);
  }
}

/** Pre-existing sockets are keyed by cookie (tagged in the top bit) until their sk is known. */
export function presentKey(cookie: bigint): bigint {
  return cookie | (1n << 127n);
}
