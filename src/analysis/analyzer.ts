/**
 * The analysis behind both the live command and `tcptrace report`: decodes
 * record batches, keeps the socket table, prints live lines if asked, and
 * builds the final report. Live and offline feed it the same batches in the
 * same order, so they produce the same report.
 */
import { forEachRecord, type DecodeStats, type RecordView } from '../decode.js';
import type { TransitionEvent, SockcallEvent } from '../model/events.js';
import { SocketTable, type Applied } from '../model/socket-table.js';
import type { PresentEvent } from '../model/events.js';
import { zeroCounters, type Counters, type SessionEnd, type SessionInfo, type TraceSink } from '../trace/types.js';
import { buildReport, type ReportDoc } from '../report/build.js';

export interface LiveLine {
  ev: TransitionEvent | SockcallEvent;
  applied: Applied | null;
}

export class Analyzer implements TraceSink {
  table!: SocketTable;
  info!: SessionInfo;
  lastCounters: Counters = zeroCounters();
  readonly decodeStats: DecodeStats = { records: 0, unknown: 0 };
  private report: ReportDoc | null = null;
  /** set to receive one call per transition/sockcall (live output); unset in --quiet */
  onLine?: (line: LiveLine) => void;
  onFinish?: (report: ReportDoc, end: SessionEnd) => void | Promise<void>;

  begin(info: SessionInfo): void {
    this.info = info;
    this.table = new SocketTable(info.selectors.pids);
  }

  present(events: PresentEvent[]): void {
    for (const ev of events) this.table.apply(ev);
  }

  batch(buf: Buffer): void {
    const table = this.table;
    const onLine = this.onLine;
    // views are reused per record: the table copies what it keeps, live lines are formatted at once
    forEachRecord(
      buf,
      onLine
        ? (ev: RecordView) => {
            const applied = table.apply(ev);
            if (ev.type !== 'fork' && !applied?.duplicate) onLine({ ev, applied });
          }
        : (ev: RecordView) => void table.apply(ev),
      this.decodeStats,
    );
  }

  counters(c: Counters): void {
    this.lastCounters = c;
  }

  async finish(end: SessionEnd): Promise<void> {
    this.lastCounters = end.counters;
    this.report = buildReport(this, end);
    await this.onFinish?.(this.report, end);
  }

  result(): ReportDoc {
    if (!this.report) throw new Error('analysis has not finished');
    return this.report;
  }
}
