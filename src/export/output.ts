/**
 * Where an export goes: a file (written synchronously, chunk by chunk), stdout
 * ('-'), or either through gzip (`.gz`). Gzip runs as a stream on the thread
 * pool; drain() lets the reader wait for it between chunks of the recording,
 * so compressed output never piles up in memory.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { once } from 'node:events';
import { createGzip, type Gzip } from 'node:zlib';
import { TcptraceError } from '../errors.js';

export class OutputFile {
  private fd: number;
  private gzip: Gzip | null = null;
  private failure: Error | null = null;
  /** bytes handed to write(), before compression */
  bytesIn = 0;
  /** bytes written to the file */
  bytesOut = 0;

  constructor(
    readonly path: string,
    compress: boolean,
  ) {
    try {
      this.fd = path === '-' ? 1 : openSync(path, 'w', 0o644);
    } catch (err) {
      throw new TcptraceError('CANNOT_WRITE', `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (compress) {
      this.gzip = createGzip({ level: 6 });
      this.gzip.on('data', (chunk: Buffer) => {
        try {
          this.writeOut(chunk);
        } catch {
          // kept in failure: the next write() or close() throws it
        }
      });
      this.gzip.on('error', (err) => (this.failure ??= err));
    }
  }

  write(buf: Uint8Array): void {
    if (this.failure) throw this.fail(this.failure);
    this.bytesIn += buf.length;
    if (this.gzip) this.gzip.write(buf);
    else this.writeOut(buf);
  }

  /** resolves once compressed output has caught up (at once when not compressing) */
  async drain(): Promise<void> {
    if (this.gzip?.writableNeedDrain) await once(this.gzip, 'drain');
  }

  async close(): Promise<void> {
    if (this.gzip) {
      const done = once(this.gzip, 'end');
      this.gzip.end();
      this.gzip.resume();
      await done;
    }
    if (this.failure) throw this.fail(this.failure);
    if (this.fd !== 1) closeSync(this.fd);
  }

  private writeOut(buf: Uint8Array): void {
    let off = 0;
    try {
      while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    } catch (err) {
      throw this.fail(err as Error);
    }
    this.bytesOut += buf.length;
  }

  private fail(err: Error): TcptraceError {
    this.failure = err;
    return new TcptraceError('CANNOT_WRITE', `cannot write ${this.path}: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
  }
}
