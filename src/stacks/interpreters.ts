/**
 * Interpreted runtimes whose frames tcptrace splices into native stacks, one
 * module each behind this small interface (as the OpenTelemetry profiler keeps
 * interpreter/python, interpreter/hotspot): CPython (src/stacks/python/, frames
 * copied by the kernel) and HotSpot (src/stacks/hotspot/, frames on the thread
 * stack, walked from the stack copy).
 * A process's runtime is recognised once, from its memory, when its first
 * stack arrives (or at attach for --pid targets); the kernel is then told what
 * to copy for it at a capture.
 */
import { readFileSync } from 'node:fs';
import { logger } from '../log.js';
import { parseMaps } from '../sys/procfs.js';
import { TT_PY_STATUS } from '../generated/events.js';

const log = logger('stacks');
import type { Frame } from './types.js';
import type { PyCapture } from './python/frames.js';
import { PythonProcess, type PythonUnsupported } from './python/process.js';
import { HotSpotProcess } from './hotspot/process.js';
import { JavaFrames, type StackWords } from './hotspot/frames.js';
import { EVAL, pyRuns, splicePython } from './python/splice.js';

/** CPython processes recognised, those of a version not named, and Python frames named / unnamed (of the distinct stacks) */
export interface PythonStats {
  processes: number;
  unsupported: number;
  named: number;
  unnamed: number;
}

/** HotSpot JVMs recognised, Java frames named / unnamed, inlined, compiled frames whose debug info did not decode, deoptimised frames */
export interface JavaStats {
  processes: number;
  named: number;
  unnamed: number;
  inlined: number;
  scopesUnread: number;
  deoptimized: number;
}

/** Per runtime: processes recognised, frames named and unnamed (of the distinct stacks) */
export interface InterpreterStats {
  python: PythonStats;
  java: JavaStats;
}

/** What the kernel must know about a process's runtime (null: forget it). */
export type InterpreterConfigurer = (pid: number, pythonConfig: Buffer | null) => void;

/** why a recognised CPython's stack has no Python frames (captured before it was recognised) */
const PY_LATE = 'captured before tcptrace recognised this CPython process (started after the trace began): its Python frames were not copied; its later stacks have them';

const PYTHON_FILE = /\/(lib)?python3[^/\n]*$/m;
const JVM_FILE = /\/libjvm\.so$/m;

type Runtime = PythonProcess | PythonUnsupported | JavaFrames | null;

/** What a capture gives the runtimes besides its frames: pcs, the stack pointer at each, and its stack copy. */
export interface CaptureContext {
  pcs: readonly number[];
  sps: readonly number[];
  words: StackWords;
  /** the native frames from another frame of the same copy (the unwinder run again from ip, sp and bp) */
  unwindFrom(regs: { ip: number; sp: number; bp: number }): { frames: Frame[]; pcs: number[]; sps: number[] };
}

/**
 * Native frames up to the first in the JVM's code cache, then the Java frames
 * walked from there, then the native frames below the call into Java
 * (unwound again from where the Java walk ended), and so on for nested calls.
 * A frame a perf map names (jcmd Compiler.perfmap) is taken as native.
 */
function spliceJava(p: JavaFrames, native: Frame[], ctx: CaptureContext, depth: number): Frame[] {
  const k = native.findIndex((f, i) => (!f.symbol || f.module === '[anon]' || (f.jit === true && /^Interpreter/.test(f.symbol))) && p.jvm.heapOf(BigInt(ctx.pcs[i])) !== undefined);
  if (k < 0) return native;
  // the first Java frame's fp: the native unwinder reached the frame after it by frame pointer when it is interpreted
  const fp = ctx.sps[k + 1] ? BigInt(ctx.sps[k + 1] - 16) : null;
  const { frames, resume } = p.walk(BigInt(ctx.pcs[k]), BigInt(ctx.sps[k] ?? 0), fp, ctx.words);
  const out = [...native.slice(0, k), ...frames];
  if (!resume || depth >= 4) return out;
  const below = ctx.unwindFrom(resume);
  if (!below.frames.length) return out;
  // the resumed unwind starts at the call stub's caller; nested Java below it is walked the same way
  return [...out, ...spliceJava(p, below.frames, { ...ctx, pcs: below.pcs, sps: below.sps }, depth + 1)];
}

export class InterpreterRegistry {
  private readonly procs = new Map<number, Runtime>();
  private unsupported = 0;
  /** a CPython process was registered with the kernel: its forked children inherit its entry there */
  private pythonRegistered = false;

  constructor(
    private readonly configure?: InterpreterConfigurer,
    private readonly enabled = true,
  ) {}

  /** The runtime of `pid`, recognised on first sight (null: none tcptrace knows, or the process is gone). */
  of(pid: number): Runtime {
    if (this.procs.has(pid)) return this.procs.get(pid)!;
    if (!this.enabled) return null;
    let found: Runtime = null;
    try {
      // most processes map no interpreter's file: one read of their maps and a substring test
      const maps = readFileSync(`/proc/${pid}/maps`, 'latin1');
      if (PYTHON_FILE.test(maps)) found = PythonProcess.detect(pid, parseMaps(maps));
      else if (JVM_FILE.test(maps)) {
        const jvm = HotSpotProcess.detect(pid, parseMaps(maps));
        if (jvm) {
          found = new JavaFrames(jvm);
          log.info({ pid, jvm: jvm.release, heaps: jvm.heaps.length }, 'HotSpot: its interpreted Java frames are named');
        }
      }
    } catch (err) {
      log.debug({ pid, err: (err as Error).message }, 'interpreter detection failed');
    }
    this.procs.set(pid, found);
    if (found instanceof PythonProcess) {
      log.info({ pid, python: found.version, file: found.file }, 'CPython: its Python frames are copied at each capture');
      try {
        this.configure?.(pid, found.kernelConfig());
        this.pythonRegistered = true;
      } catch (err) {
        log.warn({ pid, err: (err as Error).message }, 'could not tell the kernel about a CPython process: its Python frames are not copied');
      }
    } else {
      if (found && !(found instanceof JavaFrames)) {
        this.unsupported++;
        log.warn({ pid, why: found.unsupported }, 'a Python process whose frames tcptrace does not name');
      }
      // an entry the kernel copied from a parent (python.bpf.h) that does not hold here: a
      // process that exited unseen whose pid came back, or one whose detection failed
      if (this.pythonRegistered) {
        try {
          this.configure?.(pid, null);
        } catch {
          /* the tracer is closing */
        }
      }
    }
    return found;
  }

  /**
   * Recognise the interpreters of processes already running (the whole-system
   * trace, at attach); returns how many run a CPython whose frames are named.
   * Processes whose maps name no Python file cost one read of their maps.
   * (A process not seen here is recognised at its first stack; a child forked
   * from a recognised CPython has its Python frames from its first stack on.)
   */
  scan(pids: Iterable<number>): number {
    let n = 0;
    if (!this.enabled) return 0;
    for (const pid of pids) if (pid !== process.pid && this.of(pid) instanceof PythonProcess) n++;
    return n;
  }

  /** The native frames of one capture with its runtime's frames in place. */
  splice(pid: number, native: Frame[], py: PyCapture, ctx?: CaptureContext): Frame[] {
    const p = this.procs.get(pid);
    if (p instanceof JavaFrames) return ctx ? spliceJava(p, native, ctx, 0) : native;
    if (p instanceof PythonProcess) {
      if (!py.frames.length) {
        // no kernel entry at the capture: the process started after the trace began and is
        // recognised at this very stack; say so where its frames would be (the report's notes)
        return py.status === TT_PY_STATUS.NONE ? native.map((f) => (EVAL.test(f.symbol) ? { ...f, reason: PY_LATE } : f)) : native;
      }
      return splicePython(native, pyRuns(py.frames, (r) => p.frame(r)));
    }
    if (p && native.some((f) => EVAL.test(f.symbol))) {
      // say it where the frames would be: the report lists frame reasons as notes
      return native.map((f) => (EVAL.test(f.symbol) ? { ...f, reason: p.unsupported } : f));
    }
    return native;
  }

  forget(pid: number): void {
    const p = this.procs.get(pid);
    this.procs.delete(pid);
    if (p instanceof JavaFrames) p.close();
    if (p instanceof PythonProcess) {
      p.close();
      try {
        this.configure?.(pid, null);
      } catch {
        /* the tracer is closing */
      }
    }
  }

  stats(): InterpreterStats {
    const python: PythonStats = { processes: 0, unsupported: this.unsupported, named: 0, unnamed: 0 };
    const java: JavaStats = { processes: 0, named: 0, unnamed: 0, inlined: 0, scopesUnread: 0, deoptimized: 0 };
    for (const p of this.procs.values()) {
      if (!(p instanceof PythonProcess || p instanceof JavaFrames)) continue;
      const into = p instanceof PythonProcess ? python : java;
      into.processes++;
      into.named += p.named;
      into.unnamed += p.unnamed;
      if (p instanceof JavaFrames) {
        java.inlined += p.inlined;
        java.scopesUnread += p.scopesUnread;
        java.deoptimized += p.deoptimized;
      }
    }
    return { python, java };
  }

  close(): void {
    for (const p of this.procs.values()) if (p instanceof PythonProcess || p instanceof JavaFrames) p.close();
    this.procs.clear();
  }
}
