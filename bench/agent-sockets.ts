/**
 * The agent with many sockets open: helpers (bench/sockets/hold_sockets.c, pairs of
 * a listener and its client, each under the host's fd limit) open --connections
 * loopback connections and hold both ends (twice as many sockets), with the agent
 * tracing the whole host at --max-sockets. Prints what
 * the agent reports against `ss`, its resident memory, the kernel memory of its BPF
 * maps (the memlock of each map fd), and what --max-sockets promises: the owners map
 * is sized by it (seeds by the sockets present at start), so the kernel side is bounded
 * by the flag whatever the host holds, and sockets past it are counted
 * (tcptrace_bpf_map_full_total), not lost silently. In the kernel summary the held sockets never reach the agent: its memory
 * does not follow them.
 *
 * usage: node dist/bench/agent-sockets.js [--connections N] [--max-sockets N]   (root; npm run bench:sockets)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, killOnInterrupt, parseOptions, ROOT, sleep } from './common.js';

const USAGE = 'usage: node dist/bench/agent-sockets.js [options]   (npm run bench:sockets; root)\n\nthe agent tracing the whole host while a helper holds many loopback connections open.';

function metricSum(text: string, name: string, filter: (labels: string) => boolean = () => true): number | null {
  let sum: number | null = null;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    if (!filter(m[1] ?? '')) continue;
    sum = (sum ?? 0) + Number(m[2]);
  }
  return sum;
}

function lines(proc: ChildProcess, re: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}: ${out.slice(-400)}`)), timeoutMs);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[0]);
      }
    });
    proc.once('exit', (c) => reject(new Error(`exited ${c}: ${out.slice(-400)}`)));
  });
}

/**
 * kernel memory of the BPF maps a process holds: the memlock of each map fd in
 * /proc/PID/fdinfo (charged to its memory cgroup since 5.11), named through bpftool
 */
function mapBytes(pid: number): { bytes: number; maps: Record<string, number> } {
  const names = new Map<number, string>();
  const r = spawnSync('bpftool', ['map', 'show', '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  try {
    for (const m of JSON.parse(r.stdout || '[]') as { id: number; name?: string }[]) names.set(m.id, m.name ?? String(m.id));
  } catch {
    // no bpftool: maps by id
  }
  const maps: Record<string, number> = {};
  let bytes = 0;
  const seen = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    const id = /^map_id:\s+(\d+)/m.exec(text);
    const mem = /^memlock:\s+(\d+)/m.exec(text);
    if (!id || !mem || seen.has(Number(id[1]))) continue;
    seen.add(Number(id[1]));
    const name = names.get(Number(id[1])) ?? id[1]!;
    maps[name] = (maps[name] ?? 0) + Number(mem[1]);
    bytes += Number(mem[1]);
  }
  return { bytes, maps };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (BPF)');
  const { values } = parseOptions(USAGE, {
    connections: { default: '500000', kind: 'count', help: 'connections held (each two sockets on loopback), 9,000 per process pair' },
    'max-sockets': { default: '1048576', kind: 'count', help: "the agent's --max-sockets" },
  });
  const n = Number(values.connections);
  const dir = join(tmpdir(), `tcptrace-bench-sockets-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, 'hold_sockets');
  const cc = spawnSync('gcc', ['-O2', '-Wall', '-o', bin, join(ROOT, 'bench/sockets/hold_sockets.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc hold_sockets.c: ${cc.stderr}`);
  const listen = 20000 + (process.pid % 10000);
  const agent = killOnInterrupt(spawn(process.execPath, [CLI, 'agent', '--listen', `127.0.0.1:${listen}`, '--max-sockets', values['max-sockets']!], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let agentErr = '';
  await new Promise<void>((resolve, reject) => {
    agent.stderr!.on('data', (d: Buffer) => {
      agentErr += d.toString();
      if (/agent tracing/.test(agentErr)) resolve();
    });
    agent.once('exit', (c) => reject(new Error(`agent exited ${c}: ${agentErr}`)));
  });
  const metrics = async () => (await fetch(`http://127.0.0.1:${listen}/metrics`)).text();
  const rss0 = metricSum(await metrics(), 'process_resident_memory_bytes')!;
  // pairs of processes (a listener and its client child), each under this host's fd limit
  const perPair = Math.min(n, 9000);
  const pairs = Math.ceil(n / perPair);
  const port0 = 30000 - pairs - (process.pid % 1000);
  const holders: ChildProcess[] = [];
  try {
    const t0 = performance.now();
    let held = 0;
    for (let i = 0; i < pairs; i++) {
      const want = Math.min(perPair, n - i * perPair);
      const h = killOnInterrupt(spawn(bin, [String(port0 + i), String(want)], { stdio: ['ignore', 'pipe', 'inherit'] }));
      holders.push(h);
      held += Number(/\d+/.exec(await lines(h, /held \d+/, 300_000))![0]);
    }
    process.stdout.write(`${held} connections (${2 * held} sockets) in ${pairs} process pairs, ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    await sleep(16_000); // the held sockets are walked at most every 5 s, map fill every 15 s
    const ss = Number(spawnSync('sh', ['-c', `ss -tanH state established '( sport >= :${port0} and sport < :${port0 + pairs} ) or ( dport >= :${port0} and dport < :${port0 + pairs} )' | wc -l`], { encoding: 'utf8', maxBuffer: 256 << 20 }).stdout.trim());
    const m = await metrics();
    const est = metricSum(m, 'tcptrace_sockets', (l) => l.includes('state="ESTABLISHED"')) ?? 0;
    const owners = metricSum(m, 'tcptrace_bpf_map_entries', (l) => l.includes('map="owners"'));
    const ownersMax = metricSum(m, 'tcptrace_bpf_map_max_entries', (l) => l.includes('map="owners"'));
    const full = metricSum(m, 'tcptrace_bpf_map_full_total') ?? 0;
    const lost = metricSum(m, 'tcptrace_lost_events_total') ?? 0;
    const rss = metricSum(m, 'process_resident_memory_bytes')!;
    const heap = metricSum(m, 'nodejs_heap_size_used_bytes')!;
    const kmem = mapBytes(agent.pid!);
    const MiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    const top = Object.entries(kmem.maps).sort((x, y) => y[1] - x[1]).slice(0, 4).map(([k, v]) => `${k} ${MiB(v)}`).join(', ');
    process.stdout.write(
      [
        `ss: ${ss} ESTABLISHED sockets on the helpers' ports; the agent: ${est} ESTABLISHED on the host (held in the kernel, and seen)`,
        `owners map ${owners}/${ownersMax} entries; map full ${full}; lost ${lost}`,
        `agent RSS ${MiB(rss0)} before, ${MiB(rss)} with them (JS heap ${MiB(heap)})`,
        `the agent's BPF maps: ${MiB(kmem.bytes)} in all (${top}); owners is sized by --max-sockets ${values['max-sockets']}, seeds by the sockets present at start, whatever the host holds later`,
      ].join('\n') + '\n',
    );
  } finally {
    for (const h of holders) h.kill('SIGKILL');
    await sleep(3000);
    agent.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
