/** Text rendering of a DoctorReport: the verdict table first, then the details. */
import type { NetnsFigures, ProcessFigures } from './analyze.js';
import type { DoctorReport } from './report.js';
import { CHECKS, nsLabel, procName, type Verdict } from './verdicts.js';

const MAX_PER_CHECK = 10;
const MAX_ROWS = 15;

/** Left-aligned columns, two spaces apart; columns listed in `right` are right-aligned. */
export function table(rows: string[][], right: number[] = []): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 && !right.includes(i) ? c : right.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

function indent(lines: string[], by = '  '): string[] {
  return lines.map((l) => by + l);
}

/** short names of the examined namespaces, when there is more than one (else null: no NETNS column) */
function netnsNames(r: DoctorReport): Map<number, string> | null {
  const examined = r.netns.filter((n) => n.examined);
  if (examined.length < 2) return null;
  return new Map(examined.map((n) => [n.id, n.name ?? (n.own ? 'this' : `net:[${n.id}]`)]));
}

export function verdictTable(r: DoctorReport): string[] {
  const verdicts = r.verdicts;
  const names = netnsNames(r);
  const rows: string[][] = [['STATUS', 'CHECK', ...(names ? ['NETNS'] : []), 'SUBJECT', 'MEASURED', 'WARN / CRIT AT']];
  const extra: string[] = [];
  for (const check of CHECKS) {
    const mine = verdicts.filter((v) => v.check === check);
    for (const v of mine.slice(0, MAX_PER_CHECK)) {
      const ns = names ? [v.netns === undefined ? '-' : (names.get(v.netns) ?? '?')] : [];
      rows.push([v.status, v.check, ...ns, v.subject, v.figure, v.threshold]);
    }
    if (mine.length > MAX_PER_CHECK) extra.push(`  ... and ${mine.length - MAX_PER_CHECK} more ${check} lines (all in --format json)`);
  }
  return [...table(rows), ...extra];
}

function findings(verdicts: Verdict[]): string[] {
  const out: string[] = [];
  const seenAdvice = new Set<string>();
  for (const v of verdicts) {
    if (v.status === 'OK') continue;
    out.push(`${v.status} ${v.check}: ${v.message}`);
    if (v.advice && !seenAdvice.has(v.advice)) {
      seenAdvice.add(v.advice);
      out.push(`     ${v.advice}`);
    }
  }
  return out;
}

function processRows(r: DoctorReport): ProcessFigures[] {
  const byPid = new Map(r.processes.map((p) => [p.pid, p]));
  const pick = new Set<number>();
  if (r.pids) r.pids.forEach((p) => pick.add(p));
  for (const v of r.verdicts) if (v.pid !== undefined && v.status !== 'OK') pick.add(v.pid);
  for (const list of [r.top.closeWait, r.top.timeWait, r.top.established]) list.forEach((p) => pick.add(p));
  return [...pick].map((p) => byPid.get(p)).filter((p): p is ProcessFigures => !!p).slice(0, MAX_ROWS);
}

function processTable(r: DoctorReport): string[] {
  const procs = processRows(r);
  if (!procs.length) return ['  (no process holds a TCP socket)'];
  const rows: string[][] = [['PID', 'COMM', 'FDS', 'SOFT', 'HARD', 'USE', 'SOCKETS', 'ESTAB', 'CLOSE_WAIT', 'TIME_WAIT*', 'LISTEN']];
  for (const p of procs) {
    const f = p.fds;
    const lim = (n: number | null | undefined): string => (n === null ? 'unlim' : n === undefined ? '?' : String(n));
    rows.push([
      String(p.pid),
      p.comm,
      f ? String(f.open) : 'n/a',
      lim(f ? f.soft : undefined),
      lim(f ? f.hard : undefined),
      f && f.soft ? `${Math.round((f.open / f.soft) * 100)}%` : '-',
      f ? String(f.sockets) : 'n/a',
      f ? String(p.states.ESTABLISHED ?? 0) : 'n/a',
      f ? String(p.closeWait.count) : 'n/a',
      f ? String(p.timeWaitServerSide) : 'n/a',
      f ? String(p.states.LISTEN ?? 0) : 'n/a',
    ]);
  }
  const out = indent(table(rows, [0, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
  out.push('  * TIME_WAIT left on the server side of connections its listeners accepted (it closed first)');
  if (procs.some((p) => !p.fds)) out.push('  n/a: /proc/PID/fd not readable (another user\'s process; run as root)');
  return out;
}

function netnsSection(n: NetnsFigures, windowSeconds: number | null, allProcesses: boolean): string[] {
  const others = allProcesses ? 'held by processes not visible' : 'held by processes not examined';
  const out: string[] = [`Network namespace ${nsLabel(n)}${n.viaPid ? `, entered through pid ${n.viaPid}` : ''}${n.pids.length ? `, ${n.pids.length} process(es)` : ''}`];
  if (!n.examined) return [...out, '  not examined (see "Not seen")'];
  const states = Object.entries(n.states).filter(([, c]) => c > 0).map(([s, c]) => `${s} ${c}`);
  out.push(`  ${n.total} TCP sockets: ${states.join(', ') || 'none'}${n.unowned ? ` (${n.unowned} ${others})` : ''}`);
  const cw = n.closeWait;
  out.push(`  CLOSE_WAIT ${cw.total}${cw.new !== null ? `, ${cw.new} new in ${windowSeconds?.toFixed(1)} s (${cw.perSecond}/s)` : ''}${cw.unowned ? `, ${cw.unowned} ${others}` : ''}`);
  const tw = n.timeWait;
  out.push(
    `  TIME_WAIT ${tw.total}${tw.maxBuckets !== null ? ` of max ${tw.maxBuckets}` : ''}${tw.new !== null ? `, ${tw.new} new in ${windowSeconds?.toFixed(1)} s (${tw.perSecond}/s)` : ''}: ` +
      `${tw.clientSide} outgoing (local client closed first), ${tw.serverSide} accepted (local server closed first)`,
  );
  for (const l of tw.byListener.slice(0, 3)) out.push(`    ${l.count} on listener ${l.listener}${l.pid ? ` ${procName({ pid: l.pid, comm: l.comm ?? '?' })}` : ''}`);
  for (const d of tw.byDestination.slice(0, 3)) out.push(`    ${d.count} to ${d.destination}`);
  const e = n.ephemeral;
  if (e.range) {
    out.push(
      `  ephemeral ports ${e.range[0]}-${e.range[1]}: ${e.available} usable${e.reserved ? ` (${e.reserved} reserved)` : ''}, ` +
        `${e.inUseAnyDestination} in use toward any destination; tcp_tw_reuse=${e.twReuse ?? '?'} (after ${e.twReuseDelayMs} ms), tcp_timestamps=${e.timestamps ?? '?'}`,
    );
    if (e.destinations.length) {
      const rows: string[][] = [['SOURCE', 'DESTINATION', 'IN USE', 'TIME_WAIT', 'REUSABLE', 'USE', 'PROCESSES']];
      for (const d of e.destinations.slice(0, 5)) {
        rows.push([d.source, d.destination, String(d.inUse), String(d.timeWait), String(d.reusableTimeWait), `${d.percent}%`, d.processes.slice(0, 3).map(procName).join(', ') || '-']);
      }
      out.push(...indent(table(rows, [2, 3, 4, 5]), '    '));
      if (e.destinations.length > 5) out.push(`    ... ${e.destinations.length - 5} more destinations`);
    }
  }
  if (n.listeners.length) {
    const rows: string[][] = [['LISTENER', 'QUEUE', 'BACKLOG', 'USE', 'PROCESS']];
    for (const l of n.listeners.slice(0, 8)) rows.push([l.address, String(l.queue), String(l.backlog), `${l.percent}%`, l.owners.slice(0, 2).map(procName).join(', ') || '-']);
    out.push(`  listeners (${n.listeners.length}):`, ...indent(table(rows, [1, 2, 3]), '    '));
    if (n.listeners.length > 8) out.push(`    ... ${n.listeners.length - 8} more listeners`);
  } else {
    out.push('  listeners: none');
  }
  if (n.counters) {
    const c = n.counters;
    const fmt = (k: string): string => `${k} ${c[k]?.total ?? '?'}${c[k]?.delta !== null && c[k]?.delta !== undefined ? ` (+${c[k]!.delta} in window)` : ''}`;
    out.push(`  since boot: ${['ListenOverflows', 'ListenDrops', 'TCPTimeWaitOverflow'].map(fmt).join(', ')}`);
  }
  return out;
}

function settingsSection(r: DoctorReport): string[] {
  const rows: string[][] = [];
  const notes: string[][] = [];
  for (const s of r.settings) {
    let value = s.value ?? '?';
    if (s.perNetns) {
      const distinct = new Set(Object.values(s.perNetns).map((v) => v ?? '?'));
      if (distinct.size > 1) value = Object.entries(s.perNetns).map(([ns, v]) => `${v ?? '?'} in net:[${ns}]`).join('; ');
    }
    rows.push([s.name, value.replace(/\s+/g, ' ') || '(empty)']);
    notes.push([s.does, s.doesNotFix]);
  }
  return indent(table(rows.map((row, i) => [...row, `${notes[i]![0]}; not: ${notes[i]![1]}`])));
}

export function renderText(r: DoctorReport, opts: { details: boolean }): string {
  const who = r.privileged ? 'as root' : `as uid ${r.uid} (not root: reduced view)`;
  const examined = r.netns.filter((n) => n.examined).length;
  const out: string[] = [
    `tcptrace doctor: ${r.host.hostname}, kernel ${r.host.kernel}, ${who}, ${r.pids ? `pid ${r.pids.join(' ')}` : `${r.processes.length} processes with TCP sockets`}, ` +
      `${examined} of ${r.netns.length} network namespace(s) examined${r.windowSeconds !== null ? `, window ${r.windowSeconds.toFixed(1)} s` : ''}`,
    '',
    ...verdictTable(r),
    '',
    `overall: ${r.status} (exit ${r.exitCode})`,
  ];
  if (r.limitations.length) {
    out.push('', 'Not seen:');
    for (const l of r.limitations) out.push(`  - ${l.missing}`, `    because ${l.reason}`);
  }
  const f = findings(r.verdicts);
  if (f.length) out.push('', 'Findings:', ...indent(f));
  if (!opts.details) return out.join('\n') + '\n';
  out.push('', 'Processes (asked for, flagged, and top 5 by CLOSE_WAIT, TIME_WAIT, ESTABLISHED):', ...processTable(r));
  for (const n of r.netns) out.push('', ...netnsSection(n, r.windowSeconds, r.pids === null));
  if (r.system.fileNr) {
    out.push('', `System: ${r.system.fileNr.allocated} file handles of fs.file-max ${r.system.fileNr.max} (${r.system.fileNr.percent}%), fs.nr_open ${r.system.nrOpen ?? '?'}`);
  }
  out.push('', 'Kernel settings (value, what it does; not: what it does not fix):', ...settingsSection(r));
  return out.join('\n') + '\n';
}

/** One block per --watch round after the first: the table and the rates since the previous round. */
export function renderWatchRound(r: DoctorReport): string {
  const out: string[] = [`--- round ${r.round}, ${r.takenAt}, ${r.windowSeconds?.toFixed(1) ?? '?'} s since the previous ---`];
  for (const n of r.netns.filter((x) => x.examined)) {
    const c = n.counters;
    out.push(
      `${nsLabel(n)}: CLOSE_WAIT ${n.closeWait.total} (+${n.closeWait.new ?? '?'}, ${n.closeWait.perSecond ?? '?'}/s), ` +
        `TIME_WAIT ${n.timeWait.total} (+${n.timeWait.new ?? '?'}, ${n.timeWait.perSecond ?? '?'}/s), ` +
        `ListenOverflows +${c?.ListenOverflows?.delta ?? '?'}, ListenDrops +${c?.ListenDrops?.delta ?? '?'}`,
    );
  }
  out.push(...verdictTable(r), `overall: ${r.status} (exit ${r.exitCode})`);
  const f = findings(r.verdicts);
  if (f.length) out.push(...f);
  return out.join('\n') + '\n';
}
