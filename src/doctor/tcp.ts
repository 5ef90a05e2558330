/** TCP state numbers (include/net/tcp_states.h) and address helpers for sock_diag rows. */

export const TCP_STATES = [
  '',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'NEW_SYN_RECV',
] as const;

export type TcpStateName = Exclude<(typeof TCP_STATES)[number], ''>;

export const ST = {
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

export function stateName(state: number): string {
  return TCP_STATES[state] || `STATE_${state}`;
}

/** An all-zero record with one key per state name, in kernel order. */
export function emptyStateCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of TCP_STATES) if (name) out[name] = 0;
  return out;
}

/** "::ffff:10.0.0.1" -> "10.0.0.1": an IPv4-mapped peer shares the IPv4 port space. */
export function normalizeAddr(addr: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m ? m[1]! : addr;
}

export function isLoopback(addr: string): boolean {
  const a = normalizeAddr(addr);
  return a.startsWith('127.') || a === '::1';
}

export function isWildcard(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::';
}

/** "10.0.0.1:80", "[2001:db8::1]:80" */
export function hostPort(addr: string, port: number): string {
  const a = normalizeAddr(addr);
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}
