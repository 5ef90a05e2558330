/**
 * The agent over time, on the real kernel:
 * - --pyroscope-url: an in-test HTTP receiver gets Pyroscope ingest requests
 *   (query, multipart profile and sample_type_config) it decodes itself; the
 *   leaked sample names the leaking function; a receiver that fails is counted
 *   and the agent runs on;
 * - restarted over a leak: a second agent reports the sockets at once, as
 *   preexisting (metrics = ss, profile frame, leak event origin);
 * - churn: 2,000 short-lived processes that each hold a CLOSE_WAIT socket for a
 *   moment and exit: the series stay bounded while they run and are all gone
 *   after the grace period; the map fill gauges say where the kernel maps stand.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server as HttpServer } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { EXIT } from '../src/errors.js';
import { freePort, get, sample, series, ServiceCgroup } from './helpers/agent.js';
import { buildC, needKernelBtf, needRoot, runClient, runTcptrace, sleep, ssCloseWait, startServer, startTcptrace, type Running, type Server } from './helpers/proc.js';

const skip = needRoot() ?? needKernelBtf();

interface Pushed {
  query: URLSearchParams;
  profile: Profile;
  config: Record<string, { aggregation: string; units: string }>;
}

/** the samples of a profile, with their labels and the functions of their stacks (innermost first) */
function samples(p: Profile): { labels: Record<string, string | number>; values: number[]; functions: string[] }[] {
  const str = (i: unknown) => p.stringTable.strings[Number(i)]!;
  const fnName = new Map(p.function.map((f) => [Number(f.id), str(f.name)]));
  const loc = new Map(p.location.map((l) => [Number(l.id), l.line.map((x) => fnName.get(Number(x.functionId))!)]));
  return p.sample.map((s) => ({
    labels: Object.fromEntries(s.label.map((l) => [str(l.key), Number(l.str) ? str(l.str) : Number(l.num)])),
    values: s.value.map(Number),
    functions: s.locationId.flatMap((id) => loc.get(Number(id)) ?? []),
  }));
}

describe('tcptrace agent --pyroscope-url: pushes a profile Pyroscope can ingest', { skip: skip ?? false }, () => {
  let server: Server;
  let agent: Running;
  let receiver: HttpServer;
  let recvPort: number;
  let port: number;
  let failWith = 0;
  const pushed: Pushed[] = [];

  before(async () => {
    receiver = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      if (failWith) return void res.writeHead(failWith).end('no\n');
      // the receiver parses the multipart body with the platform's own parser, not tcptrace's code
      const form = await new Request(`http://x${req.url}`, { method: 'POST', headers: req.headers as Record<string, string>, body: Buffer.concat(chunks) }).formData();
      const prof = form.get('profile') as Blob;
      const cfg = form.get('sample_type_config') as Blob;
      pushed.push({
        query: new URL(`http://x${req.url}`).searchParams,
        profile: Profile.decode(gunzipSync(Buffer.from(await prof.arrayBuffer()))),
        config: JSON.parse(await cfg.text()),
      });
      res.writeHead(200).end();
    });
    recvPort = await new Promise<number>((r) => receiver.listen(0, '127.0.0.1', () => r((receiver.address() as { port: number }).port)));
    server = await startServer(buildC('leaky_server', ['-O2', '-g']));
    port = await freePort();
    agent = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--leak-after', '1', '--pyroscope-url', `http://127.0.0.1:${recvPort}/base/`, '--push-interval', '1']);
    await agent.ready;
    runClient(server.port, 'leak', 3);
    await sleep(3500);
  });

  after(async () => {
    await agent?.stop('SIGTERM');
    await server?.stop();
    await new Promise((r) => receiver.close(r));
  });

  test('each push: /ingest with name, from < until and format pprof; the leaked sample names the leaking function', () => {
    assert.ok(pushed.length >= 2, `${pushed.length} pushes`);
    const last = pushed.at(-1)!;
    assert.match(last.query.get('name')!, /^tcptrace\{host=[\w.:/-]+\}$/);
    assert.equal(last.query.get('format'), 'pprof');
    assert.ok(Number(last.query.get('from')) < Number(last.query.get('until')));
    assert.equal(Number(pushed[1]!.query.get('from')), Number(pushed[0]!.query.get('until')), 'consecutive windows');
    assert.deepEqual(Object.keys(last.config).sort(), ['active_closes', 'close_wait_sockets', 'inuse_sockets', 'leaked_sockets']);
    assert.equal(last.config.leaked_sockets!.aggregation, 'average', 'a count at an instant, not a sum over pushes');
    const mine = samples(last.profile).filter((s) => s.labels.pid === server.pid);
    const leaked = mine.reduce((n, s) => n + s.values[0]!, 0);
    assert.equal(leaked, ssCloseWait(server.pid).size);
    assert.ok(mine.some((s) => s.values[0]! > 0 && s.functions.includes('serve_clients')), JSON.stringify(mine.map((s) => s.functions.slice(0, 4))));
  });

  test('a receiver that fails: counted, and the agent pushes on', async () => {
    const before = sample((await get(port, '/metrics')).text, 'tcptrace_profile_pushes_total', { result: 'success' })!;
    assert.ok(before >= 2);
    failWith = 503;
    await sleep(2500);
    const m = (await get(port, '/metrics')).text;
    assert.ok(sample(m, 'tcptrace_profile_pushes_total', { result: 'failure' })! >= 1, m.split('\n').filter((l) => l.includes('push')).join('\n'));
    failWith = 0;
    const n = pushed.length;
    await sleep(2500);
    assert.ok(pushed.length > n, 'pushes resume');
    assert.equal(agent.proc.exitCode, null);
  });

  test('a bad --pyroscope-url: one line, exit 64', async () => {
    for (const [url, why] of [
      ['pyroscope:4040', /http or https/],
      ['not a url', /is not a URL/],
    ] as const) {
      const r = await runTcptrace(['agent', '--listen', '127.0.0.1:0', '--pyroscope-url', url]);
      assert.equal(r.code, EXIT.USAGE, r.stderr);
      assert.match(r.stderr.trim().split('\n')[0]!, why);
    }
  });
});

describe('tcptrace agent restarted over a leak: reported at once, as preexisting', { skip: skip ?? false }, () => {
  let server: Server;
  const service = new ServiceCgroup(`tcptrace-restart-test-${process.pid}`);

  before(async () => {
    server = await startServer(buildC('leaky_server', ['-O2', '-g']));
    service.add(server.pid);
  });
  after(async () => {
    await server?.stop();
    assert.ok(await service.remove());
  });

  test('the second agent shows the first one’s leak as soon as it is ready', async () => {
    const port = await freePort();
    const first = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--leak-after', '1']);
    await first.ready;
    runClient(server.port, 'leak', 4);
    await sleep(1200);
    assert.equal(sample((await get(port, '/metrics')).text, 'tcptrace_leaked_sockets', { pid: String(server.pid) }), 4);
    assert.equal((await first.stop('SIGTERM')).code, 0);

    const second = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--leak-after', '1']);
    try {
      await second.ready;
      const m = (await get(port, '/metrics')).text;
      assert.equal((await get(port, '/-/ready')).status, 200);
      const ss = ssCloseWait(server.pid).size;
      assert.equal(ss, 4);
      assert.equal(sample(m, 'tcptrace_close_wait_sockets', { workload: service.workload, pid: String(server.pid) }), ss, 'at once, from the seeding');
      const prof = samples(Profile.decode(gunzipSync((await get(port, '/debug/pprof/close_wait')).body))).filter((s) => s.labels.pid === server.pid && s.values[1]! > 0);
      assert.equal(prof.reduce((n, s) => n + s.values[1]!, 0), ss);
      for (const s of prof) {
        assert.equal(s.labels.origin, 'preexisting');
        assert.deepEqual(s.functions, ['[acquired before tcptrace started]']);
      }
      // and once past --leak-after, a leak event says where they came from
      await sleep(2500);
      const events = second.proc.pid ? (await second.stop('SIGTERM')).stdout : '';
      const started = events.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event === 'leak_started' && e.pid === server.pid);
      assert.equal(started.length, 1, events);
      assert.equal(started[0].origin, 'preexisting');
      assert.equal(started[0].count, 4);
    } finally {
      await second.stop('SIGTERM');
    }
  });
});

describe('tcptrace agent under process churn: 2,000 short-lived processes', { skip: skip ?? false }, () => {
  let server: Server;
  let agent: Running;
  let port: number;

  before(async () => {
    server = await startServer(buildC('leaky_server', ['-O2', '-g']));
    port = await freePort();
    agent = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--leak-after', '1', '--series-grace', '2', '--forget-interval', '1'], { timeoutMs: 240_000 });
    await agent.ready;
  });
  after(async () => {
    await agent?.stop('SIGTERM');
    await server?.stop();
  });

  test('series stay bounded while they run, and are gone after the grace period', async (t) => {
    const N = 2000;
    const churn = spawn(buildC('churn_clients', ['-O2']), [String(server.port), String(N), '16', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    churn.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number>((r) => churn.once('exit', (c) => r(c ?? -1)));
    let maxSeries = 0;
    let scrapes = 0;
    let seenChurn = 0;
    const churnPids = new Set<string>();
    let done = false;
    void exited.then(() => (done = true));
    while (!done) {
      const m = (await get(port, '/metrics')).text;
      scrapes++;
      const cw = series(m, 'tcptrace_close_wait_sockets').filter((s) => s.labels.comm === 'churn_clients');
      for (const s of cw) churnPids.add(s.labels.pid!);
      seenChurn = Math.max(seenChurn, cw.length);
      maxSeries = Math.max(maxSeries, m.split('\n').filter((l) => l && !l.startsWith('#')).length);
      await sleep(200);
    }
    assert.equal(await exited, 0, out);
    assert.match(out, new RegExp(`done ${N} failed 0`));
    t.diagnostic(`${scrapes} scrapes; churn processes seen with series: ${churnPids.size}; at most ${seenChurn} at once; at most ${maxSeries} samples a scrape`);
    assert.ok(churnPids.size > 0, 'the churn was seen at all');
    // 16 at once, each ~30 ms in CLOSE_WAIT, plus 2 s of grace at 0: far under the pids that ran
    assert.ok(seenChurn < 400, `${seenChurn} churn series at once`);
    // past the series grace (2 s), and past 2 s gone plus a --forget-interval for the sweep
    await sleep(5000);
    const m = (await get(port, '/metrics')).text;
    assert.deepEqual(series(m, 'tcptrace_close_wait_sockets').filter((s) => s.labels.comm === 'churn_clients'), [], 'every churn series gone after the grace period');
    assert.ok(sample(m, 'tcptrace_close_wait_entered_total', { workload: '/host' })! >= N, 'every churn socket counted in CLOSE_WAIT');
    // the kernel maps are back to what live sockets need
    const owners = sample(m, 'tcptrace_bpf_map_entries', { map: 'owners' });
    const max = sample(m, 'tcptrace_bpf_map_max_entries', { map: 'owners' });
    assert.ok(owners !== null && max !== null && owners < max, `owners ${owners} of ${max}`);
    // what the agent kept of the exited processes (stacks, history) is gone: it does not grow with churn
    const tracked = sample(m, 'tcptrace_tracked_processes', {})!;
    const forgotten = sample(m, 'tcptrace_forgotten_processes_total', {})!;
    assert.ok(tracked <= 5, `${tracked} processes still tracked (the server, the agent's neighbours)`);
    assert.ok(forgotten >= churnPids.size, `${forgotten} forgotten, ${churnPids.size} churn processes seen`);
    const rss = sample(m, 'process_resident_memory_bytes', {})!;
    t.diagnostic(`agent RSS after the churn ${(rss / 2 ** 20).toFixed(0)} MiB; ${forgotten} exited processes forgotten, ${tracked} tracked; owners map ${owners}/${max}`);
  });
});

describe('tcptrace agent: active closes (TIME_WAIT makers) by workload and code path, counted in the kernel', { skip: skip ?? false }, () => {
  let server: Server;
  let agent: Running;
  let port: number;
  const service = new ServiceCgroup(`tcptrace-closes-test-${process.pid}`);

  before(async () => {
    server = await startServer(buildC('leaky_server', ['-O2', '-g']));
    port = await freePort();
    agent = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--forget-interval', '1']);
    await agent.ready;
  });
  after(async () => {
    await agent?.stop('SIGTERM');
    await server?.stop();
    assert.ok(await service.remove());
  });

  test("a client that closes first: its workload's active closes = its connections, in the profile at fetch_once, and kept once it exits", async (t) => {
    const N = 40;
    // one process, 40 connections 25 ms apart (1 s in all), closing each first
    const bin = buildC('closing_client', ['-O2', '-g']);
    const dir = service.dir;
    // the client in its own service cgroup from its first instruction
    const argv = dir ? ['sh', ['-c', `mkdir -p '${dir}' && echo $$ > '${dir}/cgroup.procs' && exec '${bin}' ${server.port} ${N} 1000 25`]] : [bin, [String(server.port), String(N), '1000', '25']];
    const client = spawn(argv[0] as string, argv[1] as string[], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    client.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const clientPid = client.pid!;
    // it lingers a second after its last close, so its stacks are read while it lives (a process gone
    // before that has its closes counted, under "[no stack captured]")
    assert.equal(await new Promise((r) => client.once('exit', r)), 0);
    assert.match(out, new RegExp(`closed ${N}`));
    await sleep(300);
    const prof = samples(Profile.decode(gunzipSync((await get(port, '/debug/pprof/close_wait')).body))).filter((s) => s.labels.pid === clientPid);
    const closes = prof.reduce((n, s) => n + s.values[3]!, 0);
    t.diagnostic(`profile: ${prof.length} samples of the client, ${closes} active closes; stacks ${JSON.stringify(prof.map((s) => s.functions.slice(0, 3)))}`);
    assert.equal(closes, N, 'every connection, once: the kernel held ones and the published one');
    assert.ok(prof.some((s) => s.values[3]! >= N - 1 && s.functions.includes('fetch_once')), 'the code path that closes');
    const m = (await get(port, '/metrics')).text;
    assert.equal(sample(m, 'tcptrace_active_closes_total', { workload: service.workload }), N);
    // 25 ms apart, the later connections' stacks are known to the kernel: their sockets are held and
    // their active closes counted there (the first scrape reads the map fresh)
    assert.ok(sample(m, 'tcptrace_bpf_map_entries', { map: 'active_closes' })! >= 1, 'the kernel counted some');
    assert.ok(sample(m, 'tcptrace_summarised_transitions_total', {})! > 0);
    // the client is gone: after the sweep (2 s gone, then the next --forget-interval) its counts stay
    // in its workload's total, its kernel keys go
    await sleep(4000);
    const after = (await get(port, '/metrics')).text;
    assert.equal(sample(after, 'tcptrace_active_closes_total', { workload: service.workload }), N, 'kept after the process is forgotten');
    const prof2 = samples(Profile.decode(gunzipSync((await get(port, '/debug/pprof/close_wait')).body))).filter((s) => s.labels.pid === clientPid);
    assert.deepEqual(prof2, [], 'the exited process has no sample any more');
  });

  test('a client gone before the agent reads its /proc is still its workload: the kernel noted its cgroup', async () => {
    const other = new ServiceCgroup(`tcptrace-gone-test-${process.pid}`);
    if (!other.dir) return;
    const N = 20;
    const bin = buildC('closing_client', ['-O2', '-g']);
    const before = sample((await get(port, '/metrics')).text, 'tcptrace_workloads_from_kernel_total', {}) ?? 0;
    try {
      // the agent is stopped while the client runs and exits: its records wait in the ring, and
      // when the agent reads them /proc/PID is gone (a process faster than the agent, for sure)
      process.kill(agent.proc.pid!, 'SIGSTOP');
      let r;
      try {
        r = spawnSync('sh', ['-c', `mkdir -p '${other.dir}' && echo $$ > '${other.dir}/cgroup.procs' && exec '${bin}' ${server.port} ${N}`], { encoding: 'utf8' });
      } finally {
        process.kill(agent.proc.pid!, 'SIGCONT');
      }
      assert.equal(r.status, 0, r.stderr);
      await sleep(1500);
      const m = (await get(port, '/metrics')).text;
      assert.equal(sample(m, 'tcptrace_active_closes_total', { workload: other.workload }), N, m.split('\n').filter((l) => l.includes('active_closes_total')).join('\n'));
      assert.ok(sample(m, 'tcptrace_workloads_from_kernel_total', {})! > before, 'named from the kernel, /proc being gone');
    } finally {
      assert.ok(await other.remove());
    }
  });
});
