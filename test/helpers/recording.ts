/** Reads a recording back into decoded events, for assertions. */
import assert from 'node:assert/strict';
import { decodeBatch } from '../../src/decode.js';
import { O_HDR_KIND, O_HDR_SIZE } from '../../src/generated/events.js';
import { endpointPort } from '../../src/model/addr.js';
import type { PresentEvent, TraceEvent, TransitionEvent } from '../../src/model/events.js';
import { isBirth, TCP } from '../../src/model/states.js';
import { SocketTable } from '../../src/model/socket-table.js';
import { replay } from '../../src/record/reader.js';
import type { SessionEnd, SessionInfo } from '../../src/trace/types.js';
import type { ResolvedStack } from '../../src/stacks/types.js';
import type { Running } from './proc.js';

export interface Recorded {
  info: SessionInfo;
  present: PresentEvent[];
  events: TraceEvent[];
  /** every stack sighting in stream order: full stacks, and kernel references given their frames */
  stacks: ResolvedStack[];
  end: SessionEnd;
  /**
   * The owner the socket table gave each transition, as the report sees it: the
   * kernel's (SessionInfo.owners 'kernel') or the table's own attribution ('agent').
   */
  owner: Map<TraceEvent, { pid: number; comm: string; fd: number }>;
  /** the batches' bytes, and their records by kind (TT_KIND) */
  batchBytes: number;
  kinds: Map<number, number>;
}

/** Stops a `--format json --record FILE` trace with SIGINT: its live report, and its recording read back. */
export async function stopRecordedTrace(t: Running, file: string): Promise<{ live: Record<string, any>; rec: Recorded }> {
  const res = await t.stop('SIGINT');
  assert.equal(res.code, 0, `tcptrace exited ${res.code}: ${res.stderr}`);
  return { live: JSON.parse(res.stdout), rec: await readRecording(file) };
}

export async function readRecording(path: string): Promise<Recorded> {
  const rec: Partial<Recorded> & { events: TraceEvent[]; present: PresentEvent[]; stacks: ResolvedStack[]; owner: Recorded['owner']; batchBytes: number; kinds: Recorded['kinds'] } = {
    events: [],
    present: [],
    stacks: [],
    owner: new Map(),
    batchBytes: 0,
    kinds: new Map(),
  };
  const full = new Map<number, ResolvedStack>();
  let table: SocketTable;
  await replay(path, {
    stacks: (items) => {
      for (const st of items) if (!full.has(st.stackId)) full.set(st.stackId, st);
      rec.stacks.push(...items);
    },
    begin: (info) => {
      rec.info = info;
      table = new SocketTable(info.selectors.pids);
    },
    present: (p) => {
      rec.present.push(...p);
      for (const ev of p) table.apply(ev);
    },
    batch: (buf) => {
      rec.batchBytes += buf.length;
      for (let off = 0; off < buf.length; off += (buf.readUInt16LE(off + O_HDR_SIZE) + 7) & ~7) {
        const kind = buf.readUInt16LE(off + O_HDR_KIND);
        rec.kinds.set(kind, (rec.kinds.get(kind) ?? 0) + 1);
      }
      const from = rec.events.length;
      decodeBatch(buf, rec.events);
      for (let i = from; i < rec.events.length; i++) {
        const ev = rec.events[i];
        const applied = table.apply(ev);
        if (applied) rec.owner.set(ev, { pid: applied.rec.pid, comm: applied.rec.comm, fd: applied.rec.fd });
        if (ev.type !== 'stackref') continue;
        const known = full.get(ev.stackId);
        if (!known) throw new Error(`stack reference to id ${ev.stackId} before any full stack of it`);
        rec.stacks.push({ ...known, ts: ev.ts, sk: ev.sk, cookie: ev.cookie, pid: ev.pid, tid: ev.tid, site: ev.site });
      }
    },
    counters: () => {},
    finish: (end) => void (rec.end = end),
  });
  return rec as Recorded;
}

/** the port of an endpoint string (the peer's, as the tests use it) */
export const peerPort = endpointPort;

/**
 * Transitions of each server-side socket lifetime, by the client's port. sk
 * addresses are reused after CLOSE, and the CLOSE event no longer carries the
 * local port: a lifetime is named by its other events.
 */
export function lifetimes(rec: Recorded, serverPort: number): Map<number, TransitionEvent[]> {
  const open = new Map<number, TransitionEvent[]>();
  const byPeer = new Map<number, TransitionEvent[]>();
  for (const ev of rec.events) {
    if (ev.type !== 'transition') continue;
    // a socket born at an address still open here is a new life, as in the socket table
    // (the old socket's CLOSE was a run the kernel skipped; old kernels do not count those)
    let life = open.get(ev.sk);
    if (!life || isBirth(ev.oldState, ev.newState)) open.set(ev.sk, (life = []));
    life.push(ev);
    if (ev.localPort === serverPort) byPeer.set(peerPort(ev.remote), life);
    if (ev.newState === TCP.CLOSE) open.delete(ev.sk);
  }
  return byPeer;
}
