/**
 * One HotSpot JVM, seen from outside (the first step of naming Java frames,
 * issue 27): the JVM's libjvm.so, its VMStructs (src/stacks/hotspot/vmstructs.ts),
 * its release string, and where its code cache lies (the CodeHeaps a pc of JIT
 * code or of the template interpreter falls in). No flag, no attach API, no
 * agent: only reads of the target's memory.
 */
import { basename } from 'node:path';
import { mappedSymbols } from '../../sys/elf.js';
import { ProcessMemory } from '../../sys/process-memory.js';
import { processMaps, type Mapping } from '../../sys/procfs.js';
import { VMSTRUCT_SYMBOLS, VMStructsError, cString, readVMStructs, type VMStructs } from './vmstructs.js';

const MAX_HEAPS = 16; /* segmented code cache: 3 heaps (non-nmethods, profiled, non-profiled) */

export interface CodeHeapRange {
  name: string;
  low: bigint;
  /** committed end (the code there now) */
  high: bigint;
  /** reserved end: the heap grows up to it (a pc past `high` is code committed since) */
  reservedHigh: bigint;
  /** the segment map (one byte per segment: how far back the blob starts) and the segment size's log2 */
  segmap: bigint;
  log2SegmentSize: number;
}

export class HotSpotProcess {
  private constructor(
    readonly pid: number,
    readonly libjvm: string,
    readonly release: string,
    readonly vm: VMStructs,
    readonly heaps: CodeHeapRange[],
  ) {}

  /** The JVM in `pid`, or null when it maps no libjvm.so. Throws VMStructsError when its tables do not read. */
  static detect(pid: number, maps: Mapping[] = processMaps(pid)): HotSpotProcess | null {
    const jvm = maps.filter((m) => basename(m.path) === 'libjvm.so');
    if (!jvm.length) return null;
    const path = jvm[0].path;
    const sym = mappedSymbols(pid, path, jvm, VMSTRUCT_SYMBOLS);
    const mem = new ProcessMemory(pid);
    try {
      const vm = readVMStructs(mem, sym);
      const releaseAt = vm.statics.get('Abstract_VM_Version::_s_vm_release');
      const releasePtr = releaseAt !== undefined ? mem.u64(releaseAt) : null;
      const release = releasePtr ? (cString(mem, releasePtr) ?? '') : '';
      return new HotSpotProcess(pid, path, release, vm, readHeaps(mem, vm));
    } finally {
      mem.close();
    }
  }

  /** the code heap holding pc, if any: a pc there is Java (interpreted, compiled) or a stub */
  heapOf(pc: bigint): CodeHeapRange | undefined {
    return this.heaps.find((h) => pc >= h.low && pc < h.reservedHigh);
  }
}

function readHeaps(mem: ProcessMemory, vm: VMStructs): CodeHeapRange[] {
  const off = (k: string): number => {
    const v = vm.offsets.get(k);
    if (v === undefined) throw new VMStructsError(`VMStructs has no ${k}`);
    return v;
  };
  const heapsAt = vm.statics.get('CodeCache::_heaps');
  if (heapsAt === undefined) throw new VMStructsError('VMStructs has no CodeCache::_heaps');
  const array = mem.u64(heapsAt); // GrowableArray<CodeHeap*>*
  if (!array) throw new VMStructsError('CodeCache::_heaps unreadable');
  const lenB = mem.read(array + BigInt(off('GrowableArrayBase::_len')), 4);
  const data = mem.u64(array + BigInt(off('GrowableArray<int>::_data')));
  const len = lenB ? lenB.readInt32LE(0) : -1;
  if (len < 1 || len > MAX_HEAPS || !data) throw new VMStructsError(`CodeCache::_heaps: ${len} heaps`);
  const heaps: CodeHeapRange[] = [];
  for (let i = 0; i < len; i++) {
    const heap = mem.u64(data + BigInt(8 * i));
    if (!heap) throw new VMStructsError(`code heap ${i} unreadable`);
    const memory = heap + BigInt(off('CodeHeap::_memory'));
    const low = mem.u64(memory + BigInt(off('VirtualSpace::_low')));
    const high = mem.u64(memory + BigInt(off('VirtualSpace::_high')));
    const reservedHigh = mem.u64(memory + BigInt(off('VirtualSpace::_high_boundary')));
    const segmapLow = mem.u64(heap + BigInt(off('CodeHeap::_segmap')) + BigInt(off('VirtualSpace::_low')));
    const log2 = mem.read(heap + BigInt(off('CodeHeap::_log2_segment_size')), 4);
    const nameAt = vm.offsets.has('CodeHeap::_name') ? mem.u64(heap + BigInt(off('CodeHeap::_name'))) : null;
    if (low === null || high === null || reservedHigh === null || segmapLow === null || !log2 || high <= low || reservedHigh < high) throw new VMStructsError(`code heap ${i}: implausible bounds`);
    heaps.push({ name: nameAt ? (cString(mem, nameAt) ?? '') : `heap ${i}`, low, high, reservedHigh, segmap: segmapLow, log2SegmentSize: log2.readInt32LE(0) });
  }
  return heaps;
}
