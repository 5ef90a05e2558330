/** A TraceSink that writes a recording (see format.ts). */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { TcptraceError } from '../errors.js';
import type { PresentEvent } from '../model/events.js';
import type { ResolvedStack } from '../stacks/types.js';
import type { Counters, SessionEnd, SessionInfo, TraceSink } from '../trace/types.js';
import { encodeFrame, RECORD_FORMAT, RECORD_VERSION, toWire } from './format.js';

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
    if (!this.pending.length) return;
    const buf = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off);
    this.bytesWritten += buf.length;
  }

  begin(info: SessionInfo): void {
    this.push({ t: 'header', format: RECORD_FORMAT, version: RECORD_VERSION, info: toWire(info) });
    this.flush();
  }

  batch(buf: Buffer): void {
    this.push({ t: 'batch', data: buf });
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
