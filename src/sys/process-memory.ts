/**
 * Reads another process's memory through /proc/PID/mem (what process_vm_readv
 * reads, with the same ptrace-read permission: root, or CAP_SYS_PTRACE). Only
 * reads: nothing is ever written into a target. Everything read is untrusted
 * (the process may be changing it, or be gone): every length is capped, and a
 * read that fails returns null instead of throwing.
 */
import { closeSync, openSync, readSync } from 'node:fs';

export const MAX_READ = 1 << 20;

export class ProcessMemory {
  private fd: number | null;
  reads = 0;
  failures = 0;

  constructor(readonly pid: number) {
    this.fd = openSync(`/proc/${pid}/mem`, 'r');
  }

  /** len bytes at addr, or null (unmapped, process gone, len out of bounds) */
  read(addr: bigint | number, len: number): Buffer | null {
    const a = typeof addr === 'bigint' ? Number(addr) : addr;
    if (this.fd === null || !Number.isSafeInteger(a) || a <= 0 || len <= 0 || len > MAX_READ) return null;
    this.reads++;
    const b = Buffer.alloc(len);
    try {
      if (readSync(this.fd, b, 0, len, a) === len) return b;
    } catch {
      /* EIO: not mapped; ESRCH: gone */
    }
    this.failures++;
    return null;
  }

  u64(addr: bigint | number): bigint | null {
    const b = this.read(addr, 8);
    return b ? b.readBigUInt64LE(0) : null;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
