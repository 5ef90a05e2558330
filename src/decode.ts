/**
 * Binary ring-buffer records -> TraceEvent. Offsets come from
 * src/generated/events.ts, generated from the BTF of bpf/tcpstate.h.
 * Records are dispatched on the common header (kind, size); a record of an
 * unknown kind is skipped by its size and counted, a malformed one is an error.
 */
import * as G from './generated/events.js';
import type { ForkEvent, SockcallEvent, TraceEvent, TransitionEvent } from './model/events.js';
import { endpoint, formatIp } from './model/addr.js';

export class DecodeError extends Error {}

const latin1 = (b: Buffer, off: number, len: number): string => {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return b.toString('utf8', off, end);
};

function tupleStrings(b: Buffer, base: number, saddrOff: number, daddrOff: number, sportOff: number, dportOff: number, familyOff: number) {
  const family = b.readUInt16LE(base + familyOff);
  return {
    family,
    local: endpoint(family, formatIp(family, b, base + saddrOff), b.readUInt16LE(base + sportOff)),
    remote: endpoint(family, formatIp(family, b, base + daddrOff), b.readUInt16LE(base + dportOff)),
  };
}

export interface DecodeStats {
  records: number;
  unknown: number;
}

/** Decodes every record in buf, appending to out. Throws DecodeError on a malformed buffer. */
export function decodeBatch(buf: Buffer, out: TraceEvent[], stats?: DecodeStats): void {
  let off = 0;
  const len = buf.length;
  while (off < len) {
    if (len - off < G.SIZE_HDR) throw new DecodeError(`truncated record header at byte ${off}`);
    const kind = buf.readUInt16LE(off + G.O_HDR_KIND);
    const size = buf.readUInt16LE(off + G.O_HDR_SIZE);
    if (size < G.SIZE_HDR || off + size > len) throw new DecodeError(`bad record size ${size} at byte ${off}`);
    const version = buf.readUInt8(off + G.O_HDR_VERSION);
    if (version !== 1) throw new DecodeError(`record version ${version} at byte ${off} (this build reads version 1)`);
    if (stats) stats.records++;
    switch (kind) {
      case G.TT_KIND.TRANSITION:
        if (size < G.SIZE_TRANSITION) throw new DecodeError(`short transition record (${size} bytes)`);
        out.push(decodeTransition(buf, off));
        break;
      case G.TT_KIND.SOCKCALL:
        if (size < G.SIZE_SOCKCALL) throw new DecodeError(`short sockcall record (${size} bytes)`);
        out.push(decodeSockcall(buf, off));
        break;
      case G.TT_KIND.FORK:
        if (size < G.SIZE_FORK) throw new DecodeError(`short fork record (${size} bytes)`);
        out.push(decodeFork(buf, off));
        break;
      default:
        if (stats) stats.unknown++;
    }
    // ring buffer records are 8-byte aligned; sizes are already multiples of 8
    off += (size + 7) & ~7;
  }
}

function decodeTransition(b: Buffer, o: number): TransitionEvent {
  const t = tupleStrings(b, o, G.O_TRANSITION_TUPLE_SADDR, G.O_TRANSITION_TUPLE_DADDR, G.O_TRANSITION_TUPLE_SPORT, G.O_TRANSITION_TUPLE_DPORT, G.O_TRANSITION_TUPLE_FAMILY);
  const flags = b.readUInt16LE(o + G.O_HDR_FLAGS);
  return {
    type: 'transition',
    ts: b.readBigUInt64LE(o + G.O_HDR_TS_NS),
    sk: b.readBigUInt64LE(o + G.O_TRANSITION_SK),
    cookie: b.readBigUInt64LE(o + G.O_TRANSITION_COOKIE),
    oldState: b[o + G.O_TRANSITION_OLDSTATE],
    newState: b[o + G.O_TRANSITION_NEWSTATE],
    family: t.family,
    local: t.local,
    remote: t.remote,
    netns: b.readUInt32LE(o + G.O_TRANSITION_NETNS),
    ownerKnown: (flags & 1) !== 0,
    ownerPid: b.readUInt32LE(o + G.O_TRANSITION_OWNER_TGID),
    ownerFd: b.readInt32LE(o + G.O_TRANSITION_OWNER_FD),
    ownerComm: latin1(b, o + G.O_TRANSITION_OWNER_COMM, 16),
    ownerFirstNs: b.readBigUInt64LE(o + G.O_TRANSITION_OWNER_FIRST_NS),
    origin: b[o + G.O_TRANSITION_ORIGIN],
    cpuPid: b.readUInt32LE(o + G.O_TRANSITION_CPU_TGID),
    cpuTid: b.readUInt32LE(o + G.O_TRANSITION_CPU_TID),
    cpuComm: latin1(b, o + G.O_TRANSITION_CPU_COMM, 16),
  };
}

function decodeSockcall(b: Buffer, o: number): SockcallEvent {
  const t = tupleStrings(b, o, G.O_SOCKCALL_TUPLE_SADDR, G.O_SOCKCALL_TUPLE_DADDR, G.O_SOCKCALL_TUPLE_SPORT, G.O_SOCKCALL_TUPLE_DPORT, G.O_SOCKCALL_TUPLE_FAMILY);
  return {
    type: 'sockcall',
    ts: b.readBigUInt64LE(o + G.O_HDR_TS_NS),
    sk: b.readBigUInt64LE(o + G.O_SOCKCALL_SK),
    cookie: b.readBigUInt64LE(o + G.O_SOCKCALL_COOKIE),
    call: b[o + G.O_SOCKCALL_CALL],
    via: b[o + G.O_SOCKCALL_VIA],
    state: b[o + G.O_SOCKCALL_STATE],
    family: t.family,
    local: t.local,
    remote: t.remote,
    netns: b.readUInt32LE(o + G.O_SOCKCALL_NETNS),
    pid: b.readUInt32LE(o + G.O_SOCKCALL_TGID),
    tid: b.readUInt32LE(o + G.O_SOCKCALL_TID),
    fd: b.readInt32LE(o + G.O_SOCKCALL_FD),
    arg: b.readInt32LE(o + G.O_SOCKCALL_ARG),
    comm: latin1(b, o + G.O_SOCKCALL_COMM, 16),
  };
}

function decodeFork(b: Buffer, o: number): ForkEvent {
  return {
    type: 'fork',
    ts: b.readBigUInt64LE(o + G.O_HDR_TS_NS),
    parentPid: b.readUInt32LE(o + G.O_FORK_PARENT_TGID),
    childPid: b.readUInt32LE(o + G.O_FORK_CHILD_TGID),
    comm: latin1(b, o + G.O_FORK_COMM, 16),
  };
}
