/**
 * Reads a Perfetto export back with protobufjs against the project's schema
 * (src/export/perfetto.proto), checks the rules a trace reader relies on, and
 * rebuilds each socket's life from the slices, for comparison with what the
 * recording says. Independent of the exporter's code: only the schema is shared.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { ROOT } from './proc.js';

const require = createRequire(import.meta.url);
const protobuf = require('protobufjs') as typeof import('protobufjs');

export const PROTO = join(ROOT, 'src/export/perfetto.proto');
const root = protobuf.parse(readFileSync(PROTO, 'utf8'), { keepCase: true }).root;
const TraceType = root.lookupType('perfetto.protos.Trace');

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Packet = Record<string, any>;

export function decodeTrace(path: string): Packet[] {
  let buf = readFileSync(path);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
  const msg = TraceType.decode(buf);
  return (TraceType.toObject(msg, { longs: Number, defaults: false, arrays: true }) as { packet: Packet[] }).packet;
}

export interface RebuiltCall {
  name: string;
  ts: number;
  /** function names of its callstack, innermost first */
  stack: string[];
}

export interface RebuiltSocket {
  track: number;
  trackName: string;
  /** the track it hangs under (a leak group, "closed late", a lane group...) */
  parentName: string;
  name: string;
  ann: Record<string, string | number | boolean>;
  start: number;
  /** null: no END (open at the end of the trace) */
  end: number | null;
  states: string[];
  calls: RebuiltCall[];
  correlation: number;
  /** the function names of the lifetime slice's callstack (acquire), innermost first */
  acquire: string[];
}

export interface CheckedTrace {
  packets: Packet[];
  tracks: Map<number, Packet>;
  sockets: RebuiltSocket[];
  /** counter values per track, in order */
  counters: Map<number, { ts: number; value: number }[]>;
  problems: string[];
  attributes: Record<string, string | number>;
}

interface Open {
  name: string;
  ts: number;
  depth: number;
}

/** checks the invariants, and rebuilds sockets (a lifetime slice is a depth-0 slice with a plain name) */
export function checkTrace(packets: Packet[]): CheckedTrace {
  const problems: string[] = [];
  const tracks = new Map<number, Packet>();
  const names = new Map<number, string>();
  const annNames = new Map<number, string>();
  const functions = new Map<number, string>();
  const frames = new Map<number, Packet>();
  const callstacks = new Map<number, number[]>();
  const mappings = new Set<number>();
  const strings = new Set<string>();
  const counters = new Map<number, { ts: number; value: number }[]>();
  const lastTs = new Map<number, number>();
  const stacks = new Map<number, Open[]>();
  const sockets: RebuiltSocket[] = [];
  const current = new Map<number, RebuiltSocket>();
  const attributes: Record<string, string | number> = {};
  const stackNames = (iid: number): string[] => {
    const ids = callstacks.get(iid);
    if (!ids) return [];
    return ids.map((f) => functions.get(frames.get(f)?.function_name_id) ?? '?').reverse();
  };
  packets.forEach((p, i) => {
    if (i === 0 && !((p.sequence_flags ?? 0) & 1)) problems.push('the first packet does not clear incremental state');
    if (p.trusted_packet_sequence_id !== 1) problems.push(`packet ${i}: sequence id ${p.trusted_packet_sequence_id}`);
    for (const a of p.trace_attributes?.attribute ?? []) attributes[a.key] = a.string_value ?? a.long_value;
    const d = p.interned_data;
    if (d) {
      if (!((p.sequence_flags ?? 0) & 2)) problems.push(`packet ${i}: interned data without SEQ_NEEDS_INCREMENTAL_STATE`);
      for (const n of d.event_names ?? []) names.set(n.iid, n.name);
      for (const n of d.debug_annotation_names ?? []) annNames.set(n.iid, n.name);
      for (const s of d.function_names ?? []) functions.set(s.iid, Buffer.from(s.str).toString());
      for (const k of ['mapping_paths', 'source_paths', 'build_ids']) for (const s of d[k] ?? []) strings.add(`${k}:${s.iid}`);
      for (const m of d.mappings ?? []) {
        for (const id of m.path_string_ids ?? []) if (!strings.has(`mapping_paths:${id}`)) problems.push(`packet ${i}: mapping ${m.iid} uses path ${id} before it is defined`);
        mappings.add(m.iid);
      }
      for (const f of d.frames ?? []) {
        if (!functions.has(f.function_name_id)) problems.push(`packet ${i}: frame ${f.iid} uses function name ${f.function_name_id} before it is defined`);
        if (!mappings.has(f.mapping_id)) problems.push(`packet ${i}: frame ${f.iid} uses mapping ${f.mapping_id} before it is defined`);
        if (f.source_path_iid && !strings.has(`source_paths:${f.source_path_iid}`)) problems.push(`packet ${i}: frame ${f.iid} uses source path ${f.source_path_iid} before it is defined`);
        frames.set(f.iid, f);
      }
      for (const c of d.callstacks ?? []) {
        for (const f of c.frame_ids ?? []) if (!frames.has(f)) problems.push(`packet ${i}: callstack ${c.iid} uses frame ${f} before it is defined`);
        callstacks.set(c.iid, c.frame_ids ?? []);
      }
    }
    const td = p.track_descriptor;
    if (td) {
      if (tracks.has(td.uuid)) problems.push(`track ${td.uuid} described twice`);
      if (td.parent_uuid && !tracks.has(td.parent_uuid)) problems.push(`track ${td.uuid} (${td.name}) names parent ${td.parent_uuid} before it is described`);
      tracks.set(td.uuid, td);
    }
    const e = p.track_event;
    if (!e) return;
    const uuid = e.track_uuid;
    if (!tracks.has(uuid)) problems.push(`packet ${i}: event on track ${uuid}, not described before`);
    const ts = p.timestamp;
    if (typeof ts !== 'number') problems.push(`packet ${i}: event without a timestamp`);
    if ((lastTs.get(uuid) ?? -Infinity) > ts) problems.push(`track ${uuid} (${tracks.get(uuid)?.name}): timestamp ${ts} goes back from ${lastTs.get(uuid)}`);
    lastTs.set(uuid, ts);
    if (e.name_iid && !names.has(e.name_iid)) problems.push(`packet ${i}: event name ${e.name_iid} used before it is defined`);
    if (e.callstack_iid && !callstacks.has(e.callstack_iid)) problems.push(`packet ${i}: callstack ${e.callstack_iid} used before it is defined`);
    const ann: Record<string, string | number | boolean> = {};
    for (const a of e.debug_annotations ?? []) {
      if (!annNames.has(a.name_iid)) problems.push(`packet ${i}: annotation name ${a.name_iid} used before it is defined`);
      ann[annNames.get(a.name_iid) ?? `#${a.name_iid}`] = a.int_value ?? a.string_value ?? a.bool_value ?? a.uint_value;
    }
    const name = e.name_iid ? names.get(e.name_iid)! : e.name;
    let open = stacks.get(uuid);
    if (!open) stacks.set(uuid, (open = []));
    switch (e.type) {
      case 1: {
        // BEGIN
        if (open.length === 0) {
          const parent = tracks.get(tracks.get(uuid)?.parent_uuid);
          const s: RebuiltSocket = { track: uuid, trackName: tracks.get(uuid)?.name, parentName: parent?.name ?? '', name, ann, start: ts, end: null, states: [], calls: [], correlation: e.correlation_id ?? 0, acquire: e.callstack_iid ? stackNames(e.callstack_iid) : [] };
          sockets.push(s);
          current.set(uuid, s);
        } else if (open.length === 1) current.get(uuid)?.states.push(name);
        open.push({ name, ts, depth: open.length });
        break;
      }
      case 2: {
        // END
        const top = open.pop();
        if (!top) problems.push(`track ${uuid}: END at ${ts} without a BEGIN`);
        else if (open.length === 0) {
          const s = current.get(uuid);
          if (s) s.end = ts;
          current.delete(uuid);
        }
        break;
      }
      case 3:
        current.get(uuid)?.calls.push({ name, ts, stack: e.callstack_iid ? stackNames(e.callstack_iid) : [] });
        if (!current.get(uuid)) problems.push(`track ${uuid}: instant ${name} outside a socket's life`);
        break;
      case 4: {
        let c = counters.get(uuid);
        if (!c) counters.set(uuid, (c = []));
        c.push({ ts, value: e.counter_value ?? 0 });
        break;
      }
      default:
        problems.push(`packet ${i}: event type ${e.type}`);
    }
  });
  // only sockets open at the end may leave slices open
  for (const [uuid, open] of stacks) {
    if (!open.length) continue;
    const s = current.get(uuid);
    if (!s || s.ann.open_at_end !== true) problems.push(`track ${uuid} (${tracks.get(uuid)?.name}): ${open.length} slices never end, and it is not a socket open at the end`);
  }
  // no parent cycles
  for (const t of tracks.values()) {
    const seen = new Set<number>();
    for (let u = t.uuid; u; u = tracks.get(u)?.parent_uuid) {
      if (seen.has(u)) {
        problems.push(`track ${t.uuid}: its parents loop`);
        break;
      }
      seen.add(u);
    }
  }
  return { packets, tracks, sockets, counters, problems, attributes };
}
