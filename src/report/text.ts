/** Human rendering of the final report and of live lines. */
import type { LiveLine } from '../analysis/analyzer.js';
import { TT_CALL } from '../generated/events.js';
import { stateName } from '../model/states.js';
import type { ReportDoc } from './build.js';

const CALL_NAMES: Record<number, string> = {
  [TT_CALL.ACCEPT]: 'accept()',
  [TT_CALL.CONNECT]: 'connect()',
  [TT_CALL.LISTEN]: 'listen()',
  [TT_CALL.CLOSE]: 'close()',
  [TT_CALL.SHUTDOWN]: 'shutdown()',
};

export function formatDuration(ms: number): string {
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export const LIVE_HEADER = `${'TIME(s)'.padEnd(10)} ${'PID'.padStart(7)} ${'COMM'.padEnd(15)} ${'FD'.padStart(4)} ${'LOCAL'.padEnd(22)} ${'REMOTE'.padEnd(22)} ${'TRANSITION'.padEnd(26)} IN OLD STATE`;

/** One line per transition or call; time is seconds since the trace began. */
export function formatLive(line: LiveLine, startedNs: bigint): string {
  const start = Number(startedNs);
  const { ev, applied } = line;
  const t = ((ev.ts - start) / 1e9).toFixed(6).padEnd(10);
  if (ev.type === 'transition') {
    const rec = applied?.rec;
    const pid = rec?.pid ? String(rec.pid) : '?';
    const comm = rec?.comm || (rec?.pid ? '' : `[on cpu: ${ev.cpuComm}]`);
    const fd = rec && rec.fd >= 0 ? String(rec.fd) : '-';
    const tr = `${stateName(ev.oldState)} -> ${stateName(ev.newState)}`;
    const inOld = applied?.inOldNs != null ? formatDuration(Number(applied.inOldNs) / 1e6) : '-';
    return `${t} ${pid.padStart(7)} ${comm.slice(0, 15).padEnd(15)} ${fd.padStart(4)} ${(rec?.local ?? ev.local).padEnd(22)} ${(rec?.remote ?? ev.remote).padEnd(22)} ${tr.padEnd(26)} ${inOld}`;
  }
  const what = CALL_NAMES[ev.call] ?? `call ${ev.call}`;
  return `${t} ${String(ev.pid).padStart(7)} ${ev.comm.slice(0, 15).padEnd(15)} ${String(ev.fd >= 0 ? ev.fd : '-').padStart(4)} ${ev.local.padEnd(22)} ${ev.remote.padEnd(22)} ${what.padEnd(26)} in ${stateName(ev.state)}`;
}

export function renderReport(r: ReportDoc): string {
  const out: string[] = [];
  const who = r.target.pids ? `pid ${r.target.pids.join(', ')}${r.target.children ? ' and children' : ''}` : 'the whole system';
  out.push(`tcptrace: traced ${who} for ${formatDuration(r.durationMs)} (attach mode ${r.attach.mode}, ${r.attach.chosenBy === 'probe' ? 'chosen by probe' : 'forced'}; ended: ${r.endReason})`);
  const c = r.counts;
  out.push(`events ${c.events} (transitions ${c.transitions}, calls ${c.calls}), present at attach ${c.presentAtAttach}, lost ${c.lost}, dropped in agent ${c.droppedInAgent}`);
  const states = Object.entries(r.states).sort((a, b) => b[1] - a[1]);
  out.push(`sockets at end: ${states.length ? states.map(([s, n]) => `${s} ${n}`).join(', ') : 'none'}`);
  if (r.closeWait.length) {
    out.push('', `CLOSE_WAIT sockets (${r.closeWait.length}): the peer closed; the owner has not called close()`);
    out.push(`  ${'PID'.padStart(7)} ${'COMM'.padEnd(15)} ${'FD'.padStart(4)} ${'LOCAL'.padEnd(22)} ${'REMOTE'.padEnd(22)} IN CLOSE_WAIT`);
    for (const e of r.closeWait) {
      const age = e.since === 'attach' ? `>= ${formatDuration(e.closeWaitMs)} (already at attach)` : formatDuration(e.closeWaitMs);
      const notes = [
        e.acquiredBy !== e.pid ? `acquired by pid ${e.acquiredBy}, inherited across fork` : e.fdClosed ? 'fd closed, socket still held elsewhere' : '',
        e.sharedWith.length ? `shared with pid ${e.sharedWith.join(',')}` : '',
      ]
        .filter(Boolean)
        .join('; ');
      out.push(`  ${String(e.pid).padStart(7)} ${e.comm.slice(0, 15).padEnd(15)} ${String(e.fd ?? '-').padStart(4)} ${e.local.padEnd(22)} ${e.remote.padEnd(22)} ${age}${notes ? `  [${notes}]` : ''}`);
    }
  } else {
    out.push('no sockets in CLOSE_WAIT');
  }
  for (const w of r.warnings) out.push(`warning: ${w}`);
  return out.join('\n') + '\n';
}
