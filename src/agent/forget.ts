/**
 * Process churn: a host runs thousands of short-lived processes a day, and what
 * the agent keeps per process (stack ids and frames, CFA rules, the native
 * unwinder and its open files, closed-CLOSE_WAIT groups) must go when the
 * process does, or the agent grows with uptime. Every --forget-interval the agent
 * forgets the processes that have exited and that no live socket names (a leak
 * still held by a fork's child keeps its stacks).
 */
import { existsSync } from 'node:fs';
import type { Analyzer } from '../analysis/analyzer.js';

/** what the agent asks of the live session */
export interface ProcessMemory {
  stackPids(): number[];
  forgetProcess(pid: number): number[];
}

export class ExitedProcesses {
  forgotten = 0;

  constructor(
    private readonly analyzer: Analyzer,
    private readonly session: ProcessMemory,
  ) {}

  private candidates(): Set<number> {
    const table = this.analyzer.table;
    return new Set([...this.session.stackPids(), ...(table ? table.closedPids() : [])]);
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
    let n = 0;
    for (const pid of this.candidates()) {
      if (live.has(pid) || existsSync(`/proc/${pid}`)) continue;
      this.analyzer.forgetProcess(pid, this.session.forgetProcess(pid));
      n++;
    }
    this.forgotten += n;
    return n;
  }
}
