/** A TraceSink that writes a recording (see format.ts). */
import { closeSync, fsyncSync, openSync, writevSync } from 'node:fs';
import { TcptraceError } from '../errors.js';
import type { PresentEvent } from '../model/events.js';
import type { ResolvedStack } from '../stacks/types.js';
import type { Counters, SessionEnd, SessionInfo, TraceSink } from '../trace/types.js';
import { batchFrameHead, encodeFrame, RECORD_FORMAT, RECORD_VERSION, toWire } from './format.js';

const IOV_MAX = 1024;

export class RecordWriter implements TraceSink {
  private fd: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout;
  bytesWritten = 0;

  constructor(
    readonly path: string,
    flushMs = 1000,
  ) {
    try {
      this.fd = openSync(path, 'w', 0o600);
    } catch (err) {
      throw new TcptraceError('NO_INPUT', `cannot write ${path}: ${(err as Error).message}`);
    }
    this.timer = setInterval(() => this.flush(), flushMs);
    this.timer.unref();
  }

  private push(payload: unknown): void {
    const f = encodeFrame(payload);
    this.pending.push(f);
    this.pendingBytes += f.length;
    if (this.pendingBytes >= 8 << 20) this.flush();
  }

  flush(): void {
    const bufs = this.pending;
    if (!bufs.length) return;
    const total = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    // one writev per IOV_MAX buffers, resumed after a short write
    for (let i = 0; i < bufs.length; ) {
      let n = writevSync(this.fd, bufs.slice(i, i + IOV_MAX));
      while (i < bufs.length && n >= bufs[i].length) n -= bufs[i++].length;
      if (n > 0) bufs[i] = bufs[i].subarray(n);
    }
    this.bytesWritten += total;
  }

  begin(info: SessionInfo): void {
    this.push({ t: 'header', format: RECORD_FORMAT, version: RECORD_VERSION, info: toWire(info) });
    this.flush();
  }

  /** batches are kept, not copied, until written: the agent hands over buffers it never reuses */
  batch(buf: Buffer): void {
    const head = batchFrameHead(buf.length);
    this.pending.push(head, buf);
    this.pendingBytes += head.length + buf.length;
    if (this.pendingBytes >= 8 << 20) this.flush();
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
    fsyncSync(this.fd);
    closeSync(this.fd);
  }
}
