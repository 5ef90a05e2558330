/**
 * What the report is built from: the analysis as it stands (Analyzer implements
 * it). Its own module so that building the report (report-doc.ts, leaks.ts)
 * depends on the analysis' data, not on the Analyzer that calls it.
 */
import type { DecodeStats } from '../decode.js';
import type { SocketTable } from '../model/socket-table.js';
import type { Frame } from '../stacks/types.js';
import type { Counters, SessionInfo } from '../trace/types.js';

export interface AnalysisOptions {
  /** a socket in CLOSE_WAIT this long, not closed, is leaked */
  leakAfterMs: number;
  /** leak groups (and closed-path groups) in the report */
  top: number;
}

export const DEFAULT_ANALYSIS: AnalysisOptions = { leakAfterMs: 5000, top: 10 };

export interface AnalysisState {
  readonly table: SocketTable;
  readonly info: SessionInfo;
  readonly options: AnalysisOptions;
  readonly lastCounters: Counters;
  readonly decodeStats: DecodeStats;
  /** frames of every distinct stack seen, by stack id */
  readonly stacksById: ReadonlyMap<number, Frame[]>;
  /** why some stacks stopped early, by reason */
  readonly stackStops: ReadonlyMap<string, number>;
  readonly stacksSeen: number;
}
