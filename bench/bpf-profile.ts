/**
 * The kernel side of a tracer's cost, measured per BPF program: the kernel's
 * own run counters (`kernel.bpf_stats_enabled`, 5.1+), read with bpftool
 * around one load run. Stats are on only while profiling: they put a clock
 * read around every program run (about 0.08 us a run here, included in the
 * times), so the paired rounds never run with them.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const STATS = '/proc/sys/kernel/bpf_stats_enabled';

export interface ProgCount {
  id: number;
  name: string;
  runs: number;
  ns: number;
}

/** every loaded BPF program's run counters (zero while stats are off) */
export function progCounts(): Map<number, ProgCount> {
  const r = spawnSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`bpftool prog show: ${r.stderr.trim() || `exit ${r.status}`}`);
  const out = new Map<number, ProgCount>();
  for (const p of JSON.parse(r.stdout) as { id: number; name?: string; run_cnt?: number; run_time_ns?: number }[])
    out.set(p.id, { id: p.id, name: p.name ?? `prog ${p.id}`, runs: p.run_cnt ?? 0, ns: p.run_time_ns ?? 0 });
  return out;
}

/** Runs fn with BPF run-time stats on, and puts the setting back however fn ends. */
export async function withBpfStats<T>(fn: () => Promise<T>): Promise<T> {
  const was = readFileSync(STATS, 'utf8').trim();
  writeFileSync(STATS, '1');
  try {
    return await fn();
  } finally {
    writeFileSync(STATS, was);
  }
}

/** What one program did over a run, per connection served. */
export interface ProgCost {
  name: string;
  runsPerConn: number;
  nsPerRun: number;
}

/**
 * The programs in `after` that were not loaded in `before0` (the tracer's: the
 * bench loads nothing else), with what they ran between `before` and `after`.
 */
export function programCosts(before0: Map<number, ProgCount>, before: Map<number, ProgCount>, after: Map<number, ProgCount>, conns: number): ProgCost[] {
  const byName = new Map<string, { runs: number; ns: number }>();
  for (const [id, a] of after) {
    if (before0.has(id)) continue;
    const b = before.get(id) ?? { runs: 0, ns: 0 };
    const runs = a.runs - b.runs;
    if (runs <= 0) continue;
    const x = byName.get(a.name) ?? { runs: 0, ns: 0 };
    x.runs += runs;
    x.ns += a.ns - b.ns;
    byName.set(a.name, x);
  }
  return [...byName]
    .map(([name, x]) => ({ name, runsPerConn: x.runs / conns, nsPerRun: x.ns / x.runs }))
    .sort((p, q) => q.runsPerConn * q.nsPerRun - p.runsPerConn * p.nsPerRun);
}

/** total BPF time per connection, in us */
export const bpfUsPerConn = (costs: ProgCost[]): number => costs.reduce((a, c) => a + c.runsPerConn * c.nsPerRun, 0) / 1000;

/** "tp_btf_state 10.1 x 0.32" for the n costliest programs */
export const costNote = (costs: ProgCost[], n = 4): string =>
  costs
    .slice(0, n)
    .map((c) => `${c.name} ${c.runsPerConn.toFixed(1)} x ${(c.nsPerRun / 1000).toFixed(2)}`)
    .join(', ');
