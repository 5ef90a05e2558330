/** TCP state numbers (include/net/tcp_states.h) and address helpers for sock_diag rows. */

// One table of state numbers and names for the whole project: src/model/states.ts.
import { TCP_STATE_NAMES } from '../model/states.js';
export { TCP as ST, stateName } from '../model/states.js';

/** An all-zero record with one key per state name, in kernel order. */
export function emptyStateCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (let s = 1; s <= 12; s++) out[TCP_STATE_NAMES[s]] = 0;
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
