/** Facts about this host: kernel release, hostname, clocks. */
import { hostname, release } from 'node:os';
import { readFileSync } from 'node:fs';

export function osRelease(): string {
  return release();
}

export function hostName(): string {
  return hostname();
}

/**
 * CLOCK_MONOTONIC (what bpf_ktime_get_ns returns) in ns. Node's hrtime is
 * CLOCK_MONOTONIC on Linux, so BPF timestamps and this compare directly.
 */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

/** Wall-clock ns at monotonic 0: wall = boot + monotonic. Sampled once, recorded in headers. */
export function clockMapping(): { monotonicNs: bigint; wallNs: bigint } {
  const mono = monotonicNs();
  const wall = BigInt(Date.now()) * 1_000_000n;
  return { monotonicNs: mono, wallNs: wall };
}

export function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}
