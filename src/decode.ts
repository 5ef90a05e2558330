/**
 * Binary ring-buffer records -> events. Offsets come from
 * src/generated/events.ts, generated from the BTF of bpf/tcpstate.h.
 *
 * The hot path (forEachRecord) hands out one reusable view per record kind:
 * fields are read from the batch buffer only when asked for, so a transition
 * the analysis only counts costs no allocation. Views are valid only inside
 * the callback; decodeBatch() materializes plain objects (tests, tools).
 * Timestamps are float ns: exact to the ns for 104 days of uptime, to better
 * than a microsecond for centuries. Socket addresses keep their low 48 bits:
 * canonical kernel addresses have the 16 bits above all set, so nothing is lost
 * and keys stay plain numbers (BigInt keys cost more than the rest of decoding).
 */
import * as G from './generated/events.js';
import type { ForkEvent, SockcallEvent, TraceEvent, TransitionEvent } from './model/events.js';
import { endpoint, formatIp } from './model/addr.js';

export class DecodeError extends Error {}

const u64 = (b: Buffer, o: number): number => b.readUInt32LE(o + 4) * 4294967296 + b.readUInt32LE(o);
const isZero64 = (b: Buffer, o: number): boolean => b.readUInt32LE(o) === 0 && b.readUInt32LE(o + 4) === 0;
function cstr(b: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return b.toString('utf8', off, end);
}

abstract class View {
  b!: Buffer;
  o = 0;
  get ts(): number {
    return u64(this.b, this.o + G.O_HDR_TS_NS);
  }
}

export class TransitionView extends View implements TransitionEvent {
  readonly type = 'transition' as const;
  get sk(): number {
    return this.b.readUIntLE(this.o + G.O_TRANSITION_SK, 6);
  }
  get cookie(): bigint {
    return isZero64(this.b, this.o + G.O_TRANSITION_COOKIE) ? 0n : this.b.readBigUInt64LE(this.o + G.O_TRANSITION_COOKIE);
  }
  get oldState(): number {
    return this.b[this.o + G.O_TRANSITION_OLDSTATE];
  }
  get newState(): number {
    return this.b[this.o + G.O_TRANSITION_NEWSTATE];
  }
  get family(): number {
    return this.b.readUInt16LE(this.o + G.O_TRANSITION_TUPLE_FAMILY);
  }
  get localPort(): number {
    return this.b.readUInt16LE(this.o + G.O_TRANSITION_TUPLE_SPORT);
  }
  get local(): string {
    return endpoint(this.family, formatIp(this.family, this.b, this.o + G.O_TRANSITION_TUPLE_SADDR), this.localPort);
  }
  get remote(): string {
    return endpoint(this.family, formatIp(this.family, this.b, this.o + G.O_TRANSITION_TUPLE_DADDR), this.b.readUInt16LE(this.o + G.O_TRANSITION_TUPLE_DPORT));
  }
  get netns(): number {
    return this.b.readUInt32LE(this.o + G.O_TRANSITION_NETNS);
  }
  get ownerKnown(): boolean {
    return (this.b.readUInt16LE(this.o + G.O_HDR_FLAGS) & 1) !== 0;
  }
  get ownerPid(): number {
    return this.b.readUInt32LE(this.o + G.O_TRANSITION_OWNER_TGID);
  }
  get ownerFd(): number {
    return this.b.readInt32LE(this.o + G.O_TRANSITION_OWNER_FD);
  }
  get ownerComm(): string {
    return cstr(this.b, this.o + G.O_TRANSITION_OWNER_COMM, 16);
  }
  get ownerFirstNs(): number {
    return u64(this.b, this.o + G.O_TRANSITION_OWNER_FIRST_NS);
  }
  get origin(): number {
    return this.b[this.o + G.O_TRANSITION_ORIGIN];
  }
  get cpuPid(): number {
    return this.b.readUInt32LE(this.o + G.O_TRANSITION_CPU_TGID);
  }
  get cpuTid(): number {
    return this.b.readUInt32LE(this.o + G.O_TRANSITION_CPU_TID);
  }
  get cpuComm(): string {
    return cstr(this.b, this.o + G.O_TRANSITION_CPU_COMM, 16);
  }
  materialize(): TransitionEvent {
    const { type, ts, sk, cookie, oldState, newState, family, localPort, local, remote, netns, ownerKnown, ownerPid, ownerFd, ownerComm, ownerFirstNs, origin, cpuPid, cpuTid, cpuComm } = this;
    return { type, ts, sk, cookie, oldState, newState, family, localPort, local, remote, netns, ownerKnown, ownerPid, ownerFd, ownerComm, ownerFirstNs, origin, cpuPid, cpuTid, cpuComm };
  }
}

export class SockcallView extends View implements SockcallEvent {
  readonly type = 'sockcall' as const;
  get sk(): number {
    return this.b.readUIntLE(this.o + G.O_SOCKCALL_SK, 6);
  }
  get cookie(): bigint {
    return isZero64(this.b, this.o + G.O_SOCKCALL_COOKIE) ? 0n : this.b.readBigUInt64LE(this.o + G.O_SOCKCALL_COOKIE);
  }
  get call(): number {
    return this.b[this.o + G.O_SOCKCALL_CALL];
  }
  get via(): number {
    return this.b[this.o + G.O_SOCKCALL_VIA];
  }
  get state(): number {
    return this.b[this.o + G.O_SOCKCALL_STATE];
  }
  get family(): number {
    return this.b.readUInt16LE(this.o + G.O_SOCKCALL_TUPLE_FAMILY);
  }
  get local(): string {
    return endpoint(this.family, formatIp(this.family, this.b, this.o + G.O_SOCKCALL_TUPLE_SADDR), this.b.readUInt16LE(this.o + G.O_SOCKCALL_TUPLE_SPORT));
  }
  get remote(): string {
    return endpoint(this.family, formatIp(this.family, this.b, this.o + G.O_SOCKCALL_TUPLE_DADDR), this.b.readUInt16LE(this.o + G.O_SOCKCALL_TUPLE_DPORT));
  }
  get netns(): number {
    return this.b.readUInt32LE(this.o + G.O_SOCKCALL_NETNS);
  }
  get pid(): number {
    return this.b.readUInt32LE(this.o + G.O_SOCKCALL_TGID);
  }
  get tid(): number {
    return this.b.readUInt32LE(this.o + G.O_SOCKCALL_TID);
  }
  get fd(): number {
    return this.b.readInt32LE(this.o + G.O_SOCKCALL_FD);
  }
  get arg(): number {
    return this.b.readInt32LE(this.o + G.O_SOCKCALL_ARG);
  }
  get comm(): string {
    return cstr(this.b, this.o + G.O_SOCKCALL_COMM, 16);
  }
  materialize(): SockcallEvent {
    const { type, ts, sk, cookie, call, via, state, family, local, remote, netns, pid, tid, fd, arg, comm } = this;
    return { type, ts, sk, cookie, call, via, state, family, local, remote, netns, pid, tid, fd, arg, comm };
  }
}

export class ForkView extends View implements ForkEvent {
  readonly type = 'fork' as const;
  get parentPid(): number {
    return this.b.readUInt32LE(this.o + G.O_FORK_PARENT_TGID);
  }
  get childPid(): number {
    return this.b.readUInt32LE(this.o + G.O_FORK_CHILD_TGID);
  }
  get comm(): string {
    return cstr(this.b, this.o + G.O_FORK_COMM, 16);
  }
  materialize(): ForkEvent {
    const { type, ts, parentPid, childPid, comm } = this;
    return { type, ts, parentPid, childPid, comm };
  }
}

export interface DecodeStats {
  records: number;
  unknown: number;
}

export type RecordView = TransitionView | SockcallView | ForkView;

/**
 * Calls fn once per record with a reused view (valid only during the call).
 * Throws DecodeError on a malformed buffer; skips (and counts) unknown kinds.
 */
export function forEachRecord(buf: Buffer, fn: (v: RecordView) => void, stats?: DecodeStats): void {
  const tv = new TransitionView();
  const sv = new SockcallView();
  const fv = new ForkView();
  tv.b = sv.b = fv.b = buf;
  let off = 0;
  const len = buf.length;
  while (off < len) {
    if (len - off < G.SIZE_HDR) throw new DecodeError(`truncated record header at byte ${off}`);
    const kind = buf.readUInt16LE(off + G.O_HDR_KIND);
    const size = buf.readUInt16LE(off + G.O_HDR_SIZE);
    if (size < G.SIZE_HDR || off + size > len) throw new DecodeError(`bad record size ${size} at byte ${off}`);
    const version = buf[off + G.O_HDR_VERSION];
    if (version !== 1) throw new DecodeError(`record version ${version} at byte ${off} (this build reads version 1)`);
    if (stats) stats.records++;
    switch (kind) {
      case G.TT_KIND.TRANSITION:
        if (size < G.SIZE_TRANSITION) throw new DecodeError(`short transition record (${size} bytes)`);
        tv.o = off;
        fn(tv);
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
