/** What flows from a trace source (live session or recording) to its consumers. */
import type { PresentEvent } from '../model/events.js';
import type { ResolvedStack } from '../stacks/types.js';
import type { JavaStats, PythonStats } from '../stacks/interpreters.js';
import type { HeldSocket } from './holders.js';

export interface Counters {
  /** records the kernel submitted to the ring buffer */
  events: number;
  /** records lost because the ring buffer was full */
  lost: number;
  /**
   * program runs the kernel skipped because a BPF program was already running on
   * that CPU (a softirq interrupting a hook): events not seen at all (counted by
   * the kernel for fentry since 5.12, raw_tp since 6.2, kprobe/tracepoint since 6.7)
   */
  missed: number;
  /**
   * the same by BPF program name, e.g. raw_tp_sock_send_length (7.0+: raw_tp and
   * tp_btf programs are preemptible, so a run that preempted another task's run
   * of the same program is skipped too)
   */
  missedBy: Record<string, number>;
  /** transitions of non-target sockets dropped in the kernel (--pid) */
  filtered: number;
  ownersFull: number;
  listenersFull: number;
  targetsFull: number;
  pendingFull: number;
  /** active closes of held sockets not counted: the kernel's active_closes map was full */
  closesFull: number;
  /** held sockets published on entering CLOSE_WAIT because the lingering map was full */
  lingerFull: number;
  /** brief CLOSE_WAITs or transitions of held sockets not counted: the held_counts map was full */
  heldCountsFull: number;
  /** held sockets the agent's sweep published after they stayed in CLOSE_WAIT */
  lingerPublished: number;
  wakeups: number;
  seededHits: number;
  /** user stacks captured, and not captured because of the per-process rate limit */
  stacks: number;
  stacksLimited: number;
  stacksShort: number;
  /** stacks the kernel recognised and sent as a reference instead of a copy */
  stacksDeduped: number;
  /** stacks recognised from the kernel's walk memo, without walking the CFA rules (held sockets' too) */
  stacksRecalled: number;
  /** stacks not captured: preempted captures held that CPU's scratch records (7.0+, see scratch_take in the BPF program) */
  stacksBusy: number;
  /** transitions of held sockets the kernel only counted (summary mode) */
  summarised: number;
  /** records the agent read from the ring */
  records: number;
  batches: number;
  /** batches dropped in the agent because JS fell too far behind */
  droppedBatches: number;
  droppedBytes: number;
  /** records handed over behind a newer one: with a ring per CPU, held past the merge's hold-back */
  outOfOrder: number;
}

export function zeroCounters(): Counters {
  return {
    events: 0, lost: 0, missed: 0, missedBy: {}, filtered: 0, ownersFull: 0, listenersFull: 0, targetsFull: 0, pendingFull: 0, closesFull: 0, lingerFull: 0, heldCountsFull: 0, lingerPublished: 0,
    wakeups: 0, seededHits: 0, stacks: 0, stacksLimited: 0, stacksShort: 0, stacksDeduped: 0, stacksRecalled: 0, stacksBusy: 0, summarised: 0, records: 0, batches: 0, droppedBatches: 0, droppedBytes: 0, outOfOrder: 0,
  };
}

export interface SessionInfo {
  tool: { name: 'tcptrace'; version: string };
  host: string;
  kernel: string;
  bootId: string;
  /** wall = wallNs + (monotonic - monotonicNs) */
  clock: { monotonicNs: bigint; wallNs: bigint };
  /** rings: the ring buffers read (one per possible CPU, merged by time; or one shared); absent in older recordings */
  attach: { mode: string; chosenBy: 'probe' | 'option'; hooks: Record<string, string>; programs: string[]; rings?: number };
  selectors: { pids: number[] | null; children: boolean };
  /** stack capture settings (null: off) */
  stacks: { bytes: number; rate: number } | null;
  /** summary mode: the kernel sent only the sockets that entered CLOSE_WAIT or LISTEN (TraceOptions.summary) */
  summary?: boolean;
  /**
   * who attributes transitions to owners: the kernel's owners map (records carry
   * the owner), or, for the whole system without stacks, the agent's socket
   * table (only connect/listen births carry it). Absent in older recordings: kernel.
   */
  owners?: 'kernel' | 'agent';
  /** --leak-after/--top/--interval given to `tcptrace record`: `tcptrace report` defaults to them */
  analysis?: { leakAfterMs: number; top: number; intervalS?: number };
  startedNs: bigint;
}

export type EndReason = 'duration' | 'signal' | 'target-exited' | 'stopped' | 'interrupted' | 'write-failed';

export interface SessionEnd {
  endedNs: bigint;
  reason: EndReason;
  /** traced pids that exited during the trace */
  exitedPids: number[];
  counters: Counters;
  /** summary mode: target sockets the kernel still held at the end (never sent), by state name */
  heldStates?: Record<string, number>;
  /** why the trace stopped when reason is 'write-failed' (the recording's write error); never recorded */
  failure?: Error;
  /** who held each CLOSE_WAIT socket of the box when the trace ended (src/trace/holders.ts); absent in recordings cut short */
  holdersAtEnd?: HeldSocket[];
  /** what unwinding and symbolizing the captured stacks cost the agent */
  stackCost?: { stacks: number; distinct: number; unwindMs: number; symbolizeMs: number; unresolvedFrames: number; python?: PythonStats; java?: JavaStats };
}

/** A consumer of a trace: the live analyzer, a recorder, or both. */
export interface TraceSink {
  begin(info: SessionInfo): void;
  /** packed binary records, exactly as read from the ring buffer; records: how many, when the producer counted them */
  batch(buf: Buffer, records?: number): void;
  present(events: PresentEvent[]): void;
  /** stacks resolved from the ring, in stream order relative to batch() */
  stacks(items: ResolvedStack[]): void;
  counters(c: Counters): void;
  finish(end: SessionEnd): void | Promise<void>;
}
