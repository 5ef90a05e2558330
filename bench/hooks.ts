/**
 * What merely attaching tcptrace's hooks costs nginx under wrk (`Connection:
 * close`), with nothing traced: the native tracer targets an idle process of our
 * own, so every program runs and returns early, nothing reaches the ring, and
 * no agent work is done (batches are discarded). Interleaved rounds of:
 *   baseline     no program attached
 *   transitions  the state-change tracepoint only
 *   syscalls     the per-syscall tracepoints only (accept exit, close, shutdown
 *                entry): on kernels without fexit or kprobes, the only way to
 *                see accept() and close() in the caller's context
 *   all          every hook `tcptrace --pid P --no-stacks` attaches
 * Programs come from the attach plan tcptrace itself chooses on this kernel.
 * Prints each condition's req/s ratio to the baseline of the same round, and
 * its CPU cost ratio (the baseline's busy CPU per connection over the
 * condition's), each with a bootstrap 95 % interval for its median. The cost
 * ratio is the throughput ratio of a CPU-bound server, and does not move with
 * the hypervisor's steal, which the req/s ratio does (see bench/nginx.ts). This
 * is the floor under every `tcptrace --pid` row of bench/nginx.ts.
 *
 * usage: node dist/bench/hooks.js [--rounds N] [--seconds S] [--max-steal PCT] [--retries N]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hookPlan } from '../src/attach/modes.js';
import { planAttach } from '../src/attach/probe.js';
import { native, type NativeTracer } from '../src/native.js';
import { belowSteal, killOnInterrupt, PAIRED_HEADER, parseOptions, pairedCells, roundOrder, run, sampleNote, sleep, stealNote, table, type Sample, type StealLog } from './common.js';
import { measureWrk, startNginx, stopNginx, wrk } from './nginx-server.js';

const { values: OPT } = parseOptions(
  'usage: node dist/bench/hooks.js [options]   (npm run bench:hooks; root)\n\nWhat attaching the hooks costs nginx under wrk with nothing traced, by hook group, in interleaved rounds.',
  {
    rounds: { default: '12', kind: 'count', help: 'rounds; each runs every condition once' },
    seconds: { default: '4', kind: 'count', help: 'seconds of wrk per run' },
  },
  { steal: true },
);
const ROUNDS = Number(OPT.rounds);
const SECONDS = Number(OPT.seconds);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (BPF)');
  const plan = planAttach();
  const all = hookPlan(plan.mode, plan.probe, false).programs;
  const sets: Record<string, string[] | null> = {
    baseline: null,
    transitions: all.filter((p) => p.includes('inet_sock_set_state')),
    syscalls: all.filter((p) => /_sys_(enter|exit)/.test(p)),
    all,
  };
  for (const [k, v] of Object.entries(sets)) if (v && !v.length) throw new Error(`attach mode ${plan.mode.name} has no ${k} programs`);
  const idle = killOnInterrupt(spawn('sleep', ['3600'], { stdio: 'ignore' }));
  const dir = mkdtempSync(join(tmpdir(), 'tcptrace-bench-hooks-'));
  const nginx = startNginx(dir);
  const names = Object.keys(sets);
  const res = new Map(names.map((k) => [k, [] as Sample[]]));
  const steal: StealLog = { retried: 0, keptAbove: 0 };
  process.stderr.write(`bench: attach mode ${plan.mode.name}; nginx worker ${nginx.worker}; ${ROUNDS} rounds x ${names.length} conditions x ${SECONDS} s\n`);
  try {
    await wrk(SECONDS); // warm-up, discarded
    for (let r = 0; r < ROUNDS; r++) {
      for (const k of roundOrder(names, r)) {
        const measure = async () => {
          let t: NativeTracer | null = null;
          if (sets[k]) {
            t = new (native().Tracer)({ programs: sets[k]!, filter: true, children: false, ringBytes: 16 << 20, maxSockets: 131072 });
            t.load();
            t.addTargets([idle.pid!]);
            t.attach();
            t.start(() => {}, { intervalMs: 100 });
          }
          await sleep(500);
          const x = await measureWrk(SECONDS);
          if (t) {
            await t.stop();
            t.close();
          }
          return x;
        };
        const x = await belowSteal(measure, steal, (y) => process.stderr.write(`bench: round ${r + 1} ${k.padEnd(12)} ${sampleNote(y)}: steal too high, again\n`));
        res.get(k)!.push(x);
        process.stderr.write(`bench: round ${r + 1} ${k.padEnd(12)} ${sampleNote(x)}\n`);
        await sleep(800);
      }
    }
  } finally {
    idle.kill('SIGKILL');
    stopNginx(nginx);
    rmSync(dir, { recursive: true, force: true });
  }
  const base = res.get('baseline')!;
  const rows = [['hooks attached (nothing traced)', 'programs', ...PAIRED_HEADER]];
  for (const k of names) rows.push([k, sets[k] ? String(sets[k]!.length) : '-', ...pairedCells(res.get(k)!, base, k === 'baseline')]);
  process.stdout.write(table(rows));
  process.stdout.write(stealNote(steal, ROUNDS * names.length));
  for (const k of names) if (sets[k]) process.stdout.write(`${k}: ${sets[k]!.join(' ')}\n`);
}

run(main);
