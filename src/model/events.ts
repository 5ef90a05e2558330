/**
 * Decoded trace events: what the analysis consumes, whether they come from the
 * live ring buffer (binary records, src/decode.ts) or from a recording. Flat
 * objects of scalars: no nested allocations on the hot path.
 */
import type { TupleSink } from './addr.js';
import type { Site } from '../stacks/types.js';
/** Where a socket is: family, "ip:port" endpoints and network namespace. */
export interface Endpoints {
  family: number;
  local: string; // "ip:port" ("[ip]:port" for IPv6)
  remote: string;
  netns: number;
  /** decoder views: hand local/remote over unformatted instead (formatting costs more than the rest of a record) */
  copyTuple?(to: TupleSink): void;
}

export interface TransitionEvent extends Endpoints {
  type: 'transition';
  ts: number; // CLOCK_MONOTONIC ns (float: exact to the ns for 104 days of uptime)
  /** kernel address of the struct sock, low 48 bits: exact for canonical kernel addresses, and cheap to key on */
  sk: number;
  /** socket cookie, non-zero for sockets present at attach (links them to their PresentEvent) */
  cookie: bigint;
  /** decoder views: cookie !== 0n without reading a BigInt */
  hasCookie?: boolean;
  oldState: number;
  newState: number;
  localPort: number;
  ownerKnown: boolean;
  ownerPid: number; // 0 when unknown
  ownerFd: number; // -1 when unknown
  ownerComm: string;
  ownerFirstNs: number;
  origin: number; // TT_ORIGIN
  cpuPid: number; // who was on the CPU (often not the owner)
  cpuTid: number;
  cpuComm: string;
  /** the close()/shutdown() (TT_CALL) of the task on the CPU that made this transition; 0: none */
  call: number;
  /** its fd (-1: not known, as for close_range()) */
  callFd: number;
  /** shutdown(): how */
  callArg: number;
  /**
   * the agent's sweep sent this transition into CLOSE_WAIT once the socket had stayed
   * there (bpf/lib/linger.bpf.h): ts is when it entered CLOSE_WAIT, and a record of
   * the socket's own sent meanwhile is newer
   */
  late?: boolean;
}

export interface SockcallEvent extends Endpoints {
  type: 'sockcall';
  ts: number;
  /** kernel address of the struct sock, low 48 bits: exact for canonical kernel addresses, and cheap to key on */
  sk: number;
  cookie: bigint;
  hasCookie?: boolean;
  call: number; // TT_CALL
  via: number; // TT_VIA
  state: number;
  pid: number;
  tid: number;
  fd: number;
  arg: number;
  comm: string;
}

export interface ForkEvent {
  type: 'fork';
  ts: number;
  parentPid: number;
  childPid: number;
  comm: string;
}

/** A socket that existed when tracing began (sock_diag + /proc/PID/fd), synthesized in user space. */
export interface PresentEvent extends Endpoints {
  type: 'present';
  ts: number;
  cookie: bigint;
  state: number;
  pid: number;
  fd: number;
  comm: string;
  inode: number;
  /** other processes holding the same socket (inherited across fork, passed over a unix socket) */
  sharedWith: number[];
}

/**
 * A stack the kernel recognised (tt_stack_ref): which socket and site, and the id
 * of a frame list resolved earlier from a full copy (ResolvedStack.stackId).
 */
export interface StackRefEvent {
  type: 'stackref';
  ts: number;
  sk: number;
  cookie: bigint;
  /** decoder views: cookie !== 0n without reading a BigInt */
  hasCookie?: boolean;
  pid: number;
  tid: number;
  site: Site;
  stackId: number;
}

export type TraceEvent = TransitionEvent | SockcallEvent | ForkEvent | PresentEvent | StackRefEvent;
