/**
 * Leak events, one JSON line each, for log pipelines and alerting: a leak
 * group (process + code path, as the report groups them) that crosses
 * --leak-after ("leak_started"), grows by --events-growth since it was last
 * reported ("leak_grew"), or has no leaked socket left ("leak_ended": closed
 * at last, or the process exited). Checked every second from the socket
 * table; memory is one entry per live group.
 */
import type { Writable } from 'node:stream';
import type { Analyzer } from '../analysis/analyzer.js';
import { groupLeaks } from '../analysis/leaks.js';
import type { Frame } from '../stacks/types.js';

export const EVENTS_SCHEMA = 'tcptrace.leak-event/1';

export interface LeakEvent {
  schema: string;
  time: string;
  event: 'leak_started' | 'leak_grew' | 'leak_ended';
  pid: number;
  comm: string;
  workload: string;
  origin: string;
  /** leaked sockets of the group now (0 when it ended) */
  count: number;
  /** the count last reported for this group (0 for leak_started) */
  previous: number;
  oldest_s: number;
  /** the frames that name the code path (first write, else EOF read, else acquisition), innermost first */
  site: string | null;
  stack: string[];
}

interface Known {
  reported: number;
  last: Omit<LeakEvent, 'schema' | 'time' | 'event' | 'count' | 'previous'>;
}

const MAX_FRAMES = 12;

function named(frames: Frame[] | null): string[] {
  return (frames ?? []).slice(0, MAX_FRAMES).map((f) => (f.file && f.line ? `${f.symbol} (${f.file.split('/').pop()}:${f.line})` : f.symbol || `${f.module}+${f.moduleOffset}`));
}

export class LeakEvents {
  private readonly known = new Map<string, Known>();
  written = 0;

  constructor(
    private readonly analyzer: Analyzer,
    private readonly workloadOf: (pid: number) => string,
    private readonly out: Writable,
    /** a leak_grew event at this many times the last reported size (reloadable) */
    public growth: number,
    /** the agent's selectors (reloadable): groups of other processes make no event */
    public selects: (pid: number, comm: string) => boolean = () => true,
  ) {}

  /** compares the leak groups now with those last reported; writes what changed */
  check(nowNs: number): void {
    const a = this.analyzer;
    if (!a.table) return;
    const seen = new Set<string>();
    const time = new Date().toISOString();
    for (const { group: g, recs } of groupLeaks(a, nowNs, Number(a.info.startedNs))) {
      if (!this.selects(g.pid, g.comm)) continue;
      const first = recs[0];
      const key = `${g.pid}|${g.origin}|${first.stacks.acquire ?? '-'}|${first.stacks.eof ?? '-'}`;
      seen.add(key);
      const site = g.stacks.io ? 'first write' : g.stacks.eof ? 'eof read' : g.stacks.acquire ? 'acquire' : null;
      const last = { pid: g.pid, comm: g.comm, workload: this.workloadOf(g.pid), origin: g.origin, oldest_s: Math.round(g.oldestMs) / 1000, site, stack: named(g.stacks.io ?? g.stacks.eof ?? g.stacks.acquire) };
      const k = this.known.get(key);
      if (!k) {
        this.known.set(key, { reported: g.count, last });
        this.write({ schema: EVENTS_SCHEMA, time, event: 'leak_started', ...last, count: g.count, previous: 0 });
      } else {
        k.last = last;
        if (g.count >= k.reported * this.growth) {
          this.write({ schema: EVENTS_SCHEMA, time, event: 'leak_grew', ...last, count: g.count, previous: k.reported });
          k.reported = g.count;
        }
      }
    }
    for (const [key, k] of this.known) {
      if (seen.has(key)) continue;
      this.known.delete(key);
      // left out by a reload's selectors: not an end of the leak, just no longer followed
      if (!this.selects(k.last.pid, k.last.comm)) continue;
      this.write({ schema: EVENTS_SCHEMA, time, event: 'leak_ended', ...k.last, count: 0, previous: k.reported });
    }
  }

  private write(ev: LeakEvent): void {
    this.written++;
    this.out.write(`${JSON.stringify(ev)}\n`);
  }
}
