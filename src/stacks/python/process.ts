/**
 * One CPython process, seen from outside: which interpreter it runs (found from
 * the exported Py_Version and _PyRuntime of its executable or libpython), the
 * entry the kernel's frame walk needs (tt_py_proc), and the names of the code
 * objects the kernel copied (qualname, file, line), read from its memory and
 * cached per code object. Only reads: nothing is written into the target, and
 * it needs no flag, no restart and no cooperation from it.
 */
import { basename } from 'node:path';
import * as G from '../../generated/events.js';
import { mappedSymbols } from '../../sys/elf.js';
import { ProcessMemory } from '../../sys/process-memory.js';
import { processMaps, type Mapping } from '../../sys/procfs.js';
import type { Frame } from '../types.js';
import { PY_CODE_UNREAD, type PyFrameRecord } from './frames.js';
import { lineForOffset } from './locations.js';
import { DEBUG_OFFSETS_BYTES, KNOWN_MINORS, debugOffsets313, tableOffsets, type PyOffsets } from './offsets.js';
import { STR_HEADER_BYTES, decodeStr, strShape } from './strings.js';

const MAX_LINETABLE = 256 << 10;
const MAX_CODES = 65536; /* code objects named per process; past that, the cache starts over */

interface CodeInfo {
  qualname: string;
  filename: string;
  firstlineno: number;
  linetable: Uint8Array;
}

/** Why a process is not one whose Python frames tcptrace names (shown in the report). */
export interface PythonUnsupported {
  unsupported: string;
  version?: string;
}

function interpreterFile(maps: Mapping[]): { path: string; maps: Mapping[] }[] {
  const byPath = new Map<string, Mapping[]>();
  for (const m of maps) {
    if (!m.path.startsWith('/')) continue;
    const b = basename(m.path);
    if (!/^(libpython3\.\d+t?\.so|python3(\.\d+)?t?$)/.test(b)) continue;
    let l = byPath.get(m.path);
    if (!l) byPath.set(m.path, (l = []));
    l.push(m);
  }
  // a shared libpython holds the runtime of the launcher that loads it
  return [...byPath.entries()].sort(([a], [b]) => Number(basename(b).startsWith('lib')) - Number(basename(a).startsWith('lib'))).map(([path, maps]) => ({ path, maps }));
}

export class PythonProcess {
  readonly runtime = 'cpython';
  private readonly mem: ProcessMemory;
  private readonly codes = new Map<bigint, CodeInfo | { error: string }>();
  named = 0;
  unnamed = 0;

  private constructor(
    readonly pid: number,
    readonly version: string,
    readonly minor: number,
    readonly offsets: PyOffsets,
    private readonly runtimeAddr: bigint,
    private readonly codeType: bigint,
    readonly file: string,
  ) {
    this.mem = new ProcessMemory(pid);
  }

  /**
   * The CPython in `pid`, or why its frames cannot be named, or null when it
   * runs no CPython at all. Throws only for a process that cannot be read.
   */
  static detect(pid: number, maps: Mapping[] = processMaps(pid)): PythonProcess | PythonUnsupported | null {
    const candidates = interpreterFile(maps);
    for (const { path, maps } of candidates) {
      let syms;
      try {
        syms = mappedSymbols(pid, path, maps, ['Py_Version', '_PyRuntime', 'PyCode_Type']);
      } catch {
        continue;
      }
      const ver = syms.get('Py_Version');
      const rt = syms.get('_PyRuntime');
      const codeType = syms.get('PyCode_Type');
      if (rt === undefined) continue;
      if (ver === undefined || codeType === undefined) return { unsupported: `${path} exports _PyRuntime but not Py_Version (CPython before 3.11): its Python frames are not named` };
      const mem = new ProcessMemory(pid);
      let hex: bigint | null;
      let dbg: Buffer | null;
      try {
        hex = mem.u64(ver);
        dbg = mem.read(rt, DEBUG_OFFSETS_BYTES);
      } finally {
        mem.close();
      }
      if (hex === null) return { unsupported: `Py_Version of ${path} did not read` };
      const v = Number(hex & 0xffffffffn);
      const major = v >>> 24;
      const minor = (v >>> 16) & 0xff;
      const version = `${major}.${minor}.${(v >>> 8) & 0xff}`;
      if (major !== 3 || !(KNOWN_MINORS as readonly number[]).includes(minor)) {
        return { unsupported: `CPython ${version} (${path}): tcptrace names the frames of 3.11-3.13 only`, version };
      }
      let offsets = tableOffsets(minor)!;
      if (minor >= 13) {
        const parsed = dbg ? debugOffsets313(dbg) : { error: '_PyRuntime did not read' };
        if ('error' in parsed) return { unsupported: `CPython ${version} (${path}): ${parsed.error}`, version };
        offsets = parsed.offsets;
      }
      return new PythonProcess(pid, version, minor, offsets, rt, codeType, path);
    }
    return null;
  }

  /** The tt_py_proc entry of this process, for the kernel's py_procs map. */
  kernelConfig(): Buffer {
    const o = this.offsets;
    const b = Buffer.alloc(G.SIZE_PY_PROC);
    const NONE = 0xffff;
    b.writeBigUInt64LE(this.runtimeAddr + BigInt(o.runtimeInterpretersHead), G.O_PY_PROC_INTERP_HEAD);
    b.writeUInt16LE(o.interpThreadsHead, G.O_PY_PROC_THREADS_HEAD);
    b.writeUInt16LE(o.tstateNext, G.O_PY_PROC_TSTATE_NEXT);
    b.writeUInt16LE(o.tstateThreadId, G.O_PY_PROC_TSTATE_THREAD_ID);
    b.writeUInt16LE(o.tstateFrame, G.O_PY_PROC_TSTATE_FRAME);
    b.writeUInt16LE(o.cframeFrame ?? NONE, G.O_PY_PROC_CFRAME_FRAME);
    b.writeUInt16LE(o.frameCode, G.O_PY_PROC_FRAME_CODE);
    b.writeUInt16LE(o.framePrevious, G.O_PY_PROC_FRAME_PREVIOUS);
    b.writeUInt16LE(o.frameInstr, G.O_PY_PROC_FRAME_INSTR);
    b.writeUInt16LE(o.frameOwner, G.O_PY_PROC_FRAME_OWNER);
    b.writeUInt16LE(o.frameIsEntry ?? NONE, G.O_PY_PROC_FRAME_IS_ENTRY);
    b.writeUInt16LE(o.codeFirstlineno, G.O_PY_PROC_CODE_FIRSTLINENO);
    b[G.O_PY_PROC_OWNER_CSTACK] = o.ownerCstack ?? 0xff;
    b[G.O_PY_PROC_VERSION_MINOR] = this.minor;
    return b;
  }

  private str(ptr: bigint): string | null {
    const h = this.mem.read(ptr, STR_HEADER_BYTES);
    if (!h) return null;
    const shape = strShape(h, this.offsets);
    if ('error' in shape) return null;
    if (shape.length === 0) return '';
    const d = this.mem.read(ptr + BigInt(shape.dataOffset), shape.length * shape.charSize);
    return d ? decodeStr(d, shape.length, shape.charSize) : null;
  }

  private code(addr: bigint): CodeInfo | { error: string } {
    const had = this.codes.get(addr);
    if (had) return had;
    if (this.codes.size >= MAX_CODES) this.codes.clear();
    const info = this.readCode(addr);
    this.codes.set(addr, info);
    return info;
  }

  private readCode(addr: bigint): CodeInfo | { error: string } {
    const o = this.offsets;
    const head = this.mem.read(addr, o.codeAdaptive);
    if (!head) return { error: 'code object unreadable' };
    if (head.readBigUInt64LE(8) !== this.codeType) return { error: 'not a code object (freed since the capture?)' };
    const qualname = this.str(head.readBigUInt64LE(o.codeQualname));
    const filename = this.str(head.readBigUInt64LE(o.codeFilename));
    if (qualname === null || filename === null) return { error: 'code object names unreadable' };
    const lt = head.readBigUInt64LE(o.codeLinetable);
    const ltHead = this.mem.read(lt, 32);
    const size = ltHead ? Number(ltHead.readBigInt64LE(16)) : -1;
    const linetable = size >= 0 && size <= MAX_LINETABLE ? (size ? this.mem.read(lt + 32n, size) : Buffer.alloc(0)) : null;
    return { qualname, filename, firstlineno: head.readInt32LE(o.codeFirstlineno), linetable: linetable ?? Buffer.alloc(0) };
  }

  /** A frame record as a named frame; an unnamed one says why. */
  frame(r: PyFrameRecord): Frame {
    const base: Frame = { addr: `0x${r.code.toString(16)}`, symbol: '', offset: r.instr, module: 'python', moduleOffset: '0x0', kind: 'python' };
    const c = this.code(r.code);
    if ('error' in c) {
      this.unnamed++;
      return { ...base, reason: `Python frame: ${c.error}` };
    }
    if (!(r.flags & PY_CODE_UNREAD) && r.firstlineno !== c.firstlineno) {
      this.unnamed++;
      return { ...base, reason: 'Python frame: its code object changed since the capture' };
    }
    let line: number | null = null;
    try {
      line = lineForOffset(c.linetable, c.firstlineno, r.instr - this.offsets.codeAdaptive);
    } catch {
      line = null;
    }
    this.named++;
    return { ...base, symbol: c.qualname, module: 'python', file: c.filename, ...(line !== null ? { line } : {}) };
  }

  close(): void {
    this.mem.close();
  }
}
