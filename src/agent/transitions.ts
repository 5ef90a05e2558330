/**
 * Per-workload transition counts, kept cheap: one typed array per workload,
 * indexed by (from, to), bumped once per transition with no allocation; the
 * CLOSE_WAIT durations of the sockets that left CLOSE_WAIT go to a histogram
 * at the same time (one per connection at most). Workloads are bounded by
 * --max-workloads (WorkloadCache folds the rest), so nothing here grows with
 * uptime or with process churn.
 */
import type { SocketRecord } from '../model/socket-table.js';
import { TCP } from '../model/states.js';

/** TCP states are 1..13 (BOUND_INACTIVE, 6.9+): 4 bits each */
const STATE_BITS = 4;
const CELLS = 1 << (2 * STATE_BITS);

export const UNOWNED_WORKLOAD = '~unowned';

export interface TransitionSink {
  /** a socket left CLOSE_WAIT after this long (null: it was already there at attach) */
  closeWaitEnded(workload: string, seconds: number | null): void;
}

export class TransitionCounts {
  private readonly byWorkload = new Map<string, Float64Array>();

  /** workloadOf: the workload of an owned socket's process, null when the agent's selectors leave it out */
  constructor(
    private readonly workloadOf: (rec: SocketRecord) => string | null,
    private readonly sink: TransitionSink,
  ) {}

  /** Analyzer.onTransition */
  readonly onTransition = (rec: SocketRecord, from: number, to: number, inOldNs: number | null): void => {
    const workload = rec.pid ? this.workloadOf(rec) : UNOWNED_WORKLOAD;
    if (workload === null) return;
    let cells = this.byWorkload.get(workload);
    if (!cells) this.byWorkload.set(workload, (cells = new Float64Array(CELLS)));
    cells[((from & 15) << STATE_BITS) | (to & 15)]++;
    if (from === TCP.CLOSE_WAIT) this.sink.closeWaitEnded(workload, inOldNs === null ? null : inOldNs / 1e9);
  };

  /** every non-zero (workload, from, to, count) */
  *entries(): Generator<[string, number, number, number]> {
    for (const [workload, cells] of this.byWorkload) {
      for (let i = 0; i < CELLS; i++) if (cells[i]) yield [workload, i >> STATE_BITS, i & 15, cells[i]];
    }
  }

  /** sockets of the workload that entered (to) or left (from) a state */
  total(workload: string, state: number, side: 'to' | 'from'): number {
    const cells = this.byWorkload.get(workload);
    if (!cells) return 0;
    let n = 0;
    for (let s = 0; s < 16; s++) n += cells[side === 'to' ? (s << STATE_BITS) | state : (state << STATE_BITS) | s];
    return n;
  }

  workloads(): string[] {
    return [...this.byWorkload.keys()];
  }
}
