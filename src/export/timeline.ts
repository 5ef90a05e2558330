/**
 * The socket timelines a recording holds, for the export formats (Perfetto,
 * Chrome JSON, HTML). Runs the same analysis as `tcptrace report` (Analyzer,
 * fed by replay()) and follows each socket it tracks from its first event to
 * its end, keeping its states and calls until it ends; then hands the whole
 * life to the format at once. Memory is bounded by the sockets alive at one
 * time, not by the records: a closed socket's life is handed over and dropped.
 *
 * Order of the calls a TimelineSink gets:
 *   begin → (counter | socket)* in stream order of the socket's end → leakGroups
 *   → socket* (those still open at the end, leak group members first) → finish
 * So a socket's life reaches the format when it ends, not when it began; formats
 * that need time order (none of ours) would sort.
 */
import { Analyzer } from '../analysis/analyzer.js';
import { groupLeaks } from '../analysis/leaks.js';
import type { ReportDoc } from '../analysis/report-doc.js';
import type { LeakGroup } from '../analysis/leaks.js';
import { TT_CALL } from '../generated/events.js';
import type { SockcallEvent, TransitionEvent } from '../model/events.js';
import { presentKey, type Origin, type SocketRecord, type StackSighting } from '../model/socket-table.js';
import { TCP } from '../model/states.js';
import type { Frame, Site } from '../stacks/types.js';
import type { SessionEnd, SessionInfo, TraceSink } from '../trace/types.js';

/** TCP_TIMEWAIT_LEN (include/net/tcp.h): how long the kernel keeps a TIME_WAIT socket */
export const TIME_WAIT_NS = 60e9;

export type CallKind = 'accept' | 'connect' | 'listen' | 'close' | 'shutdown' | 'first write' | 'first read' | 'EOF read';

/** a call on a socket (accept, close, ...), or a stack site the kernel captured (first write, EOF read) */
export interface TimelineCall {
  ts: number;
  kind: CallKind;
  /** the fd the call named, -1 when not known */
  fd: number;
  pid: number;
  /** shutdown(): how (SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2) */
  arg?: number;
  /** the stack captured at this call (a key of TimelineContext.stacks) */
  stackId?: number;
}

/** a state the socket entered, at ts */
export interface TimelineState {
  ts: number;
  state: number;
}

/** Where a socket goes in a picture: the leak it is part of, a late close, a listener, open at the end, or closed. */
export type LifeKind = 'leaked' | 'late' | 'listener' | 'open' | 'closed';

export interface SocketLife {
  /** the analysis' serial number of the socket (unique in a recording) */
  serial: number;
  pid: number;
  comm: string;
  fd: number;
  origin: Origin;
  family: number;
  netns: number;
  local: string;
  remote: string;
  /** present when tracing began (its first state began earlier) */
  preexisting: boolean;
  /** first seen (ns, CLOCK_MONOTONIC) */
  start: number;
  /** the states it was in, in order; the first is its state when first seen; never CLOSE */
  states: TimelineState[];
  calls: TimelineCall[];
  stacks: Partial<Record<Site, number>>;
  /** when it reached CLOSE; null: still open at the end of the recording */
  end: number | null;
  /** the end of a TIME_WAIT derived from how it closed (the kernel's timewait socket, not traced); null: none */
  timeWaitEnd: number | null;
  /** ns in CLOSE_WAIT (until its close, or until the end when still open); null: never in CLOSE_WAIT */
  closeWaitNs: number | null;
  /** timestamps that went back and were clamped to the one before (records of other CPUs' rings) */
  clamped: number;
  kind: LifeKind;
  /** index of its leak group (report.leaks), -1: none */
  leak: number;
  /** processes that also held it (forked children, dup'd or passed fds) */
  sharedWith: number[];
}

export type CounterSeries = 'CLOSE_WAIT' | 'ESTABLISHED' | 'TIME_WAIT' | 'open';
export const COUNTER_SERIES: CounterSeries[] = ['CLOSE_WAIT', 'ESTABLISHED', 'TIME_WAIT', 'open'];

export interface TimelineContext {
  info: SessionInfo;
  /** frames of every stack id, filled before any life that names it is handed over */
  stacks: ReadonlyMap<number, Frame[]>;
  leakAfterMs: number;
  /** the window exported (ns, CLOCK_MONOTONIC): [from, to] */
  from: number;
  to: number;
}

export interface TimelineEnd {
  end: SessionEnd;
  /** the report `tcptrace report` prints for the same recording and settings */
  report: ReportDoc;
  /** ns of the last record (the end of the picture) */
  endNs: number;
  sockets: number;
  /** sockets not exported because they fall outside --pid or --from/--to */
  filteredSockets: number;
}

export interface TimelineSink {
  begin(ctx: TimelineContext): void;
  /** a process's count of sockets in a series changed (only within the window) */
  counter(ts: number, pid: number, comm: string, series: CounterSeries, value: number): void;
  socket(life: SocketLife): void;
  /** the report's leak groups, once known (before the sockets open at the end), and the end of the picture (ns) */
  leakGroups(groups: LeakGroup[], endNs: number): void;
  finish(end: TimelineEnd): void | Promise<void>;
}

export interface TimelineOptions {
  leakAfterMs: number;
  top: number;
  /** only these processes' sockets (null: all) */
  pids: number[] | null;
  /** seconds from the recording's start: the window exported */
  fromS?: number;
  toS?: number;
}

const CALLS: Record<number, CallKind> = {
  [TT_CALL.ACCEPT]: 'accept',
  [TT_CALL.CONNECT]: 'connect',
  [TT_CALL.LISTEN]: 'listen',
  [TT_CALL.CLOSE]: 'close',
  [TT_CALL.SHUTDOWN]: 'shutdown',
};
const SITE_CALL: Partial<Record<Site, CallKind>> = { io: 'first write', read: 'first read', eof: 'EOF read' };

/** what one life adds to its process's counters now */
interface Contribution {
  pid: number;
  comm: string;
  state: number;
}

interface Life extends SocketLife {
  /** the newest timestamp on this life (timestamps are clamped to stay monotonic) */
  last: number;
  counted: Contribution | null;
  rec: SocketRecord;
}

interface ProcessCounts {
  comm: string;
  values: Record<CounterSeries, number>;
  /** the latest change of each series not handed over yet */
  pending: Partial<Record<CounterSeries, { ts: number; value: number }>>;
  /** the latest time handed over or held per series: a track's counter values never go back in time */
  last: Partial<Record<CounterSeries, number>>;
}

/** counter values handed over per series at most this often (see bump) */
const COUNTER_RESOLUTION_NS = 1e6;

/**
 * A TraceSink (feed it with replay()) that turns the analysis into socket
 * lives for a TimelineSink. It owns the Analyzer: the report it builds at the
 * end is the one `tcptrace report` prints.
 */
export class TimelineBuilder implements TraceSink {
  readonly analyzer: Analyzer;
  private readonly lives = new Map<SocketRecord, Life>();
  private readonly counts = new Map<number, ProcessCounts>();
  /** derived TIME_WAIT ends not yet reached: [ns, pid] in time order (60 s after a close, so they arrive in order) */
  private readonly timeWaits: { ts: number; pid: number }[] = [];
  private timeWaitHead = 0;
  private ctx!: TimelineContext;
  private readonly pidFilter: Set<number> | null;
  private latest = 0;
  /** with --from: each process's counts were handed over at the window's start (so a count held from before shows from there) */
  private seeded = false;
  /** sockets handed to the sink, and those left out by --pid or --from/--to */
  exported = 0;
  filtered = 0;

  constructor(
    private readonly out: TimelineSink,
    private readonly options: TimelineOptions,
  ) {
    this.analyzer = new Analyzer({ leakAfterMs: options.leakAfterMs, top: options.top });
    this.pidFilter = options.pids ? new Set(options.pids) : null;
    this.analyzer.onLine = (line) => (line.ev.type === 'transition' ? this.onTransition(line.ev, line.applied!.rec) : this.onSockcall(line.ev));
    this.analyzer.onStack = (st) => this.onStack(st);
  }

  begin(info: SessionInfo): void {
    this.analyzer.begin(info);
    const started = Number(info.startedNs);
    this.ctx = {
      info,
      stacks: this.analyzer.stacksById,
      leakAfterMs: this.analyzer.options.leakAfterMs,
      from: this.options.fromS === undefined ? -Infinity : started + this.options.fromS * 1e9,
      to: this.options.toS === undefined ? Infinity : started + this.options.toS * 1e9,
    };
    this.out.begin(this.ctx);
  }

  /** leak-after and top may come from the recording: read them after begin() */
  get leakAfterMs(): number {
    return this.analyzer.options.leakAfterMs;
  }

  present(events: Parameters<TraceSink['present']>[0]): void {
    this.analyzer.present(events);
    for (const ev of events) {
      // the analysis keys a present socket by its cookie until an event names its sk
      const rec = this.analyzer.table.live.get(presentKey(ev.cookie));
      if (!rec || this.lives.has(rec)) continue;
      const ts = Number(ev.ts); // a bigint in older recordings
      const life = this.lifeOf(rec, ts);
      life.states.push({ ts, state: ev.state });
      this.recount(life, ts);
    }
  }

  batch(buf: Buffer): void {
    this.analyzer.batch(buf);
  }

  stacks(items: Parameters<TraceSink['stacks']>[0]): void {
    this.analyzer.stacks(items);
  }

  counters(c: Parameters<TraceSink['counters']>[0]): void {
    this.analyzer.counters(c);
  }

  async finish(end: SessionEnd): Promise<void> {
    await this.analyzer.finish(end);
    const report = this.analyzer.result();
    const endNs = Math.max(this.latest, Number(end.endedNs));
    // a derived TIME_WAIT that outlasts the recording is still counted at its end (no expiry drawn past it)
    this.expireTimeWaits(Math.min(endNs, this.ctx.to));
    // the groups the report shows, with their records (the same analysis, so the same groups)
    const groups = groupLeaks(this.analyzer, Number(end.endedNs), Number(this.ctx.info.startedNs));
    const groupOf = new Map<SocketRecord, number>();
    groups.forEach((g, i) => g.recs.forEach((r) => groupOf.set(r, i)));
    this.out.leakGroups(groups.map((g) => g.group), Math.min(endNs, this.ctx.to));
    const open = [...this.lives.values()];
    const inTable = new Set(this.analyzer.table.live.values());
    // leak members first, by group, then the rest by start
    const rank = (l: Life) => groupOf.get(l.rec) ?? groups.length;
    open.sort((a, b) => rank(a) - rank(b) || a.start - b.start);
    for (const life of open) {
      if (!inTable.has(life.rec)) {
        // retired without a CLOSE the kernel showed (a socket was born at its address): it ended when last seen
        this.close(life, life.last, false);
        continue;
      }
      life.leak = groupOf.get(life.rec) ?? -1;
      this.settle(life);
      if (life.states.length && life.states[life.states.length - 1].state === TCP.CLOSE_WAIT) {
        life.closeWaitNs = (life.closeWaitNs ?? 0) + Math.max(0, endNs - life.states[life.states.length - 1].ts);
      }
      life.kind = life.leak >= 0 ? 'leaked' : life.rec.state === TCP.LISTEN ? 'listener' : 'open';
      this.handOver(life);
    }
    this.lives.clear();
    this.flushCounters(); // after the retired ones closed above: their counts move at their last sighting
    await this.out.finish({ end, report, endNs, sockets: this.exported, filteredSockets: this.filtered });
  }

  private lifeOf(rec: SocketRecord, ts: number): Life {
    let life = this.lives.get(rec);
    if (!life) {
      life = {
        serial: rec.serial,
        pid: rec.pid,
        comm: rec.comm,
        fd: rec.fd,
        origin: rec.origin,
        family: rec.family,
        netns: rec.netns,
        local: '',
        remote: '',
        preexisting: rec.preexisting,
        start: ts,
        states: [],
        calls: [],
        stacks: {},
        end: null,
        timeWaitEnd: null,
        closeWaitNs: null,
        clamped: 0,
        kind: 'closed',
        leak: -1,
        sharedWith: [],
        last: ts,
        counted: null,
        rec,
      };
      this.lives.set(rec, life);
    }
    return life;
  }

  /** ts, never before the life's newest timestamp */
  private monotonic(life: Life, ts: number): number {
    if (ts < life.last) {
      life.clamped++;
      return life.last;
    }
    life.last = ts;
    return ts;
  }

  private onTransition(ev: TransitionEvent, rec: SocketRecord): void {
    const raw = ev.ts;
    if (raw > this.latest) this.latest = raw;
    this.expireTimeWaits(raw);
    const fresh = !this.lives.has(rec);
    const life = this.lifeOf(rec, raw);
    const ts = this.monotonic(life, raw);
    if (fresh && ev.oldState !== TCP.CLOSE && !(ev.oldState === TCP.LISTEN && ev.newState === TCP.SYN_RECV)) {
      // first seen mid-life: it was in the old state before
      life.states.push({ ts, state: ev.oldState });
    }
    if (ev.call) this.addCall(life, { ts, kind: CALLS[ev.call] ?? 'close', fd: ev.callFd, pid: ev.cpuPid, arg: ev.call === TT_CALL.SHUTDOWN ? ev.callArg : undefined });
    const prev = life.states.length ? life.states[life.states.length - 1] : null;
    if (prev && prev.state === TCP.CLOSE_WAIT && ev.newState !== TCP.CLOSE_WAIT) life.closeWaitNs = (life.closeWaitNs ?? 0) + (ts - prev.ts);
    if (ev.newState === TCP.CLOSE) {
      const timeWait = prev !== null && (prev.state === TCP.FIN_WAIT2 || prev.state === TCP.CLOSING || prev.state === TCP.TIME_WAIT);
      this.close(life, ts, timeWait);
      return;
    }
    if (!prev || prev.state !== ev.newState) life.states.push({ ts, state: ev.newState });
    this.recount(life, ts);
  }

  private onSockcall(ev: SockcallEvent): void {
    const rec = this.analyzer.table.live.get(ev.sk);
    if (!rec) return;
    if (ev.ts > this.latest) this.latest = ev.ts;
    const fresh = !this.lives.has(rec);
    const life = this.lifeOf(rec, ev.ts);
    const ts = this.monotonic(life, ev.ts);
    if (fresh) life.states.push({ ts, state: ev.state }); // accept() of a connection queued before its first record
    this.addCall(life, { ts, kind: CALLS[ev.call] ?? 'close', fd: ev.fd, pid: ev.pid, arg: ev.call === TT_CALL.SHUTDOWN ? ev.arg : undefined });
    this.recount(life, ts);
  }

  private onStack(st: StackSighting): void {
    const rec = this.analyzer.table.live.get(st.sk);
    if (!rec) return; // before its socket's first record (connect, listen): the record takes it, and the life reads it at its end
    const life = this.lives.get(rec);
    if (!life) return;
    const kind = SITE_CALL[st.site];
    if (!kind) return; // acquire: shown on the accept/connect/listen call
    if (life.calls.some((c) => c.kind === kind)) return; // the first of each site
    life.calls.push({ ts: this.monotonic(life, st.ts), kind, fd: -1, pid: 0, stackId: st.stackId });
  }

  private addCall(life: Life, call: TimelineCall): void {
    if (life.calls.length < 64) life.calls.push(call); // a socket closed over and over is still drawn (bounded)
  }

  /** the process counters this life moves, from what it added before to what it adds now */
  private recount(life: Life, ts: number): void {
    const rec = life.rec;
    const cur = life.counted;
    const state = life.states.length ? life.states[life.states.length - 1].state : rec.state;
    if (cur && cur.pid === rec.pid && cur.state === state) return;
    if (cur) this.move(cur, -1, ts);
    if (rec.pid && this.wanted(rec.pid)) {
      life.counted = { pid: rec.pid, comm: rec.comm, state };
      this.move(life.counted, 1, ts);
    } else life.counted = null;
  }

  private move(c: Contribution, by: number, ts: number): void {
    let p = this.counts.get(c.pid);
    if (!p) this.counts.set(c.pid, (p = { comm: c.comm, values: { CLOSE_WAIT: 0, ESTABLISHED: 0, TIME_WAIT: 0, open: 0 }, pending: {}, last: {} }));
    this.bump(c.pid, p, 'open', by, ts);
    if (c.state === TCP.CLOSE_WAIT) this.bump(c.pid, p, 'CLOSE_WAIT', by, ts);
    else if (c.state === TCP.ESTABLISHED) this.bump(c.pid, p, 'ESTABLISHED', by, ts);
  }

  /**
   * A process's count moved. Handed over at most once per COUNTER_RESOLUTION_NS
   * and series: the value of each millisecond's last change, at that change's
   * time (so every value handed over is the count at its timestamp), and the
   * last one at the end. Under churn a count changes every few microseconds:
   * one counter event per change would outnumber the slices.
   */
  private bump(pid: number, p: ProcessCounts, series: CounterSeries, by: number, ts: number): void {
    if (ts >= this.ctx.from && !this.seeded) this.seed();
    p.values[series] += by;
    if (ts < this.ctx.from || ts > this.ctx.to) return;
    // records of different CPUs can be a little out of order (the analysis counts them): the track never goes back
    ts = Math.max(ts, p.last[series] ?? ts);
    p.last[series] = ts;
    const held = p.pending[series];
    if (held && Math.floor(held.ts / COUNTER_RESOLUTION_NS) !== Math.floor(ts / COUNTER_RESOLUTION_NS)) this.out.counter(held.ts, pid, p.comm, series, held.value);
    if (held) {
      held.ts = ts;
      held.value = p.values[series];
    } else p.pending[series] = { ts, value: p.values[series] };
  }

  /**
   * With --from, the first change inside the window first hands over every
   * process's counts at the window's start: a process that held 40 sockets in
   * CLOSE_WAIT from before the window shows 40 there, not nothing until its
   * count next moves.
   */
  private seed(): void {
    this.seeded = true;
    if (this.ctx.from === -Infinity) return;
    for (const [pid, p] of this.counts) {
      for (const series of COUNTER_SERIES) {
        this.out.counter(this.ctx.from, pid, p.comm, series, p.values[series]);
        p.last[series] = this.ctx.from;
      }
    }
  }

  /** the counts still held back (at the end) */
  private flushCounters(): void {
    if (!this.seeded) this.seed();
    for (const [pid, p] of this.counts) {
      for (const series of COUNTER_SERIES) {
        const held = p.pending[series];
        if (held) this.out.counter(held.ts, pid, p.comm, series, held.value);
        p.pending[series] = undefined;
      }
    }
  }

  private expireTimeWaits(now: number): void {
    const q = this.timeWaits;
    while (this.timeWaitHead < q.length && q[this.timeWaitHead].ts <= now) {
      const { ts, pid } = q[this.timeWaitHead++];
      const p = this.counts.get(pid);
      if (p && ts <= this.ctx.to) this.bump(pid, p, 'TIME_WAIT', -1, ts);
    }
    if (this.timeWaitHead > 4096 && this.timeWaitHead * 2 > q.length) {
      q.splice(0, this.timeWaitHead);
      this.timeWaitHead = 0;
    }
  }

  private close(life: Life, ts: number, timeWait: boolean): void {
    this.lives.delete(life.rec);
    if (life.counted) this.move(life.counted, -1, ts);
    life.counted = null;
    life.end = ts;
    this.settle(life);
    if (timeWait) {
      life.timeWaitEnd = ts + TIME_WAIT_NS;
      if (life.pid && this.wanted(life.pid)) {
        const p = this.counts.get(life.pid);
        if (p) {
          this.bump(life.pid, p, 'TIME_WAIT', 1, ts);
          this.timeWaits.push({ ts: life.timeWaitEnd, pid: life.pid });
        }
      }
    }
    life.kind = life.rec.state === TCP.LISTEN || life.states.some((s) => s.state === TCP.LISTEN) ? 'listener' : (life.closeWaitNs ?? 0) >= this.analyzer.options.leakAfterMs * 1e6 ? 'late' : 'closed';
    this.handOver(life);
  }

  /** takes the facts the analysis learnt over the socket's life (owner, fd, endpoints, stacks) */
  private settle(life: Life): void {
    const rec = life.rec;
    const holder = this.analyzer.table.holder(rec);
    life.pid = rec.pid;
    life.comm = rec.comm;
    life.fd = holder.fd >= 0 ? holder.fd : rec.fd;
    life.origin = rec.origin === 'accept-pending' ? 'accept' : rec.origin;
    life.local = rec.local;
    life.remote = rec.remote;
    life.stacks = { ...rec.stacks };
    life.sharedWith = [...rec.sharedWith];
    const acquire = rec.stacks.acquire;
    if (acquire !== undefined) {
      const call = life.calls.find((c) => c.kind === 'accept' || c.kind === 'connect' || c.kind === 'listen');
      if (call) call.stackId ??= acquire;
    }
  }

  private wanted(pid: number): boolean {
    return this.pidFilter === null || this.pidFilter.has(pid);
  }

  private handOver(life: Life): void {
    // a socket closed before the window is left out even when its derived TIME_WAIT reaches into it:
    // the TIME_WAIT counter counts it there (a life clipped to start after its own CLOSE would end before it began)
    const endAt = life.end ?? Infinity;
    if ((this.pidFilter && !this.pidFilter.has(life.pid)) || endAt < this.ctx.from || life.start > this.ctx.to || !life.states.length) {
      this.filtered++;
      return;
    }
    this.exported++;
    // handed over as is (a Life is a SocketLife with the builder's fields besides: no copy per socket)
    this.out.socket(clip(life, this.ctx.from, this.ctx.to));
  }
}

/** the part of a life inside [from, to]: a socket open past `to` is open at the end of the picture */
function clip(life: SocketLife, from: number, to: number): SocketLife {
  if (life.start >= from && (life.timeWaitEnd ?? life.end ?? -Infinity) <= to) return life;
  const states: TimelineState[] = [];
  for (const s of life.states) {
    if (s.ts > to) break;
    if (s.ts <= from && states.length) states[0] = { ts: from, state: s.state };
    else states.push(s.ts < from ? { ts: from, state: s.state } : s);
  }
  const end = life.end !== null && life.end <= to ? life.end : null;
  return {
    ...life,
    start: Math.max(life.start, from),
    states,
    calls: life.calls.filter((c) => c.ts >= from && c.ts <= to),
    end,
    timeWaitEnd: end !== null && life.timeWaitEnd !== null ? Math.min(life.timeWaitEnd, to) : null,
  };
}
