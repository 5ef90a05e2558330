/**
 * Thresholds and verdicts. Every check yields OK / WARN / CRIT with the measured
 * figure and the threshold it was compared with; docs/doctor.md explains each
 * threshold. Pure: figures in, verdicts out.
 */
import type { Figures, NetnsFigures, ProcessFigures } from './analyze.js';

export type Status = 'OK' | 'WARN' | 'CRIT';
export const STATUS_EXIT: Record<Status, 0 | 1 | 2> = { OK: 0, WARN: 1, CRIT: 2 };

export type Check = 'fd-limit' | 'file-max' | 'close-wait' | 'ephemeral-ports' | 'time-wait' | 'accept-queue' | 'listen-overflows';
export const CHECKS: Check[] = ['fd-limit', 'close-wait', 'ephemeral-ports', 'time-wait', 'accept-queue', 'listen-overflows', 'file-max'];

export const THRESHOLDS = {
  /** open fds, % of the RLIMIT_NOFILE soft limit */
  fdLimit: { warn: 80, crit: 95 },
  /** fs.file-nr allocated, % of fs.file-max */
  fileMax: { warn: 80, crit: 95 },
  /** CLOSE_WAIT sockets held by one process; CRIT also at critFdShare % of its open fds (with at least critMinForShare) */
  closeWait: { warn: 1, crit: 100, critFdShare: 10, critMinForShare: 10 },
  /** ports connect() cannot use toward one destination, % of the ephemeral range */
  ephemeralPorts: { warn: 50, crit: 90 },
  /** TIME_WAIT sockets, % of net.ipv4.tcp_max_tw_buckets */
  timeWait: { warn: 50, crit: 90 },
  /** accept queue, % of the listener's backlog */
  acceptQueue: { warn: 50, crit: 100 },
  /** ListenOverflows per second over the window */
  listenOverflows: { warn: 0.001, crit: 10 },
} as const;

export interface Verdict {
  check: Check;
  status: Status;
  /** who or what: "pid 4242 (python3)", "127.0.0.1 -> 10.0.0.1:443 in net:[4026531840]" */
  subject: string;
  pid?: number;
  comm?: string;
  netns?: number;
  destination?: string;
  listener?: string;
  /** the figure compared with warn / crit, in `unit` */
  measured: number;
  unit: 'percent' | 'sockets' | 'per-second';
  warn: number;
  crit: number;
  /** the measured figure for humans: "1020 of 1024 fds (99.6%)" */
  figure: string;
  /** the thresholds for humans: ">=80% / >=95% of soft limit" */
  threshold: string;
  /** what it means, one line */
  message: string;
  /** what fixes it and what does not */
  advice?: string;
}

export function worst(statuses: Iterable<Status>): Status {
  let w: Status = 'OK';
  for (const s of statuses) if (STATUS_EXIT[s] > STATUS_EXIT[w]) w = s;
  return w;
}

function level(measured: number, warn: number, crit: number): Status {
  return measured >= crit ? 'CRIT' : measured >= warn ? 'WARN' : 'OK';
}

export function procName(p: { pid: number; comm: string }): string {
  return `pid ${p.pid} (${p.comm})`;
}

export function nsLabel(ns: Pick<NetnsFigures, 'id' | 'name' | 'own'>): string {
  return `net:[${ns.id}]${ns.name ? ` "${ns.name}"` : ''}${ns.own ? ' (this one)' : ''}`;
}

function fdLimit(p: ProcessFigures): Verdict | null {
  if (!p.fds || p.fds.soft === null || p.fds.soft <= 0) return null;
  const t = THRESHOLDS.fdLimit;
  const percent = Math.round((p.fds.open / p.fds.soft) * 1000) / 10;
  const status = level(percent, t.warn, t.crit);
  const cw = p.closeWait.count;
  const raise = p.fds.hard === null || p.fds.hard > p.fds.soft ? ` Raising the soft limit (up to the hard limit ${p.fds.hard ?? 'unlimited'}: prlimit --pid ${p.pid} --nofile=N:N, or LimitNOFILE= in its unit) only buys time.` : ` Its soft limit is already the hard limit; raising both needs root (and fs.nr_open).`;
  return {
    check: 'fd-limit',
    status,
    subject: procName(p),
    pid: p.pid,
    comm: p.comm,
    netns: p.netns ?? undefined,
    measured: percent,
    unit: 'percent',
    warn: t.warn,
    crit: t.crit,
    figure: `${p.fds.open} of ${p.fds.soft} fds (${percent}%)`,
    threshold: `${t.warn}% / ${t.crit}% of soft limit`,
    message:
      status === 'OK'
        ? `${p.fds.open} fds open, soft limit ${p.fds.soft}`
        : `${procName(p)} is ${status === 'CRIT' ? 'at' : 'near'} its fd limit: ${p.fds.open} of ${p.fds.soft} open (${p.fds.sockets} sockets${cw ? `, ${cw} of them CLOSE_WAIT` : ''}); open()/accept()/socket() fail with EMFILE ("Too many open files") at ${p.fds.soft}`,
    advice:
      status === 'OK'
        ? undefined
        : cw >= Math.max(1, p.fds.open / 10)
          ? `Most of the growth is likely the CLOSE_WAIT leak: run \`tcptrace --pid ${p.pid}\` to find the code path that never closes.${raise}`
          : `Find what holds the fds (ls -l /proc/${p.pid}/fd).${raise}`,
  };
}

function closeWait(p: ProcessFigures): Verdict | null {
  if (!p.fds) return null;
  const t = THRESHOLDS.closeWait;
  const c = p.closeWait;
  if (c.count === 0) return null;
  const share = p.fds.open > 0 ? Math.round((c.count / p.fds.open) * 1000) / 10 : 0;
  let status: Status = c.count >= t.crit || (c.count >= t.critMinForShare && share >= t.critFdShare) ? 'CRIT' : c.count >= t.warn ? 'WARN' : 'OK';
  // with a window: a CLOSE_WAIT that appeared during it may be closed a moment later; only lasting ones warn
  const transient = status === 'WARN' && c.persisted === 0;
  if (transient) status = 'OK';
  const lasting = c.persisted === null ? '' : ` (${c.persisted} already there at the start of the window)`;
  return {
    check: 'close-wait',
    status,
    subject: procName(p),
    pid: p.pid,
    comm: p.comm,
    netns: p.netns ?? undefined,
    measured: c.count,
    unit: 'sockets',
    warn: t.warn,
    crit: t.crit,
    figure: `${c.count} sockets, ${Math.round(share)}% of fds`,
    threshold: `${t.warn} / ${t.crit} or ${t.critFdShare}% of fds`,
    message: transient
      ? `${c.count} CLOSE_WAIT socket(s), all new during the window (may be closing normally)`
      : `${procName(p)} holds ${c.count} CLOSE_WAIT socket(s)${lasting}: the peer closed, the program has not called close()`,
    advice: transient
      ? undefined
      : `No sysctl releases a CLOSE_WAIT socket (not tcp_fin_timeout, not keepalive): only the program's close() does. Run \`tcptrace --pid ${p.pid}\` to find the code path that leaks them; restarting the process frees them for now.`,
  };
}

function unownedCloseWait(ns: NetnsFigures): Verdict | null {
  const n = ns.closeWait.unowned;
  if (n === 0) return null;
  const t = THRESHOLDS.closeWait;
  let status = level(n, t.warn, t.crit);
  if (status === 'WARN' && ns.closeWait.unownedPersisted === 0) status = 'OK';
  return {
    check: 'close-wait',
    status,
    subject: `owner not visible in ${nsLabel(ns)}`,
    netns: ns.id,
    measured: n,
    unit: 'sockets',
    warn: t.warn,
    crit: t.crit,
    figure: `${n} sockets`,
    threshold: `${t.warn} / ${t.crit}`,
    message: `${n} CLOSE_WAIT socket(s) held by processes whose fds cannot be read (run as root to name them)`,
    advice: 'Run `tcptrace doctor` as root to see which process holds them, then `tcptrace --pid N` on it.',
  };
}

function ephemeral(ns: NetnsFigures): Verdict[] {
  const t = THRESHOLDS.ephemeralPorts;
  const e = ns.ephemeral;
  if (!e.range) return [];
  return e.destinations.map((d) => {
    const status = level(d.percent, t.warn, t.crit);
    const who = d.processes.length ? ` (by ${d.processes.slice(0, 3).map(procName).join(', ')}${d.processes.length > 3 ? ', ...' : ''})` : '';
    const notReusable =
      (e.timestamps ?? 0) === 0 ? 'tcp_timestamps=0' : e.twReuse === 2 ? 'tcp_tw_reuse=2 covers loopback only' : `tcp_tw_reuse=${e.twReuse ?? '?'}`;
    const twNote = !d.timeWait
      ? ''
      : `; ${d.timeWait} are TIME_WAIT (this host closed first), ` +
        (d.twReuseApplies ? `${d.reusableTimeWait} of them old enough for connect() to reuse (tcp_tw_reuse=${e.twReuse})` : `not reusable (${notReusable})`);
    return {
      check: 'ephemeral-ports' as const,
      status,
      subject: `${d.source} -> ${d.destination}`,
      netns: ns.id,
      destination: d.destination,
      measured: d.percent,
      unit: 'percent' as const,
      warn: t.warn,
      crit: t.crit,
      figure: `${d.effective} of ${d.available} ports (${d.percent}%)${d.reusableTimeWait ? ` +${d.reusableTimeWait} reusable` : ''}`,
      threshold: `${t.warn}% / ${t.crit}% of port range`,
      message: `${d.inUse} local ports of ${e.range![0]}-${e.range![1]} in use toward ${d.destination}${who}${twNote}; connect() fails with EADDRNOTAVAIL when none is left`,
      advice:
        status === 'OK'
          ? undefined
          : `Reuse connections (keep-alive, pools) instead of one per request${d.timeWait ? '; let the server close first, or set net.ipv4.tcp_tw_reuse=1 (outgoing connections, needs timestamps)' : ''}; widen net.ipv4.ip_local_port_range or spread over more destination/source addresses. tcp_fin_timeout does not shorten TIME_WAIT.`,
    };
  });
}

function timeWait(ns: NetnsFigures): Verdict | null {
  const tw = ns.timeWait;
  if (!ns.examined || tw.maxBuckets === null || tw.maxBuckets <= 0) return null;
  const t = THRESHOLDS.timeWait;
  const percent = Math.round((tw.total / tw.maxBuckets) * 1000) / 10;
  const status = level(percent, t.warn, t.crit);
  const rate = tw.perSecond !== null ? `, ${tw.perSecond}/s new` : '';
  const closer =
    tw.total === 0
      ? 'none'
      : `${tw.clientSide} outgoing (this host's clients closed first), ${tw.serverSide} accepted (this host's servers closed first)`;
  return {
    check: 'time-wait',
    status,
    subject: nsLabel(ns),
    netns: ns.id,
    measured: percent,
    unit: 'percent',
    warn: t.warn,
    crit: t.crit,
    figure: `${tw.total} of ${tw.maxBuckets} (${percent}%)${rate}`,
    threshold: `${t.warn}% / ${t.crit}% of tcp_max_tw_buckets`,
    message: `${tw.total} TIME_WAIT: ${closer}`,
    advice:
      status === 'OK'
        ? undefined
        : `Above net.ipv4.tcp_max_tw_buckets the kernel drops TIME_WAIT state (TCPTimeWaitOverflow). The side that closes first keeps TIME_WAIT for 60 s: ${tw.clientSide >= tw.serverSide ? 'reuse outgoing connections or let the server close first; tcp_tw_reuse=1 lets connect() reuse their ports' : 'let clients close first (HTTP keep-alive, Connection: close from the client)'}. tcp_fin_timeout does not change TIME_WAIT.`,
  };
}

function acceptQueue(ns: NetnsFigures): Verdict[] {
  const t = THRESHOLDS.acceptQueue;
  return ns.listeners.map((l) => {
    const status = level(l.percent, t.warn, t.crit);
    const owner = l.owners[0];
    const ownerText = owner ? ` ${procName(owner)}` : '';
    const somaxconn = ns.sysctls?.['net.core.somaxconn'] ?? '?';
    return {
      check: 'accept-queue' as const,
      status,
      subject: `${l.address}${ownerText}`,
      pid: owner?.pid,
      comm: owner?.comm,
      netns: ns.id,
      listener: l.address,
      measured: l.percent,
      unit: 'percent' as const,
      warn: t.warn,
      crit: t.crit,
      figure: `${l.queue} of ${l.backlog} queued (${l.percent}%)`,
      threshold: `${t.warn}% / ${t.crit}% of backlog`,
      message:
        status === 'CRIT'
          ? `accept queue of ${l.address} is full: new connections are dropped (ListenOverflows) until${ownerText || ' its owner'} calls accept()`
          : `${l.queue} connection(s) waiting for accept() on ${l.address} (backlog ${l.backlog})`,
      advice:
        status === 'OK'
          ? undefined
          : `The program${ownerText} is not calling accept() fast enough (or at all: blocked, or out of fds?). A larger backlog (listen() argument, capped by net.core.somaxconn=${somaxconn}) only absorbs bursts; it does not make the program accept.`,
    };
  });
}

function listenOverflows(ns: NetnsFigures, windowSeconds: number | null): Verdict | null {
  const c = ns.counters?.ListenOverflows;
  if (!c || c.delta === null || windowSeconds === null) return null;
  const t = THRESHOLDS.listenOverflows;
  const rate = Math.round((c.delta / windowSeconds) * 10) / 10;
  const status: Status = c.delta > 0 ? (rate >= t.crit ? 'CRIT' : 'WARN') : 'OK';
  const drops = ns.counters?.ListenDrops;
  const full = ns.listeners.filter((l) => l.queue >= l.backlog);
  return {
    check: 'listen-overflows',
    status,
    subject: nsLabel(ns),
    netns: ns.id,
    measured: rate,
    unit: 'per-second',
    warn: t.warn,
    crit: t.crit,
    figure: `+${c.delta} in ${windowSeconds.toFixed(1)} s (${rate}/s)`,
    threshold: `>0 / ${t.crit}/s`,
    message: `ListenOverflows +${c.delta} (total ${c.total}), ListenDrops +${drops?.delta ?? '?'} (total ${drops?.total ?? '?'})${full.length ? `; full now: ${full.map((l) => l.address).join(', ')}` : ''}`,
    advice:
      status === 'OK'
        ? undefined
        : 'Each overflow is a SYN or handshake ACK dropped because an accept queue was full; clients retry after 1 s, 3 s, 7 s... See the accept-queue lines for which listener and which process.',
  };
}

function fileMax(f: Figures): Verdict | null {
  const fnr = f.system.fileNr;
  if (!fnr) return null;
  const t = THRESHOLDS.fileMax;
  const status = level(fnr.percent, t.warn, t.crit);
  return {
    check: 'file-max',
    status,
    subject: 'system',
    measured: fnr.percent,
    unit: 'percent',
    warn: t.warn,
    crit: t.crit,
    figure: `${fnr.allocated} of ${fnr.max} (${fnr.percent}%)`,
    threshold: `${t.warn}% / ${t.crit}% of fs.file-max`,
    message: `${fnr.allocated} file handles open system-wide (fs.file-nr), fs.file-max ${fnr.max}`,
    advice: status === 'OK' ? undefined : 'At fs.file-max every process gets ENFILE. Find the processes with most fds (the fd-limit lines); raise fs.file-max only once no leak is left.',
  };
}

/**
 * Every verdict, OK ones included, in CHECKS order, worst first within a check.
 * unownedCloseWait: also judge CLOSE_WAIT sockets no visible process holds (every
 * process was scanned, or a --pid could not be read); with --pid they are other
 * processes' business.
 */
export function judge(f: Figures, opts: { unownedCloseWait: boolean } = { unownedCloseWait: true }): Verdict[] {
  const all: Verdict[] = [];
  for (const p of f.processes) {
    const a = fdLimit(p);
    if (a) all.push(a);
    const b = closeWait(p);
    if (b) all.push(b);
  }
  for (const ns of f.netns) {
    if (!ns.examined) continue;
    const u = opts.unownedCloseWait ? unownedCloseWait(ns) : null;
    if (u) all.push(u);
    all.push(...ephemeral(ns));
    const tw = timeWait(ns);
    if (tw) all.push(tw);
    all.push(...acceptQueue(ns));
    const lo = listenOverflows(ns, f.windowSeconds);
    if (lo) all.push(lo);
  }
  const fm = fileMax(f);
  if (fm) all.push(fm);
  return all.sort((a, b) => CHECKS.indexOf(a.check) - CHECKS.indexOf(b.check) || STATUS_EXIT[b.status] - STATUS_EXIT[a.status] || b.measured - a.measured);
}

/**
 * The verdict table: every WARN and CRIT, plus for each check with none of those
 * a single OK line with its highest figure (so the table stays short).
 */
export function summarize(all: Verdict[]): Verdict[] {
  const out: Verdict[] = [];
  for (const check of CHECKS) {
    const mine = all.filter((v) => v.check === check);
    const bad = mine.filter((v) => v.status !== 'OK');
    if (bad.length) out.push(...bad);
    else if (mine.length) out.push(mine[0]!);
    else out.push(placeholder(check));
  }
  return out;
}

const T = THRESHOLDS;
const NOTHING: Record<Check, { message: string; unit: Verdict['unit']; warn: number; crit: number; threshold: string }> = {
  'fd-limit': { message: 'no readable process with a soft fd limit', unit: 'percent', ...T.fdLimit, threshold: `${T.fdLimit.warn}% / ${T.fdLimit.crit}% of soft limit` },
  'close-wait': { message: 'no CLOSE_WAIT sockets', unit: 'sockets', warn: T.closeWait.warn, crit: T.closeWait.crit, threshold: `${T.closeWait.warn} / ${T.closeWait.crit} or ${T.closeWait.critFdShare}% of fds` },
  'ephemeral-ports': { message: 'no outgoing connections', unit: 'percent', ...T.ephemeralPorts, threshold: `${T.ephemeralPorts.warn}% / ${T.ephemeralPorts.crit}% of port range` },
  'time-wait': { message: 'tcp_max_tw_buckets not readable', unit: 'percent', ...T.timeWait, threshold: `${T.timeWait.warn}% / ${T.timeWait.crit}% of tcp_max_tw_buckets` },
  'accept-queue': { message: 'no listeners', unit: 'percent', ...T.acceptQueue, threshold: `${T.acceptQueue.warn}% / ${T.acceptQueue.crit}% of backlog` },
  'listen-overflows': { message: 'not measured: needs a window (--sample > 0)', unit: 'per-second', ...T.listenOverflows, threshold: `>0 / ${T.listenOverflows.crit}/s` },
  'file-max': { message: 'fs.file-nr not readable', unit: 'percent', ...T.fileMax, threshold: `${T.fileMax.warn}% / ${T.fileMax.crit}% of fs.file-max` },
};

function placeholder(check: Check): Verdict {
  const n = NOTHING[check];
  return { check, status: 'OK', subject: '-', measured: 0, unit: n.unit, warn: n.warn, crit: n.crit, figure: '-', threshold: n.threshold, message: n.message };
}
