/**
 * Where CPython 3.11-3.13 (x86-64, default build, not free-threaded) keeps what
 * tcptrace reads: the interpreter's thread list, the frame chain, code objects
 * and strings. 3.13+ publishes its own offsets in _Py_DebugOffsets at the start
 * of _PyRuntime (cookie "xdebugpy"), which are used when present; 3.11 and
 * 3.12 have none, so their values are a table, checked against the real
 * headers (pyenv 3.11.7, 3.12.1; Debian 3.11.2) and against the OpenTelemetry
 * profiler's and py-spy's tables. A version not here is reported as such, and
 * its frames are left unnamed: never a guess.
 */

export interface PyOffsets {
  /** _PyRuntime: interpreters.head */
  runtimeInterpretersHead: number;
  /** PyInterpreterState: threads.head */
  interpThreadsHead: number;
  tstateNext: number;
  tstateThreadId: number;
  /** PyThreadState: cframe (3.11, 3.12) or current_frame (3.13) */
  tstateFrame: number;
  /** _PyCFrame: current_frame; null when tstateFrame is the frame */
  cframeFrame: number | null;
  frameCode: number;
  framePrevious: number;
  frameInstr: number;
  frameOwner: number;
  /** 3.11's is_entry; null after */
  frameIsEntry: number | null;
  /** the owner value of C-stack shim frames (3.12+); null before */
  ownerCstack: number | null;
  codeFilename: number;
  codeQualname: number;
  codeLinetable: number;
  codeFirstlineno: number;
  /** co_code_adaptive: the first instruction, from the code object */
  codeAdaptive: number;
  /** PyASCIIObject / PyCompactUnicodeObject sizes: where a compact string's characters start */
  asciiData: number;
  compactData: number;
}

const PY311: PyOffsets = {
  runtimeInterpretersHead: 40,
  interpThreadsHead: 16,
  tstateNext: 8,
  tstateThreadId: 152,
  tstateFrame: 56,
  cframeFrame: 8,
  frameCode: 32,
  framePrevious: 48,
  frameInstr: 56,
  frameOwner: 69,
  frameIsEntry: 68,
  ownerCstack: null,
  codeFilename: 112,
  codeQualname: 128,
  codeLinetable: 136,
  codeFirstlineno: 72,
  codeAdaptive: 184,
  asciiData: 48,
  compactData: 72,
};

const PY312: PyOffsets = {
  runtimeInterpretersHead: 40,
  interpThreadsHead: 72,
  tstateNext: 8,
  tstateThreadId: 136,
  tstateFrame: 56,
  cframeFrame: 0,
  frameCode: 0,
  framePrevious: 8,
  frameInstr: 56,
  frameOwner: 70,
  frameIsEntry: null,
  ownerCstack: 3, // FRAME_OWNED_BY_CSTACK
  codeFilename: 112,
  codeQualname: 128,
  codeLinetable: 136,
  codeFirstlineno: 68,
  codeAdaptive: 192,
  asciiData: 40,
  compactData: 56,
};

/* 3.13.0 as its _Py_DebugOffsets has them; used only to check them and when they do not parse */
const PY313: PyOffsets = {
  ...PY312,
  runtimeInterpretersHead: 632,
  interpThreadsHead: 7344,
  tstateThreadId: 152,
  tstateFrame: 72,
  cframeFrame: null,
  codeAdaptive: 200,
};

export const KNOWN_MINORS = [11, 12, 13] as const;

/** The offsets of CPython 3.minor, or null for a version tcptrace does not know. */
export function tableOffsets(minor: number): PyOffsets | null {
  return minor === 11 ? PY311 : minor === 12 ? PY312 : minor === 13 ? PY313 : null;
}

export const DEBUG_OFFSETS_BYTES = 8 * 44;

/**
 * The offsets from 3.13's _Py_DebugOffsets (Include/internal/pycore_runtime.h in
 * 3.13: cookie, version, free_threaded, then runtime_state {size, finalizing,
 * interpreters_head}, interpreter_state {size, id, next, threads_head, ...13},
 * thread_state {size, prev, next, interp, current_frame, thread_id, ...9},
 * interpreter_frame {size, previous, executable, instr_ptr, localsplus, owner},
 * code_object {size, filename, name, qualname, linetable, firstlineno, ...10},
 * all u64). 3.14 inserts fields, so another minor is not parsed with this
 * layout. Returns null, with why, when the bytes are not 3.13's.
 */
export function debugOffsets313(b: Buffer): { offsets: PyOffsets } | { error: string } {
  if (b.length < DEBUG_OFFSETS_BYTES || b.toString('latin1', 0, 8) !== 'xdebugpy') return { error: 'no _Py_DebugOffsets cookie at _PyRuntime' };
  const u = (i: number): number => Number(b.readBigUInt64LE(i * 8));
  const version = u(1);
  if (((version >> 24) & 0xff) !== 3 || ((version >> 16) & 0xff) !== 13) return { error: `_Py_DebugOffsets of version 0x${version.toString(16)}, not 3.13` };
  if (u(2) !== 0) return { error: 'a free-threaded build (3.13t): other object layouts, not supported' };
  const all = [5, 9, 21, 23, 24, 29, 30, 31, 33, 35, 37, 38, 39, 43].map(u);
  // every offset is small: a value that is not is a layout this parser does not know
  if (all.some((v) => v > 1 << 16)) return { error: '_Py_DebugOffsets does not have the 3.13 layout' };
  const [interpHead, threadsHead, next, currentFrame, threadId, previous, executable, instrPtr, owner, filename, qualname, linetable, firstlineno, adaptive] = all;
  return {
    offsets: {
      ...PY313,
      runtimeInterpretersHead: interpHead,
      interpThreadsHead: threadsHead,
      tstateNext: next,
      tstateFrame: currentFrame,
      tstateThreadId: threadId,
      framePrevious: previous,
      frameCode: executable,
      frameInstr: instrPtr,
      frameOwner: owner,
      codeFilename: filename,
      codeQualname: qualname,
      codeLinetable: linetable,
      codeFirstlineno: firstlineno,
      codeAdaptive: adaptive,
    },
  };
}
