/**
 * Replays a recording into a TraceSink, exactly as the live session fed it.
 * The file is read forward in chunks, so memory is bounded by the largest
 * frame (MAX_FRAME at most), not by the file. A damaged version-4 frame is
 * skipped: the reader finds the next frame whose head checks out and goes on,
 * and counts what the damage lost from the sequence numbers and record counts
 * of the intact frames around it (format.ts). Older versions have no
 * checksums: the first frame that does not decode ends the replay, counted as
 * damage, and what came before it stands.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { TcptraceError } from '../errors.js';
import type { PresentEvent } from '../model/events.js';
import type { ResolvedStack } from '../stacks/types.js';
import { zeroCounters, type Counters, type SessionEnd, type SessionInfo, type TraceSink } from '../trace/types.js';
import { batchRecords, decodeFrame, FRAME_HEAD, FRAME_MARKER, MAX_FRAME, payloadIntact, readFrameHead, fromWire, RECORD_FORMAT, RECORD_VERSION, RECORD_VERSIONS_READ, type FrameHead } from './format.js';

export interface ReplayProgress {
  /** bytes of the file replayed so far, of totalBytes */
  bytesRead: number;
  totalBytes: number;
  /** ring records and intact frames replayed so far */
  records: number;
  frames: number;
}

export interface ReplayOptions {
  /** called every PROGRESS_BYTES of the file or PROGRESS_MS, whichever comes first, and once at the end */
  onProgress?: (p: ReplayProgress) => void;
  /** awaited after each chunk read from the file: lets a sink whose output lags (a gzip stream) catch up */
  drain?: () => Promise<void>;
}

/** One damaged stretch of a recording: consecutive bytes that held no intact frame. */
export interface Damage {
  /** file offset of its first byte */
  offset: number;
  bytes: number;
  /**
   * frames lost, from the sequence numbers of the intact frames around it (0
   * when bytes were damaged between frames; at least 1 when the damage runs
   * to the end of the file, where no frame after it says more)
   */
  frames: number;
  /** ring records lost, from the record counts around it; null when unknown (damage to the end of the file, or an older version) */
  lostRecords: number | null;
  /** what was wrong with its first frame */
  why: string;
}

export interface ReplayResult {
  /** the recording's format version */
  version: number;
  /** intact frames read, the header included */
  frames: number;
  /** ring records read */
  records: number;
  /** the file ended without an end frame (recorder killed) */
  interrupted: boolean;
  /** bytes of a partial last frame that were ignored */
  truncatedBytes: number;
  /** totals over every damaged stretch (see Damage); lostRecords null when any stretch's count is unknown */
  damagedFrames: number;
  damagedBytes: number;
  lostRecords: number | null;
  /** the first DAMAGE_LISTED stretches, in file order */
  damage: Damage[];
}

/** bytes read from the file at once (more when a frame is longer) */
const CHUNK = 8 << 20;
const PROGRESS_BYTES = 64 << 20;
const PROGRESS_MS = 250;
const DAMAGE_LISTED = 100;
/** how far into a file that is not a readable older version a version-4 frame head is looked for (a damaged header) */
const HEADER_SEARCH = 1 << 20;
const FRAME_TYPES = new Set(['present', 'batch', 'stacks', 'counters', 'end']);

export async function replay(path: string, sink: TraceSink, opts: ReplayOptions = {}): Promise<ReplayResult> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new TcptraceError('NO_INPUT', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return await new Replay(path, new ChunkedFile(fd, fstatSync(fd).size, path), sink, opts).run();
  } finally {
    closeSync(fd);
  }
}

/**
 * The file, read forward in chunks. Each chunk is a fresh buffer, never
 * overwritten: a sink may keep a batch it was handed (TraceSink batches are
 * never reused; the record writer keeps them until written), so views into
 * earlier chunks stay valid. A frame longer than a chunk gets a chunk its size.
 */
class ChunkedFile {
  private buf = Buffer.alloc(0);
  /** file offset of buf[0] */
  private start = 0;
  /** chunks read so far */
  reads = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly path: string,
  ) {}

  /** bytes [at, at + n) of the file, as a view; null when they run past its end */
  bytes(at: number, n: number): Buffer | null {
    if (at + n > this.size) return null;
    if (at < this.start || at + n > this.start + this.buf.length) this.fill(at, n);
    return this.buf.subarray(at - this.start, at - this.start + n);
  }

  /** a chunk from at, at least n bytes long; what the last chunk held of it is copied, not read again */
  private fill(at: number, n: number): void {
    const len = Math.min(Math.max(n, CHUNK), this.size - at);
    const next = Buffer.allocUnsafe(len);
    let have = at >= this.start && at < this.start + this.buf.length ? this.buf.copy(next, 0, at - this.start) : 0;
    while (have < len) {
      let got: number;
      try {
        got = readSync(this.fd, next, have, len - have, at + have);
      } catch (err) {
        throw new TcptraceError('NO_INPUT', `cannot read ${this.path} at byte ${at + have}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (got === 0) throw new TcptraceError('BAD_INPUT', `${this.path}: the file got shorter while it was read (${this.size} bytes at first)`);
      have += got;
    }
    this.buf = next;
    this.start = at;
    this.reads++;
  }
}

/** where the reader stands after its last intact frame: that frame's seq, and the ring records up to its end */
interface Cursor {
  seq: number;
  records: number;
}

class Replay {
  private info: SessionInfo | null = null;
  private end: SessionEnd | null = null;
  private counters: Counters = zeroCounters();
  private readonly latest = { ts: 0n };
  private version = 0;
  private frames = 0;
  private records = 0;
  private truncatedBytes = 0;
  private damagedFrames = 0;
  private damagedBytes = 0;
  private lostRecords = 0;
  private lostUnknown = false;
  private readonly damage: Damage[] = [];
  private drainedReads = 0;
  private nextProgressBytes = PROGRESS_BYTES;
  private nextProgressMs = performance.now() + PROGRESS_MS;

  constructor(
    private readonly path: string,
    private readonly file: ChunkedFile,
    private readonly sink: TraceSink,
    private readonly opts: ReplayOptions,
  ) {}

  async run(): Promise<ReplayResult> {
    const { size } = this.file;
    if (size === 0) throw new TcptraceError('BAD_INPUT', `${this.path}: empty file (0 bytes): not a tcptrace recording`);
    const first = this.file.bytes(0, Math.min(size, 4))!;
    if (first.length === 4 && first.subarray(0, 3).equals(FRAME_MARKER.subarray(0, 3))) {
      if (first[3] !== FRAME_MARKER[3]) throw this.unknownVersion(String(first[3])); // a later framing, its version in the marker
      await this.readFramed();
    } else await this.readLegacy();
    this.opts.onProgress?.({ bytesRead: size, totalBytes: size, records: this.records, frames: this.frames });
    const info = this.info!;
    const interrupted = this.end === null;
    const end = this.end ?? { endedNs: this.latest.ts > info.startedNs ? this.latest.ts : info.startedNs, reason: 'interrupted', exitedPids: [], counters: this.counters };
    await this.sink.finish(end);
    return {
      version: this.version,
      frames: this.frames,
      records: this.records,
      interrupted,
      truncatedBytes: this.truncatedBytes,
      damagedFrames: this.damagedFrames,
      damagedBytes: this.damagedBytes,
      lostRecords: this.lostUnknown ? null : this.lostRecords,
      damage: this.damage,
    };
  }

  /** Version 4: every frame checked; a damaged stretch is skipped to the next frame whose head checks out. */
  private async readFramed(): Promise<void> {
    const { size } = this.file;
    const head = this.headerFrame();
    let at: Cursor = { seq: head.seq, records: head.records };
    let off = FRAME_HEAD + head.length;
    /** where an open damaged stretch began, and why */
    let stretch: number | null = null;
    let why = '';
    /** frames of the open stretch whose head was good (their payload was not) */
    let skipped = 0;
    while (off < size) {
      await this.tick(off);
      if (size - off < FRAME_HEAD) {
        if (stretch === null) this.truncatedBytes = size - off; // a head cut short (else: part of the damage to the end)
        break;
      }
      const h = readFrameHead(this.file.bytes(off, FRAME_HEAD)!, 0);
      if (!h || !follows(h, at)) {
        if (stretch === null) [stretch, why, skipped] = [off, h ? `frame ${h.seq} out of sequence after frame ${at.seq}` : 'no frame head (bad marker or checksum)', 0];
        off = this.findHead(off + 1, at);
        continue;
      }
      const payload = this.file.bytes(off + FRAME_HEAD, h.length);
      if (!payload) {
        // a good head whose frame runs past the end: the recorder was killed mid-write
        this.closeStretch(stretch, off, h, at, why);
        stretch = null;
        this.truncatedBytes = size - off;
        break;
      }
      const bad = frameFault(h, payload);
      if (typeof bad === 'string') {
        if (stretch === null) [stretch, why, skipped] = [off, `frame ${h.seq}: ${bad}`, 0];
        skipped++;
        off += FRAME_HEAD + h.length; // its head is good: its length is trusted, and it is skipped exactly
        continue;
      }
      this.closeStretch(stretch, off, h, at, why);
      stretch = null;
      const n = this.deliver(bad, off, FRAME_HEAD + h.length, `frame ${h.seq}`);
      at = { seq: h.seq, records: h.records + n };
      off += FRAME_HEAD + h.length;
    }
    if (stretch !== null) this.damageToEnd(stretch, why, skipped);
  }

  /** the header frame, delivered; damaged, it makes the file unreadable: it says what the rest is */
  private headerFrame(): FrameHead {
    if (this.file.size < FRAME_HEAD) throw this.tooShort();
    const h = readFrameHead(this.file.bytes(0, FRAME_HEAD)!, 0);
    const damaged = (why: string) => new TcptraceError('BAD_INPUT', `${this.path}: the recording's header frame is damaged (${why}): without it the recording cannot be read`);
    if (!h || h.seq !== 0 || h.records !== 0) throw damaged('its head does not check out');
    const payload = this.file.bytes(FRAME_HEAD, h.length);
    if (!payload) throw this.tooShort();
    const frame = frameFault(h, payload);
    if (typeof frame === 'string') throw damaged(frame);
    this.header(frame, true);
    return h;
  }

  /**
   * The next offset from `from` where a frame head checks out and follows the
   * cursor, or the end of the file. Linear: the marker is found with indexOf a
   * chunk at a time, and a candidate costs one 16-byte CRC.
   */
  private findHead(from: number, at: Cursor): number {
    const { size } = this.file;
    for (let pos = from; size - pos >= FRAME_HEAD; ) {
      const window = this.file.bytes(pos, Math.min(CHUNK, size - pos))!;
      for (let i = window.indexOf(FRAME_MARKER); i >= 0; i = window.indexOf(FRAME_MARKER, i + 1)) {
        const p = pos + i;
        if (size - p < FRAME_HEAD) return size;
        const h = readFrameHead(this.file.bytes(p, FRAME_HEAD)!, 0);
        if (h && follows(h, at)) return p;
      }
      if (pos + window.length >= size) break;
      pos += window.length - (FRAME_MARKER.length - 1); // a marker across the chunk's end is found in the next
    }
    return size;
  }

  /** Versions 1 to 3: length-prefixed frames, no checksum; the first frame that does not read ends the replay. */
  private async readLegacy(): Promise<void> {
    const { size } = this.file;
    let off = 0;
    while (size - off >= 4) {
      await this.tick(off);
      const len = this.file.bytes(off, 4)!.readUInt32BE(0);
      const body = len > MAX_FRAME ? null : this.file.bytes(off + 4, len);
      if (this.frames === 0) {
        if (!body) throw len > MAX_FRAME || !this.headerBegins() ? this.notRecording() : this.tooShort();
        this.header(tryDecode(body), false);
      } else if (len > MAX_FRAME) {
        return this.damageToEnd(off, `frame ${this.frames}: impossible length ${len}`);
      } else if (!body) {
        break; // partial last frame: the recorder was killed mid-write
      } else {
        const frame = tryDecode(body);
        if (!frame || !usable(frame)) return this.damageToEnd(off, `frame ${this.frames}: ${frame ? `unknown frame type ${String(frame.t)}` : 'not valid msgpack'}`);
        this.deliver(frame, off, 4 + len, `frame ${this.frames}`);
      }
      off += 4 + len;
    }
    if (!this.info) throw this.headerBegins() ? this.tooShort() : this.notRecording();
    this.truncatedBytes = size - off;
  }

  /** checks the header frame's payload and begins the sink */
  private header(frame: Record<string, unknown> | null, framed: boolean): void {
    if (!frame || frame.t !== 'header' || frame.format !== RECORD_FORMAT) throw framed ? this.notRecording(false) : this.notRecording();
    const version = frame.version as number;
    if (!RECORD_VERSIONS_READ.includes(version)) throw this.unknownVersion(String(frame.version));
    if (framed !== version >= 4) throw new TcptraceError('BAD_INPUT', `${this.path}: the header says format version ${version}, but the frames are ${framed ? 'version 4' : 'older'} frames`);
    this.version = version;
    this.frames = 1;
    this.info = fromWire<SessionInfo>(frame.info);
    this.sink.begin(this.info);
  }

  /**
   * Hands an intact frame to the sink; returns its ring records. A sink that
   * throws on what the frame holds (a malformed record) loses that frame, not
   * the replay: it is counted as damage. A TcptraceError of the environment
   * (the sink's output cannot be written) still stops it.
   */
  private deliver(frame: Record<string, unknown>, offset: number, bytes: number, name: string): number {
    const n = frame.t === 'batch' ? batchRecords(frame.data as Buffer, this.latest) : 0;
    this.frames++;
    this.records += n;
    try {
      this.dispatch(frame);
    } catch (err) {
      if (err instanceof TcptraceError && err.code !== 'BAD_INPUT') throw err;
      this.addDamage({ offset, bytes, frames: 1, lostRecords: n, why: `${name}: ${(err as Error).message}` });
    }
    return n;
  }

  private dispatch(frame: Record<string, unknown>): void {
    switch (frame.t) {
      case 'present':
        return this.sink.present(fromWire<PresentEvent[]>(frame.events));
      case 'batch':
        return this.sink.batch(frame.data as Buffer);
      case 'stacks':
        return this.sink.stacks(fromWire<ResolvedStack[]>(frame.items));
      case 'counters':
        this.counters = { ...zeroCounters(), ...(frame.c as Partial<Counters>) }; // older recordings lack newer counters
        return this.sink.counters(this.counters);
      case 'end':
        this.end = fromWire<SessionEnd>(frame.end);
        this.end.counters = { ...zeroCounters(), ...this.end.counters };
    }
  }

  /** an intact frame h at off ends the damaged stretch open since `stretch` (if any); frames missing from the sequence are damage too */
  private closeStretch(stretch: number | null, off: number, h: FrameHead, at: Cursor, why: string): void {
    const frames = (h.seq - at.seq - 1) >>> 0;
    if (stretch === null && frames === 0) return;
    this.addDamage({ offset: stretch ?? off, bytes: stretch === null ? 0 : off - stretch, frames, lostRecords: h.records - at.records, why: stretch === null ? missing(at.seq + 1, h.seq - 1) : why });
  }

  /** damage from offset to the end of the file: at least one frame (or the good heads seen in it), records unknown */
  private damageToEnd(offset: number, why: string, frames = 1): void {
    this.addDamage({ offset, bytes: this.file.size - offset, frames: Math.max(frames, 1), lostRecords: null, why });
  }

  private addDamage(d: Damage): void {
    this.damagedFrames += d.frames;
    this.damagedBytes += d.bytes;
    if (d.lostRecords === null) this.lostUnknown = true;
    else this.lostRecords += d.lostRecords;
    if (this.damage.length < DAMAGE_LISTED) this.damage.push(d);
  }

  /** between frames: lets the sink drain after a chunk was read, and reports progress when due */
  private async tick(off: number): Promise<void> {
    if (this.opts.drain && this.file.reads !== this.drainedReads) {
      this.drainedReads = this.file.reads;
      await this.opts.drain();
    }
    if (!this.opts.onProgress) return;
    const now = performance.now();
    if (off < this.nextProgressBytes && now < this.nextProgressMs) return;
    this.nextProgressBytes = off + PROGRESS_BYTES;
    this.nextProgressMs = now + PROGRESS_MS;
    this.opts.onProgress({ bytesRead: off, totalBytes: this.file.size, records: this.records, frames: this.frames });
  }

  /**
   * The first frame does not read as a header. Read as an older version, a
   * version-4 frame head near the start means the header frame is what is
   * damaged (its marker with it).
   */
  private notRecording(lookForFrames = true): TcptraceError {
    const limit = Math.min(this.file.size, HEADER_SEARCH);
    const near = lookForFrames ? this.file.bytes(0, limit)! : Buffer.alloc(0);
    for (let i = near.indexOf(FRAME_MARKER); i >= 0 && i + FRAME_HEAD <= limit; i = near.indexOf(FRAME_MARKER, i + 1)) {
      if (readFrameHead(near, i)) return new TcptraceError('BAD_INPUT', `${this.path}: the recording's header frame is damaged (a frame follows at byte ${i}): without it the recording cannot be read`);
    }
    return new TcptraceError('BAD_INPUT', `${this.path}: not a tcptrace recording`);
  }

  /** an older version's file cut inside its header frame still shows the header's first key (msgpack map, "t": "header") */
  private headerBegins(): boolean {
    const start = this.file.bytes(0, Math.min(this.file.size, 32))!;
    return start.subarray(4).includes('header');
  }

  private tooShort(): TcptraceError {
    return new TcptraceError('BAD_INPUT', `${this.path}: ${this.file.size} bytes, cut short inside its header frame: not a readable tcptrace recording`);
  }

  private unknownVersion(what: string): TcptraceError {
    return new TcptraceError('BAD_INPUT', `${this.path}: recording format version ${what} (this tcptrace reads versions ${RECORD_VERSIONS_READ.join(', ')}; it writes ${RECORD_VERSION})`);
  }
}

/** "frame 7 missing", "frames 7 to 9 missing" */
function missing(from: number, to: number): string {
  return from === to ? `frame ${from} missing` : `frames ${from} to ${to >>> 0} missing`;
}

/** h can come after the cursor: a later seq (modulo 2^32, within half the range) and no fewer records */
function follows(h: FrameHead, at: Cursor): boolean {
  return ((h.seq - at.seq - 1) >>> 0) < 0x8000_0000 && h.records >= at.records;
}

/** the frame, decoded, when it is intact and usable; else what is wrong with it */
function frameFault(h: FrameHead, payload: Buffer): Record<string, unknown> | string {
  if (!payloadIntact(h, payload)) return 'bad payload checksum';
  const frame = tryDecode(payload);
  if (!frame) return 'checksum good but not valid msgpack';
  if (h.seq !== 0 && !usable(frame)) return `unknown frame type ${String(frame.t)}`;
  return frame;
}

function tryDecode(body: Buffer): Record<string, unknown> | null {
  try {
    const frame = decodeFrame(body);
    return frame && typeof frame === 'object' && !Array.isArray(frame) ? frame : null;
  } catch {
    return null;
  }
}

/** a frame type the sink takes, with what it needs (a batch's bytes) */
function usable(frame: Record<string, unknown>): boolean {
  return FRAME_TYPES.has(frame.t as string) && (frame.t !== 'batch' || Buffer.isBuffer(frame.data));
}
