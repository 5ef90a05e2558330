/**
 * Benchmark: nginx (one worker, its own config on 127.0.0.1) under wrk with
 * `Connection: close` (about 10 TCP state changes per request), in interleaved
 * rounds, one condition after another, so that every ratio is measured side by
 * side on this noisy machine:
 *   baseline          no tracer
 *   tcptrace hooks    tcptrace --pid <an idle process> --quiet --no-stacks: every
 *                     hook attached, nothing traced (what the hooks cost alone)
 *   tcptrace --pid    tcptrace --pid <worker> --quiet (the kernel summarises: sockets
 *                     that never enter CLOSE_WAIT stay in the kernel), with and
 *                     without stacks, and with --no-kernel-summary (every event sent)
 *   tcptrace record   tcptrace record, whole system, to a file; and with
 *                     --no-ring-per-cpu (one shared ring, what the per-CPU rings replaced)
 *   tcpstates         libbpf-tools tcpstates (the peer), output to a file
 *   floor             the issue's yardsticks (bench/floor/floor.bpf.c): a program
 *                     that only counts transitions, and one that sends each
 *                     to a ring buffer drained every 50 ms (no wake-ups)
 * Prints, per condition, paired with the baseline of the same round (median
 * [min-max], and a bootstrap 95 % interval for that median):
 *   req/s ratio     what the issue's targets are stated in
 *   CPU cost ratio  the baseline's busy CPU per connection (whole box: nginx,
 *                   wrk, the kernel, the agent) over the condition's: the
 *                   throughput ratio of a CPU-bound server. On a VM whose
 *                   hypervisor steals a varying share of the vCPUs (the steal
 *                   column; 20-60 % here) req/s follows the steal, by ±30 %
 *                   run to run, while CPU per connection moves by a few %.
 * and lost events, and agent CPU per connection served and per million records read.
 * Then one unpaired run per tracer with the kernel's BPF stats on (bpf-profile.ts):
 * each program's runs per connection and time per run, and the direct cost
 * ratio they and the agent's CPU make against the baseline's busy CPU.
 *
 * usage: node dist/bench/nginx.js [--rounds N] [--seconds S] [--conditions a,b,...] [--profile 0] [--max-steal PCT] [--retries N] (--help)
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { belowSteal, CLI, CLK_TCK, killOnInterrupt, median, PAIRED_HEADER, parseOptions, pairedCells, ROOT, roundOrder, run, sampleNote, sleep, spawnTracer, stealNote, stopTracer, table, type Sample, type StealLog, type Tracer } from './common.js';
import { measureWrk, startNginx, stopNginx, wrk } from './nginx-server.js';
import { bpfUsPerConn, costNote, programCosts, progCounts, withBpfStats, type ProgCost } from './bpf-profile.js';

const { values: OPT } = parseOptions(
  'usage: node dist/bench/nginx.js [options]   (npm run bench; root)\n\nnginx under wrk in interleaved rounds, each tracer condition paired with the baseline of its round.',
  {
    rounds: { default: '5', kind: 'count', help: 'rounds; each runs every condition once, in a rotating order' },
    seconds: { default: '10', kind: 'count', help: 'seconds of wrk per run' },
    conditions: { default: '', defaultText: 'all', kind: 'text', help: 'only the conditions whose names contain one of these comma-separated words (the baseline always runs)' },
    profile: { default: '1', kind: 'number', help: '0 skips the unpaired pass with BPF run-time stats after the rounds' },
  },
  { steal: true },
);
const ROUNDS = Number(OPT.rounds);
const SECONDS = Number(OPT.seconds);
/** --profile 0 skips the per-program pass after the rounds */
const PROFILE = OPT.profile !== '0';

/** a Sample's box CPU covers the wrk run and the tracer's drain */
interface Run extends Sample {
  events: number | null;
  lost: number | null;
  /** where the lost events went: ring (full ring buffer), missed (hook runs the kernel skipped), agent (batches dropped) */
  lostParts?: Record<string, number>;
  cpuS: number | null;
}

/** lost events, total and by cause */
function withLoss(lostParts: Record<string, number>): Pick<Run, 'lost' | 'lostParts'> {
  return { lost: Object.values(lostParts).reduce((a, v) => a + v, 0), lostParts };
}

type Condition = {
  name: string;
  start: (worker: number, dir: string) => Promise<Tracer | null>;
  /** read what only a running tracer tells (the agent's /metrics), before it is stopped */
  beforeStop?: (t: Tracer) => Promise<void>;
  finish: (t: Tracer, dir: string) => Promise<Omit<Run, keyof Sample | 'cpuS'>>;
};

/**
 * `tcptrace agent` on the whole host, attribution on (its default): what a fleet runs.
 * Events and losses come from its /metrics, scraped once before it stops.
 */
function agent(name: string, args: string[]): Condition {
  let port = 0;
  let counts: Record<string, number> = {};
  return {
    name,
    start: async () => {
      port = 20000 + Math.floor(Math.random() * 20000);
      return spawnTracer(process.execPath, [CLI, 'agent', '--listen', `127.0.0.1:${port}`, ...args], /tcptrace: agent tracing/);
    },
    beforeStop: async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      counts = {};
      for (const m of text.matchAll(/^(tcptrace_(?:events|lost_events|missed_in_kernel|dropped_batches)_total) (\S+)$/gm)) counts[m[1]!] = Number(m[2]);
    },
    finish: async () => ({
      events: counts.tcptrace_events_total ?? null,
      ...withLoss({ ring: counts.tcptrace_lost_events_total ?? 0, missed: counts.tcptrace_missed_in_kernel_total ?? 0, agent: counts.tcptrace_dropped_batches_total ?? 0 }),
    }),
  };
}

/** `tcptrace --pid P --quiet ... --format json`: events and losses from its report */
function jsonTrace(name: string, pid: (worker: number) => number, args: string[], onReport?: (doc: any) => void): Condition {
  return {
    name,
    start: (worker) => spawnTracer(process.execPath, [CLI, '--pid', String(pid(worker)), '--quiet', ...args, '--format', 'json'], /tcptrace: tracing/),
    finish: async (t) => {
      const doc = JSON.parse(t.stdout.join(''));
      onReport?.(doc);
      return { events: doc.counts.events, ...withLoss({ ring: doc.counts.lost, missed: doc.counts.missedInKernel, agent: doc.counts.droppedInAgent }) };
    },
  };
}

function cpuTicks(pid: number): number | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch {
    return null;
  }
}

const stackNotes: { captured: number; rateLimited: number; distinct: number; deduped?: number; recalled?: number; unwindMs?: number; symbolizeMs?: number }[] = [];

/** the idle process the hooks-only condition traces (nothing of the workload is its) */
let idle: ReturnType<typeof spawn> | null = null;

/** tcptrace record of the whole system, to a file of the run's folder */
function recording(name: string, args: string[]): Condition {
  return {
    name,
    start: (_w, dir) => spawnTracer(process.execPath, [CLI, 'record', ...args, '-o', join(dir, 'bench.tcptrace')], /tcptrace: recording/),
    finish: async (t) => {
      const m = /recorded (\d+) records .* lost (\d+), dropped (\d+) batches, missed in kernel (\d+)/.exec(t.stderr.join(''));
      if (!m) return { events: null, lost: null };
      return { events: Number(m[1]), ...withLoss({ ring: Number(m[2]), agent: Number(m[3]), missed: Number(m[4]) }) };
    },
  };
}

/** bench/floor in the checkout */
const FLOOR_SRC = join(ROOT, 'bench', 'floor');

/** Builds the floor programs and their loader into dir (clang and libbpf: the set-up step installs both). */
function buildFloor(dir: string): void {
  const arch = spawnSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).stdout.trim();
  const steps: [string, string[]][] = [
    ['clang', ['-g', '-O2', '-Wall', '-Werror', '-target', 'bpf', `-I/usr/include/${arch}`, '-c', join(FLOOR_SRC, 'floor.bpf.c'), '-o', join(dir, 'floor.bpf.o')]],
    ['sh', ['-c', `cc -O2 -Wall -Werror -o "${join(dir, 'floor')}" "${join(FLOOR_SRC, 'floor.c')}" $(pkg-config --cflags --libs libbpf)`]],
  ];
  for (const [cmd, args] of steps) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building bench/floor: ${cmd} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  }
}

/** a floor program (bench/floor) on inet_sock_set_state, built into the run's folder by buildFloor */
function floor(name: string, mode: 'count' | 'ring'): Condition {
  return {
    name,
    start: (_w, dir) => spawnTracer(join(dir, 'floor'), [join(dir, 'floor.bpf.o'), mode], /floor: attached/),
    finish: async (t) => {
      const m = /transitions (\d+) read (\d+) lost (\d+)/.exec(t.stdout.join(''));
      if (!m) return { events: null, lost: null };
      return { events: Number(mode === 'ring' ? m[2] : m[1]), ...withLoss({ ring: Number(m[3]) }) };
    },
  };
}

const conditions: Condition[] = [
  { name: 'baseline', start: async () => null, finish: async () => ({ events: null, lost: null }) },
  // every hook attached, nothing traced: the target is an idle process of our own
  jsonTrace('tcptrace hooks only (idle pid)', () => (idle = killOnInterrupt(spawn('sleep', ['3600'], { stdio: 'ignore' }))).pid!, ['--no-stacks'], () => {
    idle?.kill('SIGKILL');
    idle = null;
  }),
  jsonTrace('tcptrace --pid --no-stacks', (worker) => worker, ['--no-stacks']),
  jsonTrace('tcptrace --pid (attribution)', (worker) => worker, [], (doc) => stackNotes.push(doc.stacks)),
  jsonTrace('tcptrace --pid --no-kernel-summary (attribution)', (worker) => worker, ['--no-kernel-summary']),
  agent('tcptrace agent (system, attribution)', []),
  agent('tcptrace agent --no-kernel-summary (system, attribution)', ['--no-kernel-summary']),
  recording('tcptrace record (system)', []),
  // the shared ring the per-CPU rings replaced, beside them in every round
  recording('tcptrace record --no-ring-per-cpu (system)', ['--no-ring-per-cpu']),
  floor('floor: count transitions (tp_btf)', 'count'),
  floor('floor: 64-byte records to a ring, 50 ms drain', 'ring'),
  {
    name: 'tcpstates (libbpf-tools)',
    // tcpstates block-buffers its output when stdout is a pipe: give it a fixed second to attach
    start: async (_w, dir) => {
      const out = openSync(join(dir, 'tcpstates.out'), 'w');
      const proc = killOnInterrupt(spawn('/usr/sbin/tcpstates', [], { stdio: ['ignore', out, 'pipe'] }));
      closeSync(out);
      const t: Tracer = { proc, stdout: [], stderr: [], exited: new Promise((r) => proc.on('exit', () => r())) };
      proc.stderr!.on('data', (d: Buffer) => t.stderr.push(d.toString()));
      await sleep(1000);
      if (proc.exitCode !== null) throw new Error(`tcpstates exited: ${t.stderr.join('')}`);
      return t;
    },
    finish: async (t, dir) => {
      const lines = readFileSync(join(dir, 'tcpstates.out'), 'utf8').split('\n').length - 2;
      const lost = [...t.stderr.join('').matchAll(/lost (\d+) events/g)].reduce((a, m) => a + Number(m[1]), 0);
      return { events: lines, lost };
    },
  },
];

/** total lost over the runs, and its causes when there are any: "36 (ring 36)" */
function lossCell(rs: Run[]): string {
  const total = rs.reduce((a, x) => a + (x.lost ?? 0), 0);
  const parts = new Map<string, number>();
  for (const x of rs) for (const [k, v] of Object.entries(x.lostParts ?? {})) parts.set(k, (parts.get(k) ?? 0) + v);
  const why = [...parts].filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`);
  return why.length ? `${total} (${why.join(', ')})` : String(total);
}

/** the tracer's CPU per connection served, in us */
const agentUsPerConn = (x: Run): number | null => (x.cpuS === null ? null : (x.cpuS / (x.rps * SECONDS)) * 1e6);

/** a profiled run: what the tracer's programs ran, per connection; its agent CPU is the Run's cpuS */
interface Profile {
  run: Run;
  costs: ProgCost[];
}
const profiles = new Map<string, Profile>();

/**
 * One run of c: start it, let it settle, one wrk run and a second for the
 * tracer to drain, stop it. With `profiled`, the run has BPF stats on and
 * returns what the tracer's programs (those loaded after it started) ran.
 */
async function runCondition(c: Condition, worker: number, dir: string, profiled: boolean): Promise<Profile> {
  const loaded = profiled ? progCounts() : null;
  const t = await c.start(worker, dir);
  const measure = async () => {
    const before = loaded && progCounts();
    const t0 = t ? cpuTicks(t.proc.pid!) : null;
    const x = await measureWrk(SECONDS, 1000);
    const t1 = t ? cpuTicks(t.proc.pid!) : null;
    const costs = loaded ? programCosts(loaded, before!, progCounts(), x.rps * SECONDS) : [];
    return { x, costs, cpuS: t0 !== null && t1 !== null ? (t1 - t0) / CLK_TCK : null };
  };
  let m: Awaited<ReturnType<typeof measure>>;
  try {
    await sleep(500);
    m = loaded ? await withBpfStats(measure) : await measure();
  } catch (e) {
    if (t) await stopTracer(t);
    throw e;
  }
  let extra: Omit<Run, keyof Sample | 'cpuS'> = { events: null, lost: null };
  if (t) {
    await c.beforeStop?.(t);
    await stopTracer(t);
    extra = await c.finish(t, dir);
  }
  rmSync(join(dir, 'bench.tcptrace'), { force: true });
  return { run: { ...m.x, cpuS: m.cpuS, ...extra }, costs: m.costs };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (BPF)');
  const only = OPT.conditions;
  const conds = only ? conditions.filter((c) => c.name === 'baseline' || only.split(',').some((o) => c.name.includes(o))) : conditions;
  const dir = mkdtempSync(join(tmpdir(), 'tcptrace-bench-'));
  try {
    await benchIn(dir, conds);
  } finally {
    rmSync(dir, { recursive: true, force: true }); // nginx's config and logs, the recordings
  }
}

async function benchIn(dir: string, conds: Condition[]): Promise<void> {
  // the peer (libbpf-tools tcpstates) reads tracepoint ids from tracefs: mount it for the run if needed
  const mountedTracefs =
    conds.some((c) => c.name.startsWith('tcpstates')) && spawnSync('mountpoint', ['-q', '/sys/kernel/tracing']).status !== 0 && spawnSync('mount', ['-t', 'tracefs', 'nodev', '/sys/kernel/tracing']).status === 0;
  let nginx: ReturnType<typeof startNginx>;
  try {
    if (conds.some((c) => c.name.startsWith('floor'))) buildFloor(dir);
    nginx = startNginx(dir);
  } catch (err) {
    if (mountedTracefs) spawnSync('umount', ['/sys/kernel/tracing']);
    throw err;
  }
  const runs = new Map<string, Run[]>(conds.map((c) => [c.name, []]));
  const steal: StealLog = { retried: 0, keptAbove: 0 };
  process.stderr.write(`bench: nginx master ${nginx.master}, worker ${nginx.worker}; ${ROUNDS} rounds x ${conds.length} conditions x ${SECONDS} s\n`);
  try {
    await wrk(SECONDS); // warm-up, discarded
    for (let r = 0; r < ROUNDS; r++) {
      for (const c of roundOrder(conds, r)) {
        const x = await belowSteal(async () => (await runCondition(c, nginx.worker, dir, false)).run, steal, (y) =>
          process.stderr.write(`bench: round ${r + 1} ${c.name.padEnd(26)} ${sampleNote(y)}: steal too high, again\n`),
        );
        runs.get(c.name)!.push(x);
        process.stderr.write(`bench: round ${r + 1} ${c.name.padEnd(26)} ${sampleNote(x)}${x.events !== null ? `  events ${x.events} lost ${lossCell([x])}` : ''}${x.cpuS !== null ? `  cpu ${x.cpuS.toFixed(2)} s` : ''}\n`);
        await sleep(1000);
      }
    }
    if (PROFILE) {
      const notes = stackNotes.length; // the profiled runs stay out of the attribution line
      for (const c of conds) {
        if (c.name === 'baseline') continue;
        const p = await runCondition(c, nginx.worker, dir, true);
        process.stderr.write(`bench: profile ${c.name.padEnd(26)} ${sampleNote(p.run)}\n`);
        profiles.set(c.name, p);
      }
      stackNotes.length = notes;
    }
  } finally {
    idle?.kill('SIGKILL');
    stopNginx(nginx);
    if (mountedTracefs) spawnSync('umount', ['/sys/kernel/tracing']);
  }
  const base = runs.get('baseline')!;
  const rows = [['condition', ...PAIRED_HEADER, 'records/run', 'lost (total)', 'agent CPU us / conn', 'agent CPU s / 1M records']];
  for (const c of conds) {
    const rs = runs.get(c.name)!;
    const ev = rs.filter((x) => x.events !== null);
    const cpu = rs.filter((x) => x.cpuS !== null && x.events);
    const cpuConn = rs.filter((x) => x.cpuS !== null);
    rows.push([
      c.name,
      ...pairedCells(rs, base, c.name === 'baseline'),
      ev.length ? median(ev.map((x) => x.events!)).toFixed(0) : '-',
      ev.length ? lossCell(ev) : '-',
      cpuConn.length ? median(cpuConn.map((x) => agentUsPerConn(x)!)).toFixed(2) : '-',
      cpu.length ? median(cpu.map((x) => (x.cpuS! / x.events!) * 1e6)).toFixed(2) : '-',
    ]);
  }
  process.stdout.write(table(rows));
  process.stdout.write(stealNote(steal, ROUNDS * conds.length));
  if (profiles.size) {
    const baseUs = median(base.map((x) => x.usPerConn));
    const prows = [['condition', 'BPF programs us / conn', 'agent CPU us / conn', `direct cost ratio (${baseUs.toFixed(1)} us baseline)`, 'costliest programs: runs / conn x us / run']];
    for (const [name, p] of profiles) {
      // no run counts: this kernel keeps no BPF stats (before 5.1), so there is no direct cost to give
      if (!p.costs.length) {
        prows.push([name, '-', '-', '-', 'no BPF run counts']);
        continue;
      }
      const bpf = bpfUsPerConn(p.costs);
      const agentUs = agentUsPerConn(p.run);
      prows.push([name, bpf.toFixed(2), agentUs === null ? '-' : agentUs.toFixed(2), (baseUs / (baseUs + bpf + (agentUs ?? 0))).toFixed(3), costNote(p.costs)]);
    }
    process.stdout.write(
      `\nOne more run per condition with the kernel's BPF run-time stats on (not paired; stats add ~0.08 us a run): ` +
        `the cost of the tracer's own programs and agent against the baseline's busy CPU per connection. ` +
        `It leaves out what the paired ratios include: tracepoint dispatch outside the programs, caches.\n`,
    );
    process.stdout.write(table(prows));
  }
  if (stackNotes.length) {
    const cap = stackNotes.reduce((a, s) => a + s.captured, 0);
    const lim = stackNotes.reduce((a, s) => a + s.rateLimited, 0);
    const dd = stackNotes.reduce((a, s) => a + (s.deduped ?? 0), 0);
    const rc = stackNotes.reduce((a, s) => a + (s.recalled ?? 0), 0);
    const uw = stackNotes.reduce((a, s) => a + (s.unwindMs ?? 0), 0);
    const sy = stackNotes.reduce((a, s) => a + (s.symbolizeMs ?? 0), 0);
    process.stdout.write(
      `\nattribution: ${cap} stacks captured, ${lim} rate-limited (not captured), ${dd} sent as references, ${rc} recognised from the walk memo; ` +
        `distinct per run ${stackNotes.map((s) => s.distinct).join('/')}; ` +
        `unwind ${cap ? ((uw * 1000) / cap).toFixed(1) : '-'} us/stack, symbolize ${cap ? ((sy * 1000) / cap).toFixed(1) : '-'} us/stack\n`,
    );
  }
}

run(main);
