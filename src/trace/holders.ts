/**
 * Who holds each CLOSE_WAIT socket when a trace ends: sock_diag (CLOSE_WAIT
 * only) joined to every process's /proc/PID/fd, as at attach.
 *
 * The kernel sees a close() in the transition it makes (releasing_call in
 * bpf/tcpstate.bpf.c). A close of one of several fds of a socket makes none:
 * a child forked without CLOEXEC keeps the socket, and with it the CLOSE_WAIT,
 * after its parent closed it, which is the leak `ss` pins on the wrong process.
 * Looking at the holders at the end names the process that really keeps each
 * socket open, whoever it is, traced or not.
 */
import { TCP } from '../model/states.js';
import { logger } from '../log.js';
import { diagEndpoints, snapshotSockets, type SocketHolder } from './snapshot.js';

const log = logger('holders');

/** A CLOSE_WAIT socket at the end of a trace and every process holding it (owner first: the lowest pid). */
export interface HeldSocket {
  netns: number;
  local: string;
  remote: string;
  holders: SocketHolder[];
}

/** The CLOSE_WAIT sockets of the whole box and their holders ([] if they cannot be listed). */
export function closeWaitHolders(): HeldSocket[] {
  try {
    return snapshotSockets(null, process.pid, 1 << TCP.CLOSE_WAIT).map((s) => ({ netns: s.netns, ...diagEndpoints(s.diag), holders: s.holders }));
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'cannot list who holds the CLOSE_WAIT sockets at the end: the report names their owners as traced');
    return [];
  }
}
