/**
 * The browser side of `tcptrace export -f html` (src/export/html.ts inlines
 * the compiled script into the page it writes). No imports and no exports: tsc
 * emits a plain script. It inflates the columnar data embedded in the page,
 * then draws the header, the counter chart (uPlot, inlined as well), the
 * swimlane (canvas, virtualised: only the rows in view are drawn), the leak
 * groups and the panel of a clicked socket. window.__tcptrace says when the
 * page is drawn (for tests).
 */

declare const uPlot: any;

type Col = Float64Array | Int32Array | Uint32Array | Uint8Array | Int8Array;

interface PageFrame {
  s: string;
  m: string;
  f?: string;
  l?: number;
  a?: string;
  j?: 1;
  r?: string;
  i?: { s: string; f?: string; l?: number }[];
}

interface PageGroup {
  pid: number;
  comm: string;
  origin: string;
  count: number;
  oldestMs: number;
  medianMs: number;
  ageSince: 'transition' | 'attach';
  at: string | null;
  stacks: { acquire: number[] | null; io: number[] | null; read?: number[] | null; eof: number[] | null };
  notes: string[];
  peers: { addr: string; count: number }[];
}

interface Meta {
  tool: string;
  host: string;
  kernel: string;
  attach: string;
  chosenBy: string;
  pids: number[] | null;
  stacks: boolean;
  wallStartMs: number;
  from: number;
  to: number;
  durationNs: number;
  leakAfterMs: number;
  sockets: number;
  filteredSockets: number;
  endReason: string;
  lost: number;
  missed: number;
  dropped: number;
  warnings: string[];
  statesAtEnd: Record<string, number>;
}

interface Header {
  v: number;
  meta: Meta;
  kinds: string[];
  calls: string[];
  series: string[];
  strings: string[];
  processes: { pid: number; comm: string }[];
  groups: PageGroup[];
  frames: PageFrame[];
  stacks: number[][];
  shared: number[][];
  chart: { x: number[]; series: number[][] };
  columns: Record<string, [string, number, number]>;
}

interface Data extends Header {
  c: Record<string, Col>;
  /** absolute times (ns after the recording's start) of each state and call */
  stAbs: Float64Array;
  cAbs: Float64Array;
  sharedOf: Map<number, number[]>;
}

/** a row of the swimlane that is not a socket: a process, or a category within it */
interface RowHeader {
  level: 0 | 1;
  key: string;
  text: string;
  sub: string;
  color: string;
  count: number;
}

(() => {
  const STATE_NAMES: Record<number, string> = {
    1: 'ESTABLISHED', 2: 'SYN_SENT', 3: 'SYN_RECV', 4: 'FIN_WAIT1', 5: 'FIN_WAIT2', 6: 'TIME_WAIT', 7: 'CLOSE',
    8: 'CLOSE_WAIT', 9: 'LAST_ACK', 10: 'LISTEN', 11: 'CLOSING', 12: 'NEW_SYN_RECV', 13: 'BOUND_INACTIVE',
  };
  /** the fixed palette: CLOSE_WAIT red, the way in blue, the active close amber, the passive close's tail purple */
  const STATE_COLORS: Record<number, string> = {
    1: '#2da44e', 2: '#54aeff', 3: '#54aeff', 12: '#54aeff', 4: '#fb8f44', 5: '#eac54f', 11: '#bf8700',
    6: '#afb8c1', 8: '#d1242f', 9: '#8250df', 10: '#1b7c83', 13: '#8c959f',
  };
  const LEGEND: [string, number][] = [['SYN_SENT / SYN_RECV', 2], ['ESTABLISHED', 1], ['FIN_WAIT1', 4], ['FIN_WAIT2', 5], ['CLOSING', 11], ['CLOSE_WAIT', 8], ['LAST_ACK', 9], ['LISTEN', 10]];
  const SERIES_STYLE: Record<string, { label: string; stroke: string; fill?: string; dash?: number[] }> = {
    CLOSE_WAIT: { label: 'CLOSE_WAIT', stroke: '#d1242f', fill: 'rgba(209,36,47,0.08)' },
    ESTABLISHED: { label: 'ESTABLISHED', stroke: '#2da44e' },
    TIME_WAIT: { label: 'TIME_WAIT (derived)', stroke: '#8c959f', dash: [4, 3] },
    open: { label: 'open', stroke: '#0969da' },
  };
  const KIND_TEXT: Record<string, string> = { late: 'closed late (sat in CLOSE_WAIT for --leak-after or longer)', listener: 'listeners', open: 'open at the end', closed: 'closed' };
  const SITE_TEXT: Record<string, string> = { acquire: 'acquire', io: 'first write', read: 'first read', eof: 'EOF read' };

  const ROW = 16;
  const AXIS = 22;
  const LABEL_W = 250;
  const RIGHT_PAD = 16;
  const MONO = '11px ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace';
  const SANS = '12px system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif';
  const SANS_BOLD = '600 ' + SANS;

  const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
  const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const plural = (n: number, word: string) => `${n.toLocaleString('en')} ${word}${n === 1 ? '' : 's'}`;

  function fmtDur(ns: number): string {
    const a = Math.abs(ns);
    if (a < 1e3) return `${Math.round(ns)} ns`;
    if (a < 1e6) return `${(ns / 1e3).toFixed(a < 1e4 ? 2 : a < 1e5 ? 1 : 0)} µs`;
    if (a < 1e9) return `${(ns / 1e6).toFixed(a < 1e7 ? 2 : a < 1e8 ? 1 : 0)} ms`;
    if (a < 60e9) return `${(ns / 1e9).toFixed(a < 10e9 ? 3 : 2)} s`;
    const s = Math.round(a / 1e9);
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }
  const fmtMs = (ms: number) => fmtDur(ms * 1e6);
  /** a setting in seconds, as given (--leak-after 1 is "1 s") */
  const fmtSetting = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000} s` : fmtMs(ms));
  /** a moment, as seconds after the recording's start */
  const fmtAt = (ns: number, digits = 3) => `${(ns / 1e9).toFixed(digits)} s`;
  function fmtWall(ms: number): string {
    const d = new Date(ms);
    return isNaN(d.getTime()) ? '?' : d.toISOString().replace('T', ' ').replace('Z', ' UTC');
  }

  function fromBase64(s: string): Uint8Array {
    const U = Uint8Array as unknown as { fromBase64?: (s: string) => Uint8Array };
    if (typeof U.fromBase64 === 'function') return U.fromBase64(s);
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function load(): Promise<Data> {
    const wrapper = JSON.parse($('tcptrace-data').textContent || '{}') as { encoding: string; data: string };
    if (wrapper.encoding !== 'gzip+base64') throw new Error(`unknown data encoding ${wrapper.encoding}`);
    const packed = fromBase64(wrapper.data);
    const stream = new Blob([packed as BlobPart]).stream().pipeThrough(new DecompressionStream('gzip'));
    const buf = await new Response(stream).arrayBuffer();
    const len = new DataView(buf).getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, len))) as Header;
    const ctors: Record<string, new (b: ArrayBuffer, off: number, n: number) => Col> = { Float64Array, Int32Array, Uint32Array, Uint8Array, Int8Array };
    const c: Record<string, Col> = {};
    for (const [name, [type, off, n]] of Object.entries(header.columns)) c[name] = new ctors[type](buf, off, n);
    const n = header.meta.sockets;
    const stAbs = new Float64Array(c.stTs.length);
    const cAbs = new Float64Array(c.cTs.length);
    let k = 0;
    let j = 0;
    for (let i = 0; i < n; i++) {
      let t = c.start[i];
      for (; k < c.stateEnd[i]; k++) stAbs[k] = t += c.stTs[k];
      for (; j < c.callEnd[i]; j++) cAbs[j] = c.start[i] + c.cTs[j];
    }
    const sharedOf = new Map<number, number[]>();
    for (const [i, ...pids] of header.shared) sharedOf.set(i, pids);
    return { ...header, c, stAbs, cAbs, sharedOf };
  }

  function main(d: Data): void {
    const { c, meta } = d;
    const N = meta.sockets;
    const G = d.groups.length;
    const start = c.start as Float64Array;
    const endCol = c.end as Float64Array;
    const twCol = c.tw as Float64Array;
    const stateEnd = c.stateEnd as Uint32Array;
    const callEnd = c.callEnd as Uint32Array;
    const stState = c.stState as Uint8Array;
    const kindOf = (i: number) => d.kinds[c.kind[i]];
    const pictureEnd = meta.to;
    const full: [number, number] = [meta.from, Math.max(meta.to, meta.from + 1e6)];

    // ---- header -------------------------------------------------------------
    const leaked = d.groups.reduce((a, g) => a + g.count, 0);
    const facts: string[] = [
      `host <b>${esc(meta.host)}</b>`,
      `kernel <b>${esc(meta.kernel)}</b>`,
      `attach <b>${esc(meta.attach)}</b>${meta.chosenBy === 'option' ? ' (forced)' : ''}`,
      `started <b>${esc(fmtWall(meta.wallStartMs))}</b>`,
      `duration <b>${esc(fmtDur(meta.durationNs))}</b>`,
      `<b>${plural(N, 'socket')}</b>${meta.filteredSockets ? ` (${meta.filteredSockets.toLocaleString('en')} outside --pid/--from/--to)` : ''}`,
      leaked
        ? `<span class="warn"><b>${plural(leaked, 'socket')} leaked</b> in ${plural(G, 'group')} (CLOSE_WAIT ≥ ${esc(fmtSetting(meta.leakAfterMs))})</span>`
        : `no leaks (CLOSE_WAIT ≥ ${esc(fmtSetting(meta.leakAfterMs))})`,
    ];
    if (meta.from > 0 || meta.to < meta.durationNs) facts.push(`window <b>${esc(fmtAt(meta.from))} – ${esc(fmtAt(meta.to))}</b>`);
    if (meta.pids) facts.push(`pid ${esc(meta.pids.join(', '))}`);
    if (!meta.stacks) facts.push('no stacks');
    const loss = meta.lost + meta.missed + meta.dropped;
    if (loss) facts.push(`<span class="warn">${plural(loss, 'record')} lost or missed: the picture has gaps</span>`);
    $('facts').innerHTML = facts.map((f) => `<span>${f}</span>`).join('');
    $('facts').title = [meta.tool, ...meta.warnings].join('\n');

    // ---- labels and the row order --------------------------------------------
    function label(i: number): string {
      const fd = c.fd[i] >= 0 ? `fd ${c.fd[i]}` : 'fd ?';
      const local = d.strings[c.local[i]];
      const remote = d.strings[c.remote[i]];
      if (kindOf(i) === 'listener') return `${fd} listen ${local}`;
      const origin = d.strings[c.origin[i]];
      return `${fd} ${origin === 'connect' ? '→' : '←'} ${remote || local || '?'}`;
    }
    const catOf = (i: number) => {
      const k = c.kind[i];
      return d.kinds[k] === 'leaked' && c.leak[i] >= 0 ? c.leak[i] : G + k;
    };
    const procSockets = new Uint32Array(d.processes.length);
    const procLeaked = new Uint32Array(d.processes.length);
    for (let i = 0; i < N; i++) {
      procSockets[c.pid[i]]++;
      if (kindOf(i) === 'leaked') procLeaked[c.pid[i]]++;
    }
    const procRank = new Uint32Array(d.processes.length);
    [...d.processes.keys()]
      .sort((a, b) => procLeaked[b] - procLeaked[a] || procSockets[b] - procSockets[a] || d.processes[a].pid - d.processes[b].pid)
      .forEach((p, r) => (procRank[p] = r));
    const order = new Uint32Array(N);
    for (let i = 0; i < N; i++) order[i] = i;
    const cat = new Uint32Array(N);
    for (let i = 0; i < N; i++) cat[i] = catOf(i);
    order.sort((a, b) => procRank[c.pid[a]] - procRank[c.pid[b]] || cat[a] - cat[b] || start[a] - start[b] || a - b);

    let leakFilter = -1;
    let search = '';
    let searchText: string[] | null = null;
    const collapsed = new Set<string>();
    let rows = new Int32Array(0);
    let headers: RowHeader[] = [];

    function catHeader(p: number, k: number, count: number): RowHeader {
      const key = `${p}/${k}`;
      if (k < G) {
        const g = d.groups[k];
        return {
          level: 1, key, count, color: '#d1242f',
          text: `leak #${k + 1}: ${g.origin}${g.at ? ` @ ${g.at}` : ''}`,
          sub: `${plural(g.count, 'socket')}, oldest ${fmtMs(g.oldestMs)}${g.ageSince === 'attach' ? ' (since attach)' : ''}`,
        };
      }
      const kind = d.kinds[k - G];
      return { level: 1, key, count, color: kind === 'late' ? '#bc4c00' : '#57606a', text: KIND_TEXT[kind] ?? kind, sub: plural(count, 'socket') };
    }

    function matches(i: number): boolean {
      if (leakFilter >= 0 && !(kindOf(i) === 'leaked' && c.leak[i] === leakFilter)) return false;
      if (!search) return true;
      if (!searchText) {
        searchText = new Array(N);
        for (let s = 0; s < N; s++) {
          const p = d.processes[c.pid[s]];
          searchText[s] = `${label(s)} ${d.strings[c.local[s]]} ${d.strings[c.remote[s]]} ${p.comm} ${p.pid} ${d.strings[c.origin[s]]} ${kindOf(s)}`.toLowerCase();
        }
      }
      return searchText[i].includes(search);
    }

    /** the rows shown: a header per process and per category within it, then its sockets (unless collapsed) */
    function buildRows(): void {
      const out: number[] = [];
      const hs: RowHeader[] = [];
      let q = 0;
      while (q < N) {
        const p = c.pid[order[q]];
        let e = q;
        while (e < N && c.pid[order[e]] === p) e++;
        const procHeader: RowHeader = { level: 0, key: `${p}`, text: '', sub: '', color: '#1f2328', count: 0 };
        const procAt = out.length;
        let procCount = 0;
        let procLeaks = 0;
        const block: number[] = [];
        let r = q;
        while (r < e) {
          const k = cat[order[r]];
          let s = r;
          const members: number[] = [];
          while (s < e && cat[order[s]] === k) {
            if (matches(order[s])) members.push(order[s]);
            s++;
          }
          if (members.length) {
            const h = catHeader(p, k, members.length);
            block.push(-(hs.length + 1));
            hs.push(h);
            if (!collapsed.has(h.key)) for (const m of members) block.push(m);
            procCount += members.length;
            if (k < G) procLeaks += members.length;
          }
          r = s;
        }
        if (procCount) {
          const proc = d.processes[p];
          procHeader.text = proc.pid ? `${proc.comm || '?'} · pid ${proc.pid}` : 'sockets without a known owner';
          procHeader.sub = `${plural(procCount, 'socket')}${procLeaks ? ` · ${procLeaks.toLocaleString('en')} leaked` : ''}`;
          procHeader.count = procCount;
          out.splice(procAt, 0, -(hs.length + 1));
          hs.push(procHeader);
          if (!collapsed.has(procHeader.key)) for (const b of block) out.push(b);
        }
        q = e;
      }
      rows = Int32Array.from(out);
      headers = hs;
    }

    // ---- the swimlane ---------------------------------------------------------
    const lane = $('lane');
    const canvas = $<HTMLCanvasElement>('lane-canvas');
    const spacer = $('lane-spacer');
    const g2 = canvas.getContext('2d')!;
    const tooltip = $('tooltip');
    let view: [number, number] = [full[0], full[1]];
    let selected = -1;
    let hoverRow = -1;
    let drag: { x0: number; x1: number } | null = null;
    let cssW = 0;
    let cssH = 0;
    let pending = 0;
    const lastDraw = { first: 0, last: -1, drawn: 0, ms: 0, scrollTop: 0, rows: 0 };

    const hatch = (() => {
      const t = document.createElement('canvas');
      t.width = t.height = 6;
      const h = t.getContext('2d')!;
      h.fillStyle = '#eef1f4';
      h.fillRect(0, 0, 6, 6);
      h.strokeStyle = '#afb8c1';
      h.lineWidth = 1.2;
      h.beginPath();
      h.moveTo(-1, 7);
      h.lineTo(7, -1);
      h.stroke();
      return g2.createPattern(t, 'repeat')!;
    })();

    $('legend').innerHTML =
      LEGEND.map(([name, s]) => `<span><i style="background:${STATE_COLORS[s]}"></i>${esc(name)}</span>`).join('') +
      `<span><i style="background:repeating-linear-gradient(135deg,#afb8c1 0 1.5px,#eef1f4 1.5px 4px)"></i>TIME_WAIT (derived, 60 s after an active close)</span>` +
      `<span><i style="width:2px;background:#1f2328"></i>call (accept, close, first write, EOF read…)</span>` +
      `<span><b style="color:#d1242f">▸</b>open at the end</span>`;

    const plotL = () => LABEL_W;
    const plotR = () => cssW - RIGHT_PAD;
    const X = (t: number) => plotL() + ((t - view[0]) / (view[1] - view[0])) * (plotR() - plotL());
    const T = (x: number) => view[0] + ((x - plotL()) / (plotR() - plotL())) * (view[1] - view[0]);

    function laneHeight(): number {
      const want = AXIS + Math.max(rows.length, 8) * ROW + 2;
      return Math.round(Math.max(420, Math.min(want, Math.max(440, window.innerHeight * 0.62))));
    }

    function layout(): void {
      lane.style.height = `${laneHeight()}px`;
      cssW = lane.clientWidth;
      cssH = lane.clientHeight;
      const dpr = window.devicePixelRatio || 1;
      canvas.style.height = `${cssH}px`;
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
      g2.setTransform(dpr, 0, 0, dpr, 0, 0);
      spacer.style.height = `${Math.max(0, AXIS + rows.length * ROW - cssH)}px`;
      draw();
    }

    function schedule(): void {
      if (!pending) pending = requestAnimationFrame(() => ((pending = 0), draw()));
    }

    function niceStep(span: number, px: number): number {
      const raw = span / Math.max(1, px / 90);
      const p = Math.pow(10, Math.floor(Math.log10(raw)));
      for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
      return 10 * p;
    }

    function fit(text: string, w: number): string {
      if (g2.measureText(text).width <= w) return text;
      let lo = 0;
      let hi = text.length;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (g2.measureText(text.slice(0, mid) + '…').width <= w) lo = mid;
        else hi = mid - 1;
      }
      return text.slice(0, lo) + '…';
    }

    function drawSocket(i: number, y: number): void {
      const L = plotL();
      const R = plotR();
      const top = y + 3;
      const h = ROW - 6;
      const s0 = i ? stateEnd[i - 1] : 0;
      const s1 = stateEnd[i];
      const end = isNaN(endCol[i]) ? pictureEnd : endCol[i];
      for (let k = s0; k < s1; k++) {
        const a = d.stAbs[k];
        const b = k + 1 < s1 ? d.stAbs[k + 1] : end;
        if (b < view[0] || a > view[1]) continue;
        const x0 = Math.max(L, X(a));
        const x1 = Math.min(R, X(b));
        g2.fillStyle = STATE_COLORS[stState[k]] ?? '#8c959f';
        g2.fillRect(x0, top, Math.max(1, x1 - x0), h);
      }
      const tw = twCol[i];
      if (!isNaN(tw) && !isNaN(endCol[i])) {
        const b = Math.min(tw, pictureEnd);
        if (b > view[0] && endCol[i] < view[1]) {
          const x0 = Math.max(L, X(endCol[i]));
          const x1 = Math.min(R, X(b));
          g2.fillStyle = hatch;
          g2.fillRect(x0, top + 1, Math.max(1, x1 - x0), h - 2);
        }
      }
      const slack = (view[1] - view[0]) * 1e-6; // the chart's scale went through seconds
      if (isNaN(endCol[i]) && s1 > s0 && pictureEnd <= view[1] + slack && pictureEnd >= view[0]) {
        // open at the end: it runs on past the picture
        const x = X(pictureEnd);
        g2.fillStyle = STATE_COLORS[stState[s1 - 1]] ?? '#8c959f';
        g2.beginPath();
        g2.moveTo(x + 1, top - 1);
        g2.lineTo(x + 7, y + ROW / 2);
        g2.lineTo(x + 1, top + h + 1);
        g2.closePath();
        g2.fill();
      }
      const c0 = i ? callEnd[i - 1] : 0;
      g2.fillStyle = 'rgba(31,35,40,0.9)';
      for (let k = c0; k < callEnd[i]; k++) {
        const t = d.cAbs[k];
        if (t < view[0] || t > view[1]) continue;
        g2.fillRect(Math.round(X(t)) - 0.75, y + 1, 1.5, ROW - 2);
      }
    }

    function draw(): void {
      const t0 = performance.now();
      const W = cssW;
      const H = cssH;
      const L = plotL();
      const R = plotR();
      const scroll = lane.scrollTop;
      g2.clearRect(0, 0, W, H);
      g2.fillStyle = '#fbfcfd';
      g2.fillRect(0, 0, L, H);
      const first = Math.max(0, Math.floor(scroll / ROW));
      const last = Math.min(rows.length - 1, Math.floor((scroll + H - AXIS) / ROW));
      const step = niceStep(view[1] - view[0], R - L);
      // row backgrounds, then the time grid, then the bars and labels over them
      for (let r = first; r <= last; r++) {
        const y = AXIS + r * ROW - scroll;
        const v = rows[r];
        if (v < 0) continue;
        if (v === selected) {
          g2.fillStyle = '#fff3b0';
          g2.fillRect(0, y, W, ROW);
        } else if (r === hoverRow) {
          g2.fillStyle = '#eef4fb';
          g2.fillRect(0, y, W, ROW);
        }
      }
      g2.fillStyle = '#eceff2';
      for (let t = Math.ceil(view[0] / step) * step; t <= view[1]; t += step) g2.fillRect(Math.round(X(t)), AXIS, 1, H - AXIS);
      g2.fillStyle = '#d8dee4';
      g2.fillRect(L - 1, AXIS, 1, H - AXIS);
      g2.textBaseline = 'middle';
      g2.save();
      g2.beginPath();
      g2.rect(0, AXIS, W, H - AXIS);
      g2.clip();
      let drawn = 0;
      for (let r = first; r <= last; r++) {
        const y = AXIS + r * ROW - scroll;
        const v = rows[r];
        if (v < 0) {
          const h = headers[-v - 1];
          g2.fillStyle = h.level === 0 ? '#e6eaef' : '#f3f5f7';
          g2.fillRect(0, y, W, ROW);
          if (h.level === 0) {
            g2.fillStyle = '#d0d7de';
            g2.fillRect(0, y, W, 1);
          }
          const indent = h.level === 0 ? 6 : 16;
          const mark = collapsed.has(h.key) ? '▸' : '▾';
          g2.font = SANS_BOLD;
          g2.fillStyle = h.color;
          const text = fit(`${mark} ${h.text}`, W - indent - 200);
          g2.fillText(text, indent, y + ROW / 2 + 0.5);
          const tw = g2.measureText(text).width;
          g2.font = SANS;
          g2.fillStyle = '#656d76';
          g2.fillText(fit(h.sub, W - indent - tw - 24), indent + tw + 10, y + ROW / 2 + 0.5);
          continue;
        }
        drawn++;
        g2.font = MONO;
        g2.fillStyle = '#1f2328';
        g2.fillText(fit(label(v), L - 34), 26, y + ROW / 2 + 0.5);
        drawSocket(v, y);
      }
      if (!rows.length) {
        g2.font = SANS;
        g2.fillStyle = '#656d76';
        g2.textAlign = 'center';
        g2.fillText(N ? 'No socket matches the filter.' : 'No sockets in this picture.', (L + R) / 2, AXIS + 40);
        g2.textAlign = 'left';
      }
      g2.restore();
      // the time axis, over the rows
      g2.fillStyle = '#ffffff';
      g2.fillRect(0, 0, W, AXIS);
      g2.fillStyle = '#d8dee4';
      g2.fillRect(0, AXIS - 1, W, 1);
      g2.font = SANS;
      g2.fillStyle = '#656d76';
      g2.fillText('time since the recording started', 8, AXIS / 2);
      const digits = Math.max(0, Math.min(9, -Math.floor(Math.log10(step / 1e9) + 1e-9)));
      g2.textAlign = 'center';
      for (let t = Math.ceil(view[0] / step) * step; t <= view[1] + step * 1e-6; t += step) {
        const x = X(t);
        g2.fillStyle = '#afb8c1';
        g2.fillRect(Math.round(x), AXIS - 5, 1, 4);
        g2.fillStyle = '#57606a';
        const text = `${(t / 1e9).toFixed(digits)} s`;
        const w = g2.measureText(text).width;
        g2.fillText(text, Math.min(Math.max(x, L + w / 2), W - w / 2 - 2), AXIS / 2);
      }
      g2.textAlign = 'left';
      if (drag) {
        const a = Math.max(L, Math.min(drag.x0, drag.x1));
        const b = Math.min(R, Math.max(drag.x0, drag.x1));
        g2.fillStyle = 'rgba(9,105,218,0.12)';
        g2.fillRect(a, AXIS, b - a, H - AXIS);
        g2.fillStyle = 'rgba(9,105,218,0.6)';
        g2.fillRect(a, AXIS, 1, H - AXIS);
        g2.fillRect(b, AXIS, 1, H - AXIS);
      }
      Object.assign(lastDraw, { first, last, drawn, ms: performance.now() - t0, scrollTop: scroll, rows: rows.length });
      $('lane-range').textContent = `${fmtAt(view[0])} – ${fmtAt(view[1])} (${fmtDur(view[1] - view[0])})`;
    }

    function rowAt(clientY: number): number {
      const y = clientY - canvas.getBoundingClientRect().top;
      if (y < AXIS) return -1;
      const r = Math.floor((y - AXIS + lane.scrollTop) / ROW);
      return r >= 0 && r < rows.length ? r : -1;
    }

    function stateAt(i: number, t: number): string {
      const s0 = i ? stateEnd[i - 1] : 0;
      const s1 = stateEnd[i];
      if (t < start[i]) return `<span class="dim">not seen yet (first seen at ${fmtAt(start[i])})</span>`;
      const end = endCol[i];
      if (!isNaN(end) && t >= end) {
        if (!isNaN(twCol[i]) && t < twCol[i]) return `TIME_WAIT (derived) · closed at ${fmtAt(end)}`;
        return `<span class="dim">closed at ${fmtAt(end)}</span>`;
      }
      let k = s0;
      while (k + 1 < s1 && d.stAbs[k + 1] <= t) k++;
      const until = k + 1 < s1 ? d.stAbs[k + 1] : isNaN(end) ? pictureEnd : end;
      const open = k + 1 >= s1 && isNaN(end);
      return `<b style="color:${STATE_COLORS[stState[k]] === '#d1242f' ? '#ff8182' : '#fff'}">${STATE_NAMES[stState[k]] ?? stState[k]}</b> from ${fmtAt(d.stAbs[k])} for ${open ? '≥ ' : ''}${fmtDur(until - d.stAbs[k])}`;
    }

    function showTooltip(ev: MouseEvent, r: number): void {
      const v = rows[r];
      let html: string;
      if (v < 0) {
        const h = headers[-v - 1];
        html = `<b>${esc(h.text)}</b><br>${esc(h.sub)}<br><span class="dim">click to ${collapsed.has(h.key) ? 'expand' : 'collapse'}</span>`;
      } else {
        const p = d.processes[c.pid[v]];
        const x = ev.clientX - canvas.getBoundingClientRect().left;
        const lk = kindOf(v) === 'leaked' ? ` · leak #${c.leak[v] + 1}` : '';
        html = `<span class="mono"><b>${esc(label(v))}</b></span><br>${esc(p.comm || '?')} (pid ${p.pid}) · ${esc(d.strings[c.origin[v]])}${lk} · ${esc(kindOf(v))}`;
        if (x >= plotL() && x <= plotR()) html += `<br>at ${fmtAt(T(x))}: ${stateAt(v, T(x))}`;
        if (!isNaN(c.cw[v])) html += `<br>in CLOSE_WAIT ${c.flags[v] & 1 ? '≥ ' : ''}${fmtDur(c.cw[v])}`;
        html += `<br><span class="dim">click for its transitions, calls and stacks</span>`;
      }
      tooltip.innerHTML = html;
      tooltip.hidden = false;
      const w = tooltip.offsetWidth;
      const h = tooltip.offsetHeight;
      let x = ev.clientX + 14;
      let y = ev.clientY + 14;
      if (x + w > window.innerWidth - 4) x = ev.clientX - w - 14;
      if (y + h > window.innerHeight - 4) y = ev.clientY - h - 10;
      tooltip.style.left = `${Math.max(2, x)}px`;
      tooltip.style.top = `${Math.max(2, y)}px`;
    }

    canvas.addEventListener('mousemove', (ev) => {
      const x = ev.clientX - canvas.getBoundingClientRect().left;
      if (drag) {
        drag.x1 = x;
        tooltip.hidden = true;
        schedule();
        return;
      }
      const r = rowAt(ev.clientY);
      if (r !== hoverRow) {
        hoverRow = r;
        schedule();
      }
      canvas.style.cursor = r >= 0 && rows[r] < 0 ? 'pointer' : x >= plotL() ? 'crosshair' : 'default';
      if (r >= 0) showTooltip(ev, r);
      else tooltip.hidden = true;
    });
    canvas.addEventListener('mouseleave', () => {
      hoverRow = -1;
      tooltip.hidden = true;
      schedule();
    });
    canvas.addEventListener('mousedown', (ev) => {
      if (ev.button !== 0) return;
      const x = ev.clientX - canvas.getBoundingClientRect().left;
      drag = { x0: x, x1: x };
      ev.preventDefault();
    });
    window.addEventListener('mouseup', (ev) => {
      if (!drag) return;
      const { x0, x1 } = drag;
      drag = null;
      if (Math.abs(x1 - x0) > 4 && Math.max(x0, x1) > plotL()) {
        const a = T(Math.max(plotL(), Math.min(x0, x1)));
        const b = T(Math.min(plotR(), Math.max(x0, x1)));
        zoom(a, b);
        return;
      }
      if (ev.target !== canvas) return schedule();
      const r = rowAt(ev.clientY);
      if (r < 0) return schedule();
      const v = rows[r];
      if (v < 0) {
        const h = headers[-v - 1];
        if (collapsed.has(h.key)) collapsed.delete(h.key);
        else collapsed.add(h.key);
        refresh(false);
        showTooltip(ev, Math.min(r, rows.length - 1));
      } else select(v);
    });
    lane.addEventListener('scroll', () => {
      tooltip.hidden = true;
      schedule();
    });

    function refresh(toTop: boolean): void {
      buildRows();
      spacer.style.height = `${Math.max(0, AXIS + rows.length * ROW - cssH)}px`;
      if (toTop) lane.scrollTop = 0;
      draw();
    }

    function setView(a: number, b: number): void {
      if (!(b > a)) return;
      view = [a, b];
      schedule();
    }

    // ---- the counter chart ------------------------------------------------------
    let chart: any = null;
    function zoom(a: number, b: number): void {
      if (chart) chart.setScale('x', { min: a / 1e9, max: b / 1e9 });
      else setView(a, b);
    }
    $('lane-reset').addEventListener('click', () => zoom(full[0], full[1]));

    /** the chart's plot spans the swimlane's time area: the same left edge, and the right one less the lane's scrollbar */
    const chartRight = () => RIGHT_PAD + Math.max(0, $('lane-box').clientWidth - lane.clientWidth);
    const chartWidth = () => Math.max(300, $('chart').clientWidth);

    function makeChart(): void {
      const box = $('chart');
      const xs = d.chart.x.map((x) => x / 1e9);
      const styles = d.series.map((name) => SERIES_STYLE[name] ?? { label: name, stroke: '#57606a' });
      const legend = $('chart-legend');
      legend.innerHTML =
        `<div class="at"></div>` + styles.map((st) => `<div><i style="border-color:${st.stroke};${st.dash ? 'border-top-style:dashed' : ''}"></i>${esc(st.label)}<span class="v"></span></div>`).join('');
      const at = legend.querySelector<HTMLElement>('.at')!;
      const values = [...legend.querySelectorAll<HTMLElement>('.v')];
      const showValues = (idx: number | null) => {
        const i = idx ?? xs.length - 1;
        at.textContent = idx === null ? `at the end (${fmtAt(xs[i] * 1e9)})` : `${fmtAt(xs[i] * 1e9)} – ${fmtAt((xs[Math.min(i + 1, xs.length - 1)] ?? xs[i]) * 1e9)}`;
        values.forEach((v, s) => (v.textContent = (d.chart.series[s][i] ?? 0).toLocaleString('en')));
      };
      const series = styles.map((st) => ({
        label: st.label,
        stroke: st.stroke,
        fill: st.fill,
        dash: st.dash,
        width: 1.5,
        points: { show: false },
        paths: uPlot.paths.stepped({ align: 1 }),
      }));
      const grid = { stroke: '#eceff2', width: 1 };
      const ticks = { stroke: '#d8dee4', width: 1, size: 4 };
      const opts = {
        width: chartWidth(),
        height: 160,
        padding: [10, () => chartRight(), 0, 0],
        legend: { show: false },
        scales: {
          x: { time: false, range: (_u: unknown, min: number, max: number) => (max > min ? [min, max] : [full[0] / 1e9, full[1] / 1e9]) },
          y: { range: (_u: unknown, _min: number, max: number) => [0, Math.max(4, Math.ceil(max * 1.1))] },
        },
        axes: [
          { stroke: '#57606a', size: 26, grid, ticks, font: SANS, values: (_u: unknown, vals: number[]) => vals.map((v) => `${+v.toPrecision(12)} s`) },
          { stroke: '#57606a', size: LABEL_W, gap: 6, grid, ticks, font: SANS, values: (_u: unknown, vals: number[]) => vals.map((v) => (Number.isInteger(v) ? v.toLocaleString('en') : '')) },
        ],
        series: [{ label: 'time' }, ...series],
        cursor: { drag: { x: true, y: false, setScale: true }, points: { show: false } },
        hooks: {
          setCursor: [(u: any) => showValues(u.cursor.idx ?? null)],
          setScale: [
            (u: any, key: string) => {
              if (key === 'x') setView(u.scales.x.min * 1e9, u.scales.x.max * 1e9);
            },
          ],
        },
      };
      chart = new uPlot(opts, [xs, ...d.chart.series], box);
      showValues(null);
    }

    // ---- the leak groups ----------------------------------------------------------
    /** a stack, innermost first, the functions inlined at a frame before it: #n symbol file:line module */
    const frameRows = (idx: number[] | null, missing = 'not captured'): string => {
      if (!idx || !idx.length) return `<div class="none">${esc(missing)}</div>`;
      let n = 0;
      const loc = (file: string | undefined, line: number | undefined) => (file ? ` <span class="loc" title="${esc(file)}">${esc(file.split('/').pop())}:${line ?? '?'}</span>` : '');
      const row = (name: string, rest: string) => `<div><span class="n">#${n++}</span><span class="sym">${esc(name)}</span>${rest}</div>`;
      const out: string[] = [];
      for (const fi of idx) {
        const f = d.frames[fi];
        for (const inl of f.i ?? []) out.push(row(inl.s, ` <span class="inl">(inlined)</span>${loc(inl.f, inl.l)}`));
        const mod = ` <span class="mod" title="${esc(f.m)}">${esc(f.m.split('/').pop() || '?')}${f.j ? ' [jit]' : ''}</span>`;
        const why = !f.s && f.r ? ` <span class="why">${esc(f.r)}</span>` : '';
        out.push(row(f.s || f.a || '?', `${loc(f.f, f.l)}${mod}${why}`));
      }
      return `<div class="frames">${out.join('')}</div>`;
    };
    const topFrames = (idx: number[] | null) => {
      if (!idx || !idx.length) return '<span class="none">no stack</span>';
      const names = idx.slice(0, 3).map((fi) => d.frames[fi].s || d.frames[fi].a || '?');
      return esc(names.join(' ← ') + (idx.length > 3 ? ' ← …' : ''));
    };

    function makeLeaks(): void {
      $('leaks-title').textContent = G ? `Leak groups: ${plural(leaked, 'socket')} in CLOSE_WAIT for ${fmtSetting(meta.leakAfterMs)} or longer, never closed` : 'Leak groups';
      if (!G) {
        $('leaks').innerHTML = `<div class="empty">No socket sat in CLOSE_WAIT for ${esc(fmtSetting(meta.leakAfterMs))} or longer without being closed.</div>`;
        return;
      }
      const head = '<thead><tr><th class="num">#</th><th class="num">sockets</th><th class="num">oldest</th><th class="num">median</th><th>origin</th><th>process</th><th>code path</th><th>acquire stack (innermost first)</th><th>peers</th></tr></thead>';
      const bodies = d.groups.map((g, i) => {
        const proc = `${esc(g.comm)} <span class="hint">pid ${g.pid}</span>`;
        const peers = g.peers.map((p) => `${esc(p.addr)}${p.count > 1 ? ` ×${p.count}` : ''}`).join(', ');
        // with stacks on and the socket acquired while tracing, a missing I/O stack is itself a finding
        const traced = meta.stacks && g.origin !== 'preexisting' && g.stacks.acquire !== null;
        const missing = { acquire: 'not captured', io: traced ? 'none seen: no write to it was traced' : 'not captured', read: traced ? 'none seen: no read of data was traced' : 'not captured', eof: traced ? 'none seen: the program never read the EOF' : 'not captured' };
        const stacks = (['acquire', 'read', 'io', 'eof'] as const).map((s) => `<div><h4>${SITE_TEXT[s]}</h4>${frameRows(g.stacks[s] ?? null, missing[s])}</div>`).join('');
        const notes = g.notes.map((n) => `<div class="notes">${esc(n)}</div>`).join('');
        return (
          `<tbody class="group" data-leak="${i}" data-count="${g.count}" data-origin="${esc(g.origin)}" data-pid="${g.pid}">` +
          `<tr class="row"><td class="num">${i + 1}</td><td class="num count">${g.count.toLocaleString('en')}</td><td class="num">${g.ageSince === 'attach' ? '<span class="hint" title="already in CLOSE_WAIT when tracing began: a lower bound">≥</span> ' : ''}${esc(fmtMs(g.oldestMs))}</td><td class="num">${esc(fmtMs(g.medianMs))}</td>` +
          `<td>${esc(g.origin)}</td><td>${proc}</td><td class="top">${g.at ? esc(g.at) : '<span class="none">–</span>'}</td><td class="top">${topFrames(g.stacks.acquire)}</td><td class="mono">${peers}</td></tr>` +
          `<tr class="more"><td></td><td colspan="8"><details><summary>stacks: acquire, first write, EOF read${g.notes.length ? ` · ${plural(g.notes.length, 'note')}` : ''}</summary>${notes}<div class="stacks">${stacks}</div></details></td></tr>` +
          `</tbody>`
        );
      });
      $('leaks').innerHTML = `<table class="grid">${head}${bodies.join('')}</table>`;
      for (const tb of $('leaks').querySelectorAll<HTMLElement>('tbody.group')) {
        tb.querySelector('tr.row')!.addEventListener('click', () => setLeakFilter(Number(tb.dataset.leak) === leakFilter ? -1 : Number(tb.dataset.leak)));
      }
    }

    function setLeakFilter(i: number): void {
      leakFilter = i;
      for (const tb of $('leaks').querySelectorAll<HTMLElement>('tbody.group')) tb.classList.toggle('active', Number(tb.dataset.leak) === i);
      const chip = $('lane-filter');
      if (i >= 0) {
        const g = d.groups[i];
        chip.innerHTML = `leak #${i + 1} · ${plural(g.count, 'socket')} <button type="button" title="show every socket">✕</button>`;
        chip.querySelector('button')!.addEventListener('click', () => setLeakFilter(-1));
      } else chip.textContent = '';
      refresh(true);
    }

    let searchTimer = 0;
    $<HTMLInputElement>('lane-search').addEventListener('input', (ev) => {
      clearTimeout(searchTimer);
      searchTimer = window.setTimeout(() => {
        search = (ev.target as HTMLInputElement).value.trim().toLowerCase();
        refresh(true);
      }, 120);
    });
    window.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && leakFilter >= 0) setLeakFilter(-1);
    });

    // ---- the panel of one socket ---------------------------------------------------
    function select(i: number): void {
      selected = i;
      schedule();
      const p = d.processes[c.pid[i]];
      const kind = kindOf(i);
      const s0 = i ? stateEnd[i - 1] : 0;
      const s1 = stateEnd[i];
      const c0 = i ? callEnd[i - 1] : 0;
      const c1 = callEnd[i];
      const end = endCol[i];
      const pre = (c.flags[i] & 1) !== 0;
      const badge = kind === 'leaked' ? `<a class="link badge leaked" data-leak="${c.leak[i]}">leak #${c.leak[i] + 1}</a>` : `<span class="badge ${esc(kind)}">${esc(kind === 'late' ? 'closed late' : kind)}</span>`;
      const kv: [string, string][] = [
        ['process', `${esc(p.comm || '?')} (pid ${p.pid})`],
        ['fd', c.fd[i] >= 0 ? String(c.fd[i]) : '?'],
        ['local', `<span class="mono">${esc(d.strings[c.local[i]] || '?')}</span>`],
        ['remote', `<span class="mono">${esc(d.strings[c.remote[i]] || '–')}</span>`],
        ['origin', `${esc(d.strings[c.origin[i]])}${pre ? ' (present when tracing began)' : ''}`],
        ['first seen', `${fmtAt(start[i], 6)} <span class="hint">(${esc(fmtWall(meta.wallStartMs + start[i] / 1e6).slice(11))})</span>`],
        ['end', isNaN(end) ? `<b>open at the end</b> of the picture (${fmtAt(pictureEnd)})` : `closed at ${fmtAt(end, 6)}, after ${fmtDur(end - start[i])}`],
        ['in CLOSE_WAIT', isNaN(c.cw[i]) ? '<span class="none">never</span>' : `<b${kind === 'leaked' ? ' style="color:#d1242f"' : ''}>${pre && stState[s0] === 8 ? '≥ ' : ''}${fmtDur(c.cw[i])}</b>${isNaN(end) ? ' (until the end)' : ''}`],
      ];
      const shared = d.sharedOf.get(i);
      if (shared) kv.push(['also held by', `pid ${shared.join(', ')}`]);
      if (c.flags[i] & 4) kv.push(['note', 'some timestamps went back (records of other CPUs) and were clamped']);
      const trans: string[] = [];
      for (let k = s0; k < s1; k++) {
        const a = d.stAbs[k];
        const b = k + 1 < s1 ? d.stAbs[k + 1] : isNaN(end) ? pictureEnd : end;
        const open = k + 1 >= s1 && isNaN(end);
        const pre0 = k === s0 && pre;
        trans.push(`<tr><td><span class="sw" style="background:${STATE_COLORS[stState[k]] ?? '#8c959f'}"></span>${esc(STATE_NAMES[stState[k]] ?? stState[k])}${pre0 ? ' <span class="hint">(at attach)</span>' : ''}</td><td class="num">${fmtAt(a, 6)}</td><td class="num">${open || pre0 ? '≥ ' : ''}${fmtDur(b - a)}${open ? ' <span class="hint">open</span>' : ''}</td></tr>`);
      }
      if (!isNaN(end)) {
        const tw = twCol[i];
        if (!isNaN(tw)) trans.push(`<tr><td><span class="sw" style="background:repeating-linear-gradient(135deg,#afb8c1 0 1.5px,#eef1f4 1.5px 4px)"></span>TIME_WAIT <span class="hint">(derived)</span></td><td class="num">${fmtAt(end, 6)}</td><td class="num">${fmtDur(tw - end)}</td></tr>`);
        else trans.push(`<tr><td><span class="sw" style="background:#d8dee4"></span>CLOSE</td><td class="num">${fmtAt(end, 6)}</td><td class="num"></td></tr>`);
      }
      const calls: string[] = [];
      const stacks: { title: string; idx: number }[] = [];
      const seen = new Set<number>();
      for (let k = c0; k < c1; k++) {
        const kindName = d.calls[c.cKind[k]];
        const st = c.cStack[k];
        const arg = c.cArg[k] >= 0 && kindName === 'shutdown' ? ` ${['SHUT_RD', 'SHUT_WR', 'SHUT_RDWR'][c.cArg[k]] ?? c.cArg[k]}` : '';
        if (st >= 0 && !seen.has(st)) {
          seen.add(st);
          stacks.push({ title: `${kindName} at ${fmtAt(d.cAbs[k], 6)}`, idx: st });
        }
        calls.push(`<tr><td>${esc(kindName + arg)}</td><td class="num">${fmtAt(d.cAbs[k], 6)}</td><td class="num">${c.cFd[k] >= 0 ? c.cFd[k] : ''}</td><td class="num">${c.cPid[k] || ''}</td><td>${st >= 0 ? `<a class="link" data-stack="${stacks.findIndex((x) => x.idx === st)}">stack</a>` : ''}</td></tr>`);
      }
      for (const [site, col] of [['acquire', 'acquire'], ['read', 'read'], ['io', 'io'], ['eof', 'eof']] as const) {
        const st = c[col]?.[i] ?? -1;
        if (st >= 0 && !seen.has(st)) {
          seen.add(st);
          stacks.push({ title: SITE_TEXT[site], idx: st });
        }
      }
      const why = !meta.stacks ? 'this recording has no stacks (recorded without --pid, or with --no-stacks)' : pre ? 'acquired before tracing began: no stacks' : 'none captured for this socket';
      const html =
        `<div class="name">${esc(label(i))}${badge}</div>` +
        `<table class="kv">${kv.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join('')}</table>` +
        `<h3>Transitions</h3><table class="grid transitions"><tr><th>state</th><th class="num">entered</th><th class="num">for</th></tr>${trans.join('')}</table>` +
        `<h3>Calls</h3>${calls.length ? `<table class="grid calls"><tr><th>call</th><th class="num">at</th><th class="num">fd</th><th class="num">pid</th><th></th></tr>${calls.join('')}</table>` : '<div class="none">none seen</div>'}` +
        `<h3>Stacks</h3>${stacks.length ? stacks.map((s, n) => `<div id="stack-${n}"><b>${esc(s.title)}</b>${frameRows(d.stacks[s.idx])}</div>`).join('') : `<div class="none">${esc(why)}</div>`}`;
      const body = $('panel-body');
      body.innerHTML = html;
      body.scrollTop = 0;
      body.querySelector<HTMLElement>('a.badge')?.addEventListener('click', (ev) => setLeakFilter(Number((ev.currentTarget as HTMLElement).dataset.leak)));
      for (const a of body.querySelectorAll<HTMLElement>('a[data-stack]')) a.addEventListener('click', () => $(`stack-${a.dataset.stack}`).scrollIntoView({ block: 'nearest' }));
    }

    // ---- ready ----------------------------------------------------------------------
    buildRows();
    makeLeaks();
    layout();
    makeChart();
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = window.setTimeout(() => {
        layout();
        chart?.setSize({ width: chartWidth(), height: 160 });
      }, 80);
    });
    requestAnimationFrame(() => {
      draw();
      const api = {
        ready: true,
        sockets: N,
        leaks: d.groups.map((g) => ({ pid: g.pid, comm: g.comm, origin: g.origin, count: g.count, oldestMs: g.oldestMs, medianMs: g.medianMs, at: g.at })),
        loadMs: performance.now(),
        lastDraw,
        view: () => [...view],
        /** the chart's x range, ns after the recording's start */
        chartView: () => (chart ? [chart.scales.x.min * 1e9, chart.scales.x.max * 1e9] : null),
        /** the rows in view, in client coordinates (for tests that click one) */
        rows: () => {
          const rect = canvas.getBoundingClientRect();
          const out: { socket: number; header: string | null; kind: string | null; leak: number; label: string; x: number; y: number; plotX: number }[] = [];
          for (let r = lastDraw.first; r <= lastDraw.last; r++) {
            const v = rows[r];
            const y = rect.top + AXIS + r * ROW - lane.scrollTop + ROW / 2;
            if (y < rect.top + AXIS || y > rect.bottom) continue;
            out.push({ socket: v, header: v < 0 ? headers[-v - 1].text : null, kind: v >= 0 ? kindOf(v) : null, leak: v >= 0 ? c.leak[v] : -1, label: v >= 0 ? label(v) : '', x: rect.left + 60, y, plotX: rect.left + LABEL_W });
          }
          return out;
        },
      };
      (window as unknown as { __tcptrace: unknown }).__tcptrace = api;
      document.body.dataset.ready = '1';
    });
  }

  function fail(err: unknown): void {
    const msg = err instanceof Error ? err.message : String(err);
    $('facts').textContent = '';
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = `tcptrace: this page could not be drawn: ${msg}`;
    document.body.prepend(p);
    (window as unknown as { __tcptrace: unknown }).__tcptrace = { ready: false, error: msg };
    console.error(err);
  }

  load().then((d) => {
    try {
      main(d);
    } catch (err) {
      fail(err);
    }
  }, fail);
})();
