/**
 * `tcptrace export -f perfetto`: the socket timelines as a Perfetto trace
 * (TracePacket stream, schema in perfetto.proto), for ui.perfetto.dev and
 * trace_processor. Layout (docs/export.md):
 *
 *   process "comm" (pid)
 *   └ "comm sockets"                    plain track: a process track's children show as its siblings
 *      ├ counters CLOSE_WAIT · ESTABLISHED · TIME_WAIT (derived) · open
 *      ├ "leak #1: accept @ fn — 37 sockets, oldest 41 s"   (description: the stacks)
 *      │   └ one track per socket; open at the end, so its slices have no END
 *      ├ "closed late" · "listeners" · "open at the end"   └ one track per socket
 *      └ "closed"                       └ lanes the other sockets are packed into
 *
 * On a socket's track: its life is a slice (annotated with its facts, the
 * acquire stack as its callstack, the leak group as its correlation id), its
 * states are slices nested in it, its calls instants nested in those, each with
 * the stack captured there. Timestamps are CLOCK_MONOTONIC ns (ClockSnapshot
 * ties them to wall time). Names, annotation names and stacks are interned.
 */
import { hostname } from 'node:os';
import type { LeakGroup } from '../analysis/leaks.js';
import { stateName } from '../model/states.js';
import type { Frame } from '../stacks/types.js';
import { codePathFrame } from '../stacks/app-frame.js';
import { COUNTER_SERIES, type CounterSeries, type SocketLife, type TimelineCall, type TimelineContext, type TimelineEnd, type TimelineSink } from './timeline.js';
import { PacketStream, pb, tag } from './proto-writer.js';
import type { OutputFile } from './output.js';

type Writer = import('protobufjs').Writer;

const SEQ = 1;
const SEQ_CLEARED = 1;
const SEQ_NEEDS_STATE = 2;
const CLOCK_REALTIME = 1;
const CLOCK_MONOTONIC = 3;
const BEGIN = 1;
const END = 2;
const INSTANT = 3;
const COUNTER = 4;
const ORDER_EXPLICIT = 3;
const ORDER_CHRONOLOGICAL = 2;
const MERGE_NONE = 2;
const UNIT_COUNT = 2;
const KIND_NATIVE = 1;
const KIND_JIT = 4;

const T = {
  packet: {
    timestamp: tag('TracePacket', 'timestamp'),
    seq: tag('TracePacket', 'trusted_packet_sequence_id'),
    event: tag('TracePacket', 'track_event'),
    descriptor: tag('TracePacket', 'track_descriptor'),
    clock: tag('TracePacket', 'clock_snapshot'),
    attributes: tag('TracePacket', 'trace_attributes'),
    interned: tag('TracePacket', 'interned_data'),
    flags: tag('TracePacket', 'sequence_flags'),
    defaults: tag('TracePacket', 'trace_packet_defaults'),
    first: tag('TracePacket', 'first_packet_on_sequence'),
  },
  defaults: { clock: tag('TracePacketDefaults', 'timestamp_clock_id') },
  clock: { clocks: tag('ClockSnapshot', 'clocks'), primary: tag('ClockSnapshot', 'primary_trace_clock'), id: tag('Clock', 'clock_id'), ts: tag('Clock', 'timestamp') },
  attr: { attribute: tag('TraceAttributes', 'attribute'), key: tag('Attribute', 'key'), str: tag('Attribute', 'string_value'), long: tag('Attribute', 'long_value') },
  track: {
    uuid: tag('TrackDescriptor', 'uuid'),
    parent: tag('TrackDescriptor', 'parent_uuid'),
    name: tag('TrackDescriptor', 'name'),
    description: tag('TrackDescriptor', 'description'),
    process: tag('TrackDescriptor', 'process'),
    counter: tag('TrackDescriptor', 'counter'),
    ordering: tag('TrackDescriptor', 'child_ordering'),
    rank: tag('TrackDescriptor', 'sibling_order_rank'),
    merge: tag('TrackDescriptor', 'sibling_merge_behavior'),
  },
  process: { pid: tag('ProcessDescriptor', 'pid'), name: tag('ProcessDescriptor', 'process_name') },
  counterDesc: { unit: tag('CounterDescriptor', 'unit'), share: tag('CounterDescriptor', 'y_axis_share_key') },
  event: {
    type: tag('TrackEvent', 'type'),
    track: tag('TrackEvent', 'track_uuid'),
    nameIid: tag('TrackEvent', 'name_iid'),
    name: tag('TrackEvent', 'name'),
    value: tag('TrackEvent', 'counter_value'),
    annotations: tag('TrackEvent', 'debug_annotations'),
    correlation: tag('TrackEvent', 'correlation_id'),
    callstack: tag('TrackEvent', 'callstack_iid'),
  },
  ann: { name: tag('DebugAnnotation', 'name_iid'), bool: tag('DebugAnnotation', 'bool_value'), int: tag('DebugAnnotation', 'int_value'), str: tag('DebugAnnotation', 'string_value') },
  interned: {
    names: tag('InternedData', 'event_names'),
    annNames: tag('InternedData', 'debug_annotation_names'),
    functions: tag('InternedData', 'function_names'),
    frames: tag('InternedData', 'frames'),
    callstacks: tag('InternedData', 'callstacks'),
    mappingPaths: tag('InternedData', 'mapping_paths'),
    sourcePaths: tag('InternedData', 'source_paths'),
    mappings: tag('InternedData', 'mappings'),
    buildIds: tag('InternedData', 'build_ids'),
  },
  named: { iid: tag('EventName', 'iid'), name: tag('EventName', 'name') },
  string: { iid: tag('InternedString', 'iid'), str: tag('InternedString', 'str') },
  mapping: { iid: tag('Mapping', 'iid'), buildId: tag('Mapping', 'build_id'), paths: tag('Mapping', 'path_string_ids') },
  frame: { iid: tag('Frame', 'iid'), fn: tag('Frame', 'function_name_id'), mapping: tag('Frame', 'mapping_id'), relPc: tag('Frame', 'rel_pc'), source: tag('Frame', 'source_path_iid'), line: tag('Frame', 'line_number'), kind: tag('Frame', 'kind') },
  callstack: { iid: tag('Callstack', 'iid'), frames: tag('Callstack', 'frame_ids') },
};

/** annotation values: numbers as int, booleans, strings */
type Annotation = [name: string, value: number | string | boolean];

interface ProcessTracks {
  /** the plain track the others hang under */
  root: number;
  counters: Record<CounterSeries, number>;
  /** group tracks by kind ('late', 'listener', 'open', 'closed'), made on first use */
  groups: Map<string, number>;
  /** packed lanes: free-at times, and their tracks */
  lanes: { end: number; uuid: number }[];
  /** leak group index → its track */
  leaks: Map<number, number>;
}

export interface PerfettoOptions {
  /** sockets with a track of their own at most (the rest go to packed lanes) */
  socketTracks: number;
}

/** Interned strings of one kind: iid by value, and the ones not yet written. */
class InternTable {
  private readonly ids = new Map<string, number>();
  pending: [number, string][] = [];
  constructor(private readonly onNew: () => void) {}
  id(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.ids.size + 1;
      this.ids.set(s, id);
      this.pending.push([id, s]);
      this.onNew();
    }
    return id;
  }
}

export class PerfettoTimeline implements TimelineSink {
  private readonly stream: PacketStream;
  private ctx!: TimelineContext;
  /** something was interned since the last packet that carried interned data */
  private interned = false;
  private readonly dirty = () => {
    this.interned = true;
  };
  private nextUuid = 1;
  private readonly processes = new Map<number, ProcessTracks>();
  private groups: LeakGroup[] = [];
  private ownTracks = 0;
  // interning, per kind; pending entries go out with the next packet that uses them
  private readonly names = new InternTable(this.dirty);
  private readonly annNames = new InternTable(this.dirty);
  private readonly functions = new InternTable(this.dirty);
  private readonly mappingPaths = new InternTable(this.dirty);
  private readonly sourcePaths = new InternTable(this.dirty);
  private readonly buildIds = new InternTable(this.dirty);
  private readonly mappings = new Map<string, number>();
  private pendingMappings: { iid: number; path: number; buildId: number }[] = [];
  private readonly frames = new Map<string, number>();
  private pendingFrames: { iid: number; fn: number; mapping: number; relPc: number; source: number; line: number; jit: boolean }[] = [];
  /** stack id → callstack iid */
  private readonly callstacks = new Map<number, number>();
  private pendingCallstacks: { iid: number; frames: number[] }[] = [];
  /** what was written, for the caller's summary */
  readonly stats = { tracks: 0, sockets: 0, ownTracks: 0, lanes: 0, slices: 0, instants: 0, counters: 0 };

  constructor(
    private readonly out: OutputFile,
    private readonly options: PerfettoOptions,
  ) {
    this.stream = new PacketStream(out);
  }

  get packets(): number {
    return this.stream.packets;
  }

  begin(ctx: TimelineContext): void {
    this.ctx = ctx;
    const info = ctx.info;
    const wallAtStart = Number(info.clock.wallNs + (info.startedNs - info.clock.monotonicNs));
    this.stream.packet((w) => {
      pb.uint(w, T.packet.seq, SEQ);
      pb.uint(w, T.packet.flags, SEQ_CLEARED);
      pb.bool(w, T.packet.first, true);
      pb.msg(w, T.packet.defaults, (d) => pb.uint(d, T.defaults.clock, CLOCK_MONOTONIC));
      pb.msg(w, T.packet.clock, (c) => {
        pb.msg(c, T.clock.clocks, (k) => {
          pb.uint(k, T.clock.id, CLOCK_MONOTONIC);
          pb.uint(k, T.clock.ts, Number(info.startedNs));
        });
        pb.msg(c, T.clock.clocks, (k) => {
          pb.uint(k, T.clock.id, CLOCK_REALTIME);
          pb.uint(k, T.clock.ts, wallAtStart);
        });
        pb.uint(c, T.clock.primary, CLOCK_MONOTONIC);
      });
    });
    const attrs: [string, string | number][] = [
      ['tool', `${info.tool.name} ${info.tool.version}`],
      ['host', info.host],
      ['kernel', info.kernel],
      ['attach_mode', info.attach.mode],
      ['exported_by', `${hostname()}`],
      ['leak_after_ms', ctx.leakAfterMs],
    ];
    this.stream.packet((w) => {
      pb.uint(w, T.packet.seq, SEQ);
      pb.msg(w, T.packet.attributes, (a) => {
        for (const [k, v] of attrs)
          pb.msg(a, T.attr.attribute, (x) => {
            pb.str(x, T.attr.key, k);
            if (typeof v === 'number') pb.int(x, T.attr.long, v);
            else pb.str(x, T.attr.str, v);
          });
      });
    });
  }

  counter(ts: number, pid: number, comm: string, series: CounterSeries, value: number): void {
    const p = this.processTracks(pid, comm);
    this.stats.counters++;
    this.stream.packet((w) => {
      pb.uint(w, T.packet.timestamp, Math.round(ts));
      pb.uint(w, T.packet.seq, SEQ);
      pb.msg(w, T.packet.event, (e) => {
        pb.uint(e, T.event.type, COUNTER);
        pb.uint(e, T.event.track, p.counters[series]);
        pb.int(e, T.event.value, value);
      });
    });
  }

  leakGroups(groups: LeakGroup[]): void {
    this.groups = groups;
  }

  socket(life: SocketLife): void {
    this.stats.sockets++;
    const { track, lane } = this.trackFor(life);
    this.writeLife(life, track, !lane);
  }

  async finish(_end: TimelineEnd): Promise<void> {
    this.stream.flush();
    await this.out.drain();
  }

  // --- tracks ---

  private uuid(): number {
    return this.nextUuid++;
  }

  private describe(fill: (w: Writer) => void): void {
    this.stats.tracks++;
    this.stream.packet((w) => {
      pb.uint(w, T.packet.seq, SEQ);
      pb.msg(w, T.packet.descriptor, fill);
    });
  }

  /** a plain track: uuid, parent, name, and what else fill() adds */
  private plainTrack(parent: number, name: string, rank: number, fill?: (w: Writer) => void): number {
    const uuid = this.uuid();
    this.describe((d) => {
      pb.uint(d, T.track.uuid, uuid);
      if (parent) pb.uint(d, T.track.parent, parent);
      pb.str(d, T.track.name, name);
      pb.int(d, T.track.rank, rank);
      pb.uint(d, T.track.merge, MERGE_NONE);
      fill?.(d);
    });
    return uuid;
  }

  private processTracks(pid: number, comm: string): ProcessTracks {
    let p = this.processes.get(pid);
    if (p) return p;
    let parent = 0;
    if (pid) {
      parent = this.uuid();
      this.describe((d) => {
        pb.uint(d, T.track.uuid, parent);
        pb.msg(d, T.track.process, (x) => {
          pb.int(x, T.process.pid, pid);
          pb.str(x, T.process.name, comm);
        });
      });
    }
    const root = this.plainTrack(parent, pid ? `${comm} sockets` : 'sockets without a known owner', 0, (d) => pb.uint(d, T.track.ordering, ORDER_EXPLICIT));
    const counters = {} as Record<CounterSeries, number>;
    COUNTER_SERIES.forEach((s, i) => {
      counters[s] = this.plainTrack(root, s === 'TIME_WAIT' ? 'TIME_WAIT (derived)' : s === 'open' ? 'open sockets' : s, -100 + i, (d) =>
        pb.msg(d, T.track.counter, (c) => {
          pb.uint(c, T.counterDesc.unit, UNIT_COUNT);
          pb.str(c, T.counterDesc.share, `sockets ${pid}`);
        }),
      );
    });
    p = { root, counters, groups: new Map(), lanes: [], leaks: new Map() };
    this.processes.set(pid, p);
    return p;
  }

  private groupTrack(p: ProcessTracks, kind: string): number {
    let g = p.groups.get(kind);
    if (g === undefined) {
      const [name, rank] = GROUPS[kind];
      g = this.plainTrack(p.root, name, rank, (d) => pb.uint(d, T.track.ordering, ORDER_CHRONOLOGICAL));
      p.groups.set(kind, g);
    }
    return g;
  }

  private leakTrack(p: ProcessTracks, index: number): number {
    let t = p.leaks.get(index);
    if (t === undefined) {
      const g = this.groups[index];
      const top = codePathFrame(g.stacks.acquire);
      const at = top ? ` @ ${top.symbol || top.addr}` : '';
      const name = `leak #${index + 1}: ${g.origin}${at} — ${g.count} socket${g.count === 1 ? '' : 's'}, oldest ${fmtSeconds(g.oldestMs)}`;
      t = this.plainTrack(p.root, name, index, (d) => {
        pb.uint(d, T.track.ordering, ORDER_CHRONOLOGICAL);
        pb.str(d, T.track.description, describeGroup(g));
      });
      p.leaks.set(index, t);
    }
    return t;
  }

  /** the track a socket's life goes on: its own (under its group) while the budget lasts, else a packed lane */
  private trackFor(life: SocketLife): { track: number; lane: boolean } {
    const p = this.processTracks(life.pid, life.comm);
    if (life.kind !== 'closed' && this.ownTracks < this.options.socketTracks) {
      this.ownTracks++;
      this.stats.ownTracks++;
      const parent = life.leak >= 0 ? this.leakTrack(p, life.leak) : this.groupTrack(p, life.kind);
      return { track: this.plainTrack(parent, socketName(life), 0), lane: false };
    }
    return { track: this.lane(p, life), lane: true };
  }

  /**
   * The first lane free by the socket's start (greedy: lanes = the most sockets
   * alive at once). A socket on a lane is drawn until its CLOSE: its derived
   * TIME_WAIT (60 s, longer than most lives) would hold a lane per active
   * close; the TIME_WAIT counter shows those.
   */
  private lane(p: ProcessTracks, life: SocketLife): number {
    const until = life.end ?? Infinity;
    for (const l of p.lanes) {
      if (l.end <= life.start) {
        l.end = until;
        return l.uuid;
      }
    }
    const group = this.groupTrack(p, 'closed');
    const uuid = this.plainTrack(group, `lane ${p.lanes.length + 1}`, p.lanes.length);
    this.stats.lanes++;
    p.lanes.push({ end: until, uuid });
    return uuid;
  }

  // --- events ---

  private writeLife(life: SocketLife, track: number, drawTimeWait: boolean): void {
    const correlation = life.leak >= 0 ? life.leak + 1 : 0;
    const closeWaitMs = life.closeWaitNs === null ? null : Math.round(life.closeWaitNs / 1e6);
    const ann: Annotation[] = [
      ['fd', life.fd],
      ['pid', life.pid],
      ['comm', life.comm],
      ['origin', life.origin],
      ['local', life.local],
      ['remote', life.remote],
      ['netns', life.netns],
    ];
    if (closeWaitMs !== null) ann.push(['close_wait_ms', closeWaitMs]);
    if (life.leak >= 0) ann.push(['leak', `#${life.leak + 1}`]);
    if (life.end === null) ann.push(['open_at_end', true]);
    if (life.sharedWith.length) ann.push(['shared_with', life.sharedWith.join(',')]);
    if (life.clamped) ann.push(['clamped_timestamps', life.clamped]);
    this.slice(BEGIN, life.start, track, null, socketName(life), ann, correlation, life.stacks.acquire);
    const calls = life.calls;
    let c = 0;
    const last = life.states.length - 1;
    for (let i = 0; i <= last; i++) {
      const s = life.states[i];
      const next = i < last ? life.states[i + 1].ts : life.end;
      this.slice(BEGIN, s.ts, track, stateName(s.state), null, null, correlation);
      // the calls made in this state (a close at the transition is the old state's), kept inside it
      while (c < calls.length && (next === null || calls[c].ts <= next)) this.instant(calls[c++], track, s.ts, next ?? Infinity);
      if (next !== null) this.slice(END, next, track, null, null, null, 0);
    }
    // calls after the socket's CLOSE (a close() the kernel held back): at its end, inside its life
    const lastTs = life.end ?? (last >= 0 ? life.states[last].ts : life.start);
    while (c < calls.length) this.instant(calls[c++], track, lastTs, lastTs);
    if (life.end === null) return; // open at the end: no END, so the UI draws it running off the edge
    let end = life.end;
    if (life.timeWaitEnd !== null && drawTimeWait) {
      const twEnd = Math.min(life.timeWaitEnd, Math.max(end, this.endOfPicture()));
      this.slice(BEGIN, end, track, 'TIME_WAIT (derived)', null, null, correlation);
      this.slice(END, twEnd, track, null, null, null, 0);
      end = twEnd;
    }
    this.slice(END, end, track, null, null, null, 0);
  }

  /** the derived TIME_WAIT is drawn to the end of the window at most */
  private endOfPicture(): number {
    return Number.isFinite(this.ctx.to) ? this.ctx.to : Infinity;
  }

  /** a call, its time kept within [lo, hi] so it nests in the slice it belongs to */
  private instant(call: TimelineCall, track: number, lo: number, hi: number): void {
    const ann: Annotation[] = [];
    if (call.fd >= 0) ann.push(['fd', call.fd]);
    if (call.pid) ann.push(['pid', call.pid]);
    if (call.arg !== undefined) ann.push(['how', ['SHUT_RD', 'SHUT_WR', 'SHUT_RDWR'][call.arg] ?? String(call.arg)]);
    this.stats.instants++;
    this.event(INSTANT, Math.min(Math.max(call.ts, lo), hi), track, call.kind, null, ann, 0, call.stackId);
  }

  private slice(type: number, ts: number, track: number, internedName: string | null, name: string | null, ann: Annotation[] | null, correlation: number, stackId?: number): void {
    if (type === BEGIN) this.stats.slices++;
    this.event(type, ts, track, internedName, name, ann, correlation, stackId);
  }

  private event(type: number, ts: number, track: number, internedName: string | null, name: string | null, ann: Annotation[] | null, correlation: number, stackId?: number): void {
    const nameIid = internedName === null ? 0 : this.names.id(internedName);
    const annIds = ann ? ann.map(([k]) => this.annNames.id(k)) : null;
    const callstack = stackId === undefined ? 0 : this.callstack(stackId);
    const needsState = nameIid !== 0 || annIds !== null || callstack !== 0;
    this.stream.packet((w) => {
      pb.uint(w, T.packet.timestamp, Math.round(ts));
      pb.uint(w, T.packet.seq, SEQ);
      if (needsState) {
        pb.uint(w, T.packet.flags, SEQ_NEEDS_STATE);
        this.writeInterned(w);
      }
      pb.msg(w, T.packet.event, (e) => {
        pb.uint(e, T.event.type, type);
        pb.uint(e, T.event.track, track);
        if (nameIid) pb.uint(e, T.event.nameIid, nameIid);
        else if (name !== null) pb.str(e, T.event.name, name);
        if (ann)
          for (let i = 0; i < ann.length; i++) {
            const v = ann[i][1];
            pb.msg(e, T.event.annotations, (a) => {
              pb.uint(a, T.ann.name, annIds![i]);
              if (typeof v === 'number') pb.int(a, T.ann.int, v);
              else if (typeof v === 'boolean') pb.bool(a, T.ann.bool, v);
              else pb.str(a, T.ann.str, v);
            });
          }
        if (correlation) pb.uint(e, T.event.correlation, correlation);
        if (callstack) pb.uint(e, T.event.callstack, callstack);
      });
    });
  }

  // --- interning ---

  private callstack(stackId: number): number {
    let iid = this.callstacks.get(stackId);
    if (iid !== undefined) return iid;
    const frames = this.ctx.stacks.get(stackId);
    if (!frames) return 0;
    const ids: number[] = [];
    // tcptrace's frames are innermost first; a callstack lists the outermost first
    for (let i = frames.length - 1; i >= 0; i--) {
      const f = frames[i];
      ids.push(this.frame(f, f.symbol || `${f.module}+${f.moduleOffset}`, f.file, f.line));
      // functions inlined at this address: inside the frame's own function, innermost last here
      if (f.inlined) for (let j = f.inlined.length - 1; j >= 0; j--) ids.push(this.frame(f, f.inlined[j].symbol, f.inlined[j].file, f.inlined[j].line));
    }
    iid = this.callstacks.size + 1;
    this.callstacks.set(stackId, iid);
    this.pendingCallstacks.push({ iid, frames: ids });
    this.interned = true;
    return iid;
  }

  private frame(f: Frame, fn: string, file: string | undefined, line: number | undefined): number {
    const relPc = Number.parseInt(f.moduleOffset, 16) || 0;
    const key = `${fn}\0${f.module}\0${relPc}\0${file ?? ''}\0${line ?? 0}`;
    let iid = this.frames.get(key);
    if (iid !== undefined) return iid;
    iid = this.frames.size + 1;
    this.frames.set(key, iid);
    this.interned = true;
    this.pendingFrames.push({ iid, fn: this.functions.id(fn), mapping: this.mapping(f), relPc, source: file ? this.sourcePaths.id(file) : 0, line: line ?? 0, jit: !!f.jit });
    return iid;
  }

  private mapping(f: Frame): number {
    const key = `${f.module}\0${f.buildId ?? ''}`;
    let iid = this.mappings.get(key);
    if (iid === undefined) {
      iid = this.mappings.size + 1;
      this.mappings.set(key, iid);
      this.interned = true;
      this.pendingMappings.push({ iid, path: this.mappingPaths.id(f.module || '[unknown]'), buildId: f.buildId ? this.buildIds.id(f.buildId) : 0 });
    }
    return iid;
  }

  /** everything interned since the last packet that carried interned data, into this packet */
  private writeInterned(w: Writer): void {
    const strings: [number, InternTable][] = [
      [T.interned.names, this.names],
      [T.interned.annNames, this.annNames],
      [T.interned.functions, this.functions],
      [T.interned.mappingPaths, this.mappingPaths],
      [T.interned.sourcePaths, this.sourcePaths],
      [T.interned.buildIds, this.buildIds],
    ];
    if (!this.interned) return;
    this.interned = false;
    pb.msg(w, T.packet.interned, (d) => {
      for (const [field, table] of strings) {
        // event and annotation names are {iid, name} messages; the rest InternedString {iid, str}
        const named = field === T.interned.names || field === T.interned.annNames;
        for (const [iid, s] of table.pending)
          pb.msg(d, field, (x) => {
            pb.uint(x, named ? T.named.iid : T.string.iid, iid);
            if (named) pb.str(x, T.named.name, s);
            else pb.bytes(x, T.string.str, Buffer.from(s));
          });
        table.pending = [];
      }
      for (const m of this.pendingMappings)
        pb.msg(d, T.interned.mappings, (x) => {
          pb.uint(x, T.mapping.iid, m.iid);
          if (m.buildId) pb.uint(x, T.mapping.buildId, m.buildId);
          pb.uint(x, T.mapping.paths, m.path);
        });
      for (const f of this.pendingFrames)
        pb.msg(d, T.interned.frames, (x) => {
          pb.uint(x, T.frame.iid, f.iid);
          pb.uint(x, T.frame.fn, f.fn);
          pb.uint(x, T.frame.mapping, f.mapping);
          pb.uint(x, T.frame.relPc, f.relPc);
          if (f.source) pb.uint(x, T.frame.source, f.source);
          if (f.line) pb.uint(x, T.frame.line, f.line);
          pb.uint(x, T.frame.kind, f.jit ? KIND_JIT : KIND_NATIVE);
        });
      for (const c of this.pendingCallstacks)
        pb.msg(d, T.interned.callstacks, (x) => {
          pb.uint(x, T.callstack.iid, c.iid);
          for (const id of c.frames) pb.uint(x, T.callstack.frames, id);
        });
    });
    this.pendingMappings = [];
    this.pendingFrames = [];
    this.pendingCallstacks = [];
  }
}

/** group tracks under a process: name and rank (leak groups rank 0..n-1, above these) */
const GROUPS: Record<string, [string, number]> = {
  late: ['closed late (long in CLOSE_WAIT)', 1000],
  listener: ['listeners', 1001],
  open: ['open at the end', 1002],
  leaked: ['leaked', 1003],
  closed: ['closed', 1004],
};

export function socketName(l: SocketLife): string {
  const fd = l.fd >= 0 ? `fd ${l.fd}` : 'fd ?';
  if (l.kind === 'listener') return `${fd} listen ${l.local}`;
  const arrow = l.origin === 'connect' ? '→' : '←';
  return `${fd} ${arrow} ${l.remote}`;
}

function fmtSeconds(ms: number): string {
  return ms >= 10000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
}

function frameText(f: Frame): string {
  const where = f.file ? ` (${f.file.split('/').pop()}:${f.line ?? '?'})` : '';
  return `${f.symbol || f.addr}${where} [${f.module.split('/').pop()}]`;
}

/** the group's stacks as text, for the track's description */
function describeGroup(g: LeakGroup): string {
  const lines = [`${g.count} sockets in CLOSE_WAIT, oldest ${fmtSeconds(g.oldestMs)}, median ${fmtSeconds(g.medianMs)}; pid ${g.pid} (${g.comm}), ${g.origin}`];
  const sites: [string, Frame[] | null][] = [
    ['acquired', g.stacks.acquire],
    ['first read', g.stacks.read],
    ['first write', g.stacks.io],
    ['EOF read', g.stacks.eof],
  ];
  for (const [site, frames] of sites) {
    if (!frames) continue;
    lines.push(`${site}:`);
    for (const f of frames.slice(0, 16)) lines.push(`  ${frameText(f)}`);
  }
  for (const n of g.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}
