/**
 * Resolves stack records from the ring into frames with the native libdwfl
 * unwinder, while the process is alive, and gives each distinct frame list an
 * id. Stack bytes stay in the batch Buffer: only frames leave.
 *
 * It also teaches the kernel to recognise a stack it has seen (see "Stack
 * dedup" in bpf/tcpstate.h): from each full unwind it derives the CFA rule at
 * the innermost pcs (CFA = sp + k, k = sp[i+1] - sp[i]) and the fingerprint
 * the kernel's walk over those rules will compute; the kernel then sends a
 * 56-byte reference (TT_KIND_STACK_REF) instead of a copy. References stay in
 * the record batches and carry the stack id given here (src/decode.ts).
 */
import { native } from '../native.js';
import * as G from '../generated/events.js';
import { SITE_NAMES, type Frame, type ResolvedStack } from './types.js';
import { InterpreterRegistry, type InterpreterConfigurer, type JavaStats, type PythonStats } from './interpreters.js';
import { foldPyHash, pyFramesOf, pyKey, type PyCapture } from './python/frames.js';

interface NativeResolved {
  pid: number;
  tid: number;
  site: number;
  call: number;
  sk: bigint;
  cookie: bigint;
  ts: number;
  stop: string;
  complete: boolean;
  pcs: number[];
  sps: number[];
}

interface NativeStackResolver {
  /** unwinds a full record: pcs, no symbols; from other registers of the same copy when given */
  resolve(buf: Buffer, off: number, regs?: { ip: number; sp: number; bp: number }): NativeResolved;
  symbolize(pid: number, pcs: number[]): Frame[];
  prepare(pid: number): void;
  forget(pid: number): void;
  stats(): Record<string, number>;
}

export interface ResolverStats {
  /** full copies resolved (references are counted by the analysis) */
  stacks: number;
  distinct: number;
  unwindMs: number;
  symbolizeMs: number;
  unresolvedFrames: number;
  /** CPython processes recognised, and their frames named and not */
  python: PythonStats;
  /** HotSpot JVMs recognised, and their Java frames named and not */
  java: JavaStats;
}

/** Where learnt stacks go: the kernel's dedup maps (Tracer.learnStack). */
export type StackTeacher = (s: { tgid: number; site: number; hash: bigint; stackId: number; rules: { pc: number; cfaOff: number }[] }) => void;

const DEPTH = 6; // TT_DEDUP_DEPTH
const sk48 = (sk: bigint): number => Number(sk & 0xffffffffffffn);
const SEED = 0xcbf29ce484222325n;
const PRIME = 0x100000001b3n;
const MASK = (1n << 64n) - 1n;

export class StackResolver {
  private readonly nat: NativeStackResolver;
  /** per process: its pcs lists ("pc,pc,...") -> stack id; a process's entries go with it (forget) */
  private readonly ids = new Map<number, Map<string, number>>();
  private readonly byId = new Map<number, { frames: Frame[]; stop: string; complete: boolean }>();
  /** mirror of the kernel's CFA rules, per tgid: pc -> k (0: inconsistent, do not walk) */
  private readonly rules = new Map<number, Map<number, number>>();
  private stacks = 0;
  private nextId = 1;
  private distinct = 0;
  /** the interpreted runtimes (CPython) of the processes seen, whose frames are spliced in */
  readonly interpreters: InterpreterRegistry;

  constructor(
    private readonly teach?: StackTeacher,
    /** null: interpreters' frames are not read (--no-python-frames) */
    configure?: InterpreterConfigurer | null,
  ) {
    const Ctor = (native() as unknown as { StackResolver: new (o: object) => NativeStackResolver }).StackResolver;
    this.nat = new Ctor({ maxFrames: 64 });
    this.interpreters = new InterpreterRegistry(configure ?? undefined, configure !== null);
  }

  /**
   * Open a process's files now (at attach), so its stacks resolve even after it
   * exits, and recognise its interpreter, so the kernel copies its Python
   * frames from its first stack on.
   */
  prepare(pid: number): void {
    this.nat.prepare(pid);
    this.interpreters.of(pid);
  }

  /**
   * The full records (registers + stack copy) of one batch, in order. Every
   * new stack of the batch is taught to the kernel before any is symbolized: a
   * process's first symbolization still loads line tables (ms), and until the
   * kernel knows a fingerprint every socket on that path costs another full copy.
   */
  resolveAll(buf: Buffer, offsets: ArrayLike<number>): ResolvedStack[] {
    const unwound: { r: NativeResolved & { off: number }; id: number; py: PyCapture }[] = [];
    for (let i = 0; i < offsets.length; i++) {
      const r = { ...this.nat.resolve(buf, offsets[i]), off: offsets[i] };
      const py = pyFramesOf(buf, offsets[i]);
      this.stacks++;
      this.interpreters.of(r.pid); // a process first seen now: its next stacks carry its Python frames
      const key = py.frames.length ? `${r.pcs.join(',')}|${pyKey(py.frames)}` : r.pcs.join(',');
      let mine = this.ids.get(r.pid);
      if (!mine) this.ids.set(r.pid, (mine = new Map()));
      let id = mine.get(key);
      if (id === undefined) {
        mine.set(key, (id = this.nextId++));
        this.distinct++;
      }
      if (this.teach) this.learn(r, id, py);
      unwound.push({ r, id, py });
    }
    return unwound.map(({ r, id, py }) => {
      let known = this.byId.get(id);
      if (!known) {
        const unwindFrom = (regs: { ip: number; sp: number; bp: number }) => {
          const again = this.nat.resolve(buf, r.off, regs);
          return { frames: this.nat.symbolize(r.pid, again.pcs), pcs: again.pcs, sps: again.sps };
        };
        const frames = this.interpreters.splice(r.pid, this.nat.symbolize(r.pid, r.pcs), py, { pcs: r.pcs, sps: r.sps, words: stackWords(buf, r.off), unwindFrom });
        this.byId.set(id, (known = { frames, stop: r.stop, complete: r.complete }));
      }
      return { ts: r.ts, sk: sk48(r.sk), cookie: r.cookie, pid: r.pid, tid: r.tid, site: SITE_NAMES[r.site] ?? 'acquire', stackId: id, frames: known.frames, stop: r.stop, complete: r.complete };
    });
  }

  /** Derive CFA rules and the fingerprint the kernel will compute, and register them. */
  private learn(r: NativeResolved, stackId: number, py: PyCapture): void {
    const { pcs, sps } = r;
    const fresh: { pc: number; cfaOff: number }[] = [];
    let rules = this.rules.get(r.pid);
    if (!rules) this.rules.set(r.pid, (rules = new Map()));
    for (let i = 0; i < Math.min(DEPTH, pcs.length - 1); i++) {
      if (!sps[i] || !sps[i + 1] || sps[i + 1] <= sps[i]) break;
      const k = sps[i + 1] - sps[i];
      const had = rules.get(pcs[i]);
      if (had === undefined) {
        rules.set(pcs[i], k);
        fresh.push({ pc: pcs[i], cfaOff: k });
      } else if (had !== k && had !== 0) {
        // the same pc with another frame size (alloca, rbp-based CFA): stop walking there
        rules.set(pcs[i], 0);
        fresh.push({ pc: pcs[i], cfaOff: 0 });
      }
    }
    // walk exactly as the kernel will, over the rules it will have
    let h = SEED;
    let depth = 0;
    for (let i = 0; i < Math.min(DEPTH, pcs.length - 1); i++) {
      const k = rules.get(pcs[i]);
      if (!k) break;
      h = ((h ^ BigInt(pcs[i + 1])) * PRIME) & MASK;
      depth++;
    }
    if (depth === 0) return;
    // in a CPython process the kernel folds the copied Python frames in (bpf/lib/python.bpf.h)
    this.teach!({ tgid: r.pid, site: r.site, hash: foldPyHash(h, py.frames), stackId, rules: fresh });
  }

  /** processes whose stacks are kept (the agent forgets those that exited) */
  pids(): IterableIterator<number> {
    return this.ids.keys();
  }

  /**
   * A process that exited: its stack ids, frames, CFA rules and native unwinder
   * go (without this a host's process churn grows the agent without bound).
   * Returns the stack ids it had, for the analysis to drop too. The kernel's
   * LRU dedup maps may still hold its fingerprints: a later process reusing the
   * pid would have to hit the same return addresses (ASLR makes that unlikely)
   * to get a reference to a forgotten id, and such a stack then shows unknown.
   */
  forget(pid: number): number[] {
    const mine = this.ids.get(pid);
    const gone = mine ? [...mine.values()] : [];
    for (const id of gone) this.byId.delete(id);
    this.ids.delete(pid);
    this.rules.delete(pid);
    this.nat.forget(pid);
    this.interpreters.forget(pid);
    return gone;
  }

  stats(): ResolverStats {
    const s = this.nat.stats();
    return { stacks: this.stacks, distinct: this.distinct, unwindMs: s.unwindNs / 1e6, symbolizeMs: s.symbolizeNs / 1e6, unresolvedFrames: s.unresolvedFrames, ...this.interpreters.stats() };
  }
}

/** The 8-byte words of a full stack record's stack copy, by user address (null outside it). */
function stackWords(buf: Buffer, off: number): (addr: number) => bigint | null {
  const base = Number(buf.readBigUInt64LE(off + G.O_STACK_REGS_SP) & ~4095n);
  const len = buf.readUInt32LE(off + G.O_STACK_STACK_LEN);
  const data = off + G.O_STACK_STACK;
  return (addr) => (addr >= base && addr + 8 <= base + len && data + (addr - base) + 8 <= buf.length ? buf.readBigUInt64LE(data + (addr - base)) : null);
}

/**
 * Splits a ring batch around its full stack records, preserving order: calls
 * onRecords for each run of other records (a subarray, no copy; stack
 * references are among them) and onStack(i) for the full stack at
 * stackOffsets[i] (resolveAll's result i). The poll thread
 * found their offsets while copying the batch out of the ring; a batch without
 * any (most of them, once the kernel recognises a process's stacks) is passed
 * through whole.
 */
export function splitStacks(buf: Buffer, stackOffsets: Uint32Array | undefined, onRecords: (b: Buffer) => void, onStack: (i: number) => void): void {
  if (!stackOffsets) return onRecords(buf);
  let runStart = 0;
  for (let i = 0; i < stackOffsets.length; i++) {
    const off = stackOffsets[i];
    if (off > runStart) onRecords(buf.subarray(runStart, off));
    onStack(i);
    runStart = off + ((buf.readUInt16LE(off + G.O_HDR_SIZE) + 7) & ~7);
  }
  if (runStart < buf.length) onRecords(buf.subarray(runStart));
}
