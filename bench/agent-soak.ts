/**
 * Soak: `tcptrace agent` on the whole host under steady process churn (short-lived
 * clients that each hold a CLOSE_WAIT socket for a moment, as test/34 runs them)
 * and a server that leaks a little, for --minutes. Prints the agent's RSS and JS
 * heap every minute (from its own /metrics), and at the end whether the last
 * minute's highest RSS is within --tolerance of the second minute's: memory flat
 * means bounded by flags, not growing with uptime.
 *
 * usage: node dist/bench/agent-soak.js [--minutes N] [--tolerance PCT]   (root; npm run bench:soak)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, killOnInterrupt, parseOptions, ROOT, sleep } from './common.js';

const USAGE = 'usage: node dist/bench/agent-soak.js [options]   (npm run bench:soak; root)\n\nthe agent under steady process churn; RSS every minute; flat or not.';

function build(dir: string, name: string): string {
  const out = join(dir, name);
  const r = spawnSync('gcc', ['-O2', '-g', '-o', out, join(ROOT, 'test/fixtures', `${name}.c`)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc ${name}.c: ${r.stderr}`);
  return out;
}

function metric(text: string, name: string): number | null {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the soak needs root (BPF)');
  const { values } = parseOptions(USAGE, {
    minutes: { default: '10', kind: 'count', help: 'minutes of churn (at least 3: the second minute is the reference)' },
    tolerance: { default: '10', kind: 'number', help: "the last minute's highest RSS may exceed the second minute's by this many percent" },
  });
  const minutes = Math.max(3, Number(values.minutes));
  const dir = join(tmpdir(), `tcptrace-bench-soak-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const server = killOnInterrupt(spawn(build(dir, 'leaky_server'), ['0'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const port = await new Promise<number>((resolve) => server.stdout!.once('data', (d: Buffer) => resolve(Number(/(\d+)/.exec(d.toString())![1]))));
  const churnBin = build(dir, 'churn_clients');
  const listen = 20000 + (process.pid % 20000);
  const agent = killOnInterrupt(spawn(process.execPath, [CLI, 'agent', '--listen', `127.0.0.1:${listen}`, '--leak-after', '5', '--series-grace', '5'], { stdio: ['ignore', 'ignore', 'pipe'] }));
  await new Promise<void>((resolve, reject) => {
    let err = '';
    agent.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (/agent tracing/.test(err)) resolve();
    });
    agent.once('exit', (c) => reject(new Error(`agent exited ${c}: ${err}`)));
  });
  let running = true;
  let processes = 0;
  // steady churn: batches of 200 short-lived clients, 8 at once, each ~20 ms in CLOSE_WAIT
  const churn = (async () => {
    while (running) {
      const r = spawnSync(churnBin, [String(port), '200', '8', '20'], { encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`churn_clients: ${r.stdout}${r.stderr}`);
      processes += 200;
      await sleep(100);
    }
  })();
  const rows: { minute: number; rssMiB: number; maxRssMiB: number; heapMiB: number; tracked: number; processes: number }[] = [];
  try {
    for (let minute = 1; minute <= minutes; minute++) {
      let maxRss = 0;
      let last = '';
      for (let s = 0; s < 12; s++) {
        await sleep(5000);
        last = await (await fetch(`http://127.0.0.1:${listen}/metrics`)).text();
        maxRss = Math.max(maxRss, metric(last, 'process_resident_memory_bytes') ?? 0);
      }
      const row = {
        minute,
        rssMiB: (metric(last, 'process_resident_memory_bytes') ?? 0) / 2 ** 20,
        maxRssMiB: maxRss / 2 ** 20,
        heapMiB: (metric(last, 'nodejs_heap_size_used_bytes') ?? 0) / 2 ** 20,
        tracked: metric(last, 'tcptrace_tracked_processes') ?? 0,
        processes,
      };
      rows.push(row);
      process.stdout.write(`minute ${minute}: RSS ${row.rssMiB.toFixed(1)} MiB (max ${row.maxRssMiB.toFixed(1)}), JS heap ${row.heapMiB.toFixed(1)} MiB, tracked processes ${row.tracked}, churn processes so far ${processes}\n`);
    }
  } finally {
    running = false;
    await churn.catch(() => undefined);
    agent.kill('SIGTERM');
    server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  const ref = rows[1]!.maxRssMiB;
  const end = rows.at(-1)!.maxRssMiB;
  const growth = ((end - ref) / ref) * 100;
  const ok = growth <= Number(values.tolerance);
  process.stdout.write(`\nlast minute's max RSS ${end.toFixed(1)} MiB against the second minute's ${ref.toFixed(1)} MiB: ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} % (${ok ? 'flat' : 'GROWS'}, tolerance ${values.tolerance} %)\n`);
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
