/**
 * Resolves stack records from the ring (user registers + a copy of the user
 * stack) into frames with the native libdwfl unwinder, while the process is
 * alive, and gives each distinct frame list an id. The stack bytes stay in the
 * batch Buffer: only frames leave.
 */
import { native } from '../native.js';
import * as G from '../generated/events.js';
import { SITE_NAMES, type Frame, type ResolvedStack } from './types.js';

interface NativeResolved {
  pid: number;
  tid: number;
  site: number;
  call: number;
  sk: bigint;
  cookie: bigint;
  ts: number;
  stop: string;
  complete: boolean;
  frames: Frame[];
}

interface NativeStackResolver {
  resolve(buf: Buffer, off: number): NativeResolved;
  prepare(pid: number): void;
  forget(pid: number): void;
  stats(): Record<string, number>;
}

export interface ResolverStats {
  stacks: number;
  distinct: number;
  unwindMs: number;
  symbolizeMs: number;
  unresolvedFrames: number;
}

export class StackResolver {
  private readonly nat: NativeStackResolver;
  private readonly ids = new Map<string, number>();
  private stacks = 0;

  constructor() {
    const Ctor = (native() as unknown as { StackResolver: new (o: object) => NativeStackResolver }).StackResolver;
    this.nat = new Ctor({ maxFrames: 64 });
  }

  /** Open a process's files now (at attach), so its stacks resolve even after it exits. */
  prepare(pid: number): void {
    this.nat.prepare(pid);
  }

  forget(pid: number): void {
    this.nat.forget(pid);
  }

  resolve(buf: Buffer, off: number): ResolvedStack {
    const r = this.nat.resolve(buf, off);
    this.stacks++;
    const key = `${r.pid}:${r.frames.map((f) => f.addr).join(',')}`;
    let id = this.ids.get(key);
    if (id === undefined) this.ids.set(key, (id = this.ids.size + 1));
    return { ts: r.ts, sk: r.sk, cookie: r.cookie, pid: r.pid, tid: r.tid, site: SITE_NAMES[r.site] ?? 'acquire', stackId: id, frames: r.frames, stop: r.stop, complete: r.complete };
  }

  stats(): ResolverStats {
    const s = this.nat.stats();
    return { stacks: this.stacks, distinct: this.ids.size, unwindMs: s.unwindNs / 1e6, symbolizeMs: s.symbolizeNs / 1e6, unresolvedFrames: s.unresolvedFrames };
  }
}

/**
 * Splits a ring batch around its stack records, preserving order: calls
 * onRecords for each run of other records (a subarray, no copy) and onStack for
 * each stack record. Most batches have no stack record and pass through whole.
 */
export function splitStacks(buf: Buffer, onRecords: (b: Buffer) => void, onStack: (b: Buffer, off: number) => void): void {
  let off = 0;
  let runStart = 0;
  while (off + G.SIZE_HDR <= buf.length) {
    const kind = buf.readUInt16LE(off + G.O_HDR_KIND);
    const size = buf.readUInt16LE(off + G.O_HDR_SIZE);
    if (size < G.SIZE_HDR) break; // malformed: let the decoder report it
    if (kind === G.TT_KIND.STACK) {
      if (off > runStart) onRecords(buf.subarray(runStart, off));
      onStack(buf, off);
      runStart = off + ((size + 7) & ~7);
    }
    off += (size + 7) & ~7;
  }
  if (runStart === 0) onRecords(buf);
  else if (runStart < buf.length) onRecords(buf.subarray(runStart));
}
