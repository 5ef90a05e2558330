/**
 * HotSpot's own description of its data structures, read from a live JVM: the
 * tables libjvm.so exports for the Serviceability Agent (gHotSpotVMStructs,
 * gHotSpotVMTypes, gHotSpotVMIntConstants, gHotSpotVMLongConstants; JDK 6 to
 * mainline), whose entry layouts (strides and field offsets) are themselves
 * exported. Every offset tcptrace uses in a JVM comes from here, so JDK 17's
 * and JDK 25's different layouts need no table of ours. Only reads; every
 * table, string and loop is bounded: the memory is the target's.
 */
import type { ProcessMemory } from '../../sys/process-memory.js';

const MAX_ENTRIES = 20000; /* JDK 25 has about 2,500 struct entries */
const MAX_NAME = 256;

/** The exported symbols the tables are found from (values: addresses in the target, load bias applied). */
export const VMSTRUCT_SYMBOLS = [
  'gHotSpotVMStructs',
  'gHotSpotVMStructEntryArrayStride',
  'gHotSpotVMStructEntryTypeNameOffset',
  'gHotSpotVMStructEntryFieldNameOffset',
  'gHotSpotVMStructEntryTypeStringOffset',
  'gHotSpotVMStructEntryIsStaticOffset',
  'gHotSpotVMStructEntryOffsetOffset',
  'gHotSpotVMStructEntryAddressOffset',
  'gHotSpotVMTypes',
  'gHotSpotVMTypeEntryArrayStride',
  'gHotSpotVMTypeEntryTypeNameOffset',
  'gHotSpotVMTypeEntrySizeOffset',
  'gHotSpotVMIntConstants',
  'gHotSpotVMIntConstantEntryArrayStride',
  'gHotSpotVMIntConstantEntryNameOffset',
  'gHotSpotVMIntConstantEntryValueOffset',
  'gHotSpotVMLongConstants',
  'gHotSpotVMLongConstantEntryArrayStride',
  'gHotSpotVMLongConstantEntryNameOffset',
  'gHotSpotVMLongConstantEntryValueOffset',
] as const;

export interface VMStructs {
  /** "Type::field" -> offset in the type (non-static fields) */
  offsets: Map<string, number>;
  /** "Type::field" -> address of a static field */
  statics: Map<string, bigint>;
  /** type name -> sizeof */
  sizes: Map<string, number>;
  ints: Map<string, number>;
  longs: Map<string, bigint>;
}

export class VMStructsError extends Error {}

/** A NUL-terminated string of at most MAX_NAME bytes at addr (null: NULL pointer). */
export function cString(mem: ProcessMemory, addr: bigint): string | null {
  if (addr === 0n) return null;
  // read in small steps: a short string near the end of a mapping must not fail the read
  let out = '';
  for (let at = addr; out.length < MAX_NAME; at += 32n) {
    const b = mem.read(at, 32) ?? mem.read(at, 1);
    if (!b) throw new VMStructsError(`string at 0x${at.toString(16)} unreadable`);
    const nul = b.indexOf(0);
    out += b.toString('latin1', 0, nul < 0 ? b.length : nul);
    if (nul >= 0) return out;
  }
  throw new VMStructsError(`string at 0x${addr.toString(16)} longer than ${MAX_NAME} bytes`);
}

/** Reads the four tables. `sym` holds each VMSTRUCT_SYMBOLS address. Throws VMStructsError on damage. */
export function readVMStructs(mem: ProcessMemory, sym: ReadonlyMap<string, bigint>): VMStructs {
  const need = (name: (typeof VMSTRUCT_SYMBOLS)[number]): bigint => {
    const a = sym.get(name);
    if (a === undefined) throw new VMStructsError(`libjvm.so does not export ${name}`);
    return a;
  };
  const word = (addr: bigint): bigint => {
    const v = mem.u64(addr);
    if (v === null) throw new VMStructsError(`0x${addr.toString(16)} unreadable`);
    return v;
  };
  /* the exported values are pointers / sizes stored in libjvm's data */
  const table = (base: (typeof VMSTRUCT_SYMBOLS)[number], stride: (typeof VMSTRUCT_SYMBOLS)[number]) => {
    const start = word(need(base));
    const step = Number(word(need(stride)));
    if (!start || step <= 0 || step > 256) throw new VMStructsError(`${base}: implausible table (stride ${step})`);
    return { start, step };
  };
  const field = (name: (typeof VMSTRUCT_SYMBOLS)[number]): number => {
    const v = Number(word(need(name)));
    if (v < 0 || v > 248) throw new VMStructsError(`${name}: implausible offset ${v}`);
    return v;
  };
  /* every entry read whole, its fields at the exported offsets; the table ends at a NULL name */
  const eachEntry = (base: (typeof VMSTRUCT_SYMBOLS)[number], stride: (typeof VMSTRUCT_SYMBOLS)[number], first: number, fn: (e: Buffer) => void) => {
    const { start, step } = table(base, stride);
    for (let i = 0; i < MAX_ENTRIES; i++) {
      const e = mem.read(start + BigInt(i * step), step);
      if (!e) throw new VMStructsError(`${base}[${i}] unreadable`);
      if (e.readBigUInt64LE(first) === 0n) return;
      fn(e);
    }
    throw new VMStructsError(`${base}: more than ${MAX_ENTRIES} entries`);
  };

  const out: VMStructs = { offsets: new Map(), statics: new Map(), sizes: new Map(), ints: new Map(), longs: new Map() };
  const sType = field('gHotSpotVMStructEntryTypeNameOffset');
  const sField = field('gHotSpotVMStructEntryFieldNameOffset');
  const sStatic = field('gHotSpotVMStructEntryIsStaticOffset');
  const sOffset = field('gHotSpotVMStructEntryOffsetOffset');
  const sAddress = field('gHotSpotVMStructEntryAddressOffset');
  eachEntry('gHotSpotVMStructs', 'gHotSpotVMStructEntryArrayStride', sType, (e) => {
    const key = `${cString(mem, e.readBigUInt64LE(sType))}::${cString(mem, e.readBigUInt64LE(sField))}`;
    if (e.readInt32LE(sStatic)) out.statics.set(key, e.readBigUInt64LE(sAddress));
    else out.offsets.set(key, Number(e.readBigUInt64LE(sOffset)));
  });
  const tType = field('gHotSpotVMTypeEntryTypeNameOffset');
  const tSize = field('gHotSpotVMTypeEntrySizeOffset');
  eachEntry('gHotSpotVMTypes', 'gHotSpotVMTypeEntryArrayStride', tType, (e) => {
    out.sizes.set(cString(mem, e.readBigUInt64LE(tType))!, Number(e.readBigUInt64LE(tSize)));
  });
  const iName = field('gHotSpotVMIntConstantEntryNameOffset');
  const iValue = field('gHotSpotVMIntConstantEntryValueOffset');
  eachEntry('gHotSpotVMIntConstants', 'gHotSpotVMIntConstantEntryArrayStride', iName, (e) => {
    out.ints.set(cString(mem, e.readBigUInt64LE(iName))!, e.readInt32LE(iValue));
  });
  const lName = field('gHotSpotVMLongConstantEntryNameOffset');
  const lValue = field('gHotSpotVMLongConstantEntryValueOffset');
  eachEntry('gHotSpotVMLongConstants', 'gHotSpotVMLongConstantEntryArrayStride', lName, (e) => {
    out.longs.set(cString(mem, e.readBigUInt64LE(lName))!, e.readBigUInt64LE(lValue));
  });
  return out;
}
