/**
 * The agent's selectors and reloads, on the real kernel: two leaky services,
 * each in a systemd-like cgroup of its own; the agent, run with a --config file
 * that names one of them, reports that one only (metrics and profile, = ss),
 * and after the file names the other and POST /-/reload (or SIGHUP), the other
 * only, under the reloaded --leak-after. A file that does not parse, an unknown
 * key, a cgroup that does not exist: the reload is refused with the reason and
 * the agent keeps running as it was. Scrapes during reloads all succeed. Bad
 * selectors at start are one-line errors with their exit codes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { EXIT } from '../src/errors.js';
import { freePort, get, sample, series, ServiceCgroup } from './helpers/agent.js';
import { buildC, needKernelBtf, needRoot, runClient, runTcptrace, sleep, ssCloseWait, startServer, startTcptrace, WORK, type Running, type Server } from './helpers/proc.js';

const skip = needRoot() ?? needKernelBtf();

/** POST from a chosen local address (the peer address the agent sees) */
function post(port: number, path: string, host = '127.0.0.1', localAddress?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: 'POST', localAddress }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

function profilePids(body: Buffer): Set<number> {
  const p = Profile.decode(gunzipSync(body));
  const pidKey = p.stringTable.strings.indexOf('pid');
  return new Set(p.sample.flatMap((s) => s.label.filter((l) => Number(l.key) === pidKey).map((l) => Number(l.num))));
}

describe('tcptrace agent: selectors and reloads', { skip: skip ?? false }, () => {
  let a: Server;
  let b: Server;
  let agent: Running;
  let port: number;
  const unitA = `tcptrace-sel-a-${process.pid}`;
  const unitB = `tcptrace-sel-b-${process.pid}`;
  const svcA = new ServiceCgroup(unitA);
  const svcB = new ServiceCgroup(unitB);
  const dir = join(WORK, `agent-reload-${process.pid}`);
  const config = join(dir, 'agent.yml');
  const metrics = async () => (await get(port, '/metrics')).text;
  const closeWait = (m: string, s: Server) => sample(m, 'tcptrace_close_wait_sockets', { pid: String(s.pid) });

  before(async () => {
    mkdirSync(dir, { recursive: true });
    const bin = buildC('leaky_server', ['-O2', '-g']);
    a = await startServer(bin);
    b = await startServer(bin);
    svcA.add(a.pid);
    svcB.add(b.pid);
    writeFileSync(config, `# the agent's settings\nleak-after: 1\nunit: ['tcptrace-sel-a-*']\n`);
    port = await freePort();
    agent = startTcptrace(['agent', '--listen', `127.0.0.1:${port}`, '--config', config, '--series-grace', '1']);
    await agent.ready;
    runClient(a.port, 'leak', 3);
    runClient(b.port, 'leak', 2);
    await sleep(1500);
  });

  after(async () => {
    await agent?.stop('SIGTERM');
    await a?.stop();
    await b?.stop();
    assert.ok(await svcA.remove(), 'cgroup a removed');
    assert.ok(await svcB.remove(), 'cgroup b removed');
  });

  test('--config names one unit: only its process is reported, = ss, in metrics and profile', async () => {
    assert.match(agent.proc.pid ? (await get(port, '/-/ready')).text : '', /ready/);
    const m = await metrics();
    assert.equal(closeWait(m, a), ssCloseWait(a.pid).size);
    assert.equal(ssCloseWait(a.pid).size, 3);
    assert.equal(sample(m, 'tcptrace_leaked_sockets', { pid: String(a.pid) }), 3, 'leak-after 1 from the file');
    assert.equal(closeWait(m, b), null, "the other unit's process has no series");
    assert.equal(ssCloseWait(b.pid).size, 2, 'though it holds CLOSE_WAIT sockets');
    assert.equal(sample(m, 'tcptrace_sockets', { workload: svcB.workload, state: 'LISTEN' }), null);
    const pids = profilePids((await get(port, '/debug/pprof/close_wait')).body);
    assert.ok(pids.has(a.pid) && !pids.has(b.pid), `profile pids ${[...pids]}`);
    assert.equal(sample(m, 'tcptrace_config_last_reload_successful', {}), 1);
  });

  test('the file names the other unit and a longer leak-after; POST /-/reload: the other only, nothing leaked yet', async () => {
    writeFileSync(config, `leak-after: 3600\nunit: ${unitB}.service\n`);
    const r = await post(port, '/-/reload');
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /reloaded .*leak-after 3600 s.*unit tcptrace-sel-b/);
    const m = await metrics();
    assert.equal(closeWait(m, b), ssCloseWait(b.pid).size);
    assert.equal(sample(m, 'tcptrace_leaked_sockets', { pid: String(b.pid) }), 0, 'not yet an hour in CLOSE_WAIT');
    assert.equal(closeWait(m, a), null, 'deselected: its series go at once, not after the grace period');
    assert.equal(sample(m, 'tcptrace_config_reloads_total', { result: 'success' }), 1);
    const pids = profilePids((await get(port, '/debug/pprof/close_wait')).body);
    assert.ok(pids.has(b.pid) && !pids.has(a.pid), `profile pids ${[...pids]}`);
  });

  test('a malformed file, an unknown key, a cgroup that does not exist: refused, said why, the settings stay', async () => {
    const cases: [string, RegExp][] = [
      ['leak-after: [1\n', /agent\.yml(:\d+)?: not YAML/],
      ['leak-after: 1\nselector: x\n', /unknown setting 'selector'/],
      [`cgroup: /no/such/cgroup-${process.pid}\n`, /no such cgroup/],
      ['leak-after: -3\n', /leak-after: '-3' is not a positive number/],
      ['comm: a-process-name-too-long\n', /the kernel keeps 15 characters/],
    ];
    for (const [text, why] of cases) {
      writeFileSync(config, text);
      const r = await post(port, '/-/reload');
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, /^reload refused, the running settings stay: /);
      assert.match(r.text, why);
      const m = await metrics();
      assert.equal(sample(m, 'tcptrace_config_last_reload_successful', {}), 0);
      assert.equal(closeWait(m, b), 2, 'still reporting b');
      assert.equal(sample(m, 'tcptrace_leaked_sockets', { pid: String(b.pid) }), 0, 'still leak-after 3600');
      assert.equal(closeWait(m, a), null);
    }
    assert.equal(sample(await metrics(), 'tcptrace_config_reloads_total', { result: 'failure' }), cases.length);
    assert.equal(agent.proc.exitCode, null, 'the agent runs on');
  });

  test('SIGHUP reloads as POST does; scrapes during reloads all answer', async () => {
    writeFileSync(config, `leak-after: 1\ncgroup: [${svcA.workload}, ${svcB.workload}]\n`);
    const scrapes: Promise<number>[] = [];
    for (let i = 0; i < 20; i++) {
      scrapes.push(get(port, '/metrics').then((r) => r.status));
      if (i % 4 === 0) process.kill(agent.proc.pid!, 'SIGHUP');
      await sleep(20);
    }
    assert.deepEqual(new Set(await Promise.all(scrapes)), new Set([200]));
    await sleep(200);
    const m = await metrics();
    assert.equal(sample(m, 'tcptrace_config_last_reload_successful', {}), 1);
    assert.equal(closeWait(m, a), 3, 'both cgroups now');
    assert.equal(closeWait(m, b), 2);
    assert.equal(sample(m, 'tcptrace_leaked_sockets', { pid: String(b.pid) }), 2, 'leak-after 1 again');
    assert.ok(series(m, 'tcptrace_close_wait_sockets').every((s) => s.labels.pid === String(a.pid) || s.labels.pid === String(b.pid)));
  });

  test('reload is POST only, and from this host only', async (t) => {
    assert.equal((await get(port, '/-/reload')).status, 405);
    const mine = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal);
    if (!mine) return t.skip('this host has no non-loopback IPv4 address to send from');
    // the agent listens on loopback: a peer address other than 127.x needs a listener on the host's address
    const wide = await freePort();
    const other = startTcptrace(['agent', '--listen', `0.0.0.0:${wide}`, '--comm', 'no-such-comm', '--duration', '30']);
    try {
      await other.ready;
      const r = await post(wide, '/-/reload', mine.address, mine.address);
      assert.equal(r.status, 403, r.text);
      assert.match(r.text, /from this host only/);
      assert.equal((await post(wide, '/-/reload')).status, 200, 'from loopback it is accepted');
    } finally {
      await other.stop('SIGTERM');
    }
  });
});

describe('tcptrace agent: bad selectors and config files at start', { skip: skip ?? false }, () => {
  const dir = join(WORK, `agent-badcfg-${process.pid}`);
  before(() => mkdirSync(dir, { recursive: true }));

  const cases: [string, () => string[], number, RegExp][] = [
    ['an unknown selector', () => ['--selector', 'x'], EXIT.USAGE, /unknown option '--selector'/],
    ['a cgroup that does not exist', () => ['--cgroup', `/no/such-${process.pid}`], EXIT.USAGE, /--cgroup '\/no\/such-\d+': no such cgroup/],
    ['a relative cgroup', () => ['--cgroup', 'system.slice'], EXIT.USAGE, /a cgroup v2 path from the root/],
    ['a comm the kernel cannot hold', () => ['--comm', 'a-very-long-process-name'], EXIT.USAGE, /15 characters/],
    ['a 2-digit container id', () => ['--container', 'ab'], EXIT.USAGE, /4 hex digits at least/],
    ['a config file that is not there', () => ['--config', join(dir, 'missing.yml')], EXIT.NO_INPUT, /cannot read the agent config .*missing\.yml: ENOENT/],
    [
      'a config file that is not YAML',
      () => {
        writeFileSync(join(dir, 'bad.yml'), 'unit: [a\n');
        return ['--config', join(dir, 'bad.yml')];
      },
      EXIT.BAD_INPUT,
      /bad\.yml(:\d+)?: not YAML/,
    ],
    [
      'a config file with a list at the top',
      () => {
        writeFileSync(join(dir, 'list.yml'), '- 1\n- 2\n');
        return ['--config', join(dir, 'list.yml')];
      },
      EXIT.BAD_INPUT,
      /a mapping of settings .* not a list/,
    ],
  ];
  for (const [what, args, code, why] of cases) {
    test(`${what}: one line, exit ${code}, nothing attached`, async () => {
      const r = await runTcptrace(['agent', '--listen', '127.0.0.1:0', ...args()]);
      assert.equal(r.code, code, r.stderr);
      // one line (commander adds its usage hint under an unknown option)
      const lines = r.stderr.trim().split('\n').filter((l) => l !== '(run with --help for usage)');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, why);
    });
  }
});
