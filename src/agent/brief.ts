/**
 * Brief CLOSE_WAITs: the sockets that passed through CLOSE_WAIT and left it
 * (closed by their program, or reset) before --close-wait-min, which the kernel
 * counts per process and never sends (bpf/lib/linger.bpf.h). A server whose
 * clients close first has one per connection; counting them in the kernel is
 * what keeps the agent cheap under churn. They add to the CLOSE_WAIT entered and
 * closed counters, the CLOSE_WAIT transitions, and the duration histogram (the
 * kernel buckets them by the histogram's first bounds). An exited process's
 * counts fold into its workload's total (so the counters stay monotonic) and its
 * kernel key is deleted, as for active closes (closes.ts).
 */
import { processComm } from '../sys/procfs.js';

/** one row of the kernel's close_wait_brief map (session.briefCloseWaits): how many left, how, and how long they stayed */
export interface BriefCounts {
  toLastAck: number;
  toClose: number;
  sumS: number;
  /** per bucket of the kernel's bounds, the last one past them */
  buckets: number[];
}

/** numbers per row of the flat kernel rows: tgid, to LAST_ACK, to CLOSE, sum (ns), then the buckets */
const HEAD = 4;

function addTo(into: BriefCounts, row: BriefCounts): void {
  into.toLastAck += row.toLastAck;
  into.toClose += row.toClose;
  into.sumS += row.sumS;
  for (let i = 0; i < row.buckets.length; i++) into.buckets[i] = (into.buckets[i] ?? 0) + row.buckets[i]!;
}

function empty(): BriefCounts {
  return { toLastAck: 0, toClose: 0, sumS: 0, buckets: [] };
}

export class BriefCloseWaits {
  private kernel = new Map<number, BriefCounts>();
  private readAt = -Infinity;
  private readonly retired = new Map<string, BriefCounts>();
  /** a process's workload (null: the selectors leave it out), taken when it is first seen (it may be gone later) */
  private readonly procs = new Map<number, string | null>();

  /**
   * kernelSource: reads the kernel's map as flat rows, deleting the keys of the tgids in
   * drop first (null: none, the agent does not linger); workloadOf: the process's workload,
   * or null when the agent's selectors leave it out
   */
  constructor(
    private readonly kernelSource: (drop: number[]) => number[] | null,
    private readonly workloadOf: (pid: number, comm: string) => string | null,
    readonly rowLength: number,
  ) {}

  private read(drop: number[] = []): void {
    const flat = this.kernelSource(drop);
    this.readAt = performance.now();
    if (!flat) return;
    const k = new Map<number, BriefCounts>();
    for (let i = 0; i + this.rowLength <= flat.length; i += this.rowLength) {
      const pid = flat[i]!;
      k.set(pid, { toLastAck: flat[i + 1]!, toClose: flat[i + 2]!, sumS: flat[i + 3]! / 1e9, buckets: flat.slice(i + HEAD, i + this.rowLength) });
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
  byWorkload(): Map<string, BriefCounts> {
    if (performance.now() - this.readAt >= 1000) this.read();
    const out = new Map<string, BriefCounts>();
    const into = (w: string): BriefCounts => {
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
