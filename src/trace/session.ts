/**
 * A live trace: open -> configure -> load -> attach -> snapshot -> poll, then
 * stop. The library API behind `tcptrace` and `tcptrace record`; it throws,
 * never exits. Records go to sinks in batches exactly as read from the ring.
 */
import { readFileSync } from 'node:fs';
import { planAttach, type AttachPlan } from '../attach/probe.js';
import { hookPlan, type HookPlan, type SyscallHooks } from '../attach/modes.js';
import { TcptraceError } from '../errors.js';
import { logger } from '../log.js';
import { TT_COUNTER, TT_ORIGIN } from '../generated/events.js';
import { native, type MapFill, type NativeCounters, type NativeTracer } from '../native.js';
import { bootId, hostName, monotonicNs, osRelease, clockMapping } from '../sys/host.js';
import { VERSION } from '../version.js';
import { stateName, TCP } from '../model/states.js';
import { alive, descendants, snapshotSockets, toPresentEvent, type OwnedSocket } from './snapshot.js';
import { closeWaitHolders } from './holders.js';
import { StackResolver, splitStacks } from '../stacks/resolver.js';
import { listPids } from '../sys/procfs.js';
import { zeroCounters, type Counters, type EndReason, type SessionEnd, type SessionInfo, type TraceSink } from './types.js';

export interface TraceOptions {
  /** traced processes; null traces the whole system */
  pids: number[] | null;
  children: boolean;
  attachMode?: string;
  /** per-syscall tracepoints, or raw sys_enter/sys_exit (the old kernels' path) */
  syscallHooks?: SyscallHooks;
  ringBytes: number;
  /** one ring buffer per possible CPU (default), merged by time in the poller */
  ringPerCpu?: boolean;
  maxSockets: number;
  /** how often the agent drains the ring when the kernel does not wake it */
  drainIntervalMs: number;
  /** how often counters are sampled for sinks and logs */
  countersIntervalMs: number;
  /** capture user stacks at acquire / first I/O / EOF (leak attribution) */
  stacks: boolean;
  stackBytes: number;
  /** stacks per second per process */
  stackRate: number;
  /** copy and name CPython processes' Python frames (default true) */
  pythonFrames?: boolean;
  /**
   * Summary mode (with pids, without children): the kernel keeps each target
   * socket to itself until it enters CLOSE_WAIT or LISTEN (or a full stack copy
   * is sent for it), and only counts its transitions. For consumers that want
   * the report, not every event: off whenever a recording is written.
   */
  summary?: boolean;
  /** note in the kernel the cgroup each process acquires sockets in (the agent: workloads of processes gone) */
  cgroups?: boolean;
  /**
   * Summary mode, the agent: a held socket that enters CLOSE_WAIT reaches user space
   * only once it has stayed there this long; shorter stays are counted in the kernel
   * (heldCounts). 0 or absent: at once. bpf/lib/linger.bpf.h.
   */
  closeWaitMinMs?: number;
  /**
   * Summary mode, the agent: the kernel counts per process the transitions of the
   * sockets it holds back, and their brief CLOSE_WAITs (heldCounts(); held_counts.bpf.h)
   */
  heldCounts?: boolean;
  /** the brief CLOSE_WAIT histogram's upper bounds in seconds (at most 8, ascending) */
  closeWaitBoundsS?: number[];
  /** analysis settings to keep in recordings */
  analysis?: { leakAfterMs: number; top: number; intervalS?: number };
}

export const DEFAULTS = {
  ringBytes: 16 << 20,
  maxSockets: 131072,
  drainIntervalMs: 100,
  countersIntervalMs: 1000,
  stackBytes: 32768,
  stackRate: 1000,
} as const;

const log = logger('session');
/** counters reach sinks every sample; the log gets them every this many samples (10 s) */
const COUNTERS_LOG_EVERY = 10;

export class TraceSession {
  readonly info: SessionInfo;
  private readonly tracer: NativeTracer;
  private readonly targets: Set<number> | null;
  private readonly exited = new Set<number>();
  private timers: NodeJS.Timeout[] = [];
  private done: Promise<SessionEnd>;
  private resolveDone!: (e: SessionEnd) => void;
  private stopping = false;
  private lastLog = { events: 0, lost: 0, missed: 0, dropped: 0 };
  private samples = 0;
  private readonly resolver: StackResolver | null;
  /** the first error a sink threw while tracing (a recording's full disk): that sink is dropped and the trace stops */
  private failure: Error | null = null;

  private constructor(
    private readonly opts: TraceOptions,
    private sinks: TraceSink[],
    plan: AttachPlan,
    hooks: HookPlan,
    tracer: NativeTracer,
    targets: Set<number> | null,
  ) {
    this.tracer = tracer;
    this.targets = targets;
    this.resolver = opts.stacks ? new StackResolver((s) => tracer.learnStack(s), opts.pythonFrames === false ? null : (pid, cfg) => tracer.setPython(pid, cfg)) : null;
    this.done = new Promise((r) => (this.resolveDone = r));
    this.info = {
      tool: { name: 'tcptrace', version: VERSION },
      host: hostName(),
      kernel: osRelease(),
      bootId: bootId(),
      clock: clockMapping(),
      attach: { mode: plan.mode.name, chosenBy: plan.chosenBy, hooks: hooks.hooks, programs: hooks.programs, rings: tracer.rings() },
      selectors: { pids: opts.pids, children: opts.children },
      stacks: opts.stacks ? { bytes: opts.stackBytes, rate: opts.stackRate } : null,
      ...(opts.analysis ? { analysis: opts.analysis } : {}),
      summary: !!opts.summary,
      owners: kernelOwners(opts, targets) ? 'kernel' : 'agent',
      startedNs: monotonicNs(),
    };
  }

  /** Validates the targets, loads and attaches, seeds pre-existing sockets and starts delivering. */
  static open(opts: TraceOptions, sinks: TraceSink[]): TraceSession {
    let targets: Set<number> | null = null;
    if (opts.pids) {
      for (const pid of opts.pids) {
        if (!alive(pid)) throw new TcptraceError('NO_SUCH_PROCESS', `no such process: ${pid}`);
      }
      targets = new Set(opts.pids);
      if (opts.children) for (const p of descendants(opts.pids)) targets.add(p);
    }
    // a socket is held in its owners entry: the kernel keeps owners for --pid, and for the
    // whole system when stacks are on (the agent); a fork (--children) shares sockets user
    // space must then know. Summary is asked for, and possible
    opts = { ...opts, summary: !!opts.summary && kernelOwners(opts, targets) && !opts.children };
    const plan = planAttach(opts.attachMode);
    const hooks = hookPlan(plan.mode, plan.probe, opts.stacks, opts.syscallHooks);
    log.info({ mode: plan.mode.name, chosenBy: plan.chosenBy, hooks: hooks.hooks }, 'attach mode');
    // the agent's CLOSE_WAIT that lasts (bpf/lib/linger.bpf.h): a summary-mode sweep program, never attached
    const linger = !!opts.summary && (opts.closeWaitMinMs ?? 0) > 0;
    const heldCounts = !!opts.summary && (linger || !!opts.heldCounts); // lingering counts its brief stays there
    const tracer = new (native().Tracer)({
      programs: linger ? [...hooks.programs, 'publish_lingering'] : hooks.programs,
      linger,
      heldCounts,
      closeWaitBoundsNs: (opts.closeWaitBoundsS ?? []).slice(0, 8).map((s) => Math.round(s * 1e9)),
      ioViaSyscalls: hooks.ioViaSyscalls,
      filter: targets !== null,
      children: opts.children,
      ringBytes: opts.ringBytes,
      ringPerCpu: opts.ringPerCpu ?? true,
      maxSockets: opts.maxSockets,
      maxSeeds: seedsFor(opts.maxSockets),
      stacks: opts.stacks,
      stackBytes: opts.stackBytes,
      stackRate: opts.stackRate,
      summary: opts.summary,
      cgroups: !!opts.cgroups,
      owners: kernelOwners(opts, targets),
    });
    let lingerNs = 0;
    try {
      tracer.load();
      if (linger) lingerNs = applyLinger(tracer, opts.closeWaitMinMs!);
      if (targets) tracer.addTargets([...targets]);
      tracer.attach();
    } catch (err) {
      tracer.close();
      throw err;
    }
    const session = new TraceSession(opts, sinks, plan, hooks, tracer, targets);
    session.lingerNs = lingerNs;
    session.heldCountsOn = heldCounts;
    try {
      session.begin();
    } catch (err) {
      tracer.close();
      throw err;
    }
    return session;
  }

  private begin(): void {
    for (const s of this.sinks) s.begin(this.info);
    // Attached first, then snapshot: a socket created before attach is in the
    // snapshot, one created after is seen by the hooks. Two passes: the first
    // seeds owners (by cookie) so transitions during the second are attributed;
    // the second is what the report starts from.
    const pids = this.targets ? [...this.targets] : null;
    // (the first pass only seeds the kernel's owners map: without one, nothing to seed)
    if (this.info.owners === 'kernel') this.seed(snapshotSockets(pids));
    const ts = monotonicNs();
    const second = snapshotSockets(pids);
    this.seed(second);
    const present = second.map((s) => toPresentEvent(s, ts));
    for (const s of this.sinks) s.present(present);
    log.info({ sockets: present.length }, 'sockets present at attach');

    // open the targets' files now: their stacks must resolve even if they exit
    if (this.resolver && pids) for (const pid of pids) this.resolver.prepare(pid);
    // the whole system: the CPython processes running now get their Python frames from their first stack on
    else if (this.resolver) {
      const t0 = Date.now();
      const n = this.resolver.interpreters.scan(listPids());
      log.info({ python: n, ms: Date.now() - t0 }, 'CPython processes recognised at attach');
    }
    const resolver = this.resolver;
    const toSinks = (b: Buffer, records?: number) => this.eachSink((s) => s.batch(b, records));
    this.tracer.start(
      resolver
        ? (buf, stackOffsets, records) => {
            if (!stackOffsets) return toSinks(buf, records);
            // raw stack bytes stop here: sinks (and recordings) only ever see frames
            const resolved = resolver.resolveAll(buf, stackOffsets);
            splitStacks(buf, stackOffsets, toSinks, (i) => this.eachSink((s) => s.stacks([resolved[i]])));
          }
        : (buf, _stackOffsets, records) => toSinks(buf, records),
      { intervalMs: this.opts.drainIntervalMs },
    );

    this.timers.push(setInterval(() => this.sampleCounters(), this.opts.countersIntervalMs));
    if (this.lingerNs) this.timers.push(setInterval(() => this.sweepLingering(), sweepIntervalMs(this.lingerNs)));
    if (this.targets) this.timers.push(setInterval(() => this.watchTargets(), 250));
    drainLibbpf();
  }

  private seed(socks: OwnedSocket[]): void {
    if (this.info.owners !== 'kernel') return; // the table has them from the present records
    const owners = socks.map((s) => ({ cookie: s.diag.cookie, tgid: s.pid, fd: s.fd, origin: TT_ORIGIN.PREEXISTING, comm: s.comm }));
    const n = this.tracer.seedOwners(owners);
    const unseeded = owners.filter((o) => o.cookie).length - n;
    if (unseeded > 0) log.warn({ seeded: n, unseeded }, 'the seeds map is full: sockets present at attach left unattributed in the kernel (the agent attributes them from their present records)');
    const listeners = socks
      .filter((s) => s.diag.state === TCP.LISTEN)
      .map((s) => ({ netns: s.netns, port: s.diag.sport, tgid: s.pid, fd: s.fd, comm: s.comm }));
    this.tracer.seedListeners(listeners);
    log.debug({ owners: n, listeners: listeners.length }, 'seeded');
  }

  counters(): Counters {
    return toCounters(this.tracer.counters());
  }

  /** processes whose stacks the session keeps (to forget those that exited) */
  stackPids(): number[] {
    return this.resolver ? [...this.resolver.pids()] : [];
  }

  /** drops what the session keeps of an exited process: the stack ids it had */
  forgetProcess(pid: number): number[] {
    return this.resolver?.forget(pid) ?? [];
  }

  /**
   * A read of the live tracer's maps for the agent, between scrapes: once the session
   * stops (the tracer closed under a scrape) or outside summary mode, the fallback.
   */
  private whileLive<T>(read: () => T, fallback: T, summaryOnly = false): T {
    if (summaryOnly && !this.info.summary) return fallback;
    try {
      return read();
    } catch {
      return fallback;
    }
  }

  /** the cgroup v2 id a process acquired its last socket in (with the cgroups option); null: unknown */
  cgroupOf(pid: number): bigint | null {
    return this.whileLive(() => this.tracer.cgroupOf(pid), null);
  }

  /** summary mode: the sockets the kernel holds, flat [tgid, state, count, ...] (null: not summarising, or closed) */
  heldByProcess(): number[] | null {
    return this.whileLive(() => this.tracer.heldByProcess(), null, true);
  }

  /**
   * The agent: how long a held socket stays in CLOSE_WAIT before it reaches user space (ns;
   * 0: at once, also where the kernel cannot run the sweep). Shorter stays: heldCounts().
   */
  lingerNs = 0;

  /** the kernel counts held sockets per process (the agent's summary mode): heldCounts() */
  private heldCountsOn = false;

  /** a reload's new minimum (ms): at most what the session started with (its sweep runs at that pace) */
  setCloseWaitMin(ms: number): void {
    if (!this.lingerNs && !(this.opts.closeWaitMinMs ?? 0)) return;
    const ns = Math.min(Math.round(ms * 1e6), Math.round((this.opts.closeWaitMinMs ?? 0) * 1e6));
    this.lingerNs = this.whileLive(() => this.tracer.setLinger(ns).lingerNs, this.lingerNs);
  }

  /** publishes the held sockets that stayed in CLOSE_WAIT (the kernel sends them, TT_F_LATE) */
  private sweepLingering(): void {
    const ns = this.lingerNs;
    const r = this.whileLive(() => this.tracer.sweepLingering(ns), null);
    if (r?.errno) {
      // probed at load: a refusal now is new; from here on sockets are sent as they enter CLOSE_WAIT
      log.error({ errno: r.errno }, 'the kernel refused to run the CLOSE_WAIT sweep: lingering turned off');
      this.lingerNs = this.whileLive(() => this.tracer.setLinger(0).lingerNs, 0);
    }
  }

  /** the kernel's counts of held sockets per process (brief CLOSE_WAITs, transitions; null: not the agent, or closed); drops the tgids in drop */
  heldCounts(drop: number[] = []): { row: number; values: number[] } | null {
    if (!this.heldCountsOn) return null;
    return this.whileLive(() => this.tracer.heldCounts(drop), null, true);
  }

  /** summary mode's kernel-counted active closes, flat [tgid, stackId, count, ...] (null: not summarising, or closed) */
  activeCloses(drop: number[] = []): number[] | null {
    return this.whileLive(() => this.tracer.activeCloses(drop), null, true);
  }

  /** entries of every BPF hash map against its size (walks the keys: the agent caches it); [] once closed */
  mapFill(): MapFill[] {
    return this.whileLive(() => this.tracer.mapFill(), []);
  }

  private sampleCounters(): void {
    const c = this.counters();
    this.eachSink((s) => s.counters(c));
    const dropped = c.droppedBatches;
    const fields = { events: c.events, lost: c.lost, missed: c.missed, missedBy: c.missedBy, droppedBatches: dropped, filtered: c.filtered, stacks: c.stacks, stacksDeduped: c.stacksDeduped, stacksLimited: c.stacksLimited };
    if (c.lost > this.lastLog.lost || dropped > this.lastLog.dropped) {
      log.warn(fields, 'events lost: raise --ring-size, or trace fewer processes');
    } else if (c.missed > this.lastLog.missed) {
      log.warn(fields, 'events missed: the kernel skipped a hook that interrupted another BPF program on the same CPU (missedBy names the hooks)');
    } else if (++this.samples % COUNTERS_LOG_EVERY === 0) {
      log.info(fields, 'counters');
    }
    this.lastLog = { events: c.events, lost: c.lost, missed: c.missed, dropped };
    drainLibbpf();
  }

  private watchTargets(): void {
    if (!this.targets) return;
    for (const pid of this.targets) {
      if (!this.exited.has(pid) && !alive(pid)) {
        this.exited.add(pid);
        log.info({ pid }, 'traced process exited');
      }
    }
    // the trace ends when every process it was asked to follow is gone
    if (this.opts.pids && this.opts.pids.every((p) => this.exited.has(p)) && [...this.targets].every((p) => this.exited.has(p) || !alive(p))) {
      void this.stop('target-exited');
    }
  }

  /** Resolves when the session ended (stop(), or the targets exited). */
  finished(): Promise<SessionEnd> {
    return this.done;
  }

  async stop(reason: EndReason): Promise<SessionEnd> {
    if (this.stopping) return this.done;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    await this.tracer.stop(); // last drain; every batch delivered
    const end: SessionEnd = { endedNs: monotonicNs(), reason, exitedPids: [...this.exited], counters: this.counters() };
    // a close of one of several fds of a socket makes no transition: ask who holds CLOSE_WAIT sockets now
    const t0 = performance.now();
    end.holdersAtEnd = closeWaitHolders();
    log.debug({ sockets: end.holdersAtEnd.length, ms: Math.round(performance.now() - t0) }, 'CLOSE_WAIT holders at the end');
    if (this.info.summary) end.heldStates = namedStates(this.tracer.heldStates());
    const cost = this.resolver?.stats();
    if (cost) end.stackCost = cost;
    const t1 = performance.now();
    this.tracer.close();
    log.debug({ ms: Math.round(performance.now() - t1) }, 'detached and closed');
    drainLibbpf();
    for (const s of this.sinks) {
      try {
        await s.finish(end);
      } catch (err) {
        this.failure ??= err as Error;
      }
    }
    if (this.failure) end.failure = this.failure; // after the sinks: a recording does not keep it
    this.resolveDone(end);
    return end;
  }

  /** fn on every sink still working; one that throws is dropped, and the trace ends ('write-failed') */
  private eachSink(fn: (s: TraceSink) => void): void {
    let failed: TraceSink[] | null = null; // per batch: no copy of the list unless a sink fails
    for (const s of this.sinks) {
      try {
        fn(s);
      } catch (err) {
        (failed ??= []).push(s);
        this.failure ??= err as Error;
        log.error({ err: (err as Error).message }, 'stopping the trace');
      }
    }
    if (!failed) return;
    this.sinks = this.sinks.filter((s) => !failed.includes(s));
    void this.stop('write-failed');
  }
}

/** held sockets by state name; CLOSE entries are sockets never connected (a connect() that failed at once), not open ones */
function namedStates(counts: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  counts.forEach((n, state) => {
    if (n && state !== TCP.CLOSE) out[stateName(state)] = n;
  });
  return out;
}

/**
 * The kernel keeps sk -> owner when it filters (--pid) or keeps per-socket
 * stack state; the whole system without stacks sends every socket's events, and
 * the socket table attributes them from the stream (a transition costs ~0.3 us
 * less a run: README, "How it works").
 */
/**
 * The seeds map holds the sockets present at attach only: sized from the TCP sockets
 * the host has allocated now (/proc/net/sockstat "TCP: ... alloc N", every network
 * namespace), doubled for those opened before the snapshot, not from --max-sockets.
 */
export function seedsFor(maxSockets: number, sockstat: string | null = readSockstat()): number {
  const alloc = sockstat ? Number(/^TCP:.*\balloc (\d+)/m.exec(sockstat)?.[1] ?? NaN) : NaN;
  if (!Number.isFinite(alloc)) return maxSockets;
  return Math.min(maxSockets, 2 * alloc + 4096);
}

function readSockstat(): string | null {
  try {
    return readFileSync('/proc/net/sockstat', 'utf8');
  } catch {
    return null;
  }
}


/** sets the kernel's CLOSE_WAIT minimum after load; 0 where the kernel cannot test-run the sweep (before 5.10) */
function applyLinger(tracer: NativeTracer, ms: number): number {
  const r = tracer.setLinger(Math.round(ms * 1e6));
  if (r.errno) log.warn({ errno: r.errno }, 'the kernel cannot run the CLOSE_WAIT sweep (BPF_PROG_TEST_RUN of raw_tp, 5.10+): every CLOSE_WAIT socket reaches the agent when it enters CLOSE_WAIT');
  return r.lingerNs;
}

/** the sweep runs 4 times per minimum, between 50 ms and 1 s apart */
function sweepIntervalMs(lingerNs: number): number {
  return Math.min(1000, Math.max(50, Math.round(lingerNs / 4e6)));
}

function kernelOwners(opts: TraceOptions, targets: Set<number> | null): boolean {
  return targets !== null || opts.stacks;
}

function drainLibbpf(): void {
  const text = native().drainLibbpfLog();
  if (text) for (const line of text.trimEnd().split('\n')) logger('libbpf').debug(line);
}

export function toCounters(n: NativeCounters): Counters {
  const k = (i: number) => Number(n.kernel[i] ?? 0n);
  const c = zeroCounters();
  c.events = k(TT_COUNTER.EVENTS);
  c.lost = k(TT_COUNTER.RB_FULL);
  c.missedBy = n.missedBy;
  c.missed = Object.values(n.missedBy).reduce((a, b) => a + b, 0);
  c.filtered = k(TT_COUNTER.FILTERED);
  c.ownersFull = k(TT_COUNTER.OWNERS_FULL);
  c.closesFull = k(TT_COUNTER.CLOSES_FULL);
  c.lingerFull = k(TT_COUNTER.LINGER_FULL);
  c.heldCountsFull = k(TT_COUNTER.HELD_COUNTS_FULL);
  c.lingerPublished = k(TT_COUNTER.LINGER_PUBLISHED);
  c.listenersFull = k(TT_COUNTER.LISTENERS_FULL);
  c.targetsFull = k(TT_COUNTER.TARGETS_FULL);
  c.pendingFull = k(TT_COUNTER.PENDING_FULL);
  c.wakeups = k(TT_COUNTER.WAKEUPS);
  c.seededHits = k(TT_COUNTER.SEEDED_HITS);
  c.stacks = k(TT_COUNTER.STACKS);
  c.stacksLimited = k(TT_COUNTER.STACKS_LIMITED);
  c.stacksShort = k(TT_COUNTER.STACK_SHORT);
  c.stacksDeduped = k(TT_COUNTER.STACKS_DEDUPED);
  c.stacksRecalled = k(TT_COUNTER.STACKS_RECALLED);
  c.stacksBusy = k(TT_COUNTER.STACKS_BUSY);
  c.summarised = k(TT_COUNTER.SUMMARISED);
  c.records = Number(n.records);
  c.batches = Number(n.batches);
  c.droppedBatches = Number(n.droppedBatches);
  c.droppedBytes = Number(n.droppedBytes);
  c.outOfOrder = Number(n.outOfOrder ?? 0n);
  return c;
}
