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
 * Compiled frames (nmethods) are walked by their frame size and named from
 * the nmethod's debug info at their pc (PcDesc, then the ScopeDesc chain):
 * the nmethod's method with its line, and the methods inlined into it at that
 * call, innermost first, in the frame's `inlined` list (a deoptimised frame
 * at the original pc the JVM kept in it); debug info that does
 * not decode leaves the method's name alone, counted (docs/java.md). Every
 * read is bounded and may fail; a frame that does not read says why, never a
 * wrong name.
 */
import type { Frame, InlinedFrame } from '../types.js';
import { ProcessMemory } from '../../sys/process-memory.js';
import type { CodeHeapRange, HotSpotProcess } from './process.js';
import { cString } from './vmstructs.js';

const MAX_SEGMENT_STEPS = 4096;
const MAX_SYMBOL = 1024;
const MAX_LINE_TABLE = 65536;
const NO_METHOD = { error: 'no method' } as const;
const MAX_DEBUG_INFO = 1 << 20; /* bytes of one nmethod's PcDescs, scopes or metadata */
const MAX_SCOPES = 64; /* methods inlined at one pc (HotSpot's MaxInlineLevel is 15) */

interface DebugInfo {
  compileId: number;
  codeBegin: bigint;
  pcs: Buffer;
  scopes: Buffer;
  metadata: Buffer;
}

/** Where PcDesc's fields lie (VMStructs) and the UNSIGNED5 excluded byte count (0 before JDK 20, 1 since). */
export interface ScopeLayout {
  pcDescSize: number;
  pcOffsetAt: number;
  scopeOffsetAt: number;
  excluded: number;
}

/**
 * One UNSIGNED5 number (HotSpot's CompressedReadStream; Pack200's coding):
 * bytes below 192 (after taking off the excluded count: JDK 20+ never writes
 * a 0 byte) end a number, each byte adds (b - excluded) << 6i, five at most.
 * Null past the end of buf or at an excluded byte.
 */
export function unsigned5(buf: Buffer, r: { pos: number }, excluded: number): number | null {
  let sum = 0;
  for (let i = 0, shift = 0; i < 5; i++, shift += 6) {
    if (r.pos >= buf.length) return null;
    const b = buf[r.pos++];
    if (b < excluded) return null;
    sum += (b - excluded) * 2 ** shift;
    if (b < 192) return sum;
  }
  return sum; // the fifth byte ends a number whatever its value
}

/**
 * The scope chain at pcOffset (return pc - code begin) from an nmethod's
 * tables: the PcDesc whose pc offset is exactly that (a call's debug info is
 * recorded at its return address), then ScopeDescs from its decode offset,
 * each beginning with three numbers: the sender's decode offset (0: none),
 * the method's metadata index (1-based) and bci + 1 (InvocationEntryBci is
 * -1). Innermost first: the last is the nmethod's own method. The tables are
 * the target's, so untrusted: a sender is written before the scopes that name
 * it, so offsets must strictly decrease, which with MAX_SCOPES bounds the
 * walk; any index out of range is an error (a string), never a throw.
 */
export function decodeScopes(d: { pcs: Buffer; scopes: Buffer; metadata: Buffer }, pcOffset: number, l: ScopeLayout): { method: bigint; bci: number }[] | string {
  if (l.pcDescSize < 8 || l.pcOffsetAt + 4 > l.pcDescSize || l.scopeOffsetAt + 4 > l.pcDescSize) return 'implausible PcDesc layout';
  let decode = -1;
  for (let i = 0; i + l.pcDescSize <= d.pcs.length; i += l.pcDescSize) {
    if (d.pcs.readInt32LE(i + l.pcOffsetAt) === pcOffset) {
      decode = d.pcs.readInt32LE(i + l.scopeOffsetAt);
      break;
    }
  }
  if (decode < 0) return `no PcDesc at pc offset ${pcOffset}`;
  if (decode === 0) return 'no scope at this pc'; // DebugInformationRecorder::serialized_null
  const out: { method: bigint; bci: number }[] = [];
  let limit = d.scopes.length;
  while (decode !== 0) {
    if (decode < 0 || decode >= limit || out.length >= MAX_SCOPES) return `scope chain broken at ${decode}`;
    limit = decode;
    const r = { pos: decode };
    const sender = unsigned5(d.scopes, r, l.excluded);
    const idx = unsigned5(d.scopes, r, l.excluded);
    const bci1 = unsigned5(d.scopes, r, l.excluded);
    if (sender === null || idx === null || bci1 === null) return `scope at ${decode} does not decode`;
    if (idx < 1 || idx * 8 > d.metadata.length) return `scope at ${decode}: metadata index ${idx} out of range`;
    out.push({ method: d.metadata.readBigUInt64LE((idx - 1) * 8), bci: bci1 - 1 });
    decode = sender;
  }
  return out;
}

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
  private readonly debug = new Map<bigint, DebugInfo>(); // nmethod -> its debug info tables
  private readonly unsigned5Base: number;
  named = 0;
  unnamed = 0;
  /** Java frames reported inlined into compiled ones */
  inlined = 0;
  /** compiled frames whose debug info did not read or decode (named by their method only), and the last reason */
  scopesUnread = 0;
  /** compiled frames found deoptimised (returning to the deopt handler), read at their original pc */
  deoptimized = 0;
  lastScopesError: string | null = null;

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

  private lineOf(info: MethodInfo, bci: number): number | undefined {
    let line: number | undefined;
    if (bci >= 0 && info.lines) for (const e of info.lines) if (e.bci <= bci) line = e.line;
    return line;
  }

  private named_(info: MethodInfo, addr: string, bci: number, compiled: boolean, inlined?: InlinedFrame[]): Frame {
    const line = this.lineOf(info, bci);
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
      ...(inlined?.length ? { inlined } : {}),
      kind: 'java',
    };
  }

  /**
   * A compiled frame at a return pc: the nmethod's debug info at that pc (its
   * PcDesc, then the chain of ScopeDescs from the innermost inlined method out
   * to the nmethod's own) gives each method's bytecode index, so the line of
   * the call in each. The frame is the outermost method (the nmethod's), with
   * the methods inlined into it at this pc innermost first, as native frames
   * carry their DWARF-inlined calls. Debug info that does not read or decode
   * leaves the frame named by its method only, and is counted.
   */
  private compiled(blob: bigint, blobName: string, pc: bigint, sp: bigint, word: (a: bigint) => bigint | null, m: bigint, info: MethodInfo, hex: string): Frame {
    if (/native/.test(blobName)) return this.named_(info, hex, -1, true); // a native method's wrapper: no bytecode
    let chain: { info: MethodInfo; bci: number }[] | string;
    try {
      const orig = this.deoptimizedPc(blob, pc, sp, word);
      if (orig !== null) this.deoptimized++;
      chain = this.scopesAt(blob, orig ?? pc, m);
    } catch (err) {
      chain = (err as Error).message; // a field VMStructs lacks, a read past a short buffer
    }
    if (typeof chain === 'string') {
      this.scopesUnread++;
      this.lastScopesError = chain;
      return this.named_(info, hex, -1, true);
    }
    const outer = chain[chain.length - 1];
    const inlined: InlinedFrame[] = chain.slice(0, -1).map((s) => {
      const line = this.lineOf(s.info, s.bci);
      return { symbol: `${s.info.klass}.${s.info.name}`, ...(s.info.file ? { file: s.info.file } : {}), ...(line !== undefined ? { line } : {}) };
    });
    this.inlined += inlined.length;
    return this.named_(outer.info, hex, outer.bci, true, inlined);
  }

  /**
   * A frame the JVM deoptimised while a callee ran returns to the nmethod's
   * deopt handler instead of its call site; the JVM keeps the call's return pc
   * in the frame, at sp + nmethod::_orig_pc_offset bytes (as its own
   * get_original_pc does). That pc when this frame is one (in the blob, else
   * not believed), null when it is not.
   */
  private deoptimizedPc(blob: bigint, pc: bigint, sp: bigint, word: (a: bigint) => bigint | null): bigint | null {
    const v = this.jvm.vm.offsets;
    const handlers: bigint[] = [];
    // JDK 9-22: pointers in CompiledMethod; JDK 23+: offsets from the blob (JDK 26 renames the field)
    for (const k of ['CompiledMethod::_deopt_handler_begin', 'CompiledMethod::_deopt_mh_handler_begin']) {
      const at = v.get(k);
      const h = at !== undefined ? this.mem.u64(blob + BigInt(at)) : null;
      if (h) handlers.push(h);
    }
    for (const k of ['nmethod::_deopt_handler_offset', 'nmethod::_deopt_mh_handler_offset', 'nmethod::_deopt_handler_entry_offset']) {
      const at = v.get(k);
      const o = at !== undefined ? this.mem.read(blob + BigInt(at), 4)?.readInt32LE(0) : undefined;
      if (o !== undefined && o > 0) handlers.push(blob + BigInt(o));
    }
    if (!handlers.includes(pc)) return null;
    const origAt = v.get('nmethod::_orig_pc_offset');
    const off = origAt !== undefined ? this.mem.read(blob + BigInt(origAt), 4)?.readInt32LE(0) : undefined;
    const size = this.mem.read(blob + BigInt(this.off('CodeBlob::_size')), 4)?.readInt32LE(0);
    if (off === undefined || off < 0 || off > 1 << 16 || !size) return null;
    const orig = word(sp + BigInt(off));
    return orig !== null && orig > blob && orig < blob + BigInt(size) ? orig : null;
  }

  /** The nmethod's debug info tables (cached per blob, checked against its compile id), or why they do not read. */
  private debugInfo(blob: bigint): DebugInfo | string {
    const nm = this.mem.read(blob, this.size('nmethod'));
    if (!nm) return 'nmethod unreadable';
    const i32 = (k: string): number => nm.readInt32LE(this.off(k));
    const compileId = i32('nmethod::_compile_id');
    const had = this.debug.get(blob);
    if (had && had.compileId === compileId) return had;
    const v = this.jvm.vm.offsets;
    let codeBegin: bigint;
    let pcs: { at: bigint; len: number };
    let data: { at: bigint; len: number };
    let meta: { at: bigint; len: number };
    if (v.has('nmethod::_immutable_data')) {
      // JDK 23+: scopes_pcs then scopes_data in the immutable data block (nmethod::_immutable_data, offsets
      // into it), metadata after the relocations in the mutable data (JDK 25: CodeBlob::_mutable_data)
      const imm = nm.readBigUInt64LE(this.off('nmethod::_immutable_data'));
      let immSize = i32('nmethod::_immutable_data_size');
      // JDK 26 keeps a reference count at the end of the block
      if (v.has('nmethod::_immutable_data_ref_count_offset')) immSize = Math.min(immSize, i32('nmethod::_immutable_data_ref_count_offset'));
      const pcsOff = i32('nmethod::_scopes_pcs_offset');
      const dataOff = i32('nmethod::_scopes_data_offset');
      if (!imm || immSize <= 0 || immSize > MAX_DEBUG_INFO || pcsOff < 0 || pcsOff > dataOff || dataOff > immSize) return `implausible immutable data (${pcsOff}, ${dataOff}, ${immSize})`;
      pcs = { at: imm + BigInt(pcsOff), len: dataOff - pcsOff };
      // the scopes end at the speculations or JVMCI data (not in VMStructs): immutable_data_size bounds them
      data = { at: imm + BigInt(dataOff), len: immSize - dataOff };
      codeBegin = blob + BigInt(i32('CodeBlob::_code_offset'));
      if (v.has('CodeBlob::_mutable_data')) {
        const mut = nm.readBigUInt64LE(this.off('CodeBlob::_mutable_data'));
        const reloc = i32('CodeBlob::_relocation_size');
        const mutSize = i32('CodeBlob::_mutable_data_size');
        if (!mut || reloc < 0 || mutSize < reloc || mutSize - reloc > MAX_DEBUG_INFO) return `implausible mutable data (${reloc}, ${mutSize})`;
        meta = { at: mut + BigInt(reloc), len: mutSize - reloc };
      } else {
        // JDK 23/24 (untested here: no such JDK on the test machines): the metadata at the nmethod's data
        // section plus the u2 nmethod::_metadata_offset, up to the blob's end (JVMCI data, if any, is not in
        // VMStructs); a wrong guess fails the check that the chain ends at the nmethod's method
        const dataOff = i32('CodeBlob::_data_offset');
        const metaOff = dataOff + nm.readUInt16LE(this.off('nmethod::_metadata_offset'));
        const size = i32('CodeBlob::_size');
        if (dataOff <= 0 || metaOff > size || size - metaOff > MAX_DEBUG_INFO) return `implausible nmethod data (${dataOff}, ${metaOff}, ${size})`;
        meta = { at: blob + BigInt(metaOff), len: (size - metaOff) & ~7 };
      }
    } else {
      // JDK 9-22: [metadata][scopes_data][scopes_pcs][dependencies] inside the nmethod, by offsets from it
      // (scopes_data by a pointer: CompiledMethod::_scopes_data_begin)
      const dataAt = v.get('CompiledMethod::_scopes_data_begin') ?? v.get('nmethod::_scopes_data_begin');
      if (dataAt === undefined || !v.has('CodeBlob::_code_begin')) return 'VMStructs lacks the scopes data';
      const metaOff = i32('nmethod::_metadata_offset');
      const dataOff = Number(nm.readBigUInt64LE(dataAt) - blob);
      const pcsOff = i32('nmethod::_scopes_pcs_offset');
      const depsOff = i32('nmethod::_dependencies_offset');
      const size = i32('CodeBlob::_size');
      if (!(metaOff > 0 && metaOff <= dataOff && dataOff <= pcsOff && pcsOff <= depsOff && depsOff <= size && size <= MAX_DEBUG_INFO * 4)) return `implausible nmethod layout (${metaOff}, ${dataOff}, ${pcsOff}, ${depsOff}, ${size})`;
      meta = { at: blob + BigInt(metaOff), len: dataOff - metaOff };
      data = { at: blob + BigInt(dataOff), len: pcsOff - dataOff };
      pcs = { at: blob + BigInt(pcsOff), len: depsOff - pcsOff };
      codeBegin = nm.readBigUInt64LE(this.off('CodeBlob::_code_begin'));
    }
    const pcDesc = this.size('PcDesc');
    if (pcs.len <= 0 || pcs.len > MAX_DEBUG_INFO || pcs.len % pcDesc) return `implausible PcDesc table (${pcs.len} bytes)`;
    if (data.len <= 0 || data.len > MAX_DEBUG_INFO || meta.len < 0 || meta.len > MAX_DEBUG_INFO || meta.len % 8) return `implausible scopes (${data.len} bytes) or metadata (${meta.len} bytes)`;
    const read = (r: { at: bigint; len: number }) => (r.len ? this.mem.read(r.at, r.len) : Buffer.alloc(0));
    const pcsB = read(pcs);
    const dataB = read(data);
    const metaB = read(meta);
    if (!pcsB || !dataB || !metaB) return 'debug info unreadable';
    const out: DebugInfo = { compileId, codeBegin, pcs: pcsB, scopes: dataB, metadata: metaB };
    if (this.debug.size > 4096) this.debug.clear();
    this.debug.set(blob, out);
    return out;
  }

  /** The scopes at a return pc, innermost first (the last is the nmethod's own method), or why not. */
  private scopesAt(blob: bigint, pc: bigint, m: bigint): { info: MethodInfo; bci: number }[] | string {
    const d = this.debugInfo(blob);
    if (typeof d === 'string') return d;
    const rel = pc - d.codeBegin;
    if (rel < 0n || rel > 1n << 30n) return 'pc before the nmethod code';
    const chain = decodeScopes(d, Number(rel), {
      pcDescSize: this.size('PcDesc'),
      pcOffsetAt: this.off('PcDesc::_pc_offset'),
      scopeOffsetAt: this.off('PcDesc::_scope_decode_offset'),
      excluded: this.unsigned5Base,
    });
    if (typeof chain === 'string') return chain;
    // the outermost scope is the nmethod's own method: a check that the tables were found where they are
    if (chain[chain.length - 1].method !== m) return 'the scope chain does not end at the nmethod\'s method';
    const out: { info: MethodInfo; bci: number }[] = [];
    for (const s of chain) {
      const info = this.method(s.method);
      if ('error' in info) return `inlined method: ${info.error}`;
      out.push({ info, bci: s.bci });
    }
    return out;
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
        } else frames.push(this.compiled(b.blob, name, pc, sp, word, m!, info, hex));
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
