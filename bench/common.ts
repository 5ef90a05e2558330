/** What every benchmark under bench/ shares: paths, options, the tracer child, medians, the table. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(ROOT, 'bin/tcptrace.js');

/** One option of a benchmark: its default, what values it takes, and its line in --help. */
export interface BenchOption {
  default: string;
  /** how --help names the default, when not by its value */
  defaultText?: string;
  /** count: a whole number >= 1; number: >= 0; text: anything; flag: no value ('1' when given, else the default) */
  kind: 'count' | 'number' | 'text' | 'flag';
  help: string;
}

/** The options every benchmark takes: the steal bar of belowSteal(). */
const STEAL_OPTIONS: Record<string, BenchOption> = {
  'max-steal': { default: '10', kind: 'number', help: 'a run whose steal (the hypervisor\'s share of the CPU) is above this percentage is measured again' },
  retries: { default: '3', kind: 'number', help: 'at most this many re-measurements of a run (a run still above the bar is kept, and counted)' },
};

/** Bad command-line input: a one-line message, exit 2 (a failed benchmark exits 1). */
export class UsageError extends Error {}

function usageExit(err: UsageError): never {
  process.stderr.write(`bench: ${err.message}\n`);
  process.exit(2);
}

/**
 * Parses the command line strictly (node:util parseArgs): --help prints the
 * usage and the options and exits 0; an unknown option, a missing value or a
 * bad number is one line and exit 2, never a silent default (`--help` once
 * started the whole 20-minute benchmark). With `steal`, also the steal options.
 */
export function parseOptions(usage: string, spec: Record<string, BenchOption>, { steal = false, positionals = false } = {}): { values: Record<string, string>; positionals: string[] } {
  const all = { ...spec, ...(steal ? STEAL_OPTIONS : {}) };
  const help = () =>
    `${usage}\n\noptions:\n${Object.entries(all)
      .map(([k, o]) => `  --${k.padEnd(12)} ${o.help}${o.kind === 'flag' ? '' : ` (default: ${o.defaultText ?? (o.default || 'none')})`}`)
      .join('\n')}\n  --help         this text\n`;
  let parsed;
  try {
    parsed = parseArgs({
      options: { ...Object.fromEntries(Object.entries(all).map(([k, o]) => [k, { type: o.kind === 'flag' ? ('boolean' as const) : ('string' as const) }])), help: { type: 'boolean' } },
      allowPositionals: positionals,
      strict: true,
    });
  } catch (err) {
    usageExit(new UsageError(`${(err as Error).message.split('\n')[0]} (see --help)`));
  }
  if (parsed.values.help) {
    process.stdout.write(help());
    process.exit(0);
  }
  const values: Record<string, string> = {};
  for (const [k, o] of Object.entries(all)) {
    const given = (parsed.values as Record<string, string | boolean | undefined>)[k];
    const v = given === true ? '1' : typeof given === 'string' ? given : o.default;
    const n = Number(v);
    if (o.kind === 'count' && !(Number.isInteger(n) && n >= 1)) usageExit(new UsageError(`--${k} wants a whole number >= 1, not '${v}' (see --help)`));
    if (o.kind === 'number' && !(v !== '' && Number.isFinite(n) && n >= 0)) usageExit(new UsageError(`--${k} wants a number >= 0, not '${v}' (see --help)`));
    values[k] = v;
  }
  if (steal) {
    maxSteal = Number(values['max-steal']) / 100;
    retries = Math.floor(Number(values.retries));
  }
  return { values, positionals: parsed.positionals };
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * A 95 % interval for the median of xs: the 2.5th and 97.5th percentiles of the
 * medians of `n` resamples drawn with replacement (percentile bootstrap). On
 * this kind of machine a single run moves by ±10 %; the interval says whether
 * a median's distance to a target is more than that noise. Seeded, so that
 * the same runs always print the same interval.
 */
export function medianInterval(xs: number[], n = 2000): [number, number] {
  if (xs.length < 2) return [xs[0] ?? NaN, xs[0] ?? NaN];
  let seed = 0x9e3779b9;
  const rand = () => {
    // xorshift32: deterministic and good enough to pick indices
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const meds: number[] = [];
  for (let i = 0; i < n; i++) meds.push(median(xs.map(() => xs[Math.floor(rand() * xs.length)])));
  meds.sort((a, b) => a - b);
  return [meds[Math.floor(0.025 * (n - 1))], meds[Math.ceil(0.975 * (n - 1))]];
}

/** Paired ratios' cells: median [min-max], and the median's 95 % interval; the baseline's own row gets '1' and '-'. */
export function ratioCells(ratios: number[], isBaseline: boolean): [string, string] {
  if (isBaseline) return ['1', '-'];
  const f = (v: number) => v.toFixed(3);
  return [`${f(median(ratios))} [${f(Math.min(...ratios))}-${f(Math.max(...ratios))}]`, medianInterval(ratios).map(f).join('-')];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Clock ticks per second, the unit of /proc/stat and /proc/PID/stat CPU times. */
export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);

/** Round r's order of the conditions: rotated by r, reversed on odd rounds, so no condition always follows the same one. */
export function roundOrder<T>(items: T[], r: number): T[] {
  const order = items.map((_, i) => items[(i + r) % items.length]);
  return r % 2 ? order.reverse() : order;
}

/**
 * The whole box's CPU time in ticks, from the first line of /proc/stat: busy
 * (user, nice, system, irq, softirq), idle (idle, iowait) and steal (time the
 * hypervisor gave the vCPUs to someone else).
 */
export interface BoxCpu {
  busy: number;
  idle: number;
  steal: number;
}

export function boxCpu(): BoxCpu {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  return { busy: f[0] + f[1] + f[2] + f[5] + f[6], idle: f[3] + f[4], steal: f[7] ?? 0 };
}

export const cpuDelta = (a: BoxCpu, b: BoxCpu): BoxCpu => ({ busy: b.busy - a.busy, idle: b.idle - a.idle, steal: b.steal - a.steal });

/** One measured load run: its throughput, and what it cost the whole box. */
export interface Sample {
  rps: number;
  /** busy CPU of the whole box per connection served, in us (every process, the kernel and tcptrace's agent) */
  usPerConn: number;
  /** the share of the vCPUs' time the hypervisor took */
  steal: number;
}

export function sampleOf(rps: number, seconds: number, d: BoxCpu): Sample {
  return { rps, usPerConn: (d.busy * (1e6 / CLK_TCK)) / (rps * seconds), steal: d.steal / (d.busy + d.idle + d.steal || 1) };
}

/**
 * Runs whose steal is above --max-steal (percent, default 10) are measured
 * again, up to --retries times (default 3), 5 s later: the method of
 * ../shared/reference/peer-overhead.md, which retried runs with foreign load.
 * Steal here comes in bursts of minutes (0-2 % in one round, 20-40 % in the
 * next), and a run's CPU per connection climbs with it (spinlock holders
 * descheduled), whatever the condition. A run still above after the retries
 * is kept, and counted.
 */
let maxSteal = 0.1;
let retries = 3;

export interface StealLog {
  retried: number;
  /** kept although above the bar (--max-steal): every retry was too */
  keptAbove: number;
}

export async function belowSteal<T extends Sample>(measure: () => Promise<T>, log: StealLog, note: (x: T) => void): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const x = await measure();
    if (x.steal <= maxSteal) return x;
    if (attempt === retries) {
      log.keptAbove++;
      return x;
    }
    log.retried++;
    note(x);
    await sleep(5000);
  }
}

/** the line under a table: how many runs the steal bar sent back */
export const stealNote = (log: StealLog, runs: number): string =>
  `steal above ${(maxSteal * 100).toFixed(0)} %: ${log.retried} runs measured again; ${log.keptAbove} of the ${runs} kept still above it after every retry\n`;

/** a sample on a progress line: "  10342 req/s  140.1 us/conn  steal 3 %" */
export const sampleNote = (x: Sample): string => `${x.rps.toFixed(0).padStart(7)} req/s  ${x.usPerConn.toFixed(1)} us/conn  steal ${(x.steal * 100).toFixed(0)} %`;

/**
 * The columns pairedCells() fills: each condition against the baseline of the
 * same round, as a req/s ratio (what the targets are stated in) and as a CPU
 * cost ratio (the baseline's busy CPU per connection over the condition's: the
 * throughput ratio of a CPU-bound server, which does not follow the steal).
 */
export const PAIRED_HEADER = [
  'req/s (median)',
  'req/s ratio, paired: median [min-max]',
  '95 % interval',
  'CPU cost ratio, paired: median [min-max]',
  '95 % interval',
  'busy CPU us / conn (median)',
  'steal (median)',
];

export function pairedCells(rs: Sample[], base: Sample[], isBaseline: boolean): string[] {
  return [
    median(rs.map((x) => x.rps)).toFixed(0),
    ...ratioCells(
      rs.map((x, i) => x.rps / base[i].rps),
      isBaseline,
    ),
    ...ratioCells(
      rs.map((x, i) => base[i].usPerConn / x.usPerConn),
      isBaseline,
    ),
    median(rs.map((x) => x.usPerConn)).toFixed(1),
    `${(median(rs.map((x) => x.steal)) * 100).toFixed(0)} %`,
  ];
}

export interface Tracer {
  proc: ChildProcess;
  stdout: string[];
  stderr: string[];
  exited: Promise<void>;
}

/** Starts a tracer and resolves once `ready` shows on its stdout or stderr. */
export function spawnTracer(cmd: string, argv: string[], ready: RegExp): Promise<Tracer> {
  const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const off = onInterrupt(() => proc.kill('SIGKILL'));
  const t: Tracer = { proc, stdout: [], stderr: [], exited: new Promise((r) => proc.on('exit', () => (off(), r()))) };
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${cmd} not ready in 20 s: ${t.stderr.join('')}`)), 20_000);
    const check = (s: string) => {
      if (ready.test(s)) {
        clearTimeout(timer);
        resolve(t);
      }
    };
    proc.stdout!.on('data', (d: Buffer) => {
      t.stdout.push(d.toString());
      out += d.toString().slice(0, 4096);
      check(out);
    });
    proc.stderr!.on('data', (d: Buffer) => {
      t.stderr.push(d.toString());
      check(t.stderr.join(''));
    });
    proc.on('exit', (c) => reject(new Error(`${cmd} exited (${c}): ${t.stderr.join('')}`)));
  });
}

/** SIGINT by pid, and wait for the exit (the tracer prints its report then). */
export async function stopTracer(t: Tracer): Promise<void> {
  process.kill(t.proc.pid!, 'SIGINT');
  await t.exited;
}

/** A markdown table, columns padded to their widest cell; the first row is the header. */
export function table(rows: string[][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const out = rows.map((r) => '| ' + r.map((c, i) => c.padEnd(w[i])).join(' | ') + ' |');
  out.splice(1, 0, '| ' + w.map((n) => '-'.repeat(n)).join(' | ') + ' |');
  return out.join('\n') + '\n';
}

/** what a benchmark started and must stop if it is interrupted: newest first */
const started: (() => void)[] = [];

/** fn stops something the benchmark started, if it is interrupted before the returned function is called */
export function onInterrupt(fn: () => void): () => void {
  started.push(fn);
  return () => {
    const i = started.indexOf(fn);
    if (i >= 0) started.splice(i, 1);
  };
}

/** a child (an idle target, the peer tool) killed by its pid if the benchmark is interrupted while it runs */
export function killOnInterrupt<T extends ChildProcess>(proc: T): T {
  const off = onInterrupt(() => proc.kill('SIGKILL'));
  proc.on('exit', off);
  return proc;
}

/** A signal, or output nobody reads any more (| head): stop what was started (by pid), then exit. */
function interrupted(why: string, code: number): never {
  for (const fn of started.splice(0).reverse()) {
    try {
      fn();
    } catch {
      // the rest still get stopped
    }
  }
  try {
    process.stderr.write(`bench: ${why}: stopped what it had started\n`);
  } catch {
    // stderr is the stream that failed
  }
  process.exit(code);
}

/** Runs a benchmark's main: one line on stderr and exit 1 on failure, 2 on bad usage; 128+N on signal N. */
export function run(main: () => Promise<void>): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => interrupted(sig, 128 + constants.signals[sig]));
  for (const stream of [process.stdout, process.stderr]) stream.on('error', (err: NodeJS.ErrnoException) => interrupted(`output closed (${err.code})`, 1));
  main().catch((err: Error) => {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  });
}
