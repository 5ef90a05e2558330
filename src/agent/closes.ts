/**
 * Active closes per process and acquiring code path: the connections a program
 * closed first (ESTABLISHED -> FIN_WAIT1, then TIME_WAIT), which is what makes a
 * TIME_WAIT storm and runs a client out of ephemeral ports. Two sources, never
 * the same socket twice: the kernel counts those of the sockets it holds
 * (summary mode, bpf/lib/closes.bpf.h), per (tgid, acquire stack id); the agent
 * counts those of published sockets from their transition records. An exited
 * process's counts fold into its workload's total (so the counter stays
 * monotonic) and its kernel keys are deleted.
 */
import type { SocketRecord } from '../model/socket-table.js';
import { processComm } from '../sys/procfs.js';
import { TCP } from '../model/states.js';

/** pid -> acquire stack id (0: none) -> active closes */
export type ClosesByStack = Map<number, Map<number, number>>;

function add(m: ClosesByStack, pid: number, stack: number, n: number): void {
  if (!n) return;
  let s = m.get(pid);
  if (!s) m.set(pid, (s = new Map()));
  s.set(stack, (s.get(stack) ?? 0) + n);
}

export class ActiveCloses {
  private readonly seen: ClosesByStack = new Map();
  private kernel: ClosesByStack = new Map();
  private readAt = -Infinity;
  private readonly retired = new Map<string, number>();
  /** a process's workload and name, taken when its first active close is seen (it may be gone when it is counted) */
  private readonly procs = new Map<number, { workload: string; comm: string }>();

  /**
   * kernel: reads the kernel's map, deleting the keys of the tgids in drop first
   * (null: no kernel counts, e.g. not in summary mode or not running yet)
   */
  constructor(
    private readonly kernelSource: (drop: number[]) => number[] | null,
    private readonly workloadOf: (pid: number) => string,
  ) {}

  /** Analyzer.onTransition, for the sockets the agent sees (selection applied by the caller) */
  onTransition(rec: SocketRecord, from: number, to: number): void {
    if (from === TCP.ESTABLISHED && to === TCP.FIN_WAIT1 && rec.pid) {
      add(this.seen, rec.pid, rec.stacks.acquire ?? 0, 1);
      this.note(rec.pid, rec.comm);
    }
  }

  private read(drop: number[] = []): void {
    const flat = this.kernelSource(drop);
    this.readAt = performance.now();
    if (!flat) return;
    const k: ClosesByStack = new Map();
    for (let i = 0; i + 2 < flat.length; i += 3) {
      add(k, flat[i]!, flat[i + 1]!, flat[i + 2]!);
      this.note(flat[i]!);
    }
    this.kernel = k;
  }

  private note(pid: number, comm?: string): void {
    if (this.procs.has(pid)) return;
    let name = comm ?? '';
    if (!name) {
      try {
        name = processComm(pid);
      } catch {
        // exited already
      }
    }
    this.procs.set(pid, { workload: this.workloadOf(pid), comm: name });
  }

  private workload(pid: number): string {
    return this.procs.get(pid)?.workload ?? this.workloadOf(pid);
  }

  /** the process's name as it was when its active closes were first seen */
  comm(pid: number): string {
    return this.procs.get(pid)?.comm ?? '';
  }

  /** every (pid, stack) count, both sources (the kernel's read at most once a second) */
  entries(): ClosesByStack {
    if (performance.now() - this.readAt >= 1000) this.read();
    const out: ClosesByStack = new Map();
    for (const src of [this.kernel, this.seen]) for (const [pid, s] of src) for (const [stack, n] of s) add(out, pid, stack, n);
    return out;
  }

  /** totals per workload, those of exited processes included */
  byWorkload(): Map<string, number> {
    const out = new Map(this.retired);
    for (const [pid, s] of this.entries()) {
      const w = this.workload(pid);
      let n = 0;
      for (const v of s.values()) n += v;
      out.set(w, (out.get(w) ?? 0) + n);
    }
    return out;
  }

  pids(): number[] {
    return [...new Set([...this.kernel.keys(), ...this.seen.keys()])];
  }

  /** exited processes: their counts go to their workloads' totals, their kernel keys go */
  forget(pids: number[]): void {
    if (!pids.length) return;
    this.read();
    for (const pid of pids) {
      let n = 0;
      for (const src of [this.kernel, this.seen]) for (const v of src.get(pid)?.values() ?? []) n += v;
      if (n) {
        const w = this.workload(pid);
        this.retired.set(w, (this.retired.get(w) ?? 0) + n);
      }
      this.seen.delete(pid);
      this.procs.delete(pid);
    }
    this.read(pids);
  }
}
