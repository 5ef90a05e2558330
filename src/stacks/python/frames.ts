/**
 * The Python frame records the kernel appends to a stack record (struct
 * tt_py_frame in bpf/tcpstate.h, after the stack bytes), and the fingerprint
 * the kernel folds them into (the same arithmetic as py_walk_frames and
 * py_fold in bpf/lib/python.bpf.h).
 */
import * as G from '../../generated/events.js';

/* #defines of tcpstate.h (BTF carries only structs and enums) */
export const PY_RUN_END = 1 << 0;
export const PY_CODE_UNREAD = 1 << 1;
export const PY_SHIM = 1 << 2;

export interface PyFrameRecord {
  code: bigint;
  /** instruction pointer, in bytes from the code object */
  instr: number;
  firstlineno: number;
  flags: number;
}

export interface PyCapture {
  frames: PyFrameRecord[];
  /** TT_PY_STATUS */
  status: number;
}

/** The Python frames of the full stack record at buf[off] (none for another process). */
export function pyFramesOf(buf: Buffer, off: number): PyCapture {
  const n = buf[off + G.O_STACK_PY_FRAMES];
  const status = buf[off + G.O_STACK_PY_STATUS];
  const at = off + G.O_STACK_STACK + buf.readUInt32LE(off + G.O_STACK_STACK_LEN);
  const frames: PyFrameRecord[] = [];
  for (let i = 0; i < n && at + (i + 1) * G.SIZE_PY_FRAME <= buf.length; i++) {
    const o = at + i * G.SIZE_PY_FRAME;
    frames.push({
      code: buf.readBigUInt64LE(o + G.O_PY_FRAME_CODE),
      instr: buf.readUInt32LE(o + G.O_PY_FRAME_INSTR),
      firstlineno: buf.readInt32LE(o + G.O_PY_FRAME_FIRSTLINENO),
      flags: buf[o + G.O_PY_FRAME_FLAGS],
    });
  }
  return { frames, status };
}

const SEED = 0xcbf29ce484222325n;
const PRIME = 0x100000001b3n;
const MASK = (1n << 64n) - 1n;

/** The kernel's fingerprint of a stack in a CPython process: the native one with the Python frames folded in. */
export function foldPyHash(nativeHash: bigint, frames: readonly PyFrameRecord[]): bigint {
  if (!frames.length) return nativeHash;
  let h = SEED;
  for (const f of frames) {
    h = ((h ^ f.code) * PRIME) & MASK;
    h = ((h ^ BigInt(f.instr)) * PRIME) & MASK;
  }
  return ((nativeHash ^ h) * PRIME) & MASK;
}

/** A key for the frames, for telling stacks apart ("same pcs, other Python path" is another stack). */
export function pyKey(frames: readonly PyFrameRecord[]): string {
  return frames.map((f) => `${f.code.toString(16)}+${f.instr}`).join(',');
}
