/**
 * `tcptrace export -f html`: one self-contained page of a recording's socket
 * timelines (a counter chart, a virtualised swimlane, the leak groups with
 * their stacks, a panel per socket), that opens from disk with no network.
 *
 * The lives are kept columnar as they stream in (growable typed arrays,
 * strings and frames interned: memory per socket, not per record; the
 * counters are folded into at most a few thousand buckets as they come), then
 * written once in finish(): one binary blob (a JSON header, then the columns,
 * each 8-byte aligned) gzipped and base64'd into a <script type=
 * "application/json">, which the page inflates with DecompressionStream.
 * The page's code is src/export/html/page.ts (compiled next to this file);
 * uPlot is inlined from its package at export time.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import type { LeakGroup } from '../analysis/leaks.js';
import { TcptraceError } from '../errors.js';
import { codePathFrame } from '../stacks/app-frame.js';
import { TCP } from '../model/states.js';
import type { Frame } from '../stacks/types.js';
import { COUNTER_SERIES, type CallKind, type CounterSeries, type LifeKind, type SocketLife, type TimelineContext, type TimelineEnd, type TimelineSink } from './timeline.js';

/** the page's enumerations: the number stored is the index (page.ts has the same lists) */
export const HTML_KINDS: LifeKind[] = ['leaked', 'late', 'listener', 'open', 'closed'];
export const HTML_CALLS: CallKind[] = ['accept', 'connect', 'listen', 'close', 'shutdown', 'first write', 'EOF read'];
/** a counter change this far ahead of the others waits for the stream to reach it */
const AHEAD_NS = 1e9;
/** the counter chart's points at most */
export const CHART_POINTS = 2000;

type Typed = Float64Array | Int32Array | Uint32Array | Uint8Array | Int8Array;
type TypedCtor = { new (n: number): Typed; readonly BYTES_PER_ELEMENT: number; readonly name: string };

/** a typed array that grows by doubling */
class Column {
  private arr: Typed;
  length = 0;
  constructor(
    readonly ctor: TypedCtor,
    cap = 1024,
  ) {
    this.arr = new ctor(cap);
  }
  push(v: number): void {
    if (this.length === this.arr.length) {
      const next = new this.ctor(this.arr.length * 2);
      next.set(this.arr as never);
      this.arr = next;
    }
    this.arr[this.length++] = v;
  }
  view(): Typed {
    return this.arr.subarray(0, this.length);
  }
}

/** values by key, each once: the page refers to them by index */
class Interner<T = string> {
  readonly list: T[] = [];
  private readonly ids = new Map<string, number>();
  id(key: string, value: T = key as T): number {
    let i = this.ids.get(key);
    if (i === undefined) {
      i = this.list.length;
      this.list.push(value);
      this.ids.set(key, i);
    }
    return i;
  }
}

/**
 * The counters summed over processes, folded into buckets of a width that
 * doubles whenever the picture outgrows them: each bucket keeps, per series,
 * the highest count in it and the count at its end.
 */
class CounterBuckets {
  private width = 1e6; // 1 ms to start with
  private readonly cap = CHART_POINTS * 2;
  private readonly max: Float64Array[] = COUNTER_SERIES.map(() => new Float64Array(this.cap));
  private readonly last: Float64Array[] = COUNTER_SERIES.map(() => new Float64Array(this.cap));
  /** per series: buckets a change of that series fell in (changes of the others say nothing of it: they may come out of time order) */
  private readonly touched: Uint8Array[] = COUNTER_SERIES.map(() => new Uint8Array(this.cap));
  private readonly totals = new Float64Array(COUNTER_SERIES.length);
  private readonly perProcess = new Map<number, Float64Array>();
  /**
   * With --from, the counters start at the window with their next change: the
   * counts at the window's start come from the lives alive then, and stand in
   * for each process's series until its first change (rel ns; NaN: none yet).
   */
  private readonly firstChange = new Map<number, Float64Array>();
  private readonly atStart = new Map<number, Float64Array>();
  /** changes far ahead of the newest applied, in time order: [ts, pid, series, value] */
  private readonly ahead: [number, number, number, number][] = [];
  private newest: number;
  events = 0;

  constructor(private readonly origin: number) {
    this.newest = origin;
  }

  /** a socket alive at the window's start, in `state` (-1: in its derived TIME_WAIT) */
  aliveAtStart(pid: number, state: number): void {
    let v = this.atStart.get(pid);
    if (!v) this.atStart.set(pid, (v = new Float64Array(COUNTER_SERIES.length)));
    const series = state === -1 ? 'TIME_WAIT' : state === TCP.CLOSE_WAIT ? 'CLOSE_WAIT' : state === TCP.ESTABLISHED ? 'ESTABLISHED' : null;
    if (series) v[COUNTER_SERIES.indexOf(series)]++;
    if (state !== -1) v[COUNTER_SERIES.indexOf('open')]++;
  }

  /**
   * A change comes in stream order, and almost always in time order; one far
   * ahead of the others (a derived TIME_WAIT's end, 60 s after the close) waits
   * until the stream reaches its time, and is dropped when the picture ends first.
   */
  add(ts: number, pid: number, series: number, value: number): void {
    this.events++;
    const q = this.ahead;
    while (q.length && q[0][0] <= ts) this.apply(...q.shift()!);
    if (ts > this.newest + AHEAD_NS) {
      let i = q.length;
      while (i > 0 && q[i - 1][0] > ts) i--;
      q.splice(i, 0, [ts, pid, series, value]);
      return;
    }
    this.apply(ts, pid, series, value);
  }

  private apply(ts: number, pid: number, series: number, value: number): void {
    if (ts > this.newest) this.newest = ts;
    let p = this.perProcess.get(pid);
    if (!p) {
      this.perProcess.set(pid, (p = new Float64Array(COUNTER_SERIES.length)));
      this.firstChange.set(pid, new Float64Array(COUNTER_SERIES.length).fill(NaN));
    }
    const rel = Math.max(0, ts - this.origin);
    const first = this.firstChange.get(pid)!;
    if (isNaN(first[series])) first[series] = rel;
    while (rel >= this.width * this.cap) this.fold();
    const b = Math.floor(rel / this.width);
    if (!this.touched[series][b]) {
      this.touched[series][b] = 1;
      this.max[series][b] = this.last[series][b] = this.totals[series];
    }
    this.totals[series] += value - p[series];
    p[series] = value;
    const v = this.totals[series];
    this.last[series][b] = v;
    if (v > this.max[series][b]) this.max[series][b] = v;
  }

  /** halves the resolution: bucket pairs become one */
  private fold(): void {
    const half = this.cap / 2;
    for (let i = 0; i < half; i++) {
      const a = 2 * i;
      const b = a + 1;
      for (let s = 0; s < this.totals.length; s++) {
        const t = this.touched[s];
        const ta = t[a];
        const tb = t[b];
        const mx = this.max[s];
        const ls = this.last[s];
        mx[i] = ta && tb ? Math.max(mx[a], mx[b]) : tb ? mx[b] : mx[a];
        ls[i] = tb ? ls[b] : ls[a];
        t[i] = ta | tb;
      }
    }
    for (const t of this.touched) t.fill(0, half);
    this.width *= 2;
  }

  /** [x (ns from the origin), then one array per series], at most CHART_POINTS buckets up to `end` (ns from the origin) */
  points(end: number): { x: number[]; series: number[][] } {
    for (const change of this.ahead) if (change[0] <= this.origin + end) this.apply(...change);
    this.ahead.length = 0;
    while (end > this.width * CHART_POINTS) this.fold();
    const n = Math.max(1, Math.min(this.cap, Math.ceil(end / this.width)));
    const w = this.width;
    // per series, the counts at the window's start of the processes not yet changed: [first change (rel ns), count]
    const pending: [number, number][][] = COUNTER_SERIES.map(() => []);
    for (const [pid, counts] of this.atStart) {
      const first = this.firstChange.get(pid);
      counts.forEach((v, s) => v && pending[s].push([first && !isNaN(first[s]) ? first[s] : Infinity, v]));
    }
    /** what the counts lack at t: those of processes whose first change comes after t */
    const missing = (s: number, t: number) => pending[s].reduce((a, [first, v]) => (first > t ? a + v : a), 0);
    const x: number[] = [];
    const series: number[][] = COUNTER_SERIES.map(() => []);
    const carry = COUNTER_SERIES.map((_, s) => missing(s, -1));
    for (let b = 0; b < n; b++) {
      x.push(b * w);
      for (let s = 0; s < carry.length; s++) {
        if (!this.touched[s][b]) {
          series[s].push(carry[s]);
          continue;
        }
        // the highest count, or the count at the bucket's start when a first change lowered it
        series[s].push(Math.max(this.max[s][b] + missing(s, (b + 1) * w), carry[s]));
        carry[s] = this.last[s][b] + missing(s, (b + 1) * w - 1e-3);
      }
    }
    // the picture's last moment, at the counts then
    x.push(Math.max(end, (n - 1) * w + 1));
    for (let s = 0; s < carry.length; s++) series[s].push(carry[s]);
    return { x, series };
  }
}

/** a frame as the page reads it (PageFrame in page.ts): symbol s, module m, file f, line l, address a, jit j, reason r, inlined i */
type PageFrame = Record<string, string | number | { s: string; f?: string; l?: number }[]>;

export interface HtmlStats {
  sockets: number;
  bytes: number;
  rawBytes: number;
  counterEvents: number;
}

/** The TimelineSink of `tcptrace export -f html`: the page is written in finish(). */
export class HtmlTimeline implements TimelineSink {
  private ctx!: TimelineContext;
  private base = 0;
  /** the picture's start (ns, CLOCK_MONOTONIC): the recording's, or --from's */
  private origin = 0;
  private windowed = false;
  private readonly strings = new Interner();
  private readonly processes = new Map<number, { index: number; comm: string }>();
  private readonly stackIndex = new Map<number, number>();
  private readonly frames = new Interner<PageFrame>();
  private readonly stacks: number[][] = [];
  private readonly shared: number[][] = [];
  private groups: LeakGroup[] = [];
  private endNs: number | null = null;
  private counters!: CounterBuckets;
  private readonly col = {
    pid: new Column(Uint32Array),
    fd: new Column(Int32Array),
    origin: new Column(Uint32Array),
    local: new Column(Uint32Array),
    remote: new Column(Uint32Array),
    start: new Column(Float64Array),
    end: new Column(Float64Array),
    tw: new Column(Float64Array),
    cw: new Column(Float64Array),
    kind: new Column(Uint8Array),
    leak: new Column(Int32Array),
    flags: new Column(Uint8Array),
    stateEnd: new Column(Uint32Array),
    callEnd: new Column(Uint32Array),
    acquire: new Column(Int32Array),
    io: new Column(Int32Array),
    read: new Column(Int32Array),
    eof: new Column(Int32Array),
    // per state: ns after the state before (the first: after the socket's start)
    stTs: new Column(Float64Array, 4096),
    stState: new Column(Uint8Array, 4096),
    // per call: ns after the socket's start
    cTs: new Column(Float64Array, 4096),
    cKind: new Column(Uint8Array, 4096),
    cFd: new Column(Int32Array, 4096),
    cPid: new Column(Int32Array, 4096),
    cArg: new Column(Int8Array, 4096),
    cStack: new Column(Int32Array, 4096),
  };
  stats: HtmlStats = { sockets: 0, bytes: 0, rawBytes: 0, counterEvents: 0 };

  constructor(readonly outPath: string) {}

  begin(ctx: TimelineContext): void {
    this.ctx = ctx;
    this.base = Number(ctx.info.startedNs);
    this.origin = Number.isFinite(ctx.from) ? Math.max(ctx.from, this.base) : this.base;
    this.windowed = this.origin > this.base;
    this.counters = new CounterBuckets(this.origin);
  }

  counter(ts: number, pid: number, _comm: string, series: CounterSeries, value: number): void {
    this.counters.add(ts, pid, COUNTER_SERIES.indexOf(series), value);
  }

  leakGroups(groups: LeakGroup[], endNs: number): void {
    this.groups = groups;
    this.endNs = endNs;
  }

  socket(life: SocketLife): void {
    const c = this.col;
    const index = this.stats.sockets++;
    let proc = this.processes.get(life.pid);
    if (!proc) this.processes.set(life.pid, (proc = { index: this.processes.size, comm: life.comm }));
    else if (life.comm) proc.comm = life.comm;
    c.pid.push(proc.index);
    c.fd.push(life.fd);
    c.origin.push(this.strings.id(life.origin));
    c.local.push(this.strings.id(life.local));
    c.remote.push(this.strings.id(life.remote));
    const start = life.start - this.base;
    c.start.push(start);
    c.end.push(life.end === null ? NaN : life.end - this.base);
    c.tw.push(life.timeWaitEnd === null ? NaN : life.timeWaitEnd - this.base);
    c.cw.push(life.closeWaitNs === null ? NaN : life.closeWaitNs);
    c.kind.push(HTML_KINDS.indexOf(life.kind));
    c.leak.push(life.leak);
    c.flags.push((life.preexisting ? 1 : 0) | (life.family === 10 ? 2 : 0) | (life.clamped ? 4 : 0));
    let prev = start;
    for (const s of life.states) {
      const rel = s.ts - this.base;
      c.stTs.push(rel - prev);
      c.stState.push(s.state);
      prev = rel;
    }
    c.stateEnd.push(c.stTs.length);
    for (const call of life.calls) {
      c.cTs.push(call.ts - this.base - start);
      c.cKind.push(Math.max(0, HTML_CALLS.indexOf(call.kind)));
      c.cFd.push(call.fd);
      c.cPid.push(call.pid);
      c.cArg.push(call.arg ?? -1);
      c.cStack.push(this.stack(call.stackId));
    }
    c.callEnd.push(c.cTs.length);
    c.acquire.push(this.stack(life.stacks.acquire));
    c.io.push(this.stack(life.stacks.io));
    c.read.push(this.stack(life.stacks.read));
    c.eof.push(this.stack(life.stacks.eof));
    if (life.sharedWith.length) this.shared.push([index, ...life.sharedWith]);
    if (this.windowed && life.pid && life.start <= this.origin) {
      // cut at the window's start (timeline.ts clips its first state there): counted from the lives, as no change said so
      if (life.end === null || life.end > this.origin) this.counters.aliveAtStart(life.pid, life.states[0]?.state ?? 0);
      else if (life.timeWaitEnd !== null && life.timeWaitEnd > this.origin) this.counters.aliveAtStart(life.pid, -1);
    }
  }

  /** the page's index of a stack id (its frames interned), -1: none or unknown */
  private stack(id: number | undefined): number {
    if (id === undefined) return -1;
    let i = this.stackIndex.get(id);
    if (i === undefined) {
      const frames = this.ctx.stacks.get(id);
      if (!frames) return -1;
      i = this.stacks.length;
      this.stacks.push(frames.map((f) => this.frame(f)));
      this.stackIndex.set(id, i);
    }
    return i;
  }

  private frame(f: Frame): number {
    const pf: PageFrame = { s: f.symbol, m: f.module };
    if (f.file) pf.f = f.file;
    if (f.line) pf.l = f.line;
    if (!f.symbol) pf.a = f.moduleOffset ? `${f.module.split('/').pop()}+${f.moduleOffset}` : f.addr;
    if (f.jit) pf.j = 1;
    if (f.reason) pf.r = f.reason;
    if (f.inlined?.length) pf.i = f.inlined.map((x) => ({ s: x.symbol, f: x.file, l: x.line }));
    return this.frames.id(JSON.stringify(pf), pf);
  }

  async finish(end: TimelineEnd): Promise<void> {
    const info = this.ctx.info;
    const endNs = Math.min(this.endNs ?? end.endNs, end.endNs);
    const from = this.origin;
    const chart = this.counters.points(endNs - from);
    this.stats.counterEvents = this.counters.events;
    const wallStartMs = Number(info.clock.wallNs) / 1e6 + (this.base - Number(info.clock.monotonicNs)) / 1e6;
    const report = end.report;
    const groups = this.groups.map((g) => {
      const top = codePathFrame(g.stacks.acquire) ?? codePathFrame(g.stacks.io) ?? codePathFrame(g.stacks.read) ?? codePathFrame(g.stacks.eof);
      return {
        pid: g.pid,
        comm: g.comm,
        origin: g.origin,
        count: g.count,
        oldestMs: g.oldestMs,
        medianMs: g.medianMs,
        ageSince: g.ageSince,
        at: top ? top.symbol || top.addr : null,
        stacks: { acquire: this.frameList(g.stacks.acquire), io: this.frameList(g.stacks.io), read: this.frameList(g.stacks.read), eof: this.frameList(g.stacks.eof) },
        notes: g.notes,
        peers: g.peers,
      };
    });
    const header = {
      v: 1,
      meta: {
        tool: `${info.tool.name} ${info.tool.version}`,
        host: info.host,
        kernel: info.kernel,
        attach: info.attach.mode,
        chosenBy: info.attach.chosenBy,
        pids: info.selectors.pids,
        stacks: info.stacks !== null,
        wallStartMs,
        // times below are ns after the recording's start
        from: from - this.base,
        to: endNs - this.base,
        // the recording's own length (the picture may be a window of it)
        durationNs: Number(end.end.endedNs) - this.base,
        leakAfterMs: report.leakAfterMs ?? this.ctx.leakAfterMs,
        sockets: this.stats.sockets,
        filteredSockets: end.filteredSockets,
        endReason: end.end.reason,
        lost: report.counts.lost,
        missed: report.counts.missedInKernel,
        dropped: report.counts.droppedInAgent,
        warnings: report.warnings,
        statesAtEnd: report.states,
      },
      kinds: HTML_KINDS,
      calls: HTML_CALLS,
      series: COUNTER_SERIES,
      strings: this.strings.list,
      processes: [...this.processes].map(([pid, p]) => ({ pid, comm: p.comm })),
      groups,
      frames: this.frames.list,
      stacks: this.stacks,
      shared: this.shared,
      chart: { x: chart.x.map((x) => x + from - this.base), series: chart.series },
      columns: {} as Record<string, [string, number, number]>,
    };
    const cols = Object.entries(this.col).map(([name, c]) => [name, c.view()] as const);
    let off = 0;
    const place = (bytes: number) => {
      off = Math.ceil(off / 8) * 8;
      const at = off;
      off += bytes;
      return at;
    };
    // the header's length is only known once the offsets are in it: lay the columns out after a bound on it
    const headerBound = () => Buffer.byteLength(JSON.stringify(header)) + 64;
    for (const [name, v] of cols) header.columns[name] = [v.constructor.name, 0, v.length];
    const start = Math.ceil((4 + headerBound() + 16 * cols.length) / 8) * 8;
    off = start;
    for (const [name, v] of cols) header.columns[name] = [v.constructor.name, place(v.byteLength), v.length];
    const json = Buffer.from(JSON.stringify(header));
    if (4 + json.length > start) throw new Error('html export: header outgrew its room'); // cannot happen: offsets only got shorter or equal
    const blob = Buffer.alloc(off);
    blob.writeUInt32LE(json.length, 0);
    json.copy(blob, 4);
    for (const [name, v] of cols) blob.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), header.columns[name][1]);
    this.stats.rawBytes = blob.length;
    const data = gzipSync(blob, { level: 6 }).toString('base64');
    const html = page(data, info.host);
    try {
      writeFileSync(this.outPath, html);
    } catch (err) {
      throw new TcptraceError('CANNOT_WRITE', `cannot write ${this.outPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    this.stats.bytes = Buffer.byteLength(html);
  }

  private frameList(frames: Frame[] | null): number[] | null {
    return frames ? frames.map((f) => this.frame(f)) : null;
  }
}

const require = createRequire(import.meta.url);

/** a script's text, safe inside <script> (no closing tag, no module marker, no source map) */
function scriptText(js: string): string {
  return js
    .replace(/^\/\/# sourceMappingURL=.*$/m, '')
    .replace(/^export \{\};\s*$/m, '')
    .replace(/<\/(script)/gi, '<\\/$1');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(data: string, host: string): string {
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  let pageJs: string;
  try {
    pageJs = readFileSync(new URL('./html/page.js', import.meta.url), 'utf8');
  } catch (err) {
    throw new Error(`the HTML page's script is missing (${(err as NodeJS.ErrnoException).code}): run npm run build`);
  }
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tcptrace export -f html">
<link rel="icon" href="data:,">
<title>tcptrace: ${escapeHtml(host)}</title>
<style>${uplotCss}</style>
<style>${PAGE_CSS}</style>
</head>
<body>
<header id="top"><h1>tcptrace</h1><div id="facts">loading…</div></header>
<noscript><p class="error">This page draws the recording with JavaScript: allow scripts for this file.</p></noscript>
<main>
<div id="middle">
<section id="chart-box" class="card"><div class="card-title"><span>Sockets per state</span><span class="hint">the highest count in each bucket · drag to zoom (the swimlane follows) · double-click to reset</span></div><div id="chart"><div id="chart-legend"></div></div></section>
<section id="lane-box" class="card">
<div class="card-title" id="lane-bar"><span>Sockets</span><span id="lane-filter"></span><span id="lane-range" class="mono"></span><input id="lane-search" type="search" placeholder="filter: fd, address, pid, comm" spellcheck="false"><button id="lane-reset" type="button">reset zoom</button></div>
<div id="legend"></div>
<div id="lane"><canvas id="lane-canvas"></canvas><div id="lane-spacer"></div></div>
</section>
<aside id="panel" class="card"><div class="card-title"><span>Socket</span></div><div id="panel-body"><p class="hint">Click a socket row for its facts, transitions, calls and stacks.</p></div></aside>
</div>
<section id="leaks-box" class="card"><div class="card-title"><span id="leaks-title">Leak groups</span><span class="hint">click a group to show only its sockets</span></div><div id="leaks"></div></section>
</main>
<div id="tooltip" hidden></div>
<script type="application/json" id="tcptrace-data">{"encoding":"gzip+base64","data":"${data}"}</script>
<script>${scriptText(uplotJs)}</script>
<script>${scriptText(pageJs)}</script>
</body>
</html>
`;
}

const PAGE_CSS = `
:root { --fg: #1f2328; --muted: #656d76; --line: #d8dee4; --bg: #f6f8fa; --card: #fff; --red: #d1242f; --mono: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace; }
* { box-sizing: border-box; }
html, body { margin: 0; background: var(--bg); color: var(--fg); font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
header#top { display: flex; align-items: baseline; gap: 16px; padding: 8px 14px; background: #24292f; color: #f6f8fa; }
header#top h1 { font-size: 15px; margin: 0; font-weight: 600; letter-spacing: .02em; }
#facts { display: flex; flex-wrap: wrap; gap: 4px 18px; color: #d0d7de; }
#facts b { color: #fff; font-weight: 600; }
#facts .warn { color: #ffb4b4; }
main { padding: 10px 14px 20px; display: flex; flex-direction: column; gap: 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; min-width: 0; }
.card-title { display: flex; align-items: center; gap: 12px; padding: 6px 10px; border-bottom: 1px solid var(--line); font-weight: 600; white-space: nowrap; }
.card-title .hint { font-weight: 400; }
.hint { color: var(--muted); font-size: 12px; }
.mono { font-family: var(--mono); font-size: 12px; font-weight: 400; }
#chart { position: relative; min-height: 160px; }
#chart-legend { position: absolute; z-index: 2; left: 10px; top: 8px; width: 180px; font-size: 12px; line-height: 17px; pointer-events: none; }
#chart-legend .at { color: var(--muted); font-variant-numeric: tabular-nums; }
#chart-legend div { display: flex; align-items: center; gap: 6px; }
#chart-legend i { display: inline-block; width: 14px; height: 0; border-top: 2px solid; }
#chart-legend .v { margin-left: auto; font-variant-numeric: tabular-nums; font-weight: 600; }
#middle { display: grid; grid-template-columns: minmax(0, 1fr) 420px; grid-template-rows: auto auto; gap: 10px; }
#chart-box { grid-column: 1; grid-row: 1; }
#lane-box { grid-column: 1; grid-row: 2; display: flex; flex-direction: column; }
#lane-filter:empty { display: none; }
#lane-filter { background: #ffebe9; color: var(--red); border: 1px solid #ffcecb; border-radius: 10px; padding: 0 4px 0 8px; font-weight: 500; }
#lane-filter button { border: 0; background: none; color: inherit; cursor: pointer; font-size: 13px; padding: 0 4px; }
#lane-range { color: var(--muted); margin-left: auto; }
#lane-search { font: inherit; font-weight: 400; width: 220px; padding: 2px 6px; border: 1px solid var(--line); border-radius: 4px; }
button { font: inherit; font-weight: 400; }
#lane-reset { padding: 1px 8px; border: 1px solid var(--line); border-radius: 4px; background: #f6f8fa; cursor: pointer; }
#legend { display: flex; flex-wrap: wrap; gap: 2px 14px; padding: 4px 10px; font-size: 12px; color: var(--muted); border-bottom: 1px solid var(--line); }
#legend span { display: inline-flex; align-items: center; gap: 5px; }
#legend i { display: inline-block; width: 14px; height: 9px; border-radius: 1px; }
#lane { position: relative; overflow-y: auto; overflow-x: hidden; flex: 1 1 auto; }
#lane-canvas { position: sticky; top: 0; display: block; width: 100%; cursor: default; }
#panel { grid-column: 2; grid-row: 1 / span 2; display: flex; flex-direction: column; contain: size; }
#panel-body { overflow: auto; padding: 8px 10px; flex: 1 1 auto; min-height: 0; }
#panel h3 { margin: 12px 0 4px; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
#panel h3:first-child { margin-top: 0; }
#panel .name { font-family: var(--mono); font-size: 13px; font-weight: 600; margin-bottom: 6px; word-break: break-all; }
table { border-collapse: collapse; }
table.kv td { padding: 1px 12px 1px 0; vertical-align: top; }
table.kv td:first-child { color: var(--muted); white-space: nowrap; }
table.grid { width: 100%; }
table.grid th { text-align: left; font-weight: 500; color: var(--muted); border-bottom: 1px solid var(--line); padding: 3px 8px 3px 0; white-space: nowrap; }
table.grid td { padding: 2px 8px 2px 0; border-bottom: 1px solid #eef1f4; vertical-align: top; }
td.num, table.grid th.num { text-align: right; font-variant-numeric: tabular-nums; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11px; font-weight: 600; margin-left: 6px; vertical-align: 1px; }
.badge.leaked { background: #ffebe9; color: var(--red); }
.badge.late { background: #fff1e5; color: #bc4c00; }
.badge.listener, .badge.open { background: #ddf4ff; color: #0969da; }
.badge.closed { background: #eef1f4; color: var(--muted); }
.frames { font-family: var(--mono); font-size: 11.5px; line-height: 1.45; margin: 2px 0 6px; }
.frames div { padding-left: 3.2em; text-indent: -3.2em; }
.frames .n { color: var(--muted); display: inline-block; width: 3.2em; text-indent: 0; text-align: right; padding-right: .6em; }
.frames .sym { color: var(--fg); font-weight: 600; overflow-wrap: anywhere; }
.frames .loc { color: #0550ae; margin-left: .3em; }
.frames .mod { color: var(--muted); margin-left: .3em; }
.frames .inl { color: var(--muted); }
.frames .why { color: #9a6700; margin-left: .3em; }
.none { color: var(--muted); font-style: italic; }
#leaks { overflow-x: auto; }
#leaks table.grid { font-size: 12.5px; }
#leaks table.grid th, #leaks table.grid td { padding-left: 10px; }
#leaks tbody.group > tr.row { cursor: pointer; }
#leaks tbody.group > tr.row:hover td { background: #f6f8fa; }
#leaks tbody.group.active > tr.row td { background: #fff8c5; }
#leaks td.top { font-family: var(--mono); font-size: 11.5px; }
#leaks td.count { font-weight: 700; color: var(--red); }
#leaks tr.more td { border-bottom: 1px solid var(--line); padding-top: 0; }
#leaks details summary { cursor: pointer; color: #0969da; font-size: 12px; }
#leaks details .stacks { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 10px; padding: 4px 0 6px; }
#leaks details .stacks > div { overflow-x: auto; }
#leaks details h4 { margin: 4px 0 2px; font-size: 12px; color: var(--muted); font-weight: 600; }
#leaks .notes { color: #9a6700; font-size: 12px; margin: 2px 0 4px; }
#leaks .empty { padding: 10px; color: var(--muted); }
#tooltip { position: fixed; z-index: 10; pointer-events: none; background: #24292f; color: #f6f8fa; padding: 5px 8px; border-radius: 4px; font-size: 12px; line-height: 1.45; max-width: 460px; box-shadow: 0 2px 8px rgba(0,0,0,.25); }
#tooltip .mono { font-size: 12px; }
#tooltip .dim { color: #afb8c1; }
.error { color: var(--red); padding: 10px 14px; font-weight: 600; }
a.link { color: #0969da; cursor: pointer; text-decoration: none; }
a.link:hover { text-decoration: underline; }
@media (max-width: 1100px) {
  #middle { grid-template-columns: minmax(0, 1fr); }
  #panel { grid-column: 1; grid-row: 3; contain: none; max-height: 70vh; }
  #leaks details .stacks { grid-template-columns: minmax(0, 1fr); }
}
`;
