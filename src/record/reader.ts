/** Replays a recording into a TraceSink, exactly as the live session fed it. */
import { readFileSync } from 'node:fs';
import { TcptraceError } from '../errors.js';
import * as G from '../generated/events.js';
import type { PresentEvent } from '../model/events.js';
import type { ResolvedStack } from '../stacks/types.js';
import { zeroCounters, type Counters, type SessionEnd, type SessionInfo, type TraceSink } from '../trace/types.js';
import { decodeFrame, fromWire, RECORD_FORMAT, RECORD_VERSION, RECORD_VERSIONS_READ } from './format.js';

export interface ReplayResult {
  frames: number;
  /** the file ended without an end frame (recorder killed) */
  interrupted: boolean;
  /** bytes of a partial last frame that were ignored */
  truncatedBytes: number;
}

export async function replay(path: string, sink: TraceSink): Promise<ReplayResult> {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    throw new TcptraceError('NO_INPUT', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let off = 0;
  let frames = 0;
  let info: SessionInfo | null = null;
  let end: SessionEnd | null = null;
  let counters: Counters = zeroCounters();
  let lastTs = 0n;
  while (off + 4 <= data.length) {
    const len = data.readUInt32BE(off);
    if (off + 4 + len > data.length) break; // partial last frame: the recorder was killed mid-write
    let frame: Record<string, unknown>;
    try {
      frame = decodeFrame(data.subarray(off + 4, off + 4 + len));
    } catch (err) {
      throw new TcptraceError('BAD_INPUT', `${path}: frame ${frames} at byte ${off} is not valid msgpack (${(err as Error).message})`);
    }
    off += 4 + len;
    frames++;
    if (frames === 1) {
      if (frame.t !== 'header' || frame.format !== RECORD_FORMAT) {
        throw new TcptraceError('BAD_INPUT', `${path}: not a tcptrace recording`);
      }
      if (!RECORD_VERSIONS_READ.includes(frame.version as number)) {
        throw new TcptraceError('BAD_INPUT', `${path}: recording format version ${String(frame.version)} (this tcptrace reads versions ${RECORD_VERSIONS_READ.join(', ')}; it writes ${RECORD_VERSION})`);
      }
      info = fromWire<SessionInfo>(frame.info);
      sink.begin(info);
      continue;
    }
    switch (frame.t) {
      case 'present':
        sink.present(fromWire<PresentEvent[]>(frame.events));
        break;
      case 'batch': {
        const buf = frame.data as Buffer;
        lastTs = maxTs(buf, lastTs);
        try {
          sink.batch(buf);
        } catch (err) {
          throw new TcptraceError('BAD_INPUT', `${path}: frame ${frames - 1}: ${(err as Error).message}`);
        }
        break;
      }
      case 'stacks':
        sink.stacks(fromWire<ResolvedStack[]>(frame.items));
        break;
      case 'counters':
        counters = { ...zeroCounters(), ...(frame.c as Partial<Counters>) }; // older recordings lack newer counters
        sink.counters(counters);
        break;
      case 'end':
        end = fromWire<SessionEnd>(frame.end);
        end.counters = { ...zeroCounters(), ...end.counters };
        break;
      default:
        throw new TcptraceError('BAD_INPUT', `${path}: frame ${frames - 1} has unknown type ${String(frame.t)}`);
    }
  }
  if (!info) throw new TcptraceError('BAD_INPUT', `${path}: empty or truncated before its header`);
  const interrupted = end === null;
  if (!end) end = { endedNs: lastTs > info.startedNs ? lastTs : info.startedNs, reason: 'interrupted', exitedPids: [], counters };
  await sink.finish(end);
  return { frames, interrupted, truncatedBytes: data.length - off };
}

function maxTs(buf: Buffer, acc: bigint): bigint {
  let off = 0;
  while (off + G.SIZE_HDR <= buf.length) {
    const size = buf.readUInt16LE(off + G.O_HDR_SIZE);
    if (size < G.SIZE_HDR) break;
    const ts = buf.readBigUInt64LE(off + G.O_HDR_TS_NS);
    if (ts > acc) acc = ts;
    off += (size + 7) & ~7;
  }
  return acc;
}
