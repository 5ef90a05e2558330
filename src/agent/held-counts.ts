/**
 * What the kernel counts, per process, of the sockets it holds back and never sends
 * (bpf/lib/held_counts.bpf.h): brief CLOSE_WAITs, the sockets that passed through
 * CLOSE_WAIT and left it (closed by their program, or reset) before
 * --close-wait-min, and the transitions held sockets passed. A server whose
 * clients close first has a brief CLOSE_WAIT per connection; counting them in the
 * kernel is what keeps the agent cheap under churn. They add to the CLOSE_WAIT
 * entered and closed counters, the transitions, and the duration histogram (the
 * kernel buckets them by the histogram's first bounds). An exited process's counts
 * fold into its workload's total (so the counters stay monotonic) and its kernel
 * key is deleted, as for active closes (closes.ts).
 */
import { TT_PASSED } from '../generated/events.js';
import { processComm } from '../sys/procfs.js';

/** one row of the kernel's held_counts map (session.heldCounts): brief CLOSE_WAITs, how they left and how long they stayed; transitions passed */
export interface HeldRow {
  toLastAck: number;
  toClose: number;
  sumS: number;
  /** per bucket of the kernel's bounds, the last one past them */
  buckets: number[];
  /** per enum tt_passed */
  passed: number[];
}

/** the kernel's flat rows: the numbers a row has, and the rows (tgid first) */
export interface HeldRows {
  row: number;
  values: number[];
}

/** numbers a row starts with: tgid, to LAST_ACK, to CLOSE, sum (ns); then the buckets, then the transitions */
const HEAD = 4;
const PASSED = TT_PASSED._MAX;

/**
 * [from, to] of each enum tt_passed, split from its name (FROM__TO); null for OTHER, a
 * transition outside the list (a rare simultaneous open), left out of the metrics
 */
export const PASSED_TRANSITIONS: ([string, string] | null)[] = Array.from({ length: PASSED }, (_, i) => {
  const name = Object.entries(TT_PASSED).find(([, v]) => v === i)?.[0] ?? '';
  const parts = name.split('__');
  return parts.length === 2 ? [parts[0]!, parts[1]!] : null;
});

function addTo(into: HeldRow, row: HeldRow): void {
  into.toLastAck += row.toLastAck;
  into.toClose += row.toClose;
  into.sumS += row.sumS;
  for (let i = 0; i < row.buckets.length; i++) into.buckets[i] = (into.buckets[i] ?? 0) + row.buckets[i]!;
  for (let i = 0; i < row.passed.length; i++) into.passed[i] = (into.passed[i] ?? 0) + row.passed[i]!;
}

function empty(): HeldRow {
  return { toLastAck: 0, toClose: 0, sumS: 0, buckets: [], passed: [] };
}

export class HeldCounts {
  private kernel = new Map<number, HeldRow>();
  private readAt = -Infinity;
  private readonly retired = new Map<string, HeldRow>();
  /** a process's workload (null: the selectors leave it out), taken when it is first seen (it may be gone later) */
  private readonly procs = new Map<number, string | null>();

  /**
   * kernelSource: reads the kernel's map as flat rows, deleting the keys of the tgids in
   * drop first (null: none, the agent does not linger); workloadOf: the process's workload,
   * or null when the agent's selectors leave it out
   */
  constructor(
    private readonly kernelSource: (drop: number[]) => HeldRows | null,
    private readonly workloadOf: (pid: number, comm: string) => string | null,
  ) {}

  private read(drop: number[] = []): void {
    const rows = this.kernelSource(drop);
    this.readAt = performance.now();
    if (!rows) return;
    const { row, values } = rows;
    const buckets = row - HEAD - PASSED;
    if (buckets < 1) throw new Error(`held_counts rows of ${row} numbers: the addon and the generated decoder disagree`);
    const k = new Map<number, HeldRow>();
    for (let i = 0; i + row <= values.length; i += row) {
      const pid = values[i]!;
      k.set(pid, {
        toLastAck: values[i + 1]!,
        toClose: values[i + 2]!,
        sumS: values[i + 3]! / 1e9,
        buckets: values.slice(i + HEAD, i + HEAD + buckets),
        passed: values.slice(i + HEAD + buckets, i + row),
      });
      this.note(pid);
    }
    this.kernel = k;
  }

  private note(pid: number): void {
    if (this.procs.has(pid)) return;
    let comm = '';
    try {
      comm = processComm(pid);
    } catch {
      // exited already: its workload comes from the kernel's cgroup note, if any
    }
    this.procs.set(pid, this.workloadOf(pid, comm));
  }

  /** per workload, those of exited processes included (the kernel's map read at most once a second) */
  byWorkload(): Map<string, HeldRow> {
    if (performance.now() - this.readAt >= 1000) this.read();
    const out = new Map<string, HeldRow>();
    const into = (w: string): HeldRow => {
      let c = out.get(w);
      if (!c) out.set(w, (c = empty()));
      return c;
    };
    for (const [w, c] of this.retired) addTo(into(w), c);
    for (const [pid, c] of this.kernel) {
      const w = this.procs.get(pid);
      if (w) addTo(into(w), c);
    }
    return out;
  }

  pids(): number[] {
    return [...this.kernel.keys()];
  }

  /** exited processes: their counts go to their workloads' totals, their kernel keys go */
  forget(pids: number[]): void {
    if (!pids.length) return;
    this.read();
    for (const pid of pids) {
      const c = this.kernel.get(pid);
      const w = this.procs.get(pid);
      if (c && w) {
        let r = this.retired.get(w);
        if (!r) this.retired.set(w, (r = empty()));
        addTo(r, c);
      }
      this.procs.delete(pid);
    }
    this.read(pids);
  }
}
