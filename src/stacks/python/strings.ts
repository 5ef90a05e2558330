/**
 * CPython's compact str objects (PEP 393; 3.11-3.13 layouts), decoded from
 * bytes read out of the target. Header: ob_refcnt, ob_type, length (+16), hash,
 * state (+32: interned 2 bits, kind 3 bits, compact 1, ascii 1); the characters
 * follow the header at `asciiData` for an ASCII string, at `compactData` for
 * other compact ones, 1, 2 or 4 bytes each (kind). Non-compact (legacy) strings
 * do not occur for code object names and are refused.
 */

export const STR_HEADER_BYTES = 40;
/** longer names are refused, as py-spy does: a name of 4,096 characters is damage, not a name */
export const MAX_STR_CHARS = 4096;

export interface StrLayout {
  asciiData: number;
  compactData: number;
}

export type StrShape = { length: number; dataOffset: number; charSize: 1 | 2 | 4 } | { error: string };

/** Where a str's characters are, from its first STR_HEADER_BYTES bytes. */
export function strShape(header: Uint8Array, layout: StrLayout): StrShape {
  if (header.length < STR_HEADER_BYTES) return { error: 'short string header' };
  const dv = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const length = Number(dv.getBigInt64(16, true));
  const state = dv.getUint32(32, true);
  const kind = (state >> 2) & 7;
  const compact = (state >> 5) & 1;
  const ascii = (state >> 6) & 1;
  if (length < 0 || length > MAX_STR_CHARS) return { error: `string length ${length} out of bounds` };
  if (!compact) return { error: 'not a compact string' };
  if (kind !== 1 && kind !== 2 && kind !== 4) return { error: `string kind ${kind}` };
  if (ascii && kind !== 1) return { error: 'ascii string of wide kind' };
  return { length, dataOffset: ascii ? layout.asciiData : layout.compactData, charSize: kind };
}

/** The characters, given the bytes at dataOffset (length * charSize of them). */
export function decodeStr(data: Uint8Array, length: number, charSize: 1 | 2 | 4): string {
  if (data.length < length * charSize) throw new RangeError('string data shorter than its length');
  if (charSize === 1) return Buffer.from(data.buffer, data.byteOffset, length).toString('latin1');
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let s = '';
  for (let i = 0; i < length; i++) s += String.fromCodePoint(charSize === 2 ? dv.getUint16(i * 2, true) : Math.min(dv.getUint32(i * 4, true), 0x10ffff));
  return s;
}
