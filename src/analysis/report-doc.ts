/**
 * The final report: one JSON document (schema tcptrace.report/1, documented in
 * docs/report-json.md), built from the analysis. Rendering it is src/report's:
 * analysis produces, report renders, and the imports run that way only.
 */
import type { AnalysisState } from './state.js';
import { stateName, TCP } from '../model/states.js';
import type { SocketRecord } from '../model/socket-table.js';
import type { SessionEnd } from '../trace/types.js';
import type { JavaStats, PythonStats } from '../stacks/interpreters.js';
import { buildClosedPaths, buildLeaks, type ClosedPath, type LeakGroup } from './leaks.js';

export const REPORT_SCHEMA = 'tcptrace.report/1';

export interface CloseWaitEntry {
  pid: number;
  comm: string;
  fd: number | null;
  local: string;
  remote: string;
  /** time in CLOSE_WAIT at the end of the trace */
  closeWaitMs: number;
  /** 'transition': measured from the FIN; 'attach': the socket was already in CLOSE_WAIT at attach, so this is a lower bound */
  since: 'transition' | 'attach';
  origin: string;
  /** the holder closed its fd? (then another process still holds the socket) */
  fdClosed: boolean;
  /** the process that accepted/connected it (differs from pid when a forked child holds it) */
  acquiredBy: number;
  sharedWith: number[];
}

export interface ReportDoc {
  schema: string;
  tool: { name: string; version: string };
  host: string;
  kernel: string;
  attach: { mode: string; chosenBy: string; hooks: Record<string, string>; rings?: number };
  target: { pids: number[] | null; children: boolean; exited: number[] };
  startedAt: string; // ISO wall clock
  durationMs: number;
  endReason: string;
  counts: {
    events: number;
    transitions: number;
    calls: number;
    presentAtAttach: number;
    lost: number;
    missedInKernel: number;
    /** missedInKernel by BPF program name (only programs that missed) */
    missedInKernelBy: Record<string, number>;
    droppedInAgent: number;
    /** records handed over behind a newer one of another CPU's ring */
    outOfOrder: number;
    filteredInKernel: number;
    /** summary mode: transitions of sockets not yet in CLOSE_WAIT or LISTEN, counted in the kernel and not sent */
    summarisedInKernel: number;
    /** summary mode: target sockets open at the end that the kernel held (never sent); included in states */
    heldInKernel: number;
    ownersMapFull: number;
    listenersMapFull: number;
    targetsMapFull: number;
    /** a recording's damaged frames that were skipped, their bytes, and the ring records they held (null: unknown); 0 live */
    damagedFrames: number;
    damagedBytes: number;
    lostRecords: number | null;
  };
  /** target sockets per TCP state at the end (with those a summarising kernel held) */
  states: Record<string, number>;
  /** the kernel sent only sockets that entered CLOSE_WAIT or LISTEN (live --pid without live lines or recording) */
  summary: boolean;
  closeWait: CloseWaitEntry[];
  /** CLOSE_WAIT for at least leakAfterMs and not closed, grouped by code path (docs/report-json.md) */
  leakAfterMs: number;
  leaks: LeakGroup[];
  /** code paths whose sockets did close: how long they sat in CLOSE_WAIT first */
  closedCloseWait: ClosedPath[];
  stacks: {
    captured: number;
    /** of those, recognised in the kernel (a reference, no copy and no unwind) */
    deduped: number;
    /** recognised from the kernel's walk memo, without walking the CFA rules (counts held sockets' stacks too) */
    recalled: number;
    rateLimited: number;
    /** not captured: preempted captures held that CPU's scratch records (7.0+) */
    busy: number;
    cutShort: number;
    distinct: number;
    stoppedEarly: Record<string, number>;
    /** agent time spent unwinding and symbolizing (live only) */
    unwindMs?: number;
    symbolizeMs?: number;
    /** CPython processes whose frames were copied, those of a version not named, and Python frames named / unnamed (live only) */
    python?: PythonStats;
    /** HotSpot JVMs whose Java frames were walked, and Java frames named / unnamed (live only) */
    java?: JavaStats;
  } | null;
  warnings: string[];
}

const ms = (ns: number): number => ns / 1e6;

export function buildReport(a: AnalysisState, end: SessionEnd): ReportDoc {
  const { table, info } = a;
  const counters = a.lastCounters;
  const endNs = Number(end.endedNs);
  const startedNs = Number(info.startedNs);
  const states: Record<string, number> = {};
  const closeWait: CloseWaitEntry[] = [];
  for (const rec of table.live.values()) {
    if (!isReportable(rec, table.isTarget(rec))) continue;
    const name = stateName(rec.state);
    states[name] = (states[name] ?? 0) + 1;
    if (rec.state === TCP.CLOSE_WAIT) closeWait.push(closeWaitEntry(rec, table.holder(rec), endNs, startedNs));
  }
  closeWait.sort((x, y) => y.closeWaitMs - x.closeWaitMs || x.pid - y.pid || (x.fd ?? -1) - (y.fd ?? -1));
  // sockets a summarising kernel held: never in CLOSE_WAIT (that publishes them), so only counted
  let held = 0;
  for (const [name, n] of Object.entries(end.heldStates ?? {})) {
    states[name] = (states[name] ?? 0) + n;
    held += n;
  }

  const warnings: string[] = [];
  if (counters.lost) warnings.push(`${counters.lost} events lost: the ring buffer was full (raise --ring-size)`);
  if (counters.missed) {
    const unseen = table.counts.unseenCloses;
    const by = Object.entries(counters.missedBy).map(([prog, n]) => `${prog} ${n}`).join(', ');
    warnings.push(`${counters.missed} events missed: the kernel skipped a hook that interrupted another BPF program on the same CPU${by ? ` (${by})` : ''}${unseen ? `; ${unseen} sockets' CLOSE among them, found when their address was reused` : ''}`);
  }
  if (counters.outOfOrder) warnings.push(`${counters.outOfOrder} records arrived after newer ones of another CPU (a hook held its record past the merge's hold-back): their sockets' order may be off`);
  if (counters.droppedBatches) warnings.push(`${counters.droppedBatches} batches (${counters.droppedBytes} bytes) dropped in the agent: it fell behind`);
  if (counters.ownersFull) warnings.push(`${counters.ownersFull} sockets not tracked: owners map full (raise --max-sockets)`);
  if (counters.listenersFull) warnings.push(`${counters.listenersFull} listeners not tracked: listeners map full`);
  if (counters.targetsFull) warnings.push(`${counters.targetsFull} forked children not followed: targets map full`);
  if (end.reason === 'target-exited') warnings.push(`the traced process${end.exitedPids.length > 1 ? 'es' : ''} exited during the trace (${end.exitedPids.join(', ')}): the report covers what was seen until then`);
  if (counters.stacksBusy) warnings.push(`${counters.stacksBusy} stacks not captured: preempted captures held that CPU's scratch records`);
  if (counters.stacksLimited) warnings.push(`${counters.stacksLimited} stacks not captured: per-process rate limit (--stack-rate)`);
  if (a.decodeStats.unknown) warnings.push(`${a.decodeStats.unknown} records of an unknown kind were skipped (newer BPF object?)`);

  const wallStart = info.clock.wallNs + (info.startedNs - info.clock.monotonicNs);
  return {
    schema: REPORT_SCHEMA,
    tool: info.tool,
    host: info.host,
    kernel: info.kernel,
    attach: { mode: info.attach.mode, chosenBy: info.attach.chosenBy, hooks: info.attach.hooks, ...(info.attach.rings ? { rings: info.attach.rings } : {}) },
    target: { pids: info.selectors.pids, children: info.selectors.children, exited: [...end.exitedPids].sort((x, y) => x - y) },
    startedAt: new Date(Number(wallStart / 1_000_000n)).toISOString(),
    durationMs: Math.round(ms(endNs - startedNs)),
    endReason: end.reason,
    counts: {
      events: counters.events,
      transitions: table.counts.transitions,
      calls: table.counts.sockcalls,
      presentAtAttach: table.counts.present,
      lost: counters.lost,
      missedInKernel: counters.missed,
      missedInKernelBy: counters.missedBy,
      droppedInAgent: counters.droppedBatches,
      outOfOrder: counters.outOfOrder,
      filteredInKernel: counters.filtered,
      summarisedInKernel: counters.summarised,
      heldInKernel: held,
      ownersMapFull: counters.ownersFull,
      listenersMapFull: counters.listenersFull,
      targetsMapFull: counters.targetsFull,
      // set by `tcptrace report` from the replay (src/commands/report.ts)
      damagedFrames: 0,
      damagedBytes: 0,
      lostRecords: 0,
    },
    states,
    summary: !!info.summary,
    closeWait,
    leakAfterMs: a.options.leakAfterMs,
    leaks: buildLeaks(a, endNs, startedNs),
    closedCloseWait: buildClosedPaths(a),
    stacks: info.stacks
      ? {
          captured: a.stacksSeen,
          deduped: counters.stacksDeduped,
          recalled: counters.stacksRecalled,
          rateLimited: counters.stacksLimited,
          busy: counters.stacksBusy,
          cutShort: counters.stacksShort,
          distinct: a.stacksById.size,
          stoppedEarly: Object.fromEntries(a.stackStops),
          ...(end.stackCost ? { unwindMs: Math.round(end.stackCost.unwindMs * 10) / 10, symbolizeMs: Math.round(end.stackCost.symbolizeMs * 10) / 10 } : {}),
          ...(end.stackCost?.python?.processes || end.stackCost?.python?.unsupported ? { python: end.stackCost.python } : {}),
          ...(end.stackCost?.java?.processes ? { java: end.stackCost.java } : {}),
        }
      : null,
    warnings,
  };
}

/** Sockets the report speaks of: owned by a target (or any socket in whole-system mode). */
function isReportable(rec: SocketRecord, target: boolean): boolean {
  return target && rec.state !== TCP.CLOSE;
}

function closeWaitEntry(rec: SocketRecord, holder: { pid: number; fd: number }, endNs: number, startedNs: number): CloseWaitEntry {
  const known = rec.stateSince !== null;
  const since = known ? rec.stateSince! : startedNs;
  return {
    pid: holder.pid,
    comm: rec.heldBy?.comm ?? rec.comm,
    fd: holder.fd >= 0 ? holder.fd : null,
    local: rec.local,
    remote: rec.remote,
    closeWaitMs: Math.max(0, Math.round(ms(endNs - since))),
    since: known ? 'transition' : 'attach',
    origin: rec.origin,
    fdClosed: holder.pid === rec.pid && rec.fdClosedAt !== null,
    acquiredBy: rec.pid,
    sharedWith: rec.sharedWith.filter((p) => p !== holder.pid),
  };
}
