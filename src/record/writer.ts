/**
 * A TraceSink that writes a recording (see format.ts). Batches are written on
 * an interval. A regular file is written with direct I/O (native/direct_writer.h):
 * whole blocks go to the disk from one reused buffer, past the page cache, on
 * the thread pool; less than a block is written through the page cache, so
 * that a quiet recorder that is killed still leaves what it flushed. Where
 * the file system refuses direct I/O, everything goes through the page cache
 * and write-behind (native/write_behind.h) writes back and drops all but the
 * last flush from it.
 */
import { closeSync, fstatSync, fsyncSync, openSync, writevSync } from 'node:fs';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { BpfError, TcptraceError } from '../errors.js';
import { logger } from '../log.js';
import { native, type NativeDirectWriter } from '../native.js';
import type { PresentEvent } from '../model/events.js';
import type { ResolvedStack } from '../stacks/types.js';
import type { Counters, SessionEnd, SessionInfo, TraceSink } from '../trace/types.js';
import { FrameEncoder, RECORD_FORMAT, RECORD_VERSION, toWire } from './format.js';

const IOV_MAX = 1024;
/** pending bytes that are written at once rather than at the next interval */
const FLUSH_BYTES = 8 << 20;
/** the most one direct write takes (the rest: the next one), which bounds its aligned buffer */
const DIRECT_MAX = 16 << 20;
/**
 * The backlog direct I/O may build when the disk is slower than the trace:
 * past it, whole batches are dropped and counted (as dropped in the agent, in
 * the recording's counters). Direct writes do not block the agent as writes
 * through the page cache do (which leave it to the ring poller to drop, when
 * its hand-overs back up), so without a bound the backlog would grow in memory.
 */
const BACKLOG_MAX = 256 << 20;
const log = logger('record');
/** write-behind failures that mean written data did not reach the disk */
const LOST_DATA = new Set([constants.errno.EIO, constants.errno.ENOSPC, constants.errno.EDQUOT]);

export class RecordWriter implements TraceSink {
  private fd: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout;
  /** numbers the frames and counts the records before each (format.ts) */
  private readonly frames = new FrameEncoder();
  private written = 0;
  /** a regular file, not a pipe or a device (-o /dev/stdout): only it is written direct or behind, and fsynced */
  private readonly regular: boolean;
  /** direct I/O of whole blocks, one write at a time; null: through the page cache */
  private direct: NativeDirectWriter | null = null;
  private directJob: Promise<void> | null = null;
  /** write-behind: writeback queued up to `started`, pages dropped below `dropped`; one job at a time */
  private writeBehind: boolean;
  private started = 0;
  private dropped = 0;
  private behindJob: Promise<void> | null = null;
  private readonly backlogMax: number;
  /** batches dropped past backlogMax, and their bytes */
  private shedBatches = 0;
  private shedBytes = 0;
  /** the first write that failed: every call after it throws it, and nothing more is written */
  private failure: TcptraceError | null = null;

  /** direct: false writes a regular file through the page cache too; both options are for tests */
  constructor(
    readonly path: string,
    flushMs = 1000,
    { direct = true, backlogMax = BACKLOG_MAX }: { direct?: boolean; backlogMax?: number } = {},
  ) {
    this.backlogMax = backlogMax;
    try {
      this.fd = openSync(path, 'w', 0o600);
    } catch (err) {
      throw new TcptraceError('CANNOT_WRITE', `cannot write ${path}: ${(err as Error).message}`);
    }
    this.regular = fstatSync(this.fd).isFile();
    if (this.regular && direct) this.direct = openDirect(path);
    this.writeBehind = this.regular && !this.direct;
    this.timer = setInterval(() => {
      try {
        this.flush();
      } catch {
        // failed() kept it (a full disk): the session's next call throws it
      }
    }, flushMs);
    this.timer.unref();
  }

  /** buffers are kept, not copied, until written: the agent hands over batches it never reuses */
  private enqueue(...bufs: Buffer[]): void {
    this.check();
    for (const b of bufs) {
      this.pending.push(b);
      this.pendingBytes += b.length;
    }
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
  }

  private push(payload: unknown): void {
    this.enqueue(this.frames.frame(payload));
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  /** keeps the first write error (every later call throws it) and stops the interval flush */
  private failed(why: string): TcptraceError {
    this.failure ??= new TcptraceError('CANNOT_WRITE', `cannot write ${this.path}: ${why}`);
    clearInterval(this.timer);
    return this.failure;
  }

  /** a failed write's why, and what a reader of the file gets: its size (direct I/O's partial block included), or what a stream was given */
  private readsUpTo(why: string): string {
    let bytes = this.written;
    try {
      if (this.regular) bytes = fstatSync(this.fd).size;
    } catch {
      // the written count stands
    }
    return `${why}; the recording reads up to there (${bytes} bytes)`;
  }

  /** how the file is written: direct I/O, through the page cache (written behind), or a stream (pipe, device) */
  get mode(): 'direct' | 'page cache' | 'stream' {
    return this.direct ? 'direct' : this.regular ? 'page cache' : 'stream';
  }

  /** batches (and bytes) dropped because the disk did not keep up with direct I/O */
  get shed(): { batches: number; bytes: number } {
    return { batches: this.shedBatches, bytes: this.shedBytes };
  }

  /** the byte count of the file's content a flush has handed to the kernel */
  get bytesWritten(): number {
    return this.written;
  }

  flush(): void {
    this.check();
    if (this.direct) return this.flushDirect();
    if (!this.pending.length) return;
    this.writeAt(this.pending, this.written);
    this.consumed(this.pendingBytes);
    this.behind();
  }

  /**
   * Whole blocks to the direct writer, unless it is busy (the next flush takes
   * them). Less than a block: through the page cache, at its offset, to be
   * written again whole by a later direct write. Only then: written beside a
   * direct write, it would lie past a hole if that write failed (a full disk).
   */
  private flushDirect(): void {
    if (this.directJob || !this.pending.length) return;
    const align = native().DirectWriter.align;
    const whole = Math.min(this.pendingBytes - (this.pendingBytes % align), DIRECT_MAX);
    if (!whole) return this.writeAt(this.pending, this.written);
    const at = this.written;
    this.directJob = this.direct!.write(headOf(this.pending, whole), at)
      .then(
        (n) => this.consumed(n),
        (err: BpfError) => {
          if (err.errno === constants.errno.EINVAL && at === 0) {
            // refused at the first write (an alignment the file system wants larger): through the page cache
            refused(this.path, err);
            this.direct?.close();
            this.direct = null;
            this.writeBehind = true;
          } else this.failed(this.readsUpTo(`${getSystemErrorName(-err.errno)}: ${err.message}`));
        },
      )
      .finally(() => {
        this.directJob = null;
        try {
          if (this.pendingBytes >= FLUSH_BYTES) this.flush();
        } catch {
          // failed() kept it: the session's next call throws it
        }
      });
  }

  /** every buffer whole at offset (null: a pipe or device, at its position); one writev per IOV_MAX, resumed after a short one */
  private writeAt(bufs: Buffer[], offset: number): void {
    const at = this.regular ? offset : null;
    let done = 0;
    for (let i = 0; i < bufs.length; ) {
      let n: number;
      try {
        n = writevSync(this.fd, bufs.slice(i, i + IOV_MAX), at === null ? undefined : at + done);
      } catch (err) {
        throw this.failed(this.readsUpTo((err as Error).message));
      }
      done += n;
      while (i < bufs.length && n >= bufs[i].length) n -= bufs[i++].length;
      if (n > 0) bufs = [...bufs.slice(0, i), bufs[i].subarray(n), ...bufs.slice(i + 1)];
    }
  }

  /** n bytes from the front of pending are in the file */
  private consumed(n: number): void {
    this.written += n;
    this.pendingBytes -= n;
    let i = 0;
    while (i < this.pending.length && n >= this.pending[i].length) n -= this.pending[i++].length;
    this.pending.splice(0, i);
    if (n > 0) this.pending[0] = this.pending[0].subarray(n);
  }

  /** a flush while a job runs is covered by the next one */
  private behind(): void {
    if (!this.writeBehind || this.behindJob || this.written === this.started) return;
    const [from, to] = [this.started, this.written];
    let job: Promise<void>;
    try {
      job = native().writeBehind(this.fd, from, to, this.dropped);
    } catch (err) {
      job = Promise.reject(err); // dup() failed (EMFILE): handled below like any other failure
    }
    this.behindJob = job
      .then(
        () => {
          [this.dropped, this.started] = [from, to];
          log.trace({ dropped: from, started: to }, 'write-behind');
        },
        (err: BpfError) => {
          this.writeBehind = false;
          if (LOST_DATA.has(err.errno)) {
            // data the recording lost: the next call throws it
            this.failed(err.message);
          } else {
            // a file system without writeback control: the page cache is left to the kernel
            log.info({ err: err.message }, `write-behind off for ${this.path}`);
          }
        },
      )
      .finally(() => {
        this.behindJob = null;
      });
  }

  /** resolves when no direct write or write-behind job is running */
  async idle(): Promise<void> {
    while (this.directJob || this.behindJob) await (this.directJob ?? this.behindJob);
  }

  begin(info: SessionInfo): void {
    this.push({ t: 'header', format: RECORD_FORMAT, version: RECORD_VERSION, info: toWire(info) });
    this.flush();
  }

  batch(buf: Buffer, records?: number): void {
    this.check();
    if (this.direct && this.pendingBytes + buf.length > this.backlogMax) {
      if (!this.shedBatches++) log.warn({ path: this.path, backlogBytes: this.pendingBytes }, 'the disk does not keep up with the recording: batches are dropped, and counted');
      this.shedBytes += buf.length;
      return;
    }
    this.enqueue(this.frames.batchFrameHead(buf, records), buf);
  }

  /** c, with the batches dropped here counted as dropped in the agent (as the recording has them) */
  withShed(c: Counters): Counters {
    return this.shedBatches ? { ...c, droppedBatches: c.droppedBatches + this.shedBatches, droppedBytes: c.droppedBytes + this.shedBytes } : c;
  }

  stacks(items: ResolvedStack[]): void {
    this.push({ t: 'stacks', items: toWire(items) });
  }

  present(events: PresentEvent[]): void {
    this.push({ t: 'present', events: toWire(events) });
  }

  counters(c: Counters): void {
    this.push({ t: 'counters', c: this.withShed(c) });
  }

  /** the rest, direct I/O's partial last block included, through the page cache; then fsync */
  async finish(end: SessionEnd): Promise<void> {
    clearInterval(this.timer);
    try {
      this.push({ t: 'end', end: toWire({ ...end, counters: this.withShed(end.counters) }) });
      while (this.directJob) await this.directJob;
      this.direct?.close();
      this.direct = null;
      this.flush();
      if (this.regular) fsyncSync(this.fd);
    } finally {
      closeSync(this.fd);
    }
  }
}

/** a direct writer for path, or null (logged) where the file system refuses O_DIRECT */
function openDirect(path: string): NativeDirectWriter | null {
  try {
    return new (native().DirectWriter)(path);
  } catch (err) {
    refused(path, err as Error);
    return null;
  }
}

function refused(path: string, err: Error): void {
  log.info({ err: err.message }, `direct I/O refused for ${path}: writing through the page cache`);
}

/** the first n bytes of bufs (whole buffers and, last, a view of part of one) */
function headOf(bufs: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of bufs) {
    if (n <= 0) break;
    out.push(n >= b.length ? b : b.subarray(0, n));
    n -= b.length;
  }
  return out;
}
