/**
 * The deploy files, for real: the systemd unit parses with no warning, the
 * DaemonSet asks for what the unit asks for, the Prometheus config and alert
 * rules pass promtool (and the alerts' own unit tests), and then the whole
 * chain runs: a leaky service in its own cgroup; the agent started as the unit
 * starts it (its ExecStart flags, only its capability bounding set, under its
 * MemoryMax where a memory cgroup can hold it); a real Prometheus (Debian
 * `prometheus`, on loopback, its own config made from deploy/prometheus and its
 * own data folder, stopped by pid) scrapes it, loads the alert rules, and a
 * PromQL query through its HTTP API returns the leaked count `ss` shows.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { freePort, get, removeCgroup, ServiceCgroup } from './helpers/agent.js';
import { buildC, needKernelBtf, needRoot, ROOT, runClient, sleep, ssCloseWait, startServer, startTcptrace, stopPid, WORK, type Running, type Server } from './helpers/proc.js';

const DEPLOY = join(ROOT, 'deploy');
const UNIT = join(DEPLOY, 'systemd/tcptrace-agent.service');
const has = (cmd: string, arg = '--version') => spawnSync(cmd, [arg]).status === 0;
const noPromtool = has('promtool') ? false : 'promtool is not installed (Debian package prometheus)';
const noPrometheus = has('prometheus') ? false : 'prometheus is not installed (Debian package prometheus)';
const noAnalyze = has('systemd-analyze') ? false : 'systemd-analyze is not installed (Debian package systemd)';

/** the unit's [Service] keys (a key given twice keeps the last) */
function unitKeys(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(UNIT, 'utf8').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** CAP_BPF CAP_PERFMON ... -> bpf, perfmon (setpriv's and Kubernetes' spelling, lower-cased) */
const capNames = (v: string) => v.split(/\s+/).filter(Boolean).map((c) => c.replace(/^CAP_/, '').toLowerCase()).sort();

function bytes(v: string): number {
  const m = /^(\d+)([KMG]?)$/.exec(v);
  assert.ok(m, `MemoryMax=${v}`);
  return Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2] as '' | 'K' | 'M' | 'G'];
}

test('the systemd unit parses with no warning, restarts always, and bounds its memory and capabilities', { skip: noAnalyze }, () => {
  const r = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', 'systemd-analyze has no warning (an unknown key or a bad value is only a warning)');
  const k = unitKeys();
  assert.equal(k.Restart, 'always');
  assert.ok(bytes(k.MemoryMax!) > 0);
  assert.deepEqual(capNames(k.CapabilityBoundingSet!), capNames(k.AmbientCapabilities!));
  assert.match(k.ExecStart!, /bin\/tcptrace\.js agent /);
});

test('the DaemonSet: hostPID, the node cgroup tree read-only, probes on the agent port, the unit capabilities', () => {
  const docs = parseAllDocuments(readFileSync(join(DEPLOY, 'kubernetes/tcptrace-agent.yaml'), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, []);
    return d.toJS();
  });
  const ds = docs.find((d) => d.kind === 'DaemonSet');
  assert.ok(ds, 'a DaemonSet');
  const spec = ds.spec.template.spec;
  assert.equal(spec.hostPID, true);
  const c = spec.containers[0];
  const mounts = Object.fromEntries(c.volumeMounts.map((m: { mountPath: string; readOnly?: boolean; name: string }) => [m.mountPath, m]));
  assert.equal(mounts['/sys/fs/cgroup']?.readOnly, true, 'the cgroup tree is mounted read-only');
  for (const m of c.volumeMounts) {
    assert.equal(m.readOnly, true, `${m.mountPath} is read-only`);
    assert.ok(spec.volumes.some((v: { name: string }) => v.name === m.name), `volume ${m.name} exists`);
  }
  assert.deepEqual(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels);
  const listen = c.command[c.command.indexOf('--listen') + 1] as string;
  const port = Number(listen.split(':').pop());
  assert.equal(c.ports[0].containerPort, port);
  assert.equal(c.readinessProbe.httpGet.path, '/-/ready');
  assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
  assert.deepEqual([...c.securityContext.capabilities.add].map((x: string) => x.toLowerCase()).sort(), capNames(unitKeys().CapabilityBoundingSet!), 'the same capabilities as the systemd unit');
  assert.ok(c.resources.limits.memory, 'a memory limit');
});

test('the Prometheus config and alert rules pass promtool, and the alerts fire on a growing leak and on fds near the limit only', { skip: noPromtool }, () => {
  const dir = join(DEPLOY, 'prometheus');
  for (const args of [['check', 'config', 'prometheus.yml'], ['check', 'rules', 'tcptrace-alerts.yml'], ['test', 'rules', 'tcptrace-alerts.test.yml']]) {
    const r = spawnSync('promtool', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
  // the unit tests would pass vacuously without alerts to expect: each rule is exercised
  const tests = parse(readFileSync(join(dir, 'tcptrace-alerts.test.yml'), 'utf8'));
  const fired = new Set(tests.tests.flatMap((t: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }) => t.alert_rule_test.filter((a) => a.exp_alerts.length).map((a) => a.alertname)));
  assert.deepEqual([...fired].sort(), ['TcptraceCloseWaitLeakGrowing', 'TcptraceFdsNearLimit']);
});

/** a memory cgroup for the agent with the unit's MemoryMax: cgroup v2 if it has the memory controller, else v1 */
class MemoryCgroup {
  readonly dir: string | null = null;
  readonly why: string = '';
  private readonly v1: boolean = false;
  constructor(name: string, limit: number) {
    const v2 = '/sys/fs/cgroup';
    const v1 = '/sys/fs/cgroup/memory';
    if (existsSync(join(v2, 'cgroup.subtree_control')) && readFileSync(join(v2, 'cgroup.subtree_control'), 'utf8').includes('memory')) {
      this.dir = join(v2, name);
      mkdirSync(this.dir);
      writeFileSync(join(this.dir, 'memory.max'), String(limit));
    } else if (existsSync(join(v1, 'memory.limit_in_bytes'))) {
      this.dir = join(v1, name);
      this.v1 = true;
      mkdirSync(this.dir);
      writeFileSync(join(this.dir, 'memory.limit_in_bytes'), String(limit));
    } else {
      this.why = 'no memory controller (cgroup v2 root without memory, no v1 memory hierarchy)';
    }
  }
  /** the agent's peak memory, kernel memory (BPF maps, memcg-charged since 5.11) included */
  peak(): number | null {
    if (!this.dir) return null;
    const f = join(this.dir, this.v1 ? 'memory.max_usage_in_bytes' : 'memory.peak');
    return existsSync(f) ? Number(readFileSync(f, 'utf8')) : null;
  }
  async remove(): Promise<boolean> {
    return this.dir ? removeCgroup(this.dir) : true;
  }
}

async function until<T>(what: string, ms: number, f: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + ms;
  let last: T | null = null;
  while (Date.now() < end) {
    if ((last = await f()) !== null) return last;
    await sleep(250);
  }
  throw new Error(`timed out after ${ms} ms: ${what}`);
}

describe('the unit as deployed, scraped by a real Prometheus', { skip: needRoot() ?? needKernelBtf() ?? noPrometheus }, () => {
  let server: Server;
  let agent: Running;
  let prom: ChildProcess;
  let agentPort: number;
  let promPort: number;
  let memory: MemoryCgroup;
  const service = new ServiceCgroup(`tcptrace-deploy-test-${process.pid}`);
  const promDir = join(WORK, `prometheus-${process.pid}`);
  let promLog = '';

  const query = async (q: string) => {
    const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
    const j = (await r.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    assert.equal(j.status, 'success', JSON.stringify(j));
    return j.data.result;
  };

  before(async () => {
    server = await startServer(buildC('leaky_server', ['-O2', '-g']));
    service.add(server.pid);
    agentPort = await freePort();
    // the unit's ExecStart, with this test's port and a short --leak-after
    const k = unitKeys();
    const argv = k.ExecStart!.split(/\s+/);
    const args = argv.slice(argv.indexOf('agent'));
    args[args.indexOf('--listen') + 1] = `127.0.0.1:${agentPort}`;
    args[args.indexOf('--leak-after') + 1] = '1';
    memory = new MemoryCgroup(`tcptrace-agent-mem-${process.pid}`, bytes(k.MemoryMax!));
    const caps = capNames(k.CapabilityBoundingSet!).map((c) => `+${c}`).join(',');
    const setpriv = ['setpriv', `--bounding-set=-all,${caps}`, '--'];
    // into the memory cgroup before node starts, so its maps are charged there too
    const wrap = memory.dir ? ['sh', '-c', `echo $$ > ${memory.dir}/cgroup.procs && exec "$@"`, 'sh', ...setpriv] : setpriv;
    agent = startTcptrace(args, { wrap, timeoutMs: 120_000 });
    await agent.ready;
    runClient(server.port, 'leak', 4);
    runClient(server.port, 'good', 2, true);

    promPort = await freePort();
    mkdirSync(promDir, { recursive: true });
    const cfg = parse(readFileSync(join(DEPLOY, 'prometheus/prometheus.yml'), 'utf8'));
    cfg.global = { scrape_interval: '1s', evaluation_interval: '1s' };
    cfg.rule_files = [join(DEPLOY, 'prometheus/tcptrace-alerts.yml')];
    const job = cfg.scrape_configs.find((j: { job_name: string }) => j.job_name === 'tcptrace');
    job.scrape_interval = '1s';
    job.static_configs = [{ targets: [`127.0.0.1:${agentPort}`] }];
    writeFileSync(join(promDir, 'prometheus.yml'), stringify(cfg));
    prom = spawn('prometheus', [`--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    prom.stderr!.on('data', (d: Buffer) => (promLog = (promLog + d.toString()).slice(-20_000)));
    await until(`prometheus ready on ${promPort}: ${promLog}`, 30_000, async () => {
      const r = await fetch(`http://127.0.0.1:${promPort}/-/ready`).catch(() => null);
      return r?.ok ? true : null;
    });
  });

  after(async () => {
    if (prom) await stopPid(prom, 'SIGTERM');
    const done = await agent?.stop('SIGTERM');
    await server?.stop();
    rmSync(promDir, { recursive: true, force: true });
    assert.ok(await service.remove(), 'the service cgroup is removed');
    assert.ok(await memory.remove(), 'the memory cgroup is removed');
    if (done) assert.equal(done.code, 0, done.stderr);
  });

  test('the agent serves under only the unit capabilities', async () => {
    // capability numbers from linux/capability.h
    const NUM: Record<string, number> = { dac_read_search: 2, net_admin: 12, sys_ptrace: 19, sys_admin: 21, sys_resource: 24, perfmon: 38, bpf: 39 };
    const bnd = (pid: number | string) => BigInt(`0x${/^CapBnd:\s+(\w+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]}`);
    let unit = 0n;
    for (const c of capNames(unitKeys().CapabilityBoundingSet!)) {
      assert.ok(c in NUM, `a capability this test knows: ${c}`);
      unit |= 1n << BigInt(NUM[c]!);
    }
    // what the unit grants, of what this test itself holds (a container may lack some)
    assert.equal(bnd(agent.proc.pid!).toString(16), (unit & bnd('self')).toString(16));
    assert.equal((await get(agentPort, '/-/ready')).status, 200);
  });

  test('Prometheus scrapes the agent: the leaked count of the service through PromQL equals ss', async () => {
    const ss = ssCloseWait(server.pid);
    assert.equal(ss.size, 4);
    const q = `sum(tcptrace_leaked_sockets{job="tcptrace", workload="${service.workload}"})`;
    const got = await until(`${q} = ${ss.size}`, 30_000, async () => {
      const r = await query(q);
      return r.length && Number(r[0]!.value[1]) === ss.size ? Number(r[0]!.value[1]) : null;
    });
    assert.equal(got, ss.size);
    const up = await query('up{job="tcptrace"}');
    assert.equal(up[0]?.value[1], '1', JSON.stringify(up));
    // the fds alert's expression evaluates for this very process
    const ratio = await query(`tcptrace_process_open_fds{pid="${server.pid}"} / tcptrace_process_max_fds{pid="${server.pid}"}`);
    assert.equal(ratio.length, 1, JSON.stringify(ratio));
    assert.ok(Number(ratio[0]!.value[1]) > 0 && Number(ratio[0]!.value[1]) < 0.8);
  });

  test('Prometheus loaded the alert rules and evaluates them without error', async () => {
    const rules = await until('rules evaluated', 20_000, async () => {
      const j = (await (await fetch(`http://127.0.0.1:${promPort}/api/v1/rules`)).json()) as { data: { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] } };
      const g = j.data.groups.find((x) => x.name === 'tcptrace');
      return g && g.rules.every((r) => r.health !== 'unknown') ? g.rules : null;
    });
    assert.deepEqual(rules.map((r) => r.name), ['TcptraceCloseWaitLeakGrowing', 'TcptraceFdsNearLimit', 'TcptraceAgentLosingEvents']);
    for (const r of rules) assert.equal(r.health, 'ok', `${r.name}: ${r.lastError}`);
  });

  test('the agent stays under the unit MemoryMax', (t) => {
    if (!memory.dir) return t.skip(memory.why);
    const peak = memory.peak();
    if (peak === null) return t.skip('the memory cgroup has no peak file (memory.peak needs kernel 5.19)');
    const max = bytes(unitKeys().MemoryMax!);
    t.diagnostic(`agent memory peak ${(peak / 2 ** 20).toFixed(1)} MiB of MemoryMax ${(max / 2 ** 20).toFixed(0)} MiB`);
    assert.ok(peak > 0 && peak < max, `peak ${peak}`);
  });
});
