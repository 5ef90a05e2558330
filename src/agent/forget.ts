/**
 * Process churn: a host runs thousands of short-lived processes a day, and what
 * the agent keeps per process (stack ids and frames, CFA rules, the native
 * unwinder and its open files, closed-CLOSE_WAIT groups, active closes) must go when the
 * process does, or the agent grows with uptime. Every --forget-interval the agent
 * forgets the processes that have been gone for 2 s and that no live socket
 * names (a leak still held by a fork's child keeps its stacks).
 */
import { existsSync } from 'node:fs';
import type { Analyzer } from '../analysis/analyzer.js';

/** what the agent asks of the live session */
export interface ProcessMemory {
  stackPids(): number[];
  forgetProcess(pid: number): number[];
}

/**
 * A process is forgotten once it has been gone this long: its last records may
 * still be in the ring or in a batch being resolved when it exits (a client that
 * connects, closes and exits in a millisecond), and they need its stacks.
 */
const GONE_FOR_MS = 2000;

export class ExitedProcesses {
  forgotten = 0;
  /** exited processes, since when they were first found gone */
  private readonly goneSince = new Map<number, number>();

  constructor(
    private readonly analyzer: Analyzer,
    private readonly session: ProcessMemory,
    /** what else keeps per-process counts (active closes, the kernel's held counts): folded and dropped with the process */
    private readonly counts: { pids(): number[]; forget(pids: number[]): void }[] = [],
  ) {}

  private candidates(): Set<number> {
    const table = this.analyzer.table;
    return new Set([...this.session.stackPids(), ...(table ? table.closedPids() : []), ...this.counts.flatMap((c) => c.pids())]);
  }

  /** processes the agent keeps something of */
  tracked(): number {
    return this.candidates().size;
  }

  /** forgets the exited processes no live socket names; returns how many */
  sweep(): number {
    const table = this.analyzer.table;
    if (!table) return 0;
    const live = table.livePids();
    const gone: number[] = [];
    const now = performance.now();
    const candidates = this.candidates();
    for (const pid of this.goneSince.keys()) if (!candidates.has(pid)) this.goneSince.delete(pid);
    for (const pid of candidates) {
      if (live.has(pid) || existsSync(`/proc/${pid}`)) {
        this.goneSince.delete(pid); // alive (or its pid reused): not gone
        continue;
      }
      const since = this.goneSince.get(pid);
      if (since === undefined) this.goneSince.set(pid, now);
      if (since === undefined || now - since < GONE_FOR_MS) continue;
      this.goneSince.delete(pid);
      this.analyzer.forgetProcess(pid, this.session.forgetProcess(pid));
      gone.push(pid);
    }
    for (const c of this.counts) c.forget(gone);
    this.forgotten += gone.length;
    return gone.length;
  }
}
