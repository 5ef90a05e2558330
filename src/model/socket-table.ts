/**
 * The socket table: every traced socket from its first event to TCP_CLOSE.
 * Keyed by the kernel's struct sock address, which the kernel reuses: after
 * CLOSE the record is retired, and the same address later is a new socket.
 * Retired sockets are summarised, not kept, so memory stays bounded under churn.
 */
import { O_TUPLE_DADDR, O_TUPLE_DPORT, O_TUPLE_FAMILY, O_TUPLE_SADDR, O_TUPLE_SPORT, TT_CALL, TT_ORIGIN } from '../generated/events.js';
import { AF_INET, endpoint, endpointPort, formatIpWords, type TupleSink } from './addr.js';
import type { Endpoints, PresentEvent, SockcallEvent, TraceEvent, TransitionEvent } from './events.js';
import { isBirth, TCP } from './states.js';
import type { ResolvedStack, Site } from '../stacks/types.js';
import type { HeldSocket } from '../trace/holders.js';
import type { SocketHolder } from '../trace/snapshot.js';

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

/** shared by sockets that have none yet (replaced, never mutated: frozen) */
const NO_STACKS: Partial<Record<Site, number>> = Object.freeze({});
const NO_SHARING: number[] = Object.freeze([]) as unknown as number[];

/** A stack seen for a socket: a full one (ResolvedStack) or a kernel reference to one (StackRefEvent). */
export type StackSighting = Pick<ResolvedStack, 'ts' | 'sk' | 'cookie' | 'site' | 'stackId'> & { hasCookie?: boolean };

export class SocketRecord implements TupleSink {
  /** owner; 0 when unknown */
  pid = 0;
  comm = '';
  /** -1 when unknown */
  fd = -1;
  origin: Origin = 'unknown';
  state: number = TCP.CLOSE;
  /** when the current state began; null when it began before tracing */
  stateSince: number | null = null;
  /** present at attach (sock_diag) rather than seen being created */
  preexisting = false;
  /** only known from the attach snapshot so far: no event seen for it yet */
  snapshotOnly = false;
  fdClosedAt: number | null = null;
  shutdownAt: number | null = null;
  sharedWith: number[] = NO_SHARING;
  /** who held it at the end of the trace, when that was not the owner (applyHolders) */
  heldBy: SocketHolder | null = null;
  /** transitions seen for this socket */
  transitions = 0;
  /** stack ids at its sites (see ResolvedStack.stackId) */
  stacks: Partial<Record<Site, number>> = NO_STACKS;
  // local/remote: given as strings, or kept as the raw tuple and formatted on first use
  // (most sockets of a busy server are never printed)
  private localStr: string | null = null;
  private remoteStr: string | null = null;
  private tFamily = 0;
  private lPort = 0;
  private rPort = 0;
  private l0 = 0;
  private l1 = 0;
  private l2 = 0;
  private l3 = 0;
  private r0 = 0;
  private r1 = 0;
  private r2 = 0;
  private r3 = 0;

  constructor(
    public serial: number,
    public sk: number | bigint,
    public family: number,
    public netns: number,
    public firstSeen: number,
  ) {}

  get local(): string {
    return (this.localStr ??= endpoint(this.tFamily, formatIpWords(this.tFamily, this.l0, this.l1, this.l2, this.l3), this.lPort));
  }
  set local(v: string) {
    this.localStr = v;
  }
  get remote(): string {
    return (this.remoteStr ??= endpoint(this.tFamily, formatIpWords(this.tFamily, this.r0, this.r1, this.r2, this.r3), this.rPort));
  }
  set remote(v: string) {
    this.remoteStr = v;
  }
  /** local ends in ":0" (no port yet, or released) */
  get localPortZero(): boolean {
    return this.localStr !== null ? this.localStr.endsWith(':0') : this.lPort === 0;
  }
  /** remote ends in ":0" (no peer yet: a listener, or a listener's child before its tuple is set) */
  get remotePortZero(): boolean {
    return this.remoteStr !== null ? this.remoteStr.endsWith(':0') : this.rPort === 0;
  }

  setRawTuple(dv: DataView, off: number): void {
    this.localStr = this.remoteStr = null;
    this.tFamily = dv.getUint16(off + O_TUPLE_FAMILY, true);
    this.lPort = dv.getUint16(off + O_TUPLE_SPORT, true);
    this.rPort = dv.getUint16(off + O_TUPLE_DPORT, true);
    this.l0 = dv.getInt32(off + O_TUPLE_SADDR);
    this.l1 = dv.getInt32(off + O_TUPLE_SADDR + 4);
    this.l2 = dv.getInt32(off + O_TUPLE_SADDR + 8);
    this.l3 = dv.getInt32(off + O_TUPLE_SADDR + 12);
    this.r0 = dv.getInt32(off + O_TUPLE_DADDR);
    this.r1 = dv.getInt32(off + O_TUPLE_DADDR + 4);
    this.r2 = dv.getInt32(off + O_TUPLE_DADDR + 8);
    this.r3 = dv.getInt32(off + O_TUPLE_DADDR + 12);
  }

  setRawTuple4(dv: DataView, saddr: number, daddr: number, sport: number, dport: number): void {
    this.localStr = this.remoteStr = null;
    this.tFamily = AF_INET;
    this.lPort = sport;
    this.rPort = dport;
    this.l0 = dv.getInt32(saddr);
    this.r0 = dv.getInt32(daddr);
    this.l1 = this.l2 = this.l3 = this.r1 = this.r2 = this.r3 = 0;
  }

  /** takes an event's endpoints: raw from a decoder view, else its strings */
  setEndpoints(ev: Endpoints): void {
    if (ev.copyTuple) ev.copyTuple(this);
    else {
      this.localStr = ev.local;
      this.remoteStr = ev.remote;
    }
  }

  setStack(site: Site, id: number): void {
    if (this.stacks === NO_STACKS) this.stacks = {};
    this.stacks[site] = id;
  }

  shareWith(pid: number): void {
    if (this.sharedWith === NO_SHARING) this.sharedWith = [pid];
    else this.sharedWith.push(pid);
  }
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
  /** sockets retired because another was born at their address before their CLOSE was seen */
  unseenCloses: number;
  /** late CLOSE_WAIT records (the agent's sweep) older than what the table knew of their socket, ignored */
  staleLate: number;
}

export class SocketTable {
  readonly live = new Map<number | bigint, SocketRecord>();
  readonly counts: TableCounts = { transitions: 0, sockcalls: 0, forks: 0, present: 0, duplicatesAfterAttach: 0, retired: 0, unseenCloses: 0, staleLate: 0 };
  /** pids whose sockets are targets; null: every socket (whole-system mode) */
  readonly targets: Set<number> | null;
  /** CLOSE_WAIT durations of sockets that were closed, by (pid, origin, acquire stack) */
  readonly closedCloseWait = new Map<string, CloseWaitHistory>();
  /**
   * stacks that arrived before their socket's first event, by sk: connect/listen
   * stacks, and in summary mode the stacks of a socket the kernel publishes
   */
  private pendingStacks = new Map<number, StackSighting[]>();
  private serial = 0;
  /**
   * Listeners by network namespace and port (listenKey): a listener's new child
   * (LISTEN -> SYN_RECV) belongs to the listener's owner until accept() names
   * the acceptor. The kernel attributes children itself when it keeps owners
   * (--pid, stacks); for the whole system it leaves that to this table
   * (SessionInfo.owners 'agent'), and the child's record has no owner.
   */
  private readonly listeners = new Map<number, SocketRecord>();
  /** the history noteClosedCloseWait() used last (a server closes through the same few paths) */
  private lastClosed: CloseWaitHistory | null = null;
  /** what the last transition() did, besides its record: read right after the call */
  lastInOldNs: number | null = null;
  lastDuplicate = false;

  constructor(targets: Iterable<number> | null) {
    this.targets = targets ? new Set(targets) : null;
  }

  apply(ev: TraceEvent): Applied | null {
    switch (ev.type) {
      case 'transition': {
        const rec = this.transition(ev);
        return { rec, inOldNs: this.lastInOldNs, duplicate: this.lastDuplicate };
      }
      case 'sockcall':
        this.sockcall(ev);
        return null;
      case 'present':
        this.applyPresent(ev);
        return null;
      case 'fork':
        this.fork(ev.parentPid, ev.childPid);
        return null;
      case 'stackref':
        this.attachStack(ev);
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
    if (rec.heldBy) return rec.heldBy;
    if (rec.fdClosedAt !== null && rec.sharedWith.length) return { pid: rec.sharedWith[0], fd: rec.fd };
    return { pid: rec.pid, fd: rec.fd };
  }

  /** late: a record sent after the fact (its ts is older than the stacks published with it) */
  private create(sk: number | bigint, ts: number, ev: Endpoints, late = false): SocketRecord {
    const rec = new SocketRecord(++this.serial, sk, ev.family, ev.netns, ts);
    rec.setEndpoints(ev);
    this.live.set(sk, rec);
    const waiting = this.pendingStacks.size !== 0 && typeof sk === 'number' ? this.pendingStacks.get(sk) : undefined;
    if (waiting) {
      this.pendingStacks.delete(sk as number);
      for (const st of waiting) if ((late || st.ts <= ts) && rec.stacks[st.site] === undefined) rec.setStack(st.site, st.stackId);
    }
    return rec;
  }

  /**
   * Attaches a stack to its socket (the first one of each site wins). `st` may be
   * a decoder view, valid only during the call: kept only as a copy.
   */
  attachStack(st: StackSighting): void {
    if (st.hasCookie ?? st.cookie !== 0n) this.adopt(st.cookie, st.sk);
    const rec = this.live.get(st.sk);
    if (rec) {
      if (rec.stacks[st.site] === undefined) rec.setStack(st.site, st.stackId);
      return;
    }
    // connect()/listen() stacks come before the transition that creates the record, and so
    // do a summarised socket's held stacks and full copies (the kernel publishes it with them)
    let list = this.pendingStacks.get(st.sk);
    if (!list) this.pendingStacks.set(st.sk, (list = []));
    list.push({ ts: st.ts, sk: st.sk, cookie: st.cookie, site: st.site, stackId: st.stackId });
    if (this.pendingStacks.size > 4096) this.prunePending(st.ts);
  }

  private prunePending(now: number): void {
    for (const [sk, list] of this.pendingStacks) {
      if (now - list[list.length - 1].ts > 10e9) this.pendingStacks.delete(sk);
    }
  }

  /**
   * Applies a transition; returns its socket, and leaves in lastInOldNs and
   * lastDuplicate what apply() reports as Applied (no object per event).
   */
  transition(ev: TransitionEvent): SocketRecord {
    this.counts.transitions++;
    const sk = ev.sk;
    if (ev.hasCookie ?? ev.cookie !== 0n) this.adopt(ev.cookie, sk);
    const ts = ev.ts;
    const newState = ev.newState;
    let rec = this.live.get(sk);
    if (rec && rec.snapshotOnly) {
      rec.snapshotOnly = false;
      // The attach snapshot was taken after this change happened: it is already reflected.
      if (newState === rec.state && ts <= rec.firstSeen) {
        this.counts.duplicatesAfterAttach++;
        this.lastInOldNs = null;
        this.lastDuplicate = true;
        return rec;
      }
    }
    const oldState = ev.oldState;
    if (ev.late && rec && (rec.state === newState || (rec.stateSince !== null && rec.stateSince > ts))) {
      // the agent's sweep sent a lingering CLOSE_WAIT as the socket was published
      // another way (linger.bpf.h): what the table has is newer
      this.counts.staleLate++;
      this.lastInOldNs = null;
      this.lastDuplicate = true;
      return rec;
    }
    if (rec && isBirth(oldState, newState)) {
      // a socket born at a live record's address: the old socket's CLOSE was never seen
      // (the kernel skipped that hook run): retire it rather than continue its life
      this.live.delete(sk);
      this.counts.retired++;
      this.counts.unseenCloses++;
      rec = undefined;
    }
    if (!rec) {
      rec = this.create(sk, ts, ev, ev.late);
      // a socket first seen mid-life: its old state began before we saw it
      // (a listener's child starts in SYN_RECV; LISTEN is its parent's state, not its own)
      rec.stateSince = oldState === TCP.CLOSE ? ts : null;
      rec.state = oldState;
      if (oldState === TCP.LISTEN && newState === TCP.SYN_RECV && !ev.ownerKnown) this.adoptChild(rec, ev.netns, ev.localPort);
    } else if (newState !== TCP.CLOSE && (rec.localPortZero || (rec.remotePortZero && rec.state !== TCP.LISTEN)) && ev.localPort !== 0) {
      // The tuple fills in as the socket progresses: a connecting socket learns its
      // local port (connect() sets SYN_SENT before it picks one), a listener's child
      // its peer (before 6.15 its first record is the listener's copy, see
      // sk_is_early_clone); at CLOSE the kernel has already released the port (shows :0).
      rec.setEndpoints(ev);
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
    if (ev.call !== 0) this.released(rec, ev);
    const inOldNs = rec.stateSince === null ? null : ts - rec.stateSince;
    rec.transitions++;
    if (oldState === TCP.CLOSE_WAIT && newState !== TCP.CLOSE_WAIT && inOldNs !== null && rec.pid) this.noteClosedCloseWait(rec, inOldNs);
    rec.state = newState;
    rec.stateSince = ts;
    if (newState === TCP.LISTEN) this.listeners.set(listenKey(rec.netns, ev.localPort), rec);
    else if (oldState === TCP.LISTEN && newState !== TCP.SYN_RECV) this.unlisten(rec); // LISTEN>SYN_RECV is a child's birth, on every connection
    if (newState === TCP.CLOSE) {
      this.live.delete(rec.sk);
      this.counts.retired++;
    }
    this.lastInOldNs = inOldNs;
    this.lastDuplicate = false;
    return rec;
  }

  sockcall(ev: SockcallEvent): void {
    this.counts.sockcalls++;
    const sk = ev.sk;
    if (ev.hasCookie ?? ev.cookie !== 0n) this.adopt(ev.cookie, sk);
    let rec = this.live.get(sk);
    const call = ev.call;
    if (call === TT_CALL.ACCEPT) {
      if (!rec) {
        const state = ev.state;
        if (state === TCP.CLOSE) return; // reset before accept(): nothing will follow
        rec = this.create(sk, ev.ts, ev);
        rec.state = state;
      }
      rec.pid = ev.pid;
      rec.comm = ev.comm;
      rec.fd = ev.fd;
      rec.origin = 'accept';
      rec.snapshotOnly = false;
      return;
    }
    if (!rec) return;
    // a close held back in the kernel (summary mode) until its socket was published
    if (call === TT_CALL.CLOSE) rec.fdClosedAt = ev.ts;
  }

  /**
   * The close() or shutdown() a transition was made by (the kernel reads it off
   * the closing task's syscall, releasing_call in bpf/tcpstate.bpf.c). Counted
   * with the socket calls. An fd the table did not know yet (a socket the agent
   * attributes) is the closer's, if the closer is the owner.
   */
  private released(rec: SocketRecord, ev: TransitionEvent): void {
    this.counts.sockcalls++;
    if (ev.call === TT_CALL.CLOSE) {
      rec.fdClosedAt = ev.ts;
      if (rec.fd < 0 && ev.callFd >= 0 && (rec.pid === 0 || rec.pid === ev.cpuPid)) rec.fd = ev.callFd;
    } else if (ev.call === TT_CALL.SHUTDOWN) {
      rec.shutdownAt = ev.ts;
    }
  }

  /** a listener's new child, without an owner from the kernel: the listener's owner's, pending accept() */
  private adoptChild(rec: SocketRecord, netns: number, port: number): void {
    const parent = this.listeners.get(listenKey(netns, port));
    if (!parent || !parent.pid) return;
    rec.pid = parent.pid;
    rec.comm = parent.comm;
    rec.origin = 'accept-pending';
  }

  /** a listener closed (few, and rarely: a scan of the index is cheaper than a key on every record) */
  private unlisten(rec: SocketRecord): void {
    for (const [k, r] of this.listeners) if (r === rec) this.listeners.delete(k);
  }

  private noteClosedCloseWait(rec: SocketRecord, ns: number): void {
    const acquire = rec.stacks.acquire;
    let h = this.lastClosed;
    // same (pid, origin, acquire stack) as the last one: same key, no string built
    if (!h || h.pid !== rec.pid || h.origin !== rec.origin || h.acquireStack !== acquire) {
      const key = `${rec.pid}|${rec.origin}|${acquire ?? '-'}`;
      let found = this.closedCloseWait.get(key);
      if (!found) {
        found = { pid: rec.pid, comm: rec.comm, origin: rec.origin, acquireStack: acquire, count: 0, maxNs: 0, recentNs: [] };
        this.closedCloseWait.set(key, found);
      }
      this.lastClosed = h = found;
    }
    // the most recent RECENT_CLOSED durations, as a ring (their order does not matter: quantiles sort)
    if (h.count < RECENT_CLOSED) h.recentNs.push(ns);
    else h.recentNs[h.count % RECENT_CLOSED] = ns;
    h.count++;
    if (ns > h.maxNs) h.maxNs = ns;
  }

  /** processes with closed-CLOSE_WAIT groups (the agent forgets those that exited) */
  closedPids(): Set<number> {
    const out = new Set<number>();
    for (const h of this.closedCloseWait.values()) out.add(h.pid);
    return out;
  }

  /** pids a live socket names (owner, or a process it is shared with): never forgotten */
  livePids(): Set<number> {
    const out = new Set<number>();
    for (const rec of this.live.values()) {
      if (rec.pid) out.add(rec.pid);
      for (const p of rec.sharedWith) out.add(p);
    }
    return out;
  }

  /** an exited process's closed-CLOSE_WAIT groups go (a long run's process churn must not grow the table) */
  forgetProcess(pid: number): void {
    for (const [k, h] of this.closedCloseWait) if (h.pid === pid) this.closedCloseWait.delete(k);
    if (this.lastClosed?.pid === pid) this.lastClosed = null;
  }

  /** A forked child inherits every open fd: the parent's sockets are now shared with it. */
  fork(parent: number, child: number): void {
    this.counts.forks++;
    if (this.targets && this.targets.has(parent)) this.targets.add(child);
    for (const rec of this.live.values()) {
      // only sockets in the fd table: a connection still in the accept queue is not inherited
      if (rec.pid === parent && rec.fd >= 0 && rec.fdClosedAt === null && !rec.sharedWith.includes(child)) rec.shareWith(child);
    }
  }

  private applyPresent(ev: PresentEvent): void {
    this.counts.present++;
    // Sockets are keyed by sk in events but present records only know the cookie:
    // they are keyed by a synthetic negative-free key until an event names the sk.
    const key = presentKey(ev.cookie);
    let rec = this.live.get(key);
    if (!rec) {
      rec = this.create(key, ev.ts, ev);
      rec.state = ev.state;
      rec.preexisting = true;
      rec.snapshotOnly = true;
      rec.origin = 'preexisting';
    }
    rec.pid = ev.pid;
    rec.comm = ev.comm;
    rec.fd = ev.fd;
    rec.sharedWith = ev.sharedWith;
    if (ev.state === TCP.LISTEN) this.listeners.set(listenKey(ev.netns, endpointPort(ev.local)), rec);
  }

  /**
   * Who holds each CLOSE_WAIT socket at the end (src/trace/holders.ts), matched
   * by network namespace and addresses. An owner no longer among the holders
   * closed its fd without the kernel seeing it (another fd of the socket, in a
   * child or a dup, keeps it open): the socket is the holder's now. An owner the
   * table never learnt is the holder.
   */
  applyHolders(held: HeldSocket[], ts: number): void {
    if (!held.length) return;
    const byAddr = new Map<string, SocketRecord>();
    for (const rec of this.live.values()) if (rec.state === TCP.CLOSE_WAIT) byAddr.set(`${rec.netns} ${rec.local} ${rec.remote}`, rec);
    for (const h of held) {
      const rec = byAddr.get(`${h.netns} ${h.local} ${h.remote}`);
      if (!rec || !h.holders.length) continue;
      const owner = h.holders.find((x) => x.pid === rec.pid);
      const holder = owner ?? h.holders[0];
      rec.sharedWith = h.holders.filter((x) => x !== holder).map((x) => x.pid);
      if (owner) {
        if (rec.fd < 0) rec.fd = owner.fd;
      } else if (!rec.pid) {
        rec.pid = holder.pid;
        rec.comm = holder.comm;
        rec.fd = holder.fd;
      } else {
        rec.fdClosedAt ??= ts;
        rec.heldBy = holder;
      }
    }
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

/** a listener's key: network namespace inode and port, exact in a double (32 + 16 bits) */
function listenKey(netns: number, port: number): number {
  return netns * 65536 + port;
}

/** durations kept per closed code path, for its quantiles */
const RECENT_CLOSED = 1000;

/** Pre-existing sockets are keyed by cookie (tagged in the top bit) until their sk is known. */
export function presentKey(cookie: bigint): bigint {
  return cookie | (1n << 127n);
}
