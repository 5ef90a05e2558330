/**
 * The agent with many sockets open: a helper (bench/sockets/hold_sockets.c) opens
 * --connections loopback connections over 20 ports and holds both ends (twice as
 * many sockets), with the agent tracing the whole host at --max-sockets. Prints what
 * the agent reports against `ss`, its resident memory, the kernel memory of its BPF
 * maps (bpftool's bytes_memlock), and what --max-sockets promises: the owners and
 * seeds maps are sized by it, so the kernel side is bounded by the flag whatever the
 * host holds, and sockets past it are counted (tcptrace_bpf_map_full_total), not lost
 * silently. In the kernel summary the held sockets never reach the agent: its memory
 * does not follow them.
 *
 * usage: node dist/bench/agent-sockets.js [--connections N] [--max-sockets N]   (root; npm run bench:sockets)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
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

/** kernel memory of the maps a process holds (bpftool map show: bytes_memlock, memcg-charged since 5.11) */
function mapBytes(pid: number): { bytes: number; maps: Record<string, number> } {
  const r = spawnSync('bpftool', ['map', 'show', '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const maps: Record<string, number> = {};
  let bytes = 0;
  for (const m of JSON.parse(r.stdout || '[]') as { name?: string; bytes_memlock?: number; pids?: { pid: number }[] }[]) {
    if (!m.pids?.some((p) => p.pid === pid)) continue;
    bytes += m.bytes_memlock ?? 0;
    if (m.name) maps[m.name] = (maps[m.name] ?? 0) + (m.bytes_memlock ?? 0);
  }
  return { bytes, maps };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the bench needs root (BPF)');
  const { values } = parseOptions(USAGE, {
    connections: { default: '500000', kind: 'count', help: 'connections held (each two sockets on loopback); at most 20 x the ephemeral range' },
    'max-sockets': { default: '1048576', kind: 'count', help: "the agent's --max-sockets" },
  });
  const n = Number(values.connections);
  const dir = join(tmpdir(), `tcptrace-bench-sockets-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const bin = join(dir, 'hold_sockets');
  const cc = spawnSync('gcc', ['-O2', '-Wall', '-o', bin, join(ROOT, 'bench/sockets/hold_sockets.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc hold_sockets.c: ${cc.stderr}`);
  const listen = 20000 + (process.pid % 10000);
  // 20 listening ports below the ephemeral range (32768-60999 here): each has its own ~28k client ports
  const port0 = 30000 + (process.pid % 100) * 20;
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
  const before = await metrics();
  const rss0 = metricSum(before, 'process_resident_memory_bytes')!;
  const server = killOnInterrupt(spawn(bin, ['server', String(port0), '20'], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const client = killOnInterrupt(spawn(bin, ['client', String(port0), '20', String(n)], { stdio: ['ignore', 'pipe', 'inherit'] }));
  try {
    await lines(server, /listening/, 10_000);
    const t0 = performance.now();
    const connected = Number(/\d+/.exec(await lines(client, /connected \d+/, 600_000))![0]);
    process.stdout.write(`${connected} connections (${2 * connected} sockets) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    await sleep(8000); // the held sockets are walked at most every 5 s, map fill every 15 s
    const ss = Number(spawnSync('sh', ['-c', `ss -tanH state established '( sport >= :${port0} and sport < :${port0 + 20} ) or ( dport >= :${port0} and dport < :${port0 + 20} )' | wc -l`], { encoding: 'utf8' }).stdout.trim());
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
    process.stdout.write(
      [
        `ss: ${ss} ESTABLISHED sockets on the helper's ports; the agent: ${est} ESTABLISHED in all (held in the kernel and seen)`,
        `owners map ${owners}/${ownersMax} entries; map full ${full}; lost ${lost}`,
        `agent RSS ${MiB(rss0)} before, ${MiB(rss)} with them (JS heap ${MiB(heap)})`,
        `BPF maps of the agent: ${MiB(kmem.bytes)} (owners ${MiB(kmem.maps.owners ?? 0)}, seeds ${MiB(kmem.maps.seeds ?? 0)}): --max-sockets ${values['max-sockets']} promises these two at ${MiB((kmem.maps.owners ?? 0) + (kmem.maps.seeds ?? 0))}, whatever the host holds`,
      ].join('\n') + '\n',
    );
  } finally {
    client.kill('SIGKILL');
    server.kill('SIGKILL');
    await sleep(3000);
    agent.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
