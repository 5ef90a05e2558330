/**
 * The analysis behind both the live command and `tcptrace report`: decodes
 * record batches, keeps the socket table, prints live lines if asked, and
 * builds the final report. Live and offline feed it the same batches in the
 * same order, so they produce the same report.
 */
import { forEachRecord, type DecodeStats, type RecordView } from '../decode.js';
import type { TransitionEvent, SockcallEvent } from '../model/events.js';
import { SocketTable, type Applied, type SocketRecord, type StackSighting } from '../model/socket-table.js';
import type { PresentEvent } from '../model/events.js';
import { zeroCounters, type Counters, type SessionEnd, type SessionInfo, type TraceSink } from '../trace/types.js';
import { buildReport, type ReportDoc } from './report-doc.js';
import type { Frame, ResolvedStack } from '../stacks/types.js';
import { DEFAULT_ANALYSIS, type AnalysisOptions, type AnalysisState } from './state.js';

export { DEFAULT_ANALYSIS, type AnalysisOptions } from './state.js';

export interface LiveLine {
  ev: TransitionEvent | SockcallEvent;
  applied: Applied | null;
}

export class Analyzer implements TraceSink, AnalysisState {
  table!: SocketTable;
  info!: SessionInfo;
  lastCounters: Counters = zeroCounters();
  readonly decodeStats: DecodeStats = { records: 0, unknown: 0 };
  private report: ReportDoc | null = null;
  /** set to receive one call per transition/sockcall (live output); unset in --quiet */
  onLine?: (line: LiveLine) => void;
  /** every transition applied (not duplicates), allocation-free: the agent's counters */
  onTransition?: (rec: SocketRecord, oldState: number, newState: number, inOldNs: number | null) => void;
  onFinish?: (report: ReportDoc, end: SessionEnd) => void | Promise<void>;
  /**
   * set to see every stack sighting after it is attached to its socket (the
   * timeline export draws first write and EOF read from them). A stackref is
   * a decoder view, valid only during the call.
   */
  onStack?: (st: StackSighting) => void;
  /** called after each batch or stack delivery (to flush buffered live output) */
  onDelivered?: () => void;
  /** frames of every distinct stack seen, by stack id */
  readonly stacksById = new Map<number, Frame[]>();
  /** why some stacks stopped early, by reason, for the report */
  readonly stackStops = new Map<string, number>();
  stacksSeen = 0;
  /** keep latestNs (the newest record's time) up to date: offline --interval needs it */
  trackTime = false;
  latestNs = 0;

  constructor(readonly options: AnalysisOptions = DEFAULT_ANALYSIS) {}

  /** called once the session's (or recording's) header is known */
  onBegin?: (info: SessionInfo) => void;

  begin(info: SessionInfo): void {
    this.info = info;
    this.onBegin?.(info);
    this.table = new SocketTable(info.selectors.pids);
  }

  present(events: PresentEvent[]): void {
    for (const ev of events) this.table.apply(ev);
  }

  batch(buf: Buffer): void {
    forEachRecord(buf, this.onRecord, this.decodeStats);
    this.onDelivered?.();
  }

  /**
   * One record, in one pass; views are reused per record: the table copies what
   * it keeps, live lines are formatted at once. No allocation unless a line is printed.
   */
  private readonly onRecord = (ev: RecordView): void => {
    if (this.trackTime) {
      const ts = ev.ts;
      if (ts > this.latestNs) this.latestNs = ts;
    }
    const table = this.table;
    switch (ev.type) {
      case 'transition': {
        const rec = table.transition(ev);
        if (table.lastDuplicate) break;
        this.onTransition?.(rec, ev.oldState, ev.newState, table.lastInOldNs);
        if (this.onLine) this.onLine({ ev, applied: { rec, inOldNs: table.lastInOldNs, duplicate: false } });
        break;
      }
      case 'sockcall':
        table.sockcall(ev);
        if (this.onLine) this.onLine({ ev, applied: null });
        break;
      case 'fork':
        table.fork(ev.parentPid, ev.childPid);
        break;
      case 'stackref':
        // a stack the kernel recognised: its frames came earlier, as a full stack (stacks())
        this.stacksSeen++;
        table.attachStack(ev);
        this.onStack?.(ev);
        break;
    }
  };

  stacks(items: ResolvedStack[]): void {
    for (const st of items) {
      this.stacksSeen++;
      if (!this.stacksById.has(st.stackId)) this.stacksById.set(st.stackId, st.frames);
      if (!st.complete && st.stop) this.stackStops.set(st.stop, (this.stackStops.get(st.stop) ?? 0) + 1);
      this.table.attachStack(st);
      this.onStack?.(st);
    }
  }

  /** The report as it stands now (for --interval), without ending anything. */
  snapshot(nowNs: bigint): ReportDoc {
    return buildReport(this, { endedNs: nowNs, reason: 'stopped', exitedPids: [], counters: this.lastCounters });
  }

  /** an exited process: its stacks (ids from the session) and closed groups go */
  forgetProcess(pid: number, stackIds: number[]): void {
    for (const id of stackIds) this.stacksById.delete(id);
    this.table?.forgetProcess(pid);
  }

  counters(c: Counters): void {
    this.lastCounters = c;
  }

  async finish(end: SessionEnd): Promise<void> {
    this.lastCounters = end.counters;
    if (end.holdersAtEnd) this.table.applyHolders(end.holdersAtEnd, Number(end.endedNs));
    this.report = buildReport(this, end);
    await this.onFinish?.(this.report, end);
  }

  result(): ReportDoc {
    if (!this.report) throw new Error('analysis has not finished');
    return this.report;
  }
}
