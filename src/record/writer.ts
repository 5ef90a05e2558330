/**
 * A TraceSink that writes a recording (see format.ts). Batches are written on
 * an interval; into a regular file, write-behind (native/write_behind.h) then
 * writes back and drops all but the last flush from the page cache.
 */
import { closeSync, fstatSync, fsyncSync, openSync, writevSync } from 'node:fs';
import { constants } from 'node:os';
import { BpfError, TcptraceError } from '../errors.js';
import { logger } from '../log.js';
import { native } from '../native.js';
import type { PresentEvent } from '../model/events.js';
import type { ResolvedStack } from '../stacks/types.js';
import type { Counters, SessionEnd, SessionInfo, TraceSink } from '../trace/types.js';
import { batchFrameHead, encodeFrame, RECORD_FORMAT, RECORD_VERSION, toWire } from './format.js';

const IOV_MAX = 1024;
/** pending bytes that are written at once rather than at the next interval */
const FLUSH_BYTES = 8 << 20;
const log = logger('record');
/** write-behind failures that mean written data did not reach the disk */
const LOST_DATA = new Set([constants.errno.EIO, constants.errno.ENOSPC, constants.errno.EDQUOT]);

export class RecordWriter implements TraceSink {
  private fd: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout;
  bytesWritten = 0;
  /** a regular file, not a pipe or a device (-o /dev/stdout): only it is fsynced and written behind */
  private readonly regular: boolean;
  /** write-behind: writeback queued up to `started`, pages dropped below `dropped`; one job at a time */
  private writeBehind: boolean;
  private started = 0;
  private dropped = 0;
  private behindJob: Promise<void> | null = null;
  /** the first write that failed: every call after it throws it, and nothing more is written */
  private failure: TcptraceError | null = null;

  constructor(
    readonly path: string,
    flushMs = 1000,
  ) {
    try {
      this.fd = openSync(path, 'w', 0o600);
    } catch (err) {
      throw new TcptraceError('CANNOT_WRITE', `cannot write ${path}: ${(err as Error).message}`);
    }
    this.regular = this.writeBehind = fstatSync(this.fd).isFile();
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
    this.enqueue(encodeFrame(payload));
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

  flush(): void {
    this.check();
    const bufs = this.pending;
    if (!bufs.length) return;
    this.pending = [];
    this.pendingBytes = 0;
    // one writev per IOV_MAX buffers, resumed after a short write
    for (let i = 0; i < bufs.length; ) {
      let n: number;
      try {
        n = writevSync(this.fd, bufs.slice(i, i + IOV_MAX));
      } catch (err) {
        throw this.failed(`${(err as Error).message}; the recording reads up to there (${this.bytesWritten} bytes)`);
      }
      this.bytesWritten += n;
      while (i < bufs.length && n >= bufs[i].length) n -= bufs[i++].length;
      if (n > 0) bufs[i] = bufs[i].subarray(n);
    }
    this.behind();
  }

  /** a flush while a job runs is covered by the next one */
  private behind(): void {
    if (!this.writeBehind || this.behindJob || this.bytesWritten === this.started) return;
    const [from, to] = [this.started, this.bytesWritten];
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

  /** resolves when no write-behind job is running */
  async idle(): Promise<void> {
    await this.behindJob;
  }

  begin(info: SessionInfo): void {
    this.push({ t: 'header', format: RECORD_FORMAT, version: RECORD_VERSION, info: toWire(info) });
    this.flush();
  }

  batch(buf: Buffer): void {
    this.enqueue(batchFrameHead(buf.length), buf);
  }

  stacks(items: ResolvedStack[]): void {
    this.push({ t: 'stacks', items: toWire(items) });
  }

  present(events: PresentEvent[]): void {
    this.push({ t: 'present', events: toWire(events) });
  }

  counters(c: Counters): void {
    this.push({ t: 'counters', c });
  }

  finish(end: SessionEnd): void {
    this.push({ t: 'end', end: toWire(end) });
    this.flush();
    clearInterval(this.timer);
    if (this.regular) fsyncSync(this.fd);
    closeSync(this.fd);
  }
}
