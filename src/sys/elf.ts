/**
 * The few facts tcptrace needs from an ELF file it did not build: the values of
 * named dynamic symbols (.dynsym: what a stripped binary still exports) and the
 * virtual address its first PT_LOAD maps at (for the load bias). Reads only the
 * headers and tables it needs, each bounded: the file is the target's, not ours.
 */
import { closeSync, existsSync, openSync, readSync } from 'node:fs';

const MAX_SECTIONS = 4096;
const MAX_TABLE = 64 << 20; /* a .dynsym or .dynstr larger than this is not one */

export interface ElfSymbols {
  /** name -> st_value, for the names asked that the file defines */
  symbols: Map<string, bigint>;
  /** p_vaddr of the first PT_LOAD (0 for a shared object or PIE, 0x400000 for a classic executable) */
  firstLoadVaddr: bigint;
}

function readAt(fd: number, off: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  const n = readSync(fd, b, 0, len, off);
  if (n !== len) throw new Error(`short read at ${off} (${n} of ${len} bytes)`);
  return b;
}

/** The dynamic symbols of `path` among `names`. Throws on a file that is not a little-endian ELF64. */
export function elfDynamicSymbols(path: string, names: readonly string[]): ElfSymbols {
  const fd = openSync(path, 'r');
  try {
    const eh = readAt(fd, 0, 64);
    if (eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) throw new Error(`${path}: not a little-endian ELF64 file`);
    const phoff = Number(eh.readBigUInt64LE(32));
    const shoff = Number(eh.readBigUInt64LE(40));
    const phentsize = eh.readUInt16LE(54);
    const phnum = eh.readUInt16LE(56);
    const shentsize = eh.readUInt16LE(58);
    const shnum = eh.readUInt16LE(60);
    if (shnum > MAX_SECTIONS || shentsize < 64 || phentsize < 56) throw new Error(`${path}: implausible ELF headers`);
    let firstLoadVaddr = -1n;
    const ph = readAt(fd, phoff, phnum * phentsize);
    for (let i = 0; i < phnum; i++) {
      if (ph.readUInt32LE(i * phentsize) === 1 /* PT_LOAD */) {
        firstLoadVaddr = ph.readBigUInt64LE(i * phentsize + 16);
        break;
      }
    }
    if (firstLoadVaddr < 0n) throw new Error(`${path}: no PT_LOAD segment`);
    const sh = readAt(fd, shoff, shnum * shentsize);
    const want = new Set(names);
    const symbols = new Map<string, bigint>();
    for (let i = 0; i < shnum; i++) {
      const s = i * shentsize;
      if (sh.readUInt32LE(s + 4) !== 11 /* SHT_DYNSYM */) continue;
      const off = Number(sh.readBigUInt64LE(s + 24));
      const size = Number(sh.readBigUInt64LE(s + 32));
      const link = sh.readUInt32LE(s + 40);
      const entsize = Number(sh.readBigUInt64LE(s + 56)) || 24;
      if (link >= shnum || size > MAX_TABLE || entsize < 24) throw new Error(`${path}: implausible .dynsym`);
      const strOff = Number(sh.readBigUInt64LE(link * shentsize + 24));
      const strSize = Number(sh.readBigUInt64LE(link * shentsize + 32));
      if (strSize > MAX_TABLE) throw new Error(`${path}: implausible .dynstr`);
      const syms = readAt(fd, off, size);
      const strs = readAt(fd, strOff, strSize);
      for (let e = 0; e + 24 <= size; e += entsize) {
        const nameOff = syms.readUInt32LE(e);
        const shndx = syms.readUInt16LE(e + 6);
        if (shndx === 0 || nameOff >= strSize) continue; /* undefined: imported, not ours */
        const end = strs.indexOf(0, nameOff);
        const name = strs.toString('latin1', nameOff, end < 0 ? strSize : end);
        if (want.has(name)) symbols.set(name, syms.readBigUInt64LE(e + 8));
      }
    }
    return { symbols, firstLoadVaddr };
  } finally {
    closeSync(fd);
  }
}

/**
 * The dynamic symbols of a file mapped in `pid` (its mappings `maps`), at their
 * addresses in that process: the load bias of the mapping at the lowest file
 * offset applied. The file is read through the process's root (a container's
 * file), else through its map_files entry.
 */
export function mappedSymbols(pid: number, path: string, maps: readonly { start: number; end: number; offset: number }[], names: readonly string[]): Map<string, bigint> {
  const first = maps.reduce((a, b) => (b.offset < a.offset ? b : a));
  const viaRoot = `/proc/${pid}/root${path}`;
  const onDisk = existsSync(viaRoot) ? viaRoot : `/proc/${pid}/map_files/${first.start.toString(16)}-${first.end.toString(16)}`;
  const { symbols, firstLoadVaddr } = elfDynamicSymbols(onDisk, names);
  const bias = BigInt(first.start - first.offset) - (firstLoadVaddr & ~0xfffn);
  return new Map([...symbols].map(([k, v]) => [k, v + bias]));
}
