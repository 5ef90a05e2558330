/**
 * Binary ring-buffer records -> events. Offsets come from
 * src/generated/events.ts, generated from the BTF of bpf/tcpstate.h.
 *
 * The hot path (forEachRecord) hands out one reusable view per record kind:
 * fields are read from the batch buffer (through one DataView per batch) only
 * when asked for, so a transition the analysis only counts costs no allocation;
 * addresses can be handed over unformatted (copyTuple), comm strings are cached. Views are valid only inside
 * the callback; decodeBatch() materializes plain objects (tests, tools).
 * Timestamps are float ns: exact to the ns for 104 days of uptime, to better
 * than a microsecond for centuries. Socket addresses keep their low 48 bits:
 * canonical kernel addresses have the 16 bits above all set, so nothing is lost
 * and keys stay plain numbers (BigInt keys cost more than the rest of decoding).
 */
import * as G from './generated/events.js';
import type { ForkEvent, SockcallEvent, StackRefEvent, TraceEvent, TransitionEvent } from './model/events.js';
import { SITE_NAMES, type Site } from './stacks/types.js';
import { AF_INET, endpoint, formatIp, type TupleSink } from './model/addr.js';

export class DecodeError extends Error {}

/** Where a record kind keeps its socket's key: the sk address and the cookie (generated offsets). */
interface KeyLayout {
  sk: number;
  cookie: number;
}
/** ... and the fields every transition and socket call has. */
interface SocketLayout extends KeyLayout {
  /** start of the record's struct tt_tuple */
  tuple: number;
  netns: number;
}
const TRANSITION: SocketLayout = { sk: G.O_TRANSITION_SK, cookie: G.O_TRANSITION_COOKIE, tuple: G.O_TRANSITION_TUPLE_SADDR - G.O_TUPLE_SADDR, netns: G.O_TRANSITION_NETNS };
const STACK_REF: KeyLayout = { sk: G.O_STACK_REF_SK, cookie: G.O_STACK_REF_COOKIE };
const SOCKCALL: SocketLayout = { sk: G.O_SOCKCALL_SK, cookie: G.O_SOCKCALL_COOKIE, tuple: G.O_SOCKCALL_TUPLE_SADDR - G.O_TUPLE_SADDR, netns: G.O_SOCKCALL_NETNS };

const u64 = (dv: DataView, o: number): number => dv.getUint32(o + 4, true) * 4294967296 + dv.getUint32(o, true);
/** low 48 bits of a little-endian u64 */
const u48 = (dv: DataView, o: number): number => dv.getUint16(o + 4, true) * 4294967296 + dv.getUint32(o, true);
const isZero64 = (dv: DataView, o: number): boolean => (dv.getInt32(o, true) | dv.getInt32(o + 4, true)) === 0;
function cstr(b: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return b.toString('utf8', off, end);
}

/**
 * comm strings (16 bytes) of the last processes seen, by their bytes: a server's
 * events name the same few processes over and over, and decoding each one
 * would allocate a string per event. Direct-mapped; a hit compares all 16 bytes.
 */
const COMM_SLOTS = 256;
const commWords = new Int32Array(COMM_SLOTS * 4);
const commStrings: (string | undefined)[] = new Array<string | undefined>(COMM_SLOTS).fill(undefined);
function comm(b: Buffer, dv: DataView, off: number): string {
  const w0 = dv.getInt32(off, true), w1 = dv.getInt32(off + 4, true), w2 = dv.getInt32(off + 8, true), w3 = dv.getInt32(off + 12, true);
  const slot = (Math.imul(w0 ^ Math.imul(w1, 0x9e3779b1) ^ Math.imul(w2, 0x85ebca6b) ^ w3, 0x27d4eb2f) >>> 24) & (COMM_SLOTS - 1);
  const i = slot * 4;
  const hit = commStrings[slot];
  if (hit !== undefined && commWords[i] === w0 && commWords[i + 1] === w1 && commWords[i + 2] === w2 && commWords[i + 3] === w3) return hit;
  const s = cstr(b, off, 16);
  commWords[i] = w0; commWords[i + 1] = w1; commWords[i + 2] = w2; commWords[i + 3] = w3;
  commStrings[slot] = s;
  return s;
}

abstract class View {
  b!: Buffer;
  dv!: DataView;
  o = 0;
  get ts(): number {
    return u64(this.dv, this.o + G.O_HDR_TS_NS);
  }
}

/** The socket a record is about (transitions, socket calls, stack references), read through the kind's layout. */
abstract class KeyedView extends View {
  protected abstract readonly L: KeyLayout;
  get sk(): number {
    return u48(this.dv, this.o + this.L.sk);
  }
  /** cookie !== 0n, without reading a BigInt */
  get hasCookie(): boolean {
    return !isZero64(this.dv, this.o + this.L.cookie);
  }
  get cookie(): bigint {
    const at = this.o + this.L.cookie;
    return isZero64(this.dv, at) ? 0n : this.dv.getBigUint64(at, true);
  }
}

/** The fields transitions and socket calls share, read through the kind's layout. */
abstract class SocketView extends KeyedView {
  protected abstract override readonly L: SocketLayout;
  get family(): number {
    return this.dv.getUint16(this.o + this.L.tuple + G.O_TUPLE_FAMILY, true);
  }
  get localPort(): number {
    return this.dv.getUint16(this.o + this.L.tuple + G.O_TUPLE_SPORT, true);
  }
  get local(): string {
    return endpoint(this.family, formatIp(this.family, this.b, this.o + this.L.tuple + G.O_TUPLE_SADDR), this.localPort);
  }
  get remote(): string {
    const t = this.o + this.L.tuple;
    return endpoint(this.family, formatIp(this.family, this.b, t + G.O_TUPLE_DADDR), this.dv.getUint16(t + G.O_TUPLE_DPORT, true));
  }
  /** hands local/remote over unformatted (see Endpoints.copyTuple) */
  copyTuple(to: TupleSink): void {
    to.setRawTuple(this.dv, this.o + this.L.tuple);
  }
  get netns(): number {
    return this.dv.getUint32(this.o + this.L.netns, true);
  }
}

/** Where a transition record kind keeps the fields both kinds have (generated offsets). */
interface TransitionFields {
  oldState: number;
  newState: number;
  cpuTgid: number;
  cpuTid: number;
  cpuComm: number;
  call: number;
  callFd: number;
  callArg: number;
}
const TRANSITION_FIELDS: TransitionFields = {
  oldState: G.O_TRANSITION_OLDSTATE, newState: G.O_TRANSITION_NEWSTATE, cpuTgid: G.O_TRANSITION_CPU_TGID, cpuTid: G.O_TRANSITION_CPU_TID,
  cpuComm: G.O_TRANSITION_CPU_COMM, call: G.O_TRANSITION_CALL, callFd: G.O_TRANSITION_CALL_FD, callArg: G.O_TRANSITION_CALL_ARG,
};

export class TransitionView extends SocketView implements TransitionEvent {
  readonly type = 'transition' as const;
  protected readonly L: SocketLayout = TRANSITION;
  protected readonly F: TransitionFields = TRANSITION_FIELDS;
  get oldState(): number {
    return this.dv.getUint8(this.o + this.F.oldState);
  }
  get newState(): number {
    return this.dv.getUint8(this.o + this.F.newState);
  }
  get ownerKnown(): boolean {
    return (this.dv.getUint16(this.o + G.O_HDR_FLAGS, true) & 1) !== 0;
  }
  /** TT_F_LATE (4): the agent's sweep sent this CLOSE_WAIT late; ts is when the socket entered it */
  get late(): boolean {
    return (this.dv.getUint16(this.o + G.O_HDR_FLAGS, true) & 4) !== 0;
  }
  get ownerPid(): number {
    return this.dv.getUint32(this.o + G.O_TRANSITION_OWNER_TGID, true);
  }
  get ownerFd(): number {
    return this.dv.getInt32(this.o + G.O_TRANSITION_OWNER_FD, true);
  }
  get ownerComm(): string {
    return comm(this.b, this.dv, this.o + G.O_TRANSITION_OWNER_COMM);
  }
  get ownerFirstNs(): number {
    return u64(this.dv, this.o + G.O_TRANSITION_OWNER_FIRST_NS);
  }
  get origin(): number {
    return this.dv.getUint8(this.o + G.O_TRANSITION_ORIGIN);
  }
  get cpuPid(): number {
    return this.dv.getUint32(this.o + this.F.cpuTgid, true);
  }
  get cpuTid(): number {
    return this.dv.getUint32(this.o + this.F.cpuTid, true);
  }
  get cpuComm(): string {
    return comm(this.b, this.dv, this.o + this.F.cpuComm);
  }
  /** the close()/shutdown() that made this transition (TT_CALL), 0 for none; records of 136 bytes (older recordings) have 0 */
  get call(): number {
    return this.dv.getUint8(this.o + this.F.call);
  }
  get callFd(): number {
    return this.call === 0 ? -1 : this.dv.getInt32(this.o + this.F.callFd, true);
  }
  get callArg(): number {
    return this.call === 0 ? 0 : this.dv.getInt32(this.o + this.F.callArg, true);
  }
  materialize(): TransitionEvent {
    const { type, ts, sk, cookie, oldState, newState, family, localPort, local, remote, netns, ownerKnown, ownerPid, ownerFd, ownerComm, ownerFirstNs, origin, cpuPid, cpuTid, cpuComm, call, callFd, callArg } = this;
    return { type, ts, sk, cookie, oldState, newState, family, localPort, local, remote, netns, ownerKnown, ownerPid, ownerFd, ownerComm, ownerFirstNs, origin, cpuPid, cpuTid, cpuComm, call, callFd, callArg, ...(this.late ? { late: true } : {}) };
  }
}

/**
 * A compact transition record (tt_transition4: an IPv4 socket, no owner in the record),
 * read as the same event as a full one: family AF_INET, owner unknown.
 */
export class Transition4View extends TransitionView {
  // tuple: no struct tt_tuple here; every getter that would read one is overridden
  protected override readonly L: SocketLayout = { sk: G.O_TRANSITION4_SK, cookie: G.O_TRANSITION4_COOKIE, tuple: -1, netns: G.O_TRANSITION4_NETNS };
  protected override readonly F: TransitionFields = {
    oldState: G.O_TRANSITION4_OLDSTATE, newState: G.O_TRANSITION4_NEWSTATE, cpuTgid: G.O_TRANSITION4_CPU_TGID, cpuTid: G.O_TRANSITION4_CPU_TID,
    cpuComm: G.O_TRANSITION4_CPU_COMM, call: G.O_TRANSITION4_CALL, callFd: G.O_TRANSITION4_CALL_FD, callArg: G.O_TRANSITION4_CALL_ARG,
  };
  override get family(): number {
    return AF_INET;
  }
  override get localPort(): number {
    return this.dv.getUint16(this.o + G.O_TRANSITION4_SPORT, true);
  }
  override get local(): string {
    return endpoint(AF_INET, formatIp(AF_INET, this.b, this.o + G.O_TRANSITION4_SADDR), this.localPort);
  }
  override get remote(): string {
    return endpoint(AF_INET, formatIp(AF_INET, this.b, this.o + G.O_TRANSITION4_DADDR), this.dv.getUint16(this.o + G.O_TRANSITION4_DPORT, true));
  }
  override copyTuple(to: TupleSink): void {
    const o = this.o;
    to.setRawTuple4(this.dv, o + G.O_TRANSITION4_SADDR, o + G.O_TRANSITION4_DADDR, this.localPort, this.dv.getUint16(o + G.O_TRANSITION4_DPORT, true));
  }
  override get ownerKnown(): boolean {
    return false;
  }
  override get ownerPid(): number {
    return 0;
  }
  override get ownerFd(): number {
    return -1;
  }
  override get ownerComm(): string {
    return '';
  }
  override get ownerFirstNs(): number {
    return 0;
  }
  override get origin(): number {
    return 0;
  }
}

export class SockcallView extends SocketView implements SockcallEvent {
  readonly type = 'sockcall' as const;
  protected readonly L = SOCKCALL;
  get call(): number {
    return this.dv.getUint8(this.o + G.O_SOCKCALL_CALL);
  }
  get via(): number {
    return this.dv.getUint8(this.o + G.O_SOCKCALL_VIA);
  }
  get state(): number {
    return this.dv.getUint8(this.o + G.O_SOCKCALL_STATE);
  }
  get pid(): number {
    return this.dv.getUint32(this.o + G.O_SOCKCALL_TGID, true);
  }
  get tid(): number {
    return this.dv.getUint32(this.o + G.O_SOCKCALL_TID, true);
  }
  get fd(): number {
    return this.dv.getInt32(this.o + G.O_SOCKCALL_FD, true);
  }
  get arg(): number {
    return this.dv.getInt32(this.o + G.O_SOCKCALL_ARG, true);
  }
  get comm(): string {
    return comm(this.b, this.dv, this.o + G.O_SOCKCALL_COMM);
  }
  materialize(): SockcallEvent {
    const { type, ts, sk, cookie, call, via, state, family, local, remote, netns, pid, tid, fd, arg, comm } = this;
    return { type, ts, sk, cookie, call, via, state, family, local, remote, netns, pid, tid, fd, arg, comm };
  }
}

export class ForkView extends View implements ForkEvent {
  readonly type = 'fork' as const;
  get parentPid(): number {
    return this.dv.getUint32(this.o + G.O_FORK_PARENT_TGID, true);
  }
  get childPid(): number {
    return this.dv.getUint32(this.o + G.O_FORK_CHILD_TGID, true);
  }
  get comm(): string {
    return comm(this.b, this.dv, this.o + G.O_FORK_COMM);
  }
  materialize(): ForkEvent {
    const { type, ts, parentPid, childPid, comm } = this;
    return { type, ts, parentPid, childPid, comm };
  }
}

export class StackRefView extends KeyedView implements StackRefEvent {
  readonly type = 'stackref' as const;
  protected readonly L = STACK_REF;
  get pid(): number {
    return this.dv.getUint32(this.o + G.O_STACK_REF_TGID, true);
  }
  get tid(): number {
    return this.dv.getUint32(this.o + G.O_STACK_REF_TID, true);
  }
  get site(): Site {
    return SITE_NAMES[this.dv.getUint8(this.o + G.O_STACK_REF_SITE)] ?? 'acquire';
  }
  get stackId(): number {
    return this.dv.getUint32(this.o + G.O_STACK_REF_STACK_ID, true);
  }
  materialize(): StackRefEvent {
    const { type, ts, sk, cookie, pid, tid, site, stackId } = this;
    return { type, ts, sk, cookie, pid, tid, site, stackId };
  }
}

export interface DecodeStats {
  records: number;
  unknown: number;
}

export type RecordView = TransitionView | SockcallView | ForkView | StackRefView;

/**
 * Calls fn once per record with a reused view (valid only during the call).
 * Throws DecodeError on a malformed buffer; skips (and counts) unknown kinds.
 */
export function forEachRecord(buf: Buffer, fn: (v: RecordView) => void, stats?: DecodeStats): void {
  const tv = new TransitionView();
  const t4 = new Transition4View();
  const sv = new SockcallView();
  const fv = new ForkView();
  const rv = new StackRefView();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  tv.b = t4.b = sv.b = fv.b = rv.b = buf;
  tv.dv = t4.dv = sv.dv = fv.dv = rv.dv = dv;
  let off = 0;
  const len = buf.length;
  while (off < len) {
    if (len - off < G.SIZE_HDR) throw new DecodeError(`truncated record header at byte ${off}`);
    const kind = dv.getUint16(off + G.O_HDR_KIND, true);
    const size = dv.getUint16(off + G.O_HDR_SIZE, true);
    if (size < G.SIZE_HDR || off + size > len) throw new DecodeError(`bad record size ${size} at byte ${off}`);
    const version = dv.getUint8(off + G.O_HDR_VERSION);
    if (version !== 1) throw new DecodeError(`record version ${version} at byte ${off} (this build reads version 1)`);
    if (stats) stats.records++;
    switch (kind) {
      case G.TT_KIND.TRANSITION:
        // 136 bytes (up to call_fd) in recordings made before close() was folded into its transition: their call byte is 0
        if (size < G.O_TRANSITION_CALL_FD || (size < G.SIZE_TRANSITION && dv.getUint8(off + G.O_TRANSITION_CALL) !== 0)) throw new DecodeError(`short transition record (${size} bytes)`);
        tv.o = off;
        fn(tv);
        break;
      case G.TT_KIND.TRANSITION4:
        if (size < G.SIZE_TRANSITION4) throw new DecodeError(`short compact transition record (${size} bytes)`);
        t4.o = off;
        fn(t4);
        break;
      case G.TT_KIND.SOCKCALL:
        if (size < G.SIZE_SOCKCALL) throw new DecodeError(`short sockcall record (${size} bytes)`);
        sv.o = off;
        fn(sv);
        break;
      case G.TT_KIND.FORK:
        if (size < G.SIZE_FORK) throw new DecodeError(`short fork record (${size} bytes)`);
        fv.o = off;
        fn(fv);
        break;
      case G.TT_KIND.STACK_REF:
        if (size < G.SIZE_STACK_REF) throw new DecodeError(`short stack reference record (${size} bytes)`);
        rv.o = off;
        fn(rv);
        break;
      default:
        if (stats) stats.unknown++;
    }
    // ring buffer records are 8-byte aligned; sizes are already multiples of 8
    off += (size + 7) & ~7;
  }
}

/** Decodes every record into plain objects, appending to out. */
export function decodeBatch(buf: Buffer, out: TraceEvent[], stats?: DecodeStats): void {
  forEachRecord(buf, (v) => out.push(v.materialize()), stats);
}
