/**
 * CPython 3.11+ location tables (co_linetable; the format is described in
 * CPython's Objects/locations.md): which source line an instruction is on.
 * Entries cover runs of code units (2 bytes each); the first byte of an entry
 * has bit 7 set, code = (b >> 3) & 15, length = (b & 7) + 1 code units.
 *   0-9   short form: line unchanged, 1 more byte (columns)
 *   10-12 one-line form: line += code - 10, 2 more bytes
 *   13    no columns: line += signed varint
 *   14    long form: line += signed varint, then 3 varints (end line, columns)
 *   15    no location (line -1 for that run)
 * Varints are 6-bit little-endian chunks, 0x40 meaning more; signed ones keep
 * the sign in bit 0. The table is the target's memory: every read is bounded.
 */

class Cursor {
  constructor(
    private readonly b: Uint8Array,
    public pos = 0,
  ) {}
  get done(): boolean {
    return this.pos >= this.b.length;
  }
  byte(): number {
    if (this.pos >= this.b.length) throw new RangeError('location table ends inside an entry');
    return this.b[this.pos++];
  }
  varint(): number {
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = this.byte();
      v += (b & 63) * 2 ** shift;
      if (!(b & 64)) return v;
      shift += 6;
      if (shift > 30) throw new RangeError('location table varint too long');
    }
  }
  svarint(): number {
    const v = this.varint();
    return v & 1 ? -Math.floor(v / 2) : Math.floor(v / 2);
  }
}

/**
 * The line of the instruction at `byteOffset` (from the first instruction,
 * co_code_adaptive), or null when the table has no location for it or does not
 * reach it. Throws RangeError on a table that does not parse.
 */
export function lineForOffset(table: Uint8Array, firstLineno: number, byteOffset: number): number | null {
  if (byteOffset < 0) return null;
  const unit = Math.floor(byteOffset / 2);
  const c = new Cursor(table);
  let line = firstLineno;
  let at = 0; // code units covered so far
  while (!c.done) {
    const first = c.byte();
    if (!(first & 0x80)) throw new RangeError(`location table entry starts with 0x${first.toString(16)}`);
    const code = (first >> 3) & 15;
    const length = (first & 7) + 1;
    let here: number | null = line;
    if (code === 15) here = null;
    else if (code === 14) {
      line += c.svarint();
      here = line;
      c.varint();
      c.varint();
      c.varint();
    } else if (code === 13) {
      line += c.svarint();
      here = line;
    } else if (code >= 10) {
      line += code - 10;
      here = line;
      c.byte();
      c.byte();
    } else c.byte();
    if (unit < at + length) return here;
    at += length;
  }
  return null;
}
