/** Symbolized user stacks, as they leave the native resolver (raw stack bytes never do). */

export interface InlinedFrame {
  symbol: string;
  file?: string;
  line?: number;
}

export interface Frame {
  addr: string; // hex
  symbol: string;
  offset: number;
  module: string;
  moduleOffset: string;
  buildId?: string;
  file?: string;
  line?: number;
  jit?: boolean;
  /** why the frame has no name, and what would give it one */
  reason?: string;
  /** functions inlined at this address, innermost first */
  inlined?: InlinedFrame[];
  /**
   * an interpreter's frame spliced in where the interpreter ran it (absent: a
   * native or JIT frame). Python: symbol is the qualified name, file and line
   * the source, addr the code object, offset the instruction's, in bytes.
   * Java: symbol is Class.method, file and line the source, offset the bytecode index.
   */
  kind?: 'python' | 'java';
}

/** acquire (accept/connect/listen), first write/send, EOF read, first read that returned data (enum tt_site) */
export type Site = 'acquire' | 'io' | 'eof' | 'read';
export const SITE_NAMES: Record<number, Site> = { 1: 'acquire', 2: 'io', 3: 'eof', 4: 'read' };

/** One captured stack, resolved: which socket, which site, which frames. */
export interface ResolvedStack {
  ts: number;
  sk: number;
  cookie: bigint;
  pid: number;
  tid: number;
  site: Site;
  /** id of the distinct frame list (same id = same code path) */
  stackId: number;
  frames: Frame[];
  /** the unwinder's reason for stopping when it did not reach the stack's base */
  stop: string;
  complete: boolean;
}
