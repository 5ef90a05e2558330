/**
 * Benchmark: what naming interpreted frames costs. An HTTP server in the
 * runtime under test under wrk with `Connection: close`, traced with --pid, in
 * interleaved rounds paired with the baseline of the same round:
 *   --runtime python: CPython's http.server (bench/python/server.py, a thread per connection)
 *     baseline            no tracer
 *     --no-stacks         tcptrace --pid N --quiet --no-stacks (attribution off)
 *     --no-python-frames  stacks, but the kernel copies no Python frames (what attribution cost before)
 *     python frames       tcptrace --pid N --quiet: stacks with Python frames (the default)
 *   --runtime java: the JDK's com.sun.net.httpserver on 4 threads (bench/java/Server.java)
 *     baseline, --no-stacks, and java frames (stacks; Java frames are walked in user space only)
 * Then one unpaired run of each stack condition with the kernel's BPF stats on:
 * the capturing programs' time per run (Python: with and without the frame
 * copy, its cost per capture), and from the tracer's JSON report the stacks
 * delivered, recognised in the kernel, the agent's unwind and symbolize time
 * per distinct stack, and the interpreted frames named and unnamed.
 *
 * usage: node dist/bench/interpreters.js [--runtime python|java] [--python PATH] [--java PATH] [--rounds N] [--seconds S] [--max-steal PCT] [--retries N]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { belowSteal, boxCpu, CLI, cpuDelta, killOnInterrupt, PAIRED_HEADER, pairedCells, parseOptions, ROOT, roundOrder, run, sampleNote, sampleOf, sleep, spawnTracer, stealNote, stopTracer, table, type Sample, type StealLog, type Tracer } from './common.js';
import { bpfUsPerConn, costNote, programCosts, progCounts, withBpfStats } from './bpf-profile.js';

const { values: OPT } = parseOptions(
  'usage: node dist/bench/interpreters.js [options]   (root)\n\nA CPython (or, with --runtime java, a Java) server under wrk, traced with and without attribution, each condition paired with the baseline of its round.',
  {
    runtime: { default: 'python', kind: 'text', help: 'python or java: the server under test' },
    python: { default: '/usr/bin/python3.11', kind: 'text', help: 'the CPython (3.11-3.13) that runs the server' },
    java: { default: '/usr/lib/jvm/java-17-openjdk-amd64/bin/java', kind: 'text', help: 'the JVM that runs the server (--runtime java)' },
    rounds: { default: '5', kind: 'count', help: 'rounds; each runs every condition once, in a rotating order' },
    seconds: { default: '5', kind: 'count', help: 'seconds of wrk per run' },
  },
  { steal: true },
);
const PORT = 18090;
const JAVA = OPT.runtime === 'java';
const FRAMES = JAVA ? 'java frames' : 'python frames';
const CONDITIONS: { name: string; args: string[] | null }[] = [
  { name: 'baseline', args: null },
  { name: '--no-stacks', args: ['--no-stacks'] },
  ...(JAVA ? [] : [{ name: '--no-python-frames', args: ['--no-python-frames'] }]),
  { name: FRAMES, args: [] },
];

async function wrk(seconds: number): Promise<Sample> {
  const b0 = boxCpu();
  const r = spawnSync('timeout', ['-s', 'INT', String(seconds + 20), 'wrk', '-t1', '-c16', `-d${seconds}s`, '-H', 'Connection: close', `http://127.0.0.1:${PORT}/sku-1/sku-22/sku-333`], { encoding: 'utf8' });
  const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
  if (!m) throw new Error(`wrk failed: ${r.stdout}${r.stderr}`);
  return sampleOf(Number(m[1]), seconds, cpuDelta(b0, boxCpu()));
}

async function startServer(runtime: string): Promise<{ pid: number; stop: () => void }> {
  const script = JAVA ? join(ROOT, 'bench/java/Server.java') : join(ROOT, 'bench/python/server.py');
  const proc = killOnInterrupt(spawn(runtime, [script, String(PORT)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => /PORT \d+/.test(d.toString()) && resolve());
    proc.on('exit', (c) => reject(new Error(`the server exited (${c})`)));
  });
  return { pid: proc.pid!, stop: () => proc.kill('SIGKILL') };
}

const tracer = (pid: number, args: string[], json = false): Promise<Tracer> =>
  spawnTracer(process.execPath, [CLI, '--pid', String(pid), ...(json ? ['--format', 'json'] : ['--quiet']), '--leak-after', '3600', ...args], /tracing pid/);

run(async () => {
  if (OPT.runtime !== 'python' && OPT.runtime !== 'java') throw new Error(`--runtime ${OPT.runtime}: python or java`);
  const runtime = JAVA ? OPT.java : OPT.python;
  if (!existsSync(runtime)) throw new Error(`no ${runtime}: pass --${OPT.runtime} PATH`);
  if (spawnSync('sh', ['-c', 'command -v wrk']).status !== 0) throw new Error('needs wrk (scripts/setup.sh installs it)');
  const server = await startServer(runtime);
  const version = JAVA
    ? (/version "([^"]+)"/.exec(spawnSync(runtime, ['-version'], { encoding: 'utf8' }).stderr)?.[1] ?? '?')
    : spawnSync(runtime, ['-c', 'import sys; print(sys.version.split()[0])'], { encoding: 'utf8' }).stdout.trim();
  const results = new Map<string, Sample[]>(CONDITIONS.map((c) => [c.name, []]));
  const steal: StealLog = { retried: 0, keptAbove: 0 };
  try {
    await wrk(JAVA ? 5 : 2); // warm-up: the interpreter's specialisation (the JIT's compilation), the page cache
    for (let r = 0; r < Number(OPT.rounds); r++) {
      for (const c of roundOrder(CONDITIONS, r)) {
        const x = await belowSteal(
          async () => {
            const t = c.args ? await tracer(server.pid, c.args) : null;
            try {
              return await wrk(Number(OPT.seconds));
            } finally {
              if (t) await stopTracer(t);
            }
          },
          steal,
          (s) => process.stderr.write(`  ${c.name}: steal too high, again (${sampleNote(s)})\n`),
        );
        results.get(c.name)!.push(x);
        process.stderr.write(`round ${r + 1} ${c.name.padEnd(20)} ${sampleNote(x)}\n`);
      }
    }
    const base = results.get('baseline')!;
    console.log(
      JAVA
        ? `\nJava ${version} (${runtime}), com.sun.net.httpserver on 4 threads, wrk -c16 Connection: close, ${OPT.rounds} rounds x ${OPT.seconds} s\n`
        : `\nCPython ${version} (${runtime}), http.server, a thread per connection, wrk -c16 Connection: close, ${OPT.rounds} rounds x ${OPT.seconds} s\n`,
    );
    console.log(table([['condition', ...PAIRED_HEADER], ...CONDITIONS.map((c) => [c.name, ...pairedCells(results.get(c.name)!, base, c.name === 'baseline')])]));
    console.log(stealNote(steal, CONDITIONS.length * Number(OPT.rounds)));

    // unpaired: BPF run time per program, and the report's stack and Python frame counts
    const before0 = progCounts();
    const profile: Record<string, { costs: ReturnType<typeof programCosts>; report: any; rps: number }> = {};
    for (const c of CONDITIONS.filter((x) => x.args && x.name !== '--no-stacks')) {
      const t = await tracer(server.pid, c.args!, true);
      const { costs, rps } = await withBpfStats(async () => {
        const before = progCounts();
        const s = await wrk(Number(OPT.seconds));
        return { costs: programCosts(before0, before, progCounts(), s.rps * Number(OPT.seconds)), rps: s.rps };
      });
      await stopTracer(t);
      profile[c.name] = { costs, rps, report: JSON.parse(t.stdout.join('')) };
    }
    const rows = Object.entries(profile).map(([name, p]) => {
      const st = p.report.stacks;
      const named = JAVA ? st.java : st.python;
      const perStack = (ms: number) => (st.distinct ? ((ms * 1000) / st.distinct).toFixed(0) : '-');
      return [name, bpfUsPerConn(p.costs).toFixed(2), costNote(p.costs, 3), String(st.captured), String(st.deduped + st.recalled), `${st.distinct}`, `${perStack(st.unwindMs ?? 0)} / ${perStack(st.symbolizeMs ?? 0)}`, named ? `${named.named} / ${named.unnamed}` : '-'];
    });
    console.log('\nBPF stats (one unpaired run each): kernel time per connection, and the costliest programs as runs per connection x us per run');
    console.log(table([['condition', 'BPF us / conn', 'programs', 'stacks delivered', 'recognitions in the kernel', 'distinct stacks', 'agent us / distinct stack: unwind / symbolize (and name)', `${JAVA ? 'Java' : 'Python'} frames named / unnamed (of the distinct stacks)`], ...rows]));
    const capture = (name: string) => profile[name].costs.filter((c) => /connect|accept|send|recv|read|write/.test(c.name));
    const us = (cs: ReturnType<typeof programCosts>) => cs.reduce((a, c) => a + c.runsPerConn * c.nsPerRun, 0) / 1000;
    if (!JAVA) {
      const withPy = us(capture('python frames'));
      const without = us(capture('--no-python-frames'));
      console.log(`\nthe Python frame copy: ${(withPy - without).toFixed(2)} us per connection in the capturing programs (${without.toFixed(2)} -> ${withPy.toFixed(2)})`);
    } else console.log(`\nthe capturing programs: ${us(capture(FRAMES)).toFixed(2)} us per connection (Java frames cost nothing in the kernel: they are on the stack copy)`);
  } finally {
    server.stop();
  }
});
