/**
 * `tcptrace export -f chrome-json`: the socket timelines in the Trace Event
 * format, for tools that read only JSON (chrome://tracing, speedscope, old
 * Perfetto builds). Each socket is a thread of its process (`M` names it),
 * its life and states complete events (`X`, nested), its calls instants
 * (`i`), the per-process counts counter events (`C`). States are `X`, not
 * `b`/`e`: Perfetto keys async tracks by name, which would split a socket's
 * states apart. Times are µs from the recording's start. Written as it
 * streams; a warning past a million events (JS viewers struggle there).
 */
import { stateName } from '../model/states.js';
import type { Frame } from '../stacks/types.js';
import type { OutputFile } from './output.js';
import type { LeakGroup } from '../analysis/leaks.js';
import { socketName } from './perfetto.js';
import type { CounterSeries, SocketLife, TimelineContext, TimelineEnd, TimelineSink } from './timeline.js';

/** events past which chrome://tracing and JS viewers struggle (google/trace-viewer#298) */
export const CHROME_JSON_WARN_EVENTS = 1_000_000;

/** thread sort order by kind: leaks first */
const KIND_RANK: Record<SocketLife['kind'], number> = { leaked: 0, late: 1, listener: 2, open: 3, closed: 4 };

export class ChromeJsonTimeline implements TimelineSink {
  private ctx!: TimelineContext;
  private started = 0;
  private parts: string[] = [];
  private partBytes = 0;
  private first = true;
  private readonly processes = new Set<number>();
  private groups: LeakGroup[] = [];
  /** the end of the picture, for sockets open at the end (given with the leak groups, before they arrive) */
  private endNs = 0;
  events = 0;

  constructor(private readonly out: OutputFile) {}

  begin(ctx: TimelineContext): void {
    this.ctx = ctx;
    this.started = Number(ctx.info.startedNs);
    this.out.write(Buffer.from('{"displayTimeUnit":"ms","traceEvents":[\n'));
  }

  private us(ns: number): number {
    return Math.round((ns - this.started) / 10) / 100; // µs, to 10 ns
  }

  private emit(ev: Record<string, unknown>): void {
    const s = (this.first ? '' : ',\n') + JSON.stringify(ev);
    this.first = false;
    this.events++;
    this.parts.push(s);
    this.partBytes += s.length;
    if (this.partBytes >= 1 << 20) this.flush();
  }

  private flush(): void {
    if (!this.parts.length) return;
    this.out.write(Buffer.from(this.parts.join('')));
    this.parts = [];
    this.partBytes = 0;
  }

  private process(pid: number, comm: string): void {
    if (this.processes.has(pid)) return;
    this.processes.add(pid);
    this.emit({ ph: 'M', pid, tid: 0, name: 'process_name', args: { name: pid ? `${comm} (${pid})` : 'sockets without a known owner' } });
  }

  counter(ts: number, pid: number, comm: string, series: CounterSeries, value: number): void {
    this.process(pid, comm);
    this.emit({ ph: 'C', pid, tid: 0, ts: this.us(ts), name: series === 'TIME_WAIT' ? 'TIME_WAIT (derived)' : series, args: { sockets: value } });
  }

  leakGroups(groups: LeakGroup[], endNs: number): void {
    this.groups = groups;
    this.endNs = endNs;
  }

  socket(life: SocketLife): void {
    const { pid } = life;
    const tid = life.serial;
    this.process(pid, life.comm);
    const leak = life.leak >= 0 ? this.groups[life.leak] : null;
    this.emit({ ph: 'M', pid, tid, name: 'thread_name', args: { name: leak ? `leak #${life.leak + 1}: ${socketName(life)}` : socketName(life) } });
    this.emit({ ph: 'M', pid, tid, name: 'thread_sort_index', args: { sort_index: KIND_RANK[life.kind] * 1e7 + (life.leak >= 0 ? life.leak : 0) * 1e5 + (tid % 1e5) } });
    const endNs = life.end ?? this.endNs;
    const lifeEnd = life.timeWaitEnd !== null ? Math.min(life.timeWaitEnd, Math.max(endNs, this.ctx.to)) : endNs;
    const args: Record<string, unknown> = { fd: life.fd, origin: life.origin, local: life.local, remote: life.remote, netns: life.netns, kind: life.kind };
    if (life.closeWaitNs !== null) args.close_wait_ms = Math.round(life.closeWaitNs / 1e6);
    if (leak) args.leak = `#${life.leak + 1}`;
    if (life.end === null) args.open_at_end = true;
    const acquire = life.stacks.acquire !== undefined ? this.ctx.stacks.get(life.stacks.acquire) : undefined;
    if (acquire) args.acquire_stack = stackText(acquire);
    this.emit({ ph: 'X', pid, tid, ts: this.us(life.start), dur: this.dur(life.start, lifeEnd), name: 'socket', cat: 'socket', args });
    const last = life.states.length - 1;
    for (let i = 0; i <= last; i++) {
      const s = life.states[i];
      const next = i < last ? life.states[i + 1].ts : endNs;
      this.emit({ ph: 'X', pid, tid, ts: this.us(s.ts), dur: this.dur(s.ts, next), name: stateName(s.state), cat: 'state' });
    }
    if (life.end !== null && life.timeWaitEnd !== null) this.emit({ ph: 'X', pid, tid, ts: this.us(life.end), dur: this.dur(life.end, lifeEnd), name: 'TIME_WAIT (derived)', cat: 'state' });
    for (const c of life.calls) {
      const cargs: Record<string, unknown> = {};
      if (c.fd >= 0) cargs.fd = c.fd;
      if (c.pid) cargs.pid = c.pid;
      if (c.arg !== undefined) cargs.how = c.arg;
      const st = c.stackId !== undefined ? this.ctx.stacks.get(c.stackId) : undefined;
      if (st) cargs.stack = stackText(st);
      this.emit({ ph: 'i', s: 't', pid, tid, ts: this.us(Math.min(Math.max(c.ts, life.start), lifeEnd)), name: c.kind, cat: 'call', args: cargs });
    }
  }


  private dur(from: number, to: number): number {
    return Math.max(0, Math.round((to - from) / 10) / 100);
  }

  async finish(end: TimelineEnd): Promise<void> {
    this.flush();
    const meta = { tool: `${this.ctx.info.tool.name} ${this.ctx.info.tool.version}`, host: this.ctx.info.host, kernel: this.ctx.info.kernel, attach_mode: this.ctx.info.attach.mode, sockets: end.sockets };
    this.out.write(Buffer.from(`\n],"metadata":${JSON.stringify(meta)}}\n`));
    await this.out.drain();
  }
}

function stackText(frames: Frame[]): string {
  return frames
    .slice(0, 24)
    .map((f) => `${f.symbol || f.addr}${f.file ? ` (${f.file.split('/').pop()}:${f.line ?? '?'})` : ''} [${f.module.split('/').pop()}]`)
    .join('\n');
}
