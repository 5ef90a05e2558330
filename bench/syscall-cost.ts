/**
 * What tcptrace's syscall hooks cost every other program on the box: ns per
 * syscall for two syscalls no mode hooks, getppid and close(-1) (close() has
 * no hook of its own: its transition carries it, releasing_call in
 * bpf/tcpstate.bpf.c), measured in interleaved rounds under:
 *   none                    no tracer
 *   tracepoint, --no-stacks tcptrace --pid <idle process> --no-stacks: the accept
 *                           exit tracepoints only (sys_exit probes)
 *   tracepoint, stacks      the same with stacks, the default: also the connect()
 *                           and listen() entry tracepoints (sys_enter probes too)
 *   raw                     --no-stacks --syscall-hooks raw: a raw sys_exit program
 *                           that runs on every syscall
 * Any syscall tracepoint puts every task on the traced syscall path; the
 * conditions differ in which of its probes run, and whether a BPF program runs
 * for unrelated syscalls too.
 *
 * usage: node dist/bench/syscall-cost.js [--rounds N] [--calls N]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, killOnInterrupt, median, parseOptions, run, spawnTracer, stopTracer, table } from './common.js';

const { values: OPT } = parseOptions(
  'usage: node dist/bench/syscall-cost.js [options]   (npm run bench:syscalls; root)\n\nns per unrelated and per hooked-but-untraced syscall, with and without the tracer attached.',
  {
    rounds: { default: '5', kind: 'count', help: 'rounds; each measures every condition once' },
    calls: { default: '2000000', kind: 'count', help: 'syscalls per measurement' },
  },
);
const ROUNDS = Number(OPT.rounds);
const CALLS = Number(OPT.calls);

const LOOP_C = `#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char **argv) {
	long n = atol(argv[1]);
	double t0 = now();
	for (long i = 0; i < n; i++) syscall(SYS_getppid);
	double t1 = now();
	for (long i = 0; i < n; i++) close(-1);
	double t2 = now();
	printf("%.1f %.1f\\n", (t1 - t0) / n, (t2 - t1) / n);
	return 0;
}
`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (BPF)');
  const dir = mkdtempSync(join(tmpdir(), 'tcptrace-sysbench-'));
  writeFileSync(join(dir, 'loop.c'), LOOP_C);
  const cc = spawnSync('cc', ['-O2', '-o', join(dir, 'loop'), join(dir, 'loop.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc failed: ${cc.stderr}`);
  const idle = killOnInterrupt(spawn('sleep', ['3600'], { stdio: 'ignore' }));
  const conds: { name: string; extra: string[] | null }[] = [
    { name: 'none', extra: null },
    { name: 'tracepoint, --no-stacks', extra: ['--no-stacks'] },
    { name: 'tracepoint, stacks (default)', extra: [] },
    { name: 'raw sys_enter/sys_exit', extra: ['--no-stacks', '--syscall-hooks', 'raw'] },
  ];
  const res = new Map(conds.map((c) => [c.name, { getppid: [] as number[], close: [] as number[] }]));
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 ? [...conds].reverse() : conds;
      for (const c of order) {
        const t = c.extra
          ? await spawnTracer(process.execPath, [CLI, '--pid', String(idle.pid), '--quiet', '--format', 'json', ...c.extra], /tcptrace: tracing/)
          : null;
        const out = spawnSync(join(dir, 'loop'), [String(CALLS)], { encoding: 'utf8' }).stdout.trim().split(' ').map(Number);
        if (t) await stopTracer(t);
        res.get(c.name)!.getppid.push(out[0]);
        res.get(c.name)!.close.push(out[1]);
        process.stderr.write(`bench: round ${r + 1} ${c.name.padEnd(24)} getppid ${out[0]} ns, close(-1) ${out[1]} ns\n`);
      }
    }
  } finally {
    idle.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  const base = res.get('none')!;
  const rows = [['hooks', 'getppid ns (median)', 'added ns', 'close(-1) ns (median)', 'added ns']];
  for (const c of conds) {
    const x = res.get(c.name)!;
    const g = median(x.getppid);
    const cl = median(x.close);
    // added cost paired per round, then the median
    const addG = median(x.getppid.map((v, i) => v - base.getppid[i]));
    const addC = median(x.close.map((v, i) => v - base.close[i]));
    rows.push([c.name, g.toFixed(0), c.extra ? `+${addG.toFixed(0)}` : '-', cl.toFixed(0), c.extra ? `+${addC.toFixed(0)}` : '-']);
  }
  process.stdout.write(table(rows));
}

run(main);
