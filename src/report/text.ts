/** Human rendering of the final report and of live lines. */
import type { Analyzer, LiveLine } from '../analysis/analyzer.js';
import { TT_CALL } from '../generated/events.js';
import { stateName } from '../model/states.js';
import type { ReportDoc } from '../analysis/report-doc.js';
import type { LeakGroup } from '../analysis/leaks.js';
import type { Frame } from '../stacks/types.js';
import { isAppFrame } from '../stacks/app-frame.js';

const n = (x: number) => x.toLocaleString('en-US');


/**
 * The frames worth a line in the text report: the first two (the call and its
 * caller), then application frames (JIT/JS and non-runtime code), at most max.
 */
function selectFrames(frames: Frame[], max: number): (Frame & { index: number })[] {
  const keep: (Frame & { index: number })[] = [];
  frames.forEach((f, index) => {
    if (keep.length >= max) return;
    if (index < 2 || isAppFrame(f)) keep.push({ ...f, index });
  });
  return keep;
}

function frameLines(frames: Frame[], indent: string, max = 12): string[] {
  const out: string[] = [];
  let prev = -1;
  for (const f of selectFrames(frames, max)) {
    const i = f.index;
    if (i > prev + 1) out.push(`${indent}    ...`);
    prev = i;
    for (const inl of f.inlined ?? []) {
      out.push(`${indent}#${String(i).padEnd(2)} ${('(inlined) ' + inl.symbol).padEnd(32)} ${f.module.padEnd(14)} ${inl.file ? `${inl.file}:${inl.line ?? '?'}` : ''}`.trimEnd());
    }
    const name = f.symbol || `[${f.addr}]${f.reason ? ' (unnamed)' : ''}`;
    const where = f.file ? `${f.file}:${f.line ?? '?'}` : '';
    out.push(`${indent}#${String(i).padEnd(2)} ${name.padEnd(32)} ${f.module.padEnd(14)} ${where}`.trimEnd());
  }
  if (prev < frames.length - 1) out.push(`${indent}    ... (${frames.length} frames in all; --format json has every one)`);
  return out;
}

const ACQUIRED: Record<string, string> = { accept: 'accepted at', connect: 'connected at', listen: 'listening since', preexisting: 'present at attach', unknown: 'acquired at' };

function leakGroupLines(g: LeakGroup): string[] {
  const out: string[] = [];
  const age = g.ageSince === 'attach' ? `in CLOSE_WAIT since before attach (>= ${formatDuration(g.oldestMs)})` : `oldest ${formatDuration(g.oldestMs)}, median ${formatDuration(g.medianMs)}`;
  out.push(`  ${n(g.count)} socket${g.count === 1 ? '' : 's'}  ${ACQUIRED[g.origin] ?? 'acquired at'}:  ${age}`);
  if (g.stacks.acquire) out.push(...frameLines(g.stacks.acquire, '    '));
  if (g.stacks.read) {
    out.push('  first read:');
    out.push(...frameLines(g.stacks.read, '    ', 8));
  }
  if (g.stacks.io) {
    out.push('  first write/send:');
    out.push(...frameLines(g.stacks.io, '    ', 8));
  }
  if (g.stacks.eof) {
    out.push('  read EOF at (and never closed):');
    out.push(...frameLines(g.stacks.eof, '    ', 8));
  } else if (g.origin !== 'preexisting') {
    out.push('  peer FIN then silence: the program never read the EOF');
  }
  const fds = g.sockets.map((s) => s.fd).filter((f) => f !== null);
  out.push(`  fds ${fds.slice(0, 12).join(',')}${fds.length > 12 ? ',...' : ''}; peers ${g.peers.map((p) => `${p.addr} (${n(p.count)})`).join(', ')}`);
  for (const note of g.notes) out.push(`  note: ${note}`);
  return out;
}

/** The leak section: groups by pid, then by code path, largest first. */
export function renderLeaks(r: ReportDoc): string {
  const out: string[] = [];
  if (!r.leaks.length) {
    out.push(`no CLOSE_WAIT leaks (no target socket in CLOSE_WAIT for ${formatDuration(r.leakAfterMs)} or more)`);
  } else {
    const byPid = new Map<number, LeakGroup[]>();
    for (const g of r.leaks) {
      if (!byPid.has(g.pid)) byPid.set(g.pid, []);
      byPid.get(g.pid)!.push(g);
    }
    for (const [pid, groups] of byPid) {
      const total = groups.reduce((a, g) => a + g.count, 0);
      const oldest = Math.max(...groups.map((g) => g.oldestMs));
      out.push(`CLOSE_WAIT leaks, pid ${pid} (${groups[0].comm}): ${n(total)} socket${total === 1 ? '' : 's'}, oldest ${formatDuration(oldest)}`);
      for (const g of groups) out.push(...leakGroupLines(g));
    }
  }
  if (r.closedCloseWait.length) {
    out.push('', 'code paths that did close their CLOSE_WAIT sockets (time in CLOSE_WAIT p50 / p90 / max):');
    for (const c of r.closedCloseWait) {
      const at = c.acquire?.find((f, i) => i > 0 && f.symbol && !/^(__libc|_start|accept|connect)/.test(f.symbol));
      out.push(`  pid ${c.pid} (${c.comm}) ${c.origin.padEnd(8)} ${n(c.closed).padStart(7)} closed  ${formatDuration(c.p50Ms)} / ${formatDuration(c.p90Ms)} / ${formatDuration(c.maxMs)}${at ? `   via ${at.symbol}${at.file ? ` (${at.file}:${at.line})` : ''}` : ''}`);
    }
  }
  return out.join('\n');
}

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

/**
 * Prints live lines for an analyzer: formats each line as it comes and writes
 * them once per delivered batch (one stdout write per batch, not per event).
 * Returns flush, for the caller to call before writing anything else.
 */
export function printLiveLines(analyzer: Analyzer): () => void {
  const lines: string[] = [];
  analyzer.onLine = (l) => lines.push(formatLive(l, analyzer.info.startedNs));
  const flush = () => {
    if (lines.length) process.stdout.write(lines.splice(0).join('\n') + '\n');
  };
  analyzer.onDelivered = flush;
  return flush;
}

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
    // a transition a close()/shutdown() made says so, and whose call it was if not the owner's
    const by = ev.call ? `  by ${CALL_NAMES[ev.call] ?? `call ${ev.call}`}${ev.callFd >= 0 ? ` of fd ${ev.callFd}` : ''}${rec && ev.cpuPid !== rec.pid ? ` in pid ${ev.cpuPid} (${ev.cpuComm})` : ''}` : '';
    return `${t} ${pid.padStart(7)} ${comm.slice(0, 15).padEnd(15)} ${fd.padStart(4)} ${(rec?.local ?? ev.local).padEnd(22)} ${(rec?.remote ?? ev.remote).padEnd(22)} ${tr.padEnd(26)} ${inOld}${by}`;
  }
  const what = CALL_NAMES[ev.call] ?? `call ${ev.call}`;
  return `${t} ${String(ev.pid).padStart(7)} ${ev.comm.slice(0, 15).padEnd(15)} ${String(ev.fd >= 0 ? ev.fd : '-').padStart(4)} ${ev.local.padEnd(22)} ${ev.remote.padEnd(22)} ${what.padEnd(26)} in ${stateName(ev.state)}`;
}

export function renderReport(r: ReportDoc): string {
  const out: string[] = [];
  const who = r.target.pids ? `pid ${r.target.pids.join(', ')}${r.target.children ? ' and children' : ''}` : 'the whole system';
  out.push(`tcptrace: traced ${who} for ${formatDuration(r.durationMs)} (attach mode ${r.attach.mode}, ${r.attach.chosenBy === 'probe' ? 'chosen by probe' : 'forced'}; ended: ${r.endReason})`);
  const c = r.counts;
  out.push(`events ${c.events} (transitions ${c.transitions}, calls ${c.calls}), present at attach ${c.presentAtAttach}, lost ${c.lost}, missed in kernel ${c.missedInKernel}, dropped in agent ${c.droppedInAgent}`);
  if (r.summary) {
    out.push(`summarised in the kernel: ${n(c.summarisedInKernel)} transitions counted, not sent (sockets not yet in CLOSE_WAIT or LISTEN); ${n(c.heldInKernel)} sockets still held at the end, in the states below (--no-kernel-summary sends every event)`);
  }
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
  out.push('', renderLeaks(r));
  if (r.stacks) out.push('', `stacks: ${n(r.stacks.captured)} captured (${n(r.stacks.deduped)} recognised in the kernel, ${n(r.stacks.recalled)} of all recognitions without a walk, ${n(r.stacks.distinct)} distinct), ${n(r.stacks.rateLimited)} rate-limited, ${r.stacks.busy ? `${n(r.stacks.busy)} skipped (scratch busy), ` : ''}${n(r.stacks.cutShort)} copies ended at an unreadable page (usually the top of the stack)`);
  for (const w of r.warnings) out.push(`warning: ${w}`);
  return out.join('\n') + '\n';
}
