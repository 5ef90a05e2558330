/**
 * Recording file format (version 4; versions 1, 2 and 3 still read).
 *
 *   file   := frame*
 *   frame  := head (28 bytes, big-endian), then a msgpack payload:
 *     0  marker   C1 'T' 'T' 04: where a frame starts, so a reader finds the next
 *                 one after damage; the last byte is the framing version
 *     4  length   u32, bytes of the payload (at most MAX_FRAME)
 *     8  seq      u32, the frame's number: 0 is the header, then one more per frame
 *                 (modulo 2^32): a reader counts the frames a damaged stretch lost
 *    12  records  u64, ring records written before this frame (the records of
 *                 every batch frame before it, walked by their record headers;
 *                 present, stacks and counters items are not records): the next
 *                 intact frame tells how many records a damaged stretch lost
 *    20  hcrc     u32, CRC32C of bytes 4..20: a head is known good or bad on its own,
 *                 so a reader trusts a good head's length and skips a frame whose
 *                 payload is damaged exactly, and checks a candidate marker in O(1)
 *                 (its resync is linear: no payload is checksummed just to reject it)
 *    24  crc      u32, CRC32C of bytes 4..20 and then the payload (computed on from
 *                 hcrc, so the payload bytes are checksummed once)
 *
 *   Why 0xC1: it is the one byte msgpack never uses, and it is not valid UTF-8,
 *   so no frame's msgpack structure or strings hold it. It can occur in ring
 *   records (a batch's bin payload) and in raw numbers; a false marker there
 *   costs one 16-byte CRC to reject. As a version-1..3 frame length, C1545404
 *   is 3.2 GB, more than any frame: the two framings cannot be mistaken.
 *
 *   Versions 1, 2 and 3: frame := u32 big-endian payload length, then the
 *   payload; no marker, no checksum (a damaged frame ends what can be read).
 *
 *   payload:= {t: 'header', format: 'tcptrace-record', version: 4, info}
 *           | {t: 'present', events}     sockets present at attach
 *           | {t: 'batch', data}         ring-buffer records, byte for byte (bpf/tcpstate.h),
 *                                        except full stack records: raw stack bytes are user data.
 *                                        Stack references (tt_stack_ref: a stack id, no stack
 *                                        bytes) stay in the batch (version 2; version 1 turned
 *                                        them into 'stacks' items). Version 3 batches may hold
 *                                        compact transitions (tt_transition4), which a build
 *                                        that reads only version 2 would skip
 *           | {t: 'stacks', items}       full stacks, unwound and symbolized at capture time
 *           | {t: 'counters', c}         kernel and agent counters, sampled
 *           | {t: 'end', end}            written on a clean stop (end.holdersAtEnd: who held each
 *                                        CLOSE_WAIT socket then, src/trace/holders.ts)
 *
 * Frames are flushed on an interval with synchronous writes, so a killed
 * recorder leaves a file whose complete frames all read back; a missing end
 * frame means "interrupted". 64-bit values travel as decimal strings.
 *
 * Damage (a crashed host, a bad disk): a reader skips a version-4 frame whose
 * head or payload does not check out, finds the next marker whose head does,
 * and goes on; the seq and records of the intact frames around the damage say
 * how many frames and ring records it lost (src/record/reader.ts).
 */
import { crc32c } from '@node-rs/crc32';
import { Packr, Unpackr } from 'msgpackr';
import * as G from '../generated/events.js';

export const RECORD_FORMAT = 'tcptrace-record';
export const RECORD_VERSION = 4;
/** versions this build reads: 1 differs only in where stack references went, 2 in having no compact transitions, 3 in its framing */
export const RECORD_VERSIONS_READ = [1, 2, 3, 4];

/** the marker opening every version-4 frame (see the top of this file for why these bytes) */
export const FRAME_MARKER = Buffer.from([0xc1, 0x54, 0x54, 0x04]);
const MARKER_U32 = FRAME_MARKER.readUInt32BE(0);
/** bytes of a version-4 frame's head, before its payload */
export const FRAME_HEAD = 28;
/**
 * The longest payload a reader takes (any version): a longer length is damage,
 * never an allocation; the writer's frames are far below it.
 */
export const MAX_FRAME = 256 << 20;

const packr = new Packr({ useRecords: false, moreTypes: false }); // no bundleStrings: msgpackr writes 0xC1 only for those
const unpackr = new Unpackr({ useRecords: false });

/** msgpack of the batch frame's payload up to its data bytes: map16(2) "t" "batch" "data" (msgpackr writes map16) */
const BATCH_PREFIX = Buffer.from([0xde, 0x00, 0x02, 0xa1, 0x74, 0xa5, ...Buffer.from('batch'), 0xa4, ...Buffer.from('data')]);

/** A version-4 frame's head, as read back (checked: marker, hcrc and length). */
export interface FrameHead {
  length: number;
  seq: number;
  /** ring records written before this frame */
  records: number;
  hcrc: number;
  crc: number;
}

/**
 * Numbers a recording's frames and counts the ring records before each: one
 * per writer. Every frame's head carries both, under its checksums.
 */
export class FrameEncoder {
  private seq = 0;
  private records = 0;

  /** a whole frame: head, then the msgpack of payload (one copy of the msgpack, as Buffer.concat made before) */
  frame(payload: unknown): Buffer {
    const body = packr.pack(payload);
    const out = Buffer.allocUnsafe(FRAME_HEAD + body.length);
    const hcrc = writeHead(out, body.length, this.seq++, this.records);
    body.copy(out, FRAME_HEAD);
    out.writeUInt32BE(crc32c(body, hcrc), 24);
    return out;
  }

  /**
   * The bytes of frame({t: 'batch', data}) before the data itself (frame
   * head, then the payload's map up to its bin header), so a batch is written
   * as it came, without copying it into a msgpack buffer: the CRC goes over
   * the prefix here and continues over data in place. Byte for byte what
   * msgpackr writes (bin 8/16/32 by length). Counts data's records (records,
   * when the ring poller counted them while copying; else walked here).
   */
  batchFrameHead(data: Buffer, records = batchRecords(data)): Buffer {
    const bin = data.length < 0x100 ? 2 : data.length < 0x10000 ? 3 : 5;
    const head = Buffer.allocUnsafe(FRAME_HEAD + BATCH_PREFIX.length + bin);
    const hcrc = writeHead(head, BATCH_PREFIX.length + bin + data.length, this.seq++, this.records);
    let o = FRAME_HEAD + BATCH_PREFIX.copy(head, FRAME_HEAD);
    if (bin === 2) {
      head[o++] = 0xc4;
      head[o] = data.length;
    } else if (bin === 3) {
      head[o++] = 0xc5;
      head.writeUInt16BE(data.length, o);
    } else {
      head[o++] = 0xc6;
      head.writeUInt32BE(data.length, o);
    }
    head.writeUInt32BE(crc32c(data, crc32c(head.subarray(FRAME_HEAD), hcrc)), 24);
    this.records += records;
    return head;
  }
}

/** writes a frame's head but its crc (which goes on from the hcrc returned, over the payload) */
function writeHead(head: Buffer, length: number, seq: number, records: number): number {
  FRAME_MARKER.copy(head, 0);
  head.writeUInt32BE(length, 4);
  head.writeUInt32BE(seq >>> 0, 8);
  head.writeUInt32BE(Math.floor(records / 0x1_0000_0000), 12);
  head.writeUInt32BE(records >>> 0, 16);
  const hcrc = crc32c(head.subarray(4, 20));
  head.writeUInt32BE(hcrc, 20);
  return hcrc;
}

/** the head of a version-4 frame at b[at..at+FRAME_HEAD), or null: no marker, a bad hcrc, or a length past MAX_FRAME */
export function readFrameHead(b: Buffer, at: number): FrameHead | null {
  if (b.readUInt32BE(at) !== MARKER_U32) return null;
  const hcrc = b.readUInt32BE(at + 20);
  if (crc32c(b.subarray(at + 4, at + 20)) !== hcrc) return null;
  const length = b.readUInt32BE(at + 4);
  if (length > MAX_FRAME) return null;
  return { length, seq: b.readUInt32BE(at + 8), records: b.readUInt32BE(at + 12) * 0x1_0000_0000 + b.readUInt32BE(at + 16), hcrc, crc: b.readUInt32BE(at + 24) };
}

/** the payload checks out against its head's crc */
export function payloadIntact(head: FrameHead, payload: Buffer): boolean {
  return crc32c(payload, head.hcrc) === head.crc;
}

/**
 * The ring records in a batch, walked by their headers (bpf/tcpstate.h: each
 * record's size, 8-byte aligned), as the writer counts them for frame heads;
 * latest, when given, keeps the latest record timestamp. A header with an
 * impossible size ends the walk: what follows is not counted.
 */
export function batchRecords(buf: Buffer, latest?: { ts: bigint }): number {
  let n = 0;
  for (let off = 0; off + G.SIZE_HDR <= buf.length; n++) {
    const size = buf.readUInt16LE(off + G.O_HDR_SIZE);
    if (size < G.SIZE_HDR) break;
    if (latest) {
      const ts = buf.readBigUInt64LE(off + G.O_HDR_TS_NS);
      if (ts > latest.ts) latest.ts = ts;
    }
    off += (size + 7) & ~7;
  }
  return n;
}

export function decodeFrame(body: Buffer): Record<string, unknown> {
  return unpackr.unpack(body) as Record<string, unknown>;
}

/** Deep copy with bigints as {$big: "123"} so they survive msgpack unchanged. */
export function toWire(v: unknown): unknown {
  if (typeof v === 'bigint') return { $big: v.toString() };
  if (Array.isArray(v)) return v.map(toWire);
  if (v && typeof v === 'object' && !Buffer.isBuffer(v) && !(v instanceof Uint8Array)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[k] = toWire(x);
    return o;
  }
  return v;
}

export function fromWire<T>(v: unknown): T {
  if (Array.isArray(v)) return v.map((x) => fromWire(x)) as T;
  if (v && typeof v === 'object' && !Buffer.isBuffer(v) && !(v instanceof Uint8Array)) {
    const o = v as Record<string, unknown>;
    if (typeof o.$big === 'string' && Object.keys(o).length === 1) return BigInt(o.$big) as T;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = fromWire(x);
    return out as T;
  }
  return v as T;
}
