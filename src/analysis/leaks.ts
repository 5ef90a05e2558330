/**
 * Leak attribution: target sockets sitting in CLOSE_WAIT for at least
 * --leak-after and never closed, grouped by (pid, origin, acquisition stack,
 * EOF stack) the way memleak groups outstanding allocations by stack; and, for
 * the code paths that did close, how long their sockets sat in CLOSE_WAIT.
 */
import type { AnalysisState } from './state.js';
import type { SocketRecord } from '../model/socket-table.js';
import { TCP } from '../model/states.js';
import type { Frame, Site } from '../stacks/types.js';

export interface LeakSocket {
  fd: number | null;
  local: string;
  remote: string;
  closeWaitMs: number;
}

export interface LeakGroup {
  pid: number;
  comm: string;
  state: 'CLOSE_WAIT';
  origin: string;
  count: number;
  oldestMs: number;
  medianMs: number;
  /** 'attach': the ages of pre-existing sockets count from attach (their FIN came earlier) */
  ageSince: 'transition' | 'attach';
  stacks: Record<Site, Frame[] | null>;
  /** why a stack is missing or unnamed, and what to do about it */
  notes: string[];
  peers: { addr: string; count: number }[];
  sockets: LeakSocket[];
}

export interface ClosedPath {
  pid: number;
  comm: string;
  origin: string;
  /** sockets of this path that went through CLOSE_WAIT and were closed */
  closed: number;
  p50Ms: number;
  p90Ms: number;
  maxMs: number;
  acquire: Frame[] | null;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : 0;
};
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : 0;
};

const SITE_TEXT: Record<Site, string> = { acquire: 'acquisition', io: 'first write/send', eof: 'EOF read', read: 'first read' };

/**
 * The frames that make a code path: all of them, but in a stack with Python
 * frames only the native ones below the first (the call into the kernel) and
 * the Python ones: the interpreter's C frames between Python frames change as
 * CPython specialises a call site (a generic call, then a direct one), the
 * program's path does not.
 */
function pathFrames(frames: Frame[]): Frame[] {
  const first = frames.findIndex((f) => f.kind === 'python');
  return first < 0 ? frames : [...frames.slice(0, first), ...frames.slice(first).filter((f) => f.kind === 'python')];
}

/** A leak group with the socket records it was built from (the timeline export draws them). */
export interface LeakGroupRecords {
  group: LeakGroup;
  recs: SocketRecord[];
}

export function buildLeaks(a: AnalysisState, endNs: number, startedNs: number): LeakGroup[] {
  return groupLeaks(a, endNs, startedNs).map((g) => g.group);
}

/** The leak groups, largest first (at most options.top), each with its records. */
export function groupLeaks(a: AnalysisState, endNs: number, startedNs: number): LeakGroupRecords[] {
  const { table, stacksById, options } = a;
  const groups = new Map<string, { recs: SocketRecord[]; ages: number[]; holder: number; attach: boolean }>();
  // one code path, one group: two stack ids whose frames name the same functions and lines
  // (glibc's accept4 has a second syscall instruction once a process has threads) are one path
  const paths = new Map<number, string>();
  const pathOf = (id: number | undefined): string => {
    if (id === undefined) return '-';
    let p = paths.get(id);
    if (p === undefined) {
      const frames = stacksById.get(id);
      p = frames ? pathFrames(frames).map((f) => (f.symbol ? `${f.symbol}|${f.file ?? ''}|${f.line ?? ''}` : `${f.module}+${f.moduleOffset}`)).join(';') : `#${id}`;
      paths.set(id, p);
    }
    return p;
  };
  for (const rec of table.live.values()) {
    if (rec.state !== TCP.CLOSE_WAIT || !table.isTarget(rec)) continue;
    const holder = table.holder(rec);
    if (holder.pid === rec.pid && rec.fdClosedAt !== null) continue; // closed; another process holds it
    const since = rec.stateSince ?? startedNs;
    const ageMs = (endNs - since) / 1e6;
    if (ageMs < options.leakAfterMs) continue;
    const origin = rec.preexisting ? 'preexisting' : rec.origin === 'accept-pending' ? 'accept' : rec.origin;
    // the first read tells apart handlers behind one accept loop (the one that took the request and dropped it)
    const key = `${holder.pid}|${origin}|${pathOf(rec.stacks.acquire)}|${pathOf(rec.stacks.read)}|${pathOf(rec.stacks.eof)}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { recs: [], ages: [], holder: holder.pid, attach: false }));
    g.recs.push(rec);
    g.ages.push(ageMs);
    if (rec.stateSince === null) g.attach = true;
  }
  const out: LeakGroupRecords[] = [];
  for (const g of groups.values()) {
    const first = g.recs[0];
    const stack = (site: Site): Frame[] | null => {
      const id = first.stacks[site];
      return id === undefined ? null : stacksById.get(id) ?? null;
    };
    const stacks = { acquire: stack('acquire'), io: stack('io'), read: stack('read'), eof: stack('eof') };
    const notes: string[] = [];
    if (first.heldBy) notes.push(`acquired by pid ${first.pid} (${first.comm}), which closed its fd ${first.fd}; this process still holds another fd of it (inherited without CLOEXEC, dup'd, or passed)`);
    if (first.preexisting) notes.push('acquired before tcptrace attached: no stack; restart tracing earlier, or watch new sockets of this process');
    else if (a.info.stacks === null) notes.push('stacks were not captured (--no-stacks)');
    else {
      // (no EOF stack is itself the finding: the program never read the peer's EOF)
      if (!stacks.acquire) notes.push(`no ${SITE_TEXT.acquire} stack: not captured (per-process stack rate limit, or acquired before attach)`);
      const all = [...(stacks.acquire ?? []), ...(stacks.io ?? []), ...(stacks.read ?? []), ...(stacks.eof ?? [])];
      for (const f of all) if (f.reason && !notes.includes(f.reason)) notes.push(f.reason);
      // the generic note only where no frame says why itself (an unsupported version, a stack captured before recognition)
      if (all.some((f) => f.symbol === '_PyEval_EvalFrameDefault' && !f.reason))
        notes.push('Python functions are not named here: tcptrace reads the frames of CPython 3.11-3.13 (default builds) from the process; this interpreter is not one of those (or was not recognised: --log-level info says which)');
    }
    const peers = new Map<string, number>();
    for (const r of g.recs) {
      const ip = r.remote.replace(/:\d+$/, '');
      peers.set(ip, (peers.get(ip) ?? 0) + 1);
    }
    const sockets = g.recs
      .map((r, i) => {
        const fd = table.holder(r).fd;
        return { fd: fd >= 0 ? fd : null, local: r.local, remote: r.remote, closeWaitMs: Math.round(g.ages[i]) };
      })
      .sort((x, y) => y.closeWaitMs - x.closeWaitMs);
    const group: LeakGroup = {
      pid: g.holder,
      comm: first.heldBy?.comm ?? first.comm,
      state: 'CLOSE_WAIT',
      origin: first.preexisting ? 'preexisting' : first.origin === 'accept-pending' ? 'accept' : first.origin,
      count: g.recs.length,
      oldestMs: Math.round(Math.max(...g.ages)),
      medianMs: Math.round(median(g.ages)),
      ageSince: g.attach ? 'attach' : 'transition',
      stacks,
      notes,
      peers: [...peers].map(([addr, count]) => ({ addr, count })).sort((x, y) => y.count - x.count).slice(0, 5),
      sockets,
    };
    out.push({ group, recs: g.recs });
  }
  out.sort((x, y) => y.group.count - x.group.count || y.group.oldestMs - x.group.oldestMs);
  return out.slice(0, options.top);
}

export function buildClosedPaths(a: AnalysisState): ClosedPath[] {
  const out: ClosedPath[] = [];
  for (const h of a.table.closedCloseWait.values()) {
    const ms = h.recentNs.map((n) => n / 1e6);
    out.push({
      pid: h.pid,
      comm: h.comm,
      origin: h.origin,
      closed: h.count,
      p50Ms: round3(quantile(ms, 0.5)),
      p90Ms: round3(quantile(ms, 0.9)),
      maxMs: round3(h.maxNs / 1e6),
      acquire: h.acquireStack === undefined ? null : a.stacksById.get(h.acquireStack) ?? null,
    });
  }
  out.sort((x, y) => y.p90Ms - x.p90Ms || y.closed - x.closed);
  return out.slice(0, a.options.top);
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
