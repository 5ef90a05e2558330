/** Kernel TCP states (include/net/tcp_states.h). */
export const TCP_STATE_NAMES: Record<number, string> = {
  1: 'ESTABLISHED',
  2: 'SYN_SENT',
  3: 'SYN_RECV',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  10: 'LISTEN',
  11: 'CLOSING',
  12: 'NEW_SYN_RECV',
  13: 'BOUND_INACTIVE',
};

export const TCP = {
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT1: 4,
  FIN_WAIT2: 5,
  TIME_WAIT: 6,
  CLOSE: 7,
  CLOSE_WAIT: 8,
  LAST_ACK: 9,
  LISTEN: 10,
  CLOSING: 11,
  NEW_SYN_RECV: 12,
} as const;

/**
 * A transition that starts a socket's life: a listener's new child, or connect()/listen()
 * from CLOSE. Seen at an address still live, it means the old socket's CLOSE was a run
 * the kernel skipped (the BPF program's "born at an address the map still holds" too).
 */
export function isBirth(oldState: number, newState: number): boolean {
  return oldState === TCP.LISTEN ? newState === TCP.SYN_RECV : oldState === TCP.CLOSE && (newState === TCP.SYN_SENT || newState === TCP.LISTEN);
}

export function stateName(s: number): string {
  return TCP_STATE_NAMES[s] ?? `STATE_${s}`;
}
