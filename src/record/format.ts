/**
 * Recording file format (version 3; versions 1 and 2 still read).
 *
 *   file   := frame*
 *   frame  := u32 big-endian payload length, then a msgpack payload
 *   payload:= {t: 'header', format: 'tcptrace-record', version: 3, info}
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
 */
import { Packr, Unpackr } from 'msgpackr';

export const RECORD_FORMAT = 'tcptrace-record';
export const RECORD_VERSION = 3;
/** versions this build reads: 1 differs only in where stack references went, 2 in having no compact transitions */
export const RECORD_VERSIONS_READ = [1, 2, 3];

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false });

export function encodeFrame(payload: unknown): Buffer {
  const body = packr.pack(payload);
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** msgpack of the batch frame's payload up to its data bytes: map16(2) "t" "batch" "data" (msgpackr writes map16) */
const BATCH_PREFIX = Buffer.from([0xde, 0x00, 0x02, 0xa1, 0x74, 0xa5, ...Buffer.from('batch'), 0xa4, ...Buffer.from('data')]);

/**
 * The bytes of encodeFrame({t: 'batch', data}) before the data itself (frame
 * length, then the payload's map up to its bin header), so a batch is written
 * as it came, without copying it into a msgpack buffer. Byte for byte what
 * msgpackr writes (bin 8/16/32 by length).
 */
export function batchFrameHead(dataLength: number): Buffer {
  const bin = dataLength < 0x100 ? 2 : dataLength < 0x10000 ? 3 : 5;
  const head = Buffer.allocUnsafe(4 + BATCH_PREFIX.length + bin);
  head.writeUInt32BE(BATCH_PREFIX.length + bin + dataLength, 0);
  let o = 4 + BATCH_PREFIX.copy(head, 4);
  if (bin === 2) {
    head[o++] = 0xc4;
    head[o] = dataLength;
  } else if (bin === 3) {
    head[o++] = 0xc5;
    head.writeUInt16BE(dataLength, o);
  } else {
    head[o++] = 0xc6;
    head.writeUInt32BE(dataLength, o);
  }
  return head;
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
