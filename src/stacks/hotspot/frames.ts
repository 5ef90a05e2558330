/**
 * Java frames in a native stack (issue 27): the native unwinder walks the
 * template interpreter's frames by their frame pointers (every interpreted
 * frame keeps rbp), so each such frame arrives here as a pc in the code cache
 * and the stack pointer of its caller. From that:
 *   - the blob holding the pc, found through its code heap's segment map (a
 *     byte per segment: 0xff free, else how many segments back the block
 *     starts), named by CodeBlob::_name ("Interpreter", "nmethod", stubs);
 *   - for an interpreted frame (fp = its caller's sp - 16), Method* at fp - 3
 *     words and the bytecode pointer at fp - 8 words (x86-64, JDK 9 to
 *     mainline: openjdk/jdk src/hotspot/cpu/x86/frame_x86.hpp), read from the
 *     stack copy taken at the capture;
 *   - the method's class, name and source file through ConstMethod,
 *     ConstantPool and Symbols, and its line from the compressed line number
 *     table at the bytecode index.
 * Compiled frames (nmethods) are walked by their frame size and named by
 * their method, without a line or the methods inlined into them yet (that
 * needs the nmethod's PcDescs and ScopeDescs). Every read is bounded and may
 * fail; a frame that does not read says why, never a wrong name.
 */
import type { Frame } from '../types.js';
import { ProcessMemory } from '../../sys/process-memory.js';
import type { CodeHeapRange, HotSpotProcess } from './process.js';
import { cString } from './vmstructs.js';

const MAX_SEGMENT_STEPS = 4096;
const MAX_SYMBOL = 1024;
const MAX_LINE_TABLE = 65536;
const NO_METHOD = { error: 'no method' } as const;

/** Stack words of the capture: the record's copy of the thread's stack. */
export type StackWords = (addr: number) => bigint | null;

interface MethodInfo {
  klass: string;
  name: string;
  file: string | null;
  constMethod: bigint;
  codeBase: bigint;
  codeSize: number;
  lines: { bci: number; line: number }[] | null;
}

export class JavaFrames {
  private readonly mem: ProcessMemory;
  private readonly blobs = new Map<bigint, string | null>(); // blob start -> name
  private readonly methods = new Map<bigint, MethodInfo | { error: string }>();
  private readonly unsigned5Base: number;
  named = 0;
  unnamed = 0;

  constructor(readonly jvm: HotSpotProcess) {
    this.mem = new ProcessMemory(jvm.pid);
    // JDK 20+ writes UNSIGNED5 bytes excluding 0 (each byte is value + 1)
    this.unsigned5Base = Number(/^(\d+)/.exec(jvm.release)?.[1] ?? 0) >= 20 ? 1 : 0;
  }

  private off(k: string): number {
    const v = this.jvm.vm.offsets.get(k);
    if (v === undefined) throw new Error(`VMStructs has no ${k}`);
    return v;
  }

  private size(t: string): number {
    const v = this.jvm.vm.sizes.get(t);
    if (v === undefined) throw new Error(`VMTypes has no ${t}`);
    return v;
  }

  /** The code blob holding pc: its address and name ("Interpreter", "nmethod", a stub's). */
  blobAt(heap: CodeHeapRange, pc: bigint): { blob: bigint; name: string | null } | null {
    let idx = Number((pc - heap.low) >> BigInt(heap.log2SegmentSize));
    for (let step = 0; step < MAX_SEGMENT_STEPS; step++) {
      const tag = this.mem.read(heap.segmap + BigInt(idx), 1)?.[0];
      if (tag === undefined || tag === 0xff) return null;
      if (tag === 0) break;
      idx -= tag;
      if (idx < 0) return null;
    }
    const blob = heap.low + (BigInt(idx) << BigInt(heap.log2SegmentSize)) + BigInt(this.size('HeapBlock'));
    // names are cached per blob address: a blob freed and another allocated there is read again only if it is new
    if (this.blobs.has(blob)) return { blob, name: this.blobs.get(blob)! };
    const namePtr = this.mem.u64(blob + BigInt(this.off('CodeBlob::_name')));
    let name: string | null = null;
    try {
      name = namePtr ? cString(this.mem, namePtr) : null;
    } catch {
      name = null; // unreadable or unterminated: the frame says so
    }
    if (this.blobs.size > 65536) this.blobs.clear();
    this.blobs.set(blob, name);
    return { blob, name };
  }

  private symbol(ptr: bigint): string | null {
    const p = ptr & ~1n;
    if (!p) return null;
    const h = this.mem.read(p + BigInt(this.off('Symbol::_length')), 2);
    const len = h ? h.readUInt16LE(0) : -1;
    if (len < 0 || len > MAX_SYMBOL) return null;
    if (len === 0) return '';
    const body = this.mem.read(p + BigInt(this.off('Symbol::_body')), len);
    return body ? body.toString('utf8') : null;
  }

  private cpSymbol(constants: bigint, index: number): string | null {
    const ptr = this.mem.u64(constants + BigInt(this.size('ConstantPool') + 8 * index));
    return ptr ? this.symbol(ptr) : null;
  }

  private method(m: bigint): MethodInfo | { error: string } {
    const had = this.methods.get(m);
    if (had) return had;
    const info = this.readMethod(m);
    if (this.methods.size > 65536) this.methods.clear();
    this.methods.set(m, info);
    return info;
  }

  private readMethod(m: bigint): MethodInfo | { error: string } {
    try {
      const cm = this.mem.u64(m + BigInt(this.off('Method::_constMethod')));
      if (!cm) return { error: 'Method unreadable' };
      const cmSize = this.size('ConstMethod');
      const head = this.mem.read(cm, cmSize);
      if (!head) return { error: 'ConstMethod unreadable' };
      const constants = head.readBigUInt64LE(this.off('ConstMethod::_constants'));
      const holder = constants ? this.mem.u64(constants + BigInt(this.off('ConstantPool::_pool_holder'))) : null;
      const klassSym = holder ? this.mem.u64(holder + BigInt(this.off('Klass::_name'))) : null;
      const klass = klassSym ? this.symbol(klassSym) : null;
      const name = this.cpSymbol(constants, head.readUInt16LE(this.off('ConstMethod::_name_index')));
      if (!klass || name === null) return { error: 'method names unreadable' };
      const srcIdx = this.mem.read(constants + BigInt(this.off('ConstantPool::_source_file_name_index')), 2)?.readUInt16LE(0) ?? 0;
      const file = srcIdx ? this.cpSymbol(constants, srcIdx) : null; // 0 for hidden classes (lambdas)
      const codeSize = head.readUInt16LE(this.off('ConstMethod::_code_size'));
      const flagsAt = this.jvm.vm.offsets.get('ConstMethod::_flags') ?? this.jvm.vm.offsets.get('ConstMethod::_flags._flags');
      const flags = flagsAt !== undefined ? head.readUInt16LE(flagsAt) : 0;
      const codeBase = cm + BigInt(cmSize);
      const lines = flags & 1 /* has_linenumber_table */ ? this.lineTable(codeBase + BigInt(codeSize)) : null;
      // a hidden class (lambda forms, lambdas) is named with its address appended: keep the name, drop the address
      return { klass: klass.replace(/\//g, '.').replace(/\+0x[0-9a-f]+$/, ''), name, file, constMethod: cm, codeBase, codeSize, lines };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  /** the compressed line number table: (bci, line) pairs, ascending */
  private lineTable(at: bigint): { bci: number; line: number }[] | null {
    const bytes = this.mem.read(at, 512) ?? this.mem.read(at, 64);
    if (!bytes) return null;
    let buf = bytes;
    let pos = 0;
    const next = (): number => {
      if (pos >= buf.length) {
        if (buf.length >= MAX_LINE_TABLE) throw new RangeError('line number table too long');
        const more = this.mem.read(at + BigInt(buf.length), 512);
        if (!more) throw new RangeError('line number table unreadable');
        buf = Buffer.concat([buf, more]);
      }
      return buf[pos++];
    };
    const u5 = (): number => {
      // UNSIGNED5 (HotSpot's unsigned5.hpp): L = 192 low codes end a number; each further byte adds b << (6 i)
      const L = 192 - this.unsigned5Base;
      let b = next() - this.unsigned5Base;
      let sum = b;
      for (let i = 1, shift = 6; b >= L && i < 5; i++, shift += 6) {
        b = next() - this.unsigned5Base;
        sum += b * 2 ** shift;
      }
      return sum;
    };
    const signed = (): number => {
      const v = u5();
      return v & 1 ? -Math.floor(v / 2) - 1 : Math.floor(v / 2);
    };
    const out: { bci: number; line: number }[] = [];
    let bci = 0;
    let line = 0;
    try {
      for (let n = 0; n < MAX_LINE_TABLE; n++) {
        const b = next();
        if (b === 0) return out;
        if (b === 0xff) {
          bci += signed();
          line += signed();
        } else {
          bci += b >> 3;
          line += b & 7;
        }
        out.push({ bci, line });
      }
    } catch {
      return out.length ? out : null;
    }
    return out;
  }

  private named_(info: MethodInfo, addr: string, bci: number, compiled: boolean): Frame {
    let line: number | undefined;
    if (bci >= 0 && info.lines) for (const e of info.lines) if (e.bci <= bci) line = e.line;
    this.named++;
    return {
      addr,
      symbol: `${info.klass}.${info.name}`,
      offset: bci,
      module: 'java',
      moduleOffset: '0x0',
      ...(info.file ? { file: info.file } : {}),
      ...(line !== undefined ? { line } : {}),
      ...(compiled ? { jit: true } : {}),
      kind: 'java',
    };
  }

  /**
   * Walks the Java frames from the first frame in the code cache (pc, its sp,
   * and its fp when known) by each blob's own rule, as the JVM does:
   *   - interpreted: rbp-chained (caller pc at fp + 8, caller sp fp + 16);
   *   - compiled (nmethod) and other blobs with a frame size: the caller's sp
   *     is sp + CodeBlob::_frame_size words, its pc and rbp just below it;
   *   - the call stub (StubRoutines) ends the Java part: the native frame that
   *     called into Java (JavaCalls::call_helper) continues from its rbp frame.
   * Returns the frames and where native unwinding resumes (null: it cannot).
   */
  walk(pc: bigint, sp: bigint, fp: bigint | null, words: StackWords): { frames: Frame[]; resume: { ip: number; sp: number; bp: number } | null } {
    const frames: Frame[] = [];
    const word = (a: bigint): bigint | null => (a > 0n && a < 1n << 53n ? words(Number(a)) : null);
    for (let n = 0; n < 256; n++) {
      const hex = `0x${pc.toString(16)}`;
      const heap = this.jvm.heapOf(pc);
      if (!heap) return { frames, resume: fp !== null ? { ip: Number(pc), sp: Number(sp), bp: Number(fp) } : null };
      const b = this.blobAt(heap, pc);
      const name = b?.name ?? null;
      if (!b || !name) {
        this.unnamed++;
        frames.push({ addr: hex, symbol: '', offset: 0, module: 'java', moduleOffset: '0x0', reason: 'a pc in the code cache outside every blob (code freed since the capture?)' });
        return { frames, resume: null };
      }
      if (name === 'Interpreter') {
        const m = fp !== null ? word(fp - 24n) : null;
        const info = m ? this.method(m) : NO_METHOD;
        if ('error' in info) {
          this.unnamed++;
          frames.push({ addr: hex, symbol: '', offset: 0, module: 'java', moduleOffset: '0x0', reason: `interpreted Java frame: ${info.error}` });
          return { frames, resume: null };
        }
        const bcp = word(fp! - 64n);
        const bci = bcp !== null && bcp >= info.codeBase && bcp < info.codeBase + BigInt(info.codeSize) ? Number(bcp - info.codeBase) : -1;
        frames.push(this.named_(info, hex, bci, false));
        // the sender's sp is kept at fp - 1 word: an adapter may have moved it (a compiled caller)
        const next = word(fp! + 8n);
        const nfp = word(fp!);
        const senderSp = word(fp! - 8n);
        if (next === null || nfp === null || senderSp === null) return { frames, resume: null };
        sp = senderSp;
        pc = next;
        fp = nfp;
        continue;
      }
      if (/^StubRoutines/.test(name)) {
        frames.push({ addr: hex, symbol: `[${name}]`, offset: 0, module: 'java', moduleOffset: '0x0' });
        const next = fp !== null ? word(fp + 8n) : null;
        const nfp = fp !== null ? word(fp) : null;
        return { frames, resume: next !== null && nfp !== null ? { ip: Number(next), sp: Number(fp! + 16n), bp: Number(nfp) } : null };
      }
      const fsB = this.mem.read(b.blob + BigInt(this.off('CodeBlob::_frame_size')), 4);
      const fs = fsB ? fsB.readInt32LE(0) : 0;
      if (fs <= 0 || fs > 1 << 16) {
        this.unnamed++;
        frames.push({ addr: hex, symbol: `[${name}]`, offset: 0, module: 'java', moduleOffset: '0x0', reason: `code blob "${name}" without a frame size` });
        return { frames, resume: null };
      }
      if (/nmethod/.test(name)) {
        const mOff = this.jvm.vm.offsets.get('nmethod::_method') ?? this.jvm.vm.offsets.get('CompiledMethod::_method');
        const m = mOff !== undefined ? this.mem.u64(b.blob + BigInt(mOff)) : null;
        const info = m ? this.method(m) : NO_METHOD;
        if ('error' in info) {
          this.unnamed++;
          frames.push({ addr: hex, symbol: '', offset: 0, module: 'java', moduleOffset: '0x0', reason: `compiled Java frame: ${info.error}` });
        } else frames.push(this.named_(info, hex, -1, true)); // the line needs the nmethod's PcDescs: not read yet
      } else frames.push({ addr: hex, symbol: `[${name}]`, offset: 0, module: 'java', moduleOffset: '0x0' });
      const callerSp = sp + BigInt(fs * 8);
      const next = word(callerSp - 8n);
      const nfp = word(callerSp - 16n);
      if (next === null) return { frames, resume: null };
      sp = callerSp;
      pc = next;
      fp = nfp;
    }
    return { frames, resume: null };
  }

  close(): void {
    this.mem.close();
  }
}
