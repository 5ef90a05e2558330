/**
 * The agent's Prometheus metrics (prom-client), computed at scrape time from
 * the analysis as it stands: a gauge is what the socket table holds now, so it
 * equals what `ss` shows for the process, and a process that holds no socket
 * in a counted state has no series (nothing to garbage-collect per pid).
 *
 * Labels are bounded: `workload` (src/agent/workload.ts), pid and comm, never
 * addresses, ports or stacks; past --max-workloads the rest fold into
 * `workload="~other"`, counted in tcptrace_workloads_overflow.
 */
import { readFileSync } from 'node:fs';
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { Analyzer } from '../analysis/analyzer.js';
import type { MapFill } from '../native.js';
import { TCP, stateName } from '../model/states.js';
import { monotonicNs } from '../sys/host.js';
import { nofileLimit, openFdCount, processComm } from '../sys/procfs.js';
import { VERSION } from '../version.js';
import { Selection, NO_SELECTORS } from './selection.js';
import { TransitionCounts } from './transitions.js';
import { ActiveCloses } from './closes.js';
import { HeldCounts, PASSED_TRANSITIONS, type HeldRows } from './held-counts.js';
import { cgroupV2Path, HOST_WORKLOAD, workloadOf, type Workload } from './workload.js';

export const OTHER_WORKLOAD = '~other';

/** tcptrace_close_wait_duration_seconds' upper bounds; the kernel buckets brief CLOSE_WAITs by the first CLOSE_WAIT_KERNEL_BOUNDS */
export const CLOSE_WAIT_BUCKETS_S = [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600, 21600];
export const CLOSE_WAIT_KERNEL_BOUNDS = 8; // TT_CW_BOUNDS: up to 30 s, past the longest --close-wait-min (10 s) and its sweep

export interface AgentMetricsOptions {
  maxWorkloads: number;
  /** seconds a process's series stay at 0 once it holds no CLOSE_WAIT socket (it closed them, or exited), before they go (reloadable) */
  seriesGraceS: number;
  /** the processes reported (reloadable); every process without it */
  selection?: Selection;
}

/** a process's workload, read once from /proc/PID/cgroup (a process does not change workload in practice) */
class WorkloadCache {
  private readonly byPid = new Map<number, Workload>();
  private readonly seen = new Map<string, Workload>();
  overflowed = 0;

  /** the kernel's note of where a process acquired its sockets (cgroup id to path), for processes gone */
  kernelCgroup: ((pid: number) => string | null) | null = null;
  /** workloads named from the kernel's note because /proc/PID was gone */
  fromKernel = 0;

  constructor(private readonly max: number) {}

  of(pid: number): Workload {
    let w = this.byPid.get(pid);
    if (w) return w;
    let path: string | null = null;
    try {
      path = cgroupV2Path(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
    } catch {
      // exited before it was read: where the kernel saw it acquire its sockets (its cgroup may be gone too)
      path = this.kernelCgroup?.(pid) ?? null;
      if (path) this.fromKernel++;
    }
    w = path ? workloadOf(path) : { workload: HOST_WORKLOAD, kind: 'host', cgroup: '' };
    if (!this.seen.has(w.workload)) {
      if (this.seen.size >= this.max) {
        this.overflowed++;
        w = { workload: OTHER_WORKLOAD, kind: 'host', cgroup: w.cgroup };
      } else this.seen.set(w.workload, w);
    }
    this.byPid.set(pid, w);
    return w;
  }

  /** processes that are gone: their cached workload goes (a pid is reused) */
  forget(live: Set<number>): void {
    for (const pid of this.byPid.keys()) if (!live.has(pid)) this.byPid.delete(pid);
  }

  workloads(): Workload[] {
    return [...this.seen.values()];
  }
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly workloads: WorkloadCache;
  readonly transitions: TransitionCounts;

  /** processes that had series: their labels, and when they last held a CLOSE_WAIT socket (performance.now() ms) */
  private readonly recent = new Map<number, { labels: ProcessRow['labels']; seenMs: number }>();

  constructor(
    private readonly analyzer: Analyzer,
    private readonly opts: AgentMetricsOptions,
  ) {
    this.workloads = new WorkloadCache(opts.maxWorkloads);
    this.selection = opts.selection ?? new Selection(NO_SELECTORS, null);
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    // prom-client 15 names three gauges *_total, which `promtool check metrics`
    // rejects (only counters end in _total); nodejs_active_{handles,requests,resources}
    // by type stay and sum to the same numbers
    for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) r.removeSingleMetric(n);
    const self = this;
    const perProcess = ['workload', 'pid', 'comm'] as const;

    // counted as the transitions arrive (src/agent/transitions.ts) and, for the brief
    // CLOSE_WAITs, by the kernel (src/agent/held-counts.ts): both in one histogram at scrape
    const durations = new DurationHistogram(
      'tcptrace_close_wait_duration_seconds',
      'time in CLOSE_WAIT of the sockets that left it (closed by the program, or reset): a slow close, next to a leak',
      CLOSE_WAIT_BUCKETS_S,
      () => self.heldCounts.byWorkload(),
    );
    r.registerMetric(durations as unknown as Metric); // the registry calls get(): see DurationHistogram
    this.transitions = new TransitionCounts((rec) => (this.selects(rec.pid, rec.comm) ? this.workloads.of(rec.pid).workload : null), {
      closeWaitEnded: (workload, seconds) => {
        if (seconds !== null) durations.observe(workload, seconds);
      },
    });
    this.heldCounts = new HeldCounts(
      (drop) => this.heldCountsSource?.(drop) ?? null,
      (pid, comm) => (this.selects(pid, comm) ? this.workloads.of(pid).workload : null),
    );
    this.activeCloses = new ActiveCloses((drop) => this.closesSource?.(drop) ?? null, (pid) => this.workloads.of(pid).workload);
    const counted = this.transitions.onTransition;
    analyzer.onTransition = (rec, from, to, inOldNs) => {
      counted(rec, from, to, inOldNs);
      if (to === TCP.FIN_WAIT1 && rec.pid && this.selects(rec.pid, rec.comm)) this.activeCloses.onTransition(rec, from, to);
    };
    new Counter({
      name: 'tcptrace_active_closes_total',
      help: 'connections a workload closed first (ESTABLISHED to FIN_WAIT1, then TIME_WAIT): a TIME_WAIT storm; by code path in the profile (active_closes)',
      labelNames: ['workload'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const [workload, n] of self.activeCloses.byWorkload()) this.inc({ workload }, n);
      },
    });
    new Counter({
      name: 'tcptrace_transitions_total',
      help: 'TCP state transitions of the sockets of a workload',
      labelNames: ['workload', 'from', 'to'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const [workload, from, to, n] of self.transitions.entries()) this.inc({ workload, from: stateName(from), to: stateName(to) }, n);
        for (const [workload, b] of self.heldCounts.byWorkload()) {
          // the transitions of the sockets the kernel held back and never sent
          b.passed.forEach((n, i) => {
            const t = PASSED_TRANSITIONS[i];
            if (n && t) this.inc({ workload, from: t[0], to: t[1] }, n);
          });
          // the kernel's brief CLOSE_WAITs: in (from ESTABLISHED, where a FIN lands) and out
          const n = b.toLastAck + b.toClose;
          if (!n) continue;
          this.inc({ workload, from: 'ESTABLISHED', to: 'CLOSE_WAIT' }, n);
          if (b.toLastAck) this.inc({ workload, from: 'CLOSE_WAIT', to: 'LAST_ACK' }, b.toLastAck);
          if (b.toClose) this.inc({ workload, from: 'CLOSE_WAIT', to: 'CLOSE' }, b.toClose);
        }
      },
    });
    for (const [name, help, side] of [
      ['tcptrace_close_wait_entered_total', 'sockets of a workload that entered CLOSE_WAIT (the peer closed first)', 'to'],
      ['tcptrace_close_wait_closed_total', 'sockets of a workload that left CLOSE_WAIT (the program closed them, or they were reset)', 'from'],
    ] as const) {
      new Counter({
        name,
        help,
        labelNames: ['workload'] as const,
        registers: [r],
        collect() {
          this.reset();
          for (const workload of self.transitions.workloads()) this.inc({ workload }, self.transitions.total(workload, TCP.CLOSE_WAIT, side));
          // the brief ones, counted by the kernel: each entered and left
          for (const [workload, b] of self.heldCounts.byWorkload()) if (b.toLastAck + b.toClose) this.inc({ workload }, b.toLastAck + b.toClose);
        },
      });
    }

    new Gauge({
      name: 'tcptrace_close_wait_sockets',
      help: 'sockets of the process now in CLOSE_WAIT: the peer closed, the program has not (what `ss -tanp state close-wait` shows, once a socket has stayed --close-wait-min)',
      labelNames: perProcess,
      registers: [r],
      collect() {
        this.reset();
        for (const p of self.processes()) this.set(p.labels, p.closeWait);
      },
    });
    new Gauge({
      name: 'tcptrace_leaked_sockets',
      help: 'sockets of the process in CLOSE_WAIT for --leak-after or longer, not closed',
      labelNames: perProcess,
      registers: [r],
      collect() {
        this.reset();
        for (const p of self.processes()) this.set(p.labels, p.leaked);
      },
    });
    new Gauge({
      name: 'tcptrace_close_wait_oldest_seconds',
      help: "how long the process's oldest CLOSE_WAIT socket has been in CLOSE_WAIT (a lower bound for sockets older than the agent)",
      labelNames: perProcess,
      registers: [r],
      collect() {
        this.reset();
        for (const p of self.processes()) this.set(p.labels, p.oldestS);
      },
    });
    // fds against the limit, as doctor's fd-limit check measures them: "Too many open files" is where a leak ends
    new Gauge({
      name: 'tcptrace_process_open_fds',
      help: 'open fds of a process that holds CLOSE_WAIT sockets (/proc/PID/fd)',
      labelNames: perProcess,
      registers: [r],
      collect() {
        this.reset();
        for (const p of self.processes()) if (p.openFds !== null) this.set(p.labels, p.openFds);
      },
    });
    new Gauge({
      name: 'tcptrace_process_max_fds',
      help: 'soft RLIMIT_NOFILE of a process that holds CLOSE_WAIT sockets (absent when unlimited)',
      labelNames: perProcess,
      registers: [r],
      collect() {
        this.reset();
        for (const p of self.processes()) if (p.maxFds !== null) this.set(p.labels, p.maxFds);
      },
    });
    new Gauge({
      name: 'tcptrace_sockets',
      help: 'traced sockets per workload and TCP state',
      labelNames: ['workload', 'state'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const [k, n] of self.byState()) {
          const [workload, state] = k.split('\0');
          this.set({ workload, state }, n);
        }
      },
    });
    new Gauge({
      name: 'tcptrace_workload_info',
      help: 'where a workload runs: its kind and, when known, unit, container and pod (join on workload)',
      labelNames: ['workload', 'kind', 'unit', 'container_id', 'pod_uid', 'namespace', 'pod', 'container'] as const,
      registers: [r],
      collect() {
        this.reset();
        for (const w of self.workloads.workloads()) {
          this.set({ workload: w.workload, kind: w.kind, unit: w.unit ?? '', container_id: w.containerId ?? '', pod_uid: w.podUid ?? '', namespace: w.namespace ?? '', pod: w.pod ?? '', container: w.container ?? '' }, 1);
        }
      },
    });
    new Gauge({
      name: 'tcptrace_workloads',
      help: 'workloads with series of their own (at most --max-workloads)',
      registers: [r],
      collect() {
        this.set(self.workloads.workloads().length);
      },
    });
    new Gauge({
      name: 'tcptrace_tracked_processes',
      help: 'processes the agent keeps stacks or closed-socket history of (exited ones are forgotten every --forget-interval)',
      registers: [r],
      collect() {
        this.set(self.processMemory?.tracked() ?? 0);
      },
    });
    new Counter({
      name: 'tcptrace_forgotten_processes_total',
      help: 'exited processes whose stacks and history the agent dropped',
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.processMemory?.forgotten ?? 0);
      },
    });
    new Counter({
      name: 'tcptrace_workloads_from_kernel_total',
      help: "processes named from the cgroup the kernel saw them acquire sockets in: gone before /proc/PID/cgroup was read",
      registers: [r],
      collect() {
        this.reset();
        this.inc(self.workloads.fromKernel);
      },
    });
    new Gauge({
      name: 'tcptrace_workloads_overflow',
      help: 'processes whose workload was folded into workload="~other" (past --max-workloads)',
      registers: [r],
      collect() {
        this.set(self.workloads.overflowed);
      },
    });
    // the agent's own health, from the kernel and ring counters (monotonic: counters)
    const health: [string, string, (c: Analyzer['lastCounters']) => number][] = [
      ['tcptrace_events_total', 'records read from the ring buffers', (c) => c.records],
      ['tcptrace_lost_events_total', 'records the kernel could not put in a full ring buffer', (c) => c.lost],
      ['tcptrace_missed_in_kernel_total', 'hook runs the kernel skipped (a BPF program already running on the CPU)', (c) => c.missed],
      ['tcptrace_dropped_batches_total', 'batches the agent dropped because it fell behind', (c) => c.droppedBatches],
      ['tcptrace_summarised_transitions_total', 'transitions of sockets the kernel holds (never in CLOSE_WAIT or LISTEN yet), counted there and not sent', (c) => c.summarised],
      ['tcptrace_bpf_map_full_total', 'sockets, listeners or processes the kernel could not track: its owners, seeds, listeners, lingering or held_counts map was full', (c) => c.ownersFull + c.listenersFull + c.lingerFull + c.heldCountsFull],
      ['tcptrace_close_wait_published_late_total', 'CLOSE_WAIT sockets the kernel sent once they had stayed --close-wait-min', (c) => c.lingerPublished],
    ];
    for (const [name, help, get] of health) {
      let was = 0;
      new Counter({
        name,
        help,
        registers: [r],
        collect() {
          // a Counter cannot be set: move it by what the session counted since the last scrape
          const now = get(self.analyzer.lastCounters);
          if (now > was) this.inc(now - was);
          was = Math.max(was, now);
        },
      });
    }
    // map fill, per BPF hash map: a full map is counted in the *_full counters, this shows it coming
    const fill = (pick: (m: MapFill) => number) =>
      function (this: Gauge<'map'>) {
        this.reset();
        for (const m of self.mapFill()) this.set({ map: m.map }, pick(m));
      };
    new Gauge({ name: 'tcptrace_bpf_map_entries', help: 'entries in a BPF hash map of the agent (counted at most every 15 s; LRU stack caches are full by design)', labelNames: ['map'] as const, registers: [r], collect: fill((m) => m.entries) });
    new Gauge({ name: 'tcptrace_bpf_map_max_entries', help: 'the size of a BPF hash map of the agent (--max-sockets sizes owners and seeds)', labelNames: ['map'] as const, registers: [r], collect: fill((m) => m.maxEntries) });
    new Counter({
      name: 'tcptrace_profile_pushes_total',
      help: 'profiles pushed to --pyroscope-url, by result (absent without it)',
      labelNames: ['result'] as const,
      registers: [r],
      collect() {
        this.reset();
        if (!self.pushes) return;
        this.inc({ result: 'success' }, self.pushes.success);
        this.inc({ result: 'failure' }, self.pushes.failure);
      },
    });
    new Counter({
      name: 'tcptrace_config_reloads_total',
      help: 'reloads of the settings (SIGHUP, POST /-/reload), by result; a failed one left the running settings as they were',
      labelNames: ['result'] as const,
      registers: [r],
      collect() {
        this.reset();
        this.inc({ result: 'success' }, self.reloads.success);
        this.inc({ result: 'failure' }, self.reloads.failure);
      },
    });
    new Gauge({
      name: 'tcptrace_config_last_reload_successful',
      help: 'whether the last reload of the settings succeeded (1) or was refused (0)',
      registers: [r],
      collect() {
        this.set(self.reloads.lastOk ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tcptrace_config_last_reload_success_timestamp_seconds',
      help: 'when the settings were last loaded (start, or a successful reload)',
      registers: [r],
      collect() {
        this.set(self.reloads.lastAt);
      },
    });
    new Gauge({
      name: 'tcptrace_build_info',
      help: 'the agent build (value 1)',
      labelNames: ['version'] as const,
      registers: [r],
      collect() {
        this.set({ version: VERSION }, 1);
      },
    });
  }

  /** brief CLOSE_WAITs and transitions of held sockets per process, counted by the kernel (src/agent/held-counts.ts) */
  readonly heldCounts: HeldCounts;
  /** the session's kernel-held counts (flat rows), once it runs */
  heldCountsSource: ((drop: number[]) => HeldRows | null) | null = null;

  /** active closes per process and acquire stack (src/agent/closes.ts) */
  readonly activeCloses: ActiveCloses;
  /** the session's kernel-counted active closes, once it runs */
  closesSource: ((drop: number[]) => number[] | null) | null = null;

  /** the agent's per-process memory (src/agent/forget.ts), once the session runs */
  processMemory: { tracked(): number; forgotten: number } | null = null;

  /** --pyroscope-url's push outcomes (null: not pushing) */
  pushes: { success: number; failure: number } | null = null;

  /** summary mode: the sockets the kernel holds by (tgid, state), once the session runs */
  heldSource: (() => number[] | null) | null = null;
  /** walked at most every 5 s (the owners map, one lookup per socket) */
  private readonly held = cachedFor<number[]>(5000, [], () => (this.heldSource ? (this.heldSource() ?? []) : undefined));

  /** the session's map fill, once it runs (set by the agent command) */
  mapFillSource: (() => MapFill[]) | null = null;
  /** walking every map's keys costs up to ~0.1 s when they are full: at most every 15 s, whatever the scrape interval */
  private readonly mapFill = cachedFor<MapFill[]>(15_000, [], () => this.mapFillSource?.());

  /** the processes reported: set again by a reload */
  selection: Selection;
  private reloads = { success: 0, failure: 0, lastOk: true, lastAt: Date.now() / 1000 };

  /** a reload was tried: counted, and its outcome is a gauge (as Prometheus' own) */
  noteReload(ok: boolean): void {
    this.reloads[ok ? 'success' : 'failure']++;
    this.reloads.lastOk = ok;
    if (ok) this.reloads.lastAt = Date.now() / 1000;
    this.cache = null;
  }

  /** seriesGraceS and the selection, from a reload */
  configure(opts: { seriesGraceS: number; selection: Selection }): void {
    this.opts.seriesGraceS = opts.seriesGraceS;
    this.selection = opts.selection;
    this.cache = null;
  }

  /** the agent reports this process (its selectors name it) */
  selects(pid: number, comm: string): boolean {
    return this.selection.selects(pid, comm, () => this.workloads.of(pid));
  }

  /** a process's cgroup from the kernel (the session's note, resolved through the cgroup tree) */
  set kernelCgroup(f: ((pid: number) => string | null) | null) {
    this.workloads.kernelCgroup = f;
  }

  /** the workload a process runs in (cached per pid; the pprof labels use it too) */
  workloadOf(pid: number): Workload {
    return this.workloads.of(pid);
  }

  private cache: { at: number; procs: ProcessRow[]; states: Map<string, number> } | null = null;

  /** one pass over the table per scrape (every collect() of that scrape reads it) */
  private pass(): { procs: ProcessRow[]; states: Map<string, number> } {
    const now = performance.now();
    if (this.cache && now - this.cache.at < 100) return this.cache;
    if (!this.analyzer.table) return { procs: [], states: new Map() }; // scraped before the session began
    const doc = this.analyzer.snapshot(monotonicNs());
    const leakAfter = this.analyzer.options.leakAfterMs;
    const rows = new Map<number, ProcessRow>();
    for (const e of doc.closeWait) {
      if (!this.selects(e.pid, e.comm)) continue;
      let row = rows.get(e.pid);
      if (!row) {
        const w = this.workloads.of(e.pid);
        rows.set(e.pid, (row = { labels: { workload: w.workload, pid: String(e.pid), comm: e.comm }, closeWait: 0, leaked: 0, oldestS: 0, ...fdFigures(e.pid) }));
      }
      row.closeWait++;
      if (e.closeWaitMs >= leakAfter) row.leaked++;
      row.oldestS = Math.max(row.oldestS, e.closeWaitMs / 1000);
    }
    // a process that stops holding CLOSE_WAIT sockets (closed, or exited) shows 0 for the grace
    // period, then its series go: a graph or an alert sees the leak end rather than the data stop
    for (const [pid, row] of rows) this.recent.set(pid, { labels: row.labels, seenMs: now });
    for (const [pid, r] of this.recent) {
      if (rows.has(pid)) continue;
      // past the grace period, or no longer selected (a reload): gone
      if (now - r.seenMs >= this.opts.seriesGraceS * 1000 || !this.selects(pid, r.labels.comm)) this.recent.delete(pid);
      else rows.set(pid, { labels: r.labels, closeWait: 0, leaked: 0, oldestS: 0, openFds: null, maxFds: null });
    }
    const states = new Map<string, number>();
    const pids = new Set<number>();
    for (const rec of this.analyzer.table.live.values()) {
      if (rec.state === TCP.CLOSE || !rec.pid) continue;
      pids.add(rec.pid);
      if (!this.selects(rec.pid, rec.comm)) continue;
      const k = `${this.workloads.of(rec.pid).workload}\0${stateName(rec.state)}`;
      states.set(k, (states.get(k) ?? 0) + 1);
    }
    // summary mode: the sockets the kernel holds (never in CLOSE_WAIT or LISTEN yet) count too
    const held = this.held();
    for (let i = 0; i + 2 < held.length; i += 3) {
      const pid = held[i]!;
      if (!this.selection.selects(pid, () => commOrEmpty(pid), () => this.workloads.of(pid))) continue;
      pids.add(pid);
      const k = `${this.workloads.of(pid).workload}\0${stateName(held[i + 1]!)}`;
      states.set(k, (states.get(k) ?? 0) + held[i + 2]!);
    }
    this.workloads.forget(pids);
    this.selection.forget(pids);
    this.cache = { at: now, procs: [...rows.values()], states };
    return this.cache;
  }

  private processes(): ProcessRow[] {
    return this.pass().procs;
  }

  private byState(): Map<string, number> {
    return this.pass().states;
  }
}

/**
 * A histogram per workload of the observations made here and the kernel's own
 * bucket counts (its bounds are the first CLOSE_WAIT_KERNEL_BOUNDS of these; its
 * last bucket, past them, counts only in +Inf). prom-client's Histogram cannot
 * take counts it did not observe, so this is a Metric of its own, formatted by the
 * registry as any other.
 */
class DurationHistogram {
  readonly type = 'histogram'; // prom-client's typings say an enum, its registry reads this string
  readonly aggregator = 'sum';
  private readonly own = new Map<string, { buckets: Float64Array; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: number[],
    private readonly kernel: () => Map<string, { sumS: number; buckets: number[] }>,
  ) {}

  observe(workload: string, seconds: number): void {
    let h = this.own.get(workload);
    if (!h) this.own.set(workload, (h = { buckets: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 }));
    let i = 0;
    while (i < this.bounds.length && seconds > this.bounds[i]!) i++;
    h.buckets[i]++;
    h.sum += seconds;
    h.count++;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: HistogramValue[] }> {
    const rows = new Map<string, { buckets: Float64Array; sum: number; count: number }>();
    for (const [w, h] of this.own) rows.set(w, { buckets: Float64Array.from(h.buckets), sum: h.sum, count: h.count });
    for (const [w, k] of this.kernel()) {
      let n = 0;
      for (const c of k.buckets) n += c;
      if (!n) continue;
      let h = rows.get(w);
      if (!h) rows.set(w, (h = { buckets: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 }));
      // bucket i <= bounds[i] for i < kernel bounds; the kernel's last one (past them) only in +Inf
      k.buckets.forEach((c, i) => (h.buckets[i < CLOSE_WAIT_KERNEL_BOUNDS ? i : this.bounds.length] += c));
      h.sum += k.sumS;
      h.count += n;
    }
    const values: HistogramValue[] = [];
    for (const [workload, h] of rows) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += h.buckets[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { workload, le }, value: acc });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { workload, le: '+Inf' }, value: h.count });
      values.push({ metricName: `${this.name}_sum`, labels: { workload }, value: h.sum });
      values.push({ metricName: `${this.name}_count`, labels: { workload }, value: h.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.own.clear();
  }
}

interface HistogramValue {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

interface ProcessRow {
  labels: { workload: string; pid: string; comm: string };
  closeWait: number;
  leaked: number;
  oldestS: number;
  /** null: the process is gone, or its fds cannot be read */
  openFds: number | null;
  maxFds: number | null;
}

/** /proc/PID/comm ('' once it exited) */
function commOrEmpty(pid: number): string {
  try {
    return processComm(pid);
  } catch {
    return '';
  }
}

/** a process's open fds and soft fd limit (null where unreadable: it exited, or /proc is hidden) */
function fdFigures(pid: number): { openFds: number | null; maxFds: number | null } {
  let openFds: number | null = null;
  let maxFds: number | null = null;
  try {
    openFds = openFdCount(pid);
  } catch {
    // gone, or not ours to read
  }
  try {
    maxFds = nofileLimit(pid).soft;
  } catch {
    // gone
  }
  return { openFds, maxFds };
}

/**
 * f's value, computed again at most every ms (a walk of a kernel map per scrape would
 * cost what a fast scraper asks); while f has nothing yet (undefined: no session),
 * none, and nothing cached.
 */
function cachedFor<T>(ms: number, none: T, f: () => T | undefined): () => T {
  let at = -Infinity;
  let value = none;
  return () => {
    const now = performance.now();
    if (now - at >= ms) {
      const v = f();
      if (v === undefined) return none;
      value = v;
      at = now;
    }
    return value;
  };
}
