/**
 * The doctor report: what `--format json` prints (schema tcptrace.doctor/1,
 * documented in docs/doctor.md) and what the text renderer reads.
 */
import { hostName, osRelease } from '../sys/host.js';
import { analyze, type Figures, type NetnsFigures, type ProcessFigures } from './analyze.js';
import type { Limitation, Sample } from './measure.js';
import { SETTINGS } from './settings.js';
import { STATUS_EXIT, judge, summarize, worst, type Status, type Verdict } from './verdicts.js';

export const SCHEMA = 'tcptrace.doctor/1';

export interface SettingValue {
  name: string;
  scope: 'netns' | 'system';
  /** system: one value; netns: the value in each examined namespace, by nsfs inode */
  value: string | null;
  perNetns?: Record<string, string | null>;
  does: string;
  doesNotFix: string;
}

export interface DoctorReport {
  schema: typeof SCHEMA;
  takenAt: string;
  host: { hostname: string; kernel: string };
  uid: number;
  privileged: boolean;
  /** the --pid list, or null for every process */
  pids: number[] | null;
  /** seconds between the two measurements compared (deltas and rates); null with --sample 0 */
  windowSeconds: number | null;
  /** 1 for a one-shot run; counts up with --watch */
  round: number;
  status: Status;
  exitCode: 0 | 1 | 2;
  /** the verdict table: every WARN/CRIT, and one OK line for each check that has none */
  verdicts: Verdict[];
  /** counts of every verdict computed, OK ones included */
  checked: Record<string, { OK: number; WARN: number; CRIT: number }>;
  system: Figures['system'];
  processes: ProcessFigures[];
  top: { closeWait: number[]; timeWait: number[]; established: number[] };
  netns: NetnsFigures[];
  settings: SettingValue[];
  /** what this run could not see, and why (non-root runs) */
  limitations: Limitation[];
}

const TOP = 5;

function topBy(procs: ProcessFigures[], key: (p: ProcessFigures) => number): number[] {
  return procs
    .filter((p) => key(p) > 0)
    .sort((a, b) => key(b) - key(a) || a.pid - b.pid)
    .slice(0, TOP)
    .map((p) => p.pid);
}

export function buildReport(cur: Sample, prev: Sample | undefined, opts: { pids: number[] | null; round: number }): DoctorReport {
  const figures = analyze(cur, prev);
  const all = judge(figures, { unownedCloseWait: opts.pids === null || cur.limitations.some((l) => l.kind === 'process-fds') });
  const verdicts = summarize(all);
  const status = worst(all.map((v) => v.status));
  const checked: DoctorReport['checked'] = {};
  for (const v of all) {
    const c = (checked[v.check] ??= { OK: 0, WARN: 0, CRIT: 0 });
    c[v.status]++;
  }
  const top = {
    closeWait: topBy(figures.processes, (p) => p.closeWait.count),
    timeWait: topBy(figures.processes, (p) => p.timeWaitServerSide),
    established: topBy(figures.processes, (p) => p.states.ESTABLISHED ?? 0),
  };
  // JSON lists the asked-for pids, or every process that holds a TCP socket or is near its fd limit
  const flagged = new Set(all.filter((v) => v.status !== 'OK' && v.pid !== undefined).map((v) => v.pid!));
  const processes = figures.processes.filter(
    (p) => opts.pids !== null || flagged.has(p.pid) || Object.values(p.states).some((n) => n > 0) || (p.fds && p.fds.soft && p.fds.open / p.fds.soft >= 0.5),
  );
  const examined = figures.netns.filter((n) => n.examined);
  const own = examined.find((n) => n.own) ?? examined[0];
  const settings: SettingValue[] = SETTINGS.map((s) => {
    if (s.scope === 'system') {
      const value =
        s.name === 'fs.file-max' ? (figures.system.fileNr ? String(figures.system.fileNr.max) : null) : s.name === 'fs.nr_open' ? (figures.system.nrOpen === null ? null : String(figures.system.nrOpen)) : null;
      return { name: s.name, scope: s.scope, value, does: s.does, doesNotFix: s.doesNotFix };
    }
    const perNetns: Record<string, string | null> = {};
    for (const n of examined) perNetns[String(n.id)] = n.sysctls?.[s.name] ?? null;
    return { name: s.name, scope: s.scope, value: own?.sysctls?.[s.name] ?? null, perNetns, does: s.does, doesNotFix: s.doesNotFix };
  });
  return {
    schema: SCHEMA,
    takenAt: new Date(cur.takenAt).toISOString(),
    host: { hostname: hostName(), kernel: osRelease() },
    uid: cur.uid,
    privileged: cur.uid === 0,
    pids: opts.pids,
    windowSeconds: figures.windowSeconds === null ? null : Math.round(figures.windowSeconds * 1000) / 1000,
    round: opts.round,
    status,
    exitCode: STATUS_EXIT[status],
    verdicts,
    checked,
    system: figures.system,
    processes,
    top,
    netns: figures.netns,
    settings,
    limitations: cur.limitations,
  };
}

