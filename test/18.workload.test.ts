/**
 * Workloads (src/agent/workload.ts, src/agent/cgroups.ts): cgroup v2 paths as
 * the agent's `workload` label, with names from the runtimes' state files, and
 * cgroup ids back to paths. The table runs without root, against runtime state
 * files written as docker, containerd's CRI plugin and CRI-O write them; as
 * root, a real cgroup is made under the machine's cgroup2 mount, a real process
 * moved into it, and both its /proc/PID/cgroup line and its cgroup id resolve
 * to the unit.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CgroupTree, cgroup2Mount } from '../src/agent/cgroups.js';
import { cgroupV2Path, readBounded, unescapeUnit, workloadOf, type RuntimeState, type Workload } from '../src/agent/workload.js';
import { NO_SELECTORS, Selection, type SelectorSpec } from '../src/agent/selection.js';
import { needRoot, sleep, WORK } from './helpers/proc.js';
import { removeCgroup } from './helpers/agent.js';

const DIR = join(WORK, 'workload');
after(() => rmSync(DIR, { recursive: true, force: true }));

const ID1 = 'a'.repeat(60) + '1234';
const ID2 = 'b'.repeat(60) + '5678';
const ID3 = 'c'.repeat(60) + '9abc';
const PAUSE = 'd'.repeat(64);
const UID = '3f1c2e4a-1b2c-4d5e-8f90-123456789abc';

function runtimeState(): RuntimeState {
  const state = { docker: join(DIR, 'docker'), containerd: join(DIR, 'containerd'), crio: join(DIR, 'crio') };
  const put = (path: string, doc: unknown) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, typeof doc === 'string' ? doc : JSON.stringify(doc));
  };
  put(join(state.docker, ID1, 'config.v2.json'), { ID: ID1, Name: '/orders-db', Config: { Image: 'postgres' } });
  put(join(state.containerd, ID2, 'config.json'), {
    ociVersion: '1.1.0',
    annotations: {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.sandbox-namespace': 'shop',
      'io.kubernetes.cri.sandbox-name': 'orders-7d9f8-x2x4q',
      'io.kubernetes.cri.container-name': 'orders',
    },
  });
  put(join(state.containerd, PAUSE, 'config.json'), {
    annotations: { 'io.kubernetes.cri.container-type': 'sandbox', 'io.kubernetes.cri.sandbox-namespace': 'shop', 'io.kubernetes.cri.sandbox-name': 'orders-7d9f8-x2x4q' },
  });
  put(join(state.crio, ID3, 'userdata/config.json'), {
    annotations: { 'io.kubernetes.pod.namespace': 'batch', 'io.kubernetes.pod.name': 'report-28912345-abcde', 'io.kubernetes.container.name': 'report' },
  });
  return state;
}

test('cgroup v2 paths as workloads: host, systemd units, docker, Kubernetes, with names from the runtimes\' state', () => {
  const state = runtimeState();
  const cases: [string, Record<string, unknown>][] = [
    ['/', { workload: '/host', kind: 'host' }],
    ['/init.scope', { workload: '/host', kind: 'host' }],
    ['/user.slice/user-1000.slice/session-3.scope', { workload: '/host', kind: 'host' }],
    ['/system.slice/nginx.service (deleted)', { workload: '/host', kind: 'host' }],
    ['/system.slice/nginx.service', { workload: '/system.slice/nginx.service', kind: 'systemd', unit: 'nginx' }],
    ['/system.slice/order\\x2dservice.service', { workload: '/system.slice/order-service.service', kind: 'systemd', unit: 'order-service' }],
    ['/system.slice/system-getty.slice/getty@tty1.service', { workload: '/system.slice/getty@tty1.service', kind: 'systemd', unit: 'getty@tty1' }],
    ['/system.slice/billing.service/worker', { workload: '/system.slice/billing.service', kind: 'systemd', unit: 'billing' }],
    ['/system.slice/cron.scope', { workload: '/host', kind: 'host' }],
    [`/docker/${ID1}`, { workload: '/docker/orders-db', kind: 'docker', containerId: ID1, container: 'orders-db' }],
    [`/system.slice/docker-${ID1}.scope`, { workload: '/docker/orders-db', kind: 'docker', containerId: ID1 }],
    [`/system.slice/docker-${'e'.repeat(64)}.scope`, { workload: `/docker/${'e'.repeat(12)}`, kind: 'docker', containerId: 'e'.repeat(64) }],
    [
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replace(/-/g, '_')}.slice/cri-containerd-${ID2}.scope`,
      { workload: '/k8s/shop/orders-7d9f8-x2x4q/orders', kind: 'kubernetes', containerId: ID2, podUid: UID, namespace: 'shop', pod: 'orders-7d9f8-x2x4q', container: 'orders' },
    ],
    [`/kubepods/burstable/pod${UID}/${PAUSE}`, { workload: '/k8s/shop/orders-7d9f8-x2x4q', kind: 'kubernetes', podUid: UID, pod: 'orders-7d9f8-x2x4q' }],
    [`/kubepods.slice/kubepods-pod${UID.replace(/-/g, '_')}.slice/crio-${ID3}.scope`, { workload: '/k8s-cronjob/batch/report/report', kind: 'kubernetes', containerId: ID3, pod: 'report-28912345-abcde' }],
    [`/kubepods.slice/kubepods-pod${UID.replace(/-/g, '_')}.slice/crio-conmon-${ID3}.scope`, { workload: `/k8s/pod/${UID}`, kind: 'kubernetes', podUid: UID, containerId: undefined }],
    [`/kubepods/besteffort/pod${UID}/${'f'.repeat(64)}`, { workload: `/k8s/pod/${UID}/${'f'.repeat(12)}`, kind: 'kubernetes', containerId: 'f'.repeat(64) }],
    ['/kubepods.slice', { workload: '/host', kind: 'host' }],
    ['/machine.slice/libvirt-qemu-1.scope', { workload: '/host', kind: 'host' }],
  ];
  for (const [path, want] of cases) {
    const got = workloadOf(path, state);
    for (const [k, v] of Object.entries(want)) assert.deepEqual((got as any)[k], v, `${path}: ${k}`);
    assert.equal(got.cgroup, path);
  }
});

test('runtime state that is missing, damaged or too big leaves the name out, never the workload', () => {
  const state = runtimeState();
  writeFileSync(join(state.docker, ID1, 'config.v2.json'), '{"Name": "/orders-db", '); // cut short
  assert.equal(workloadOf(`/docker/${ID1}`, state).workload, `/docker/${ID1.slice(0, 12)}`);
  writeFileSync(join(state.docker, ID1, 'config.v2.json'), JSON.stringify({ Name: '/x', pad: 'y'.repeat(2 << 20) }));
  assert.equal(workloadOf(`/docker/${ID1}`, state).workload, `/docker/${ID1.slice(0, 12)}`, 'a 2 MiB file is not a container config');
  writeFileSync(join(state.docker, ID1, 'config.v2.json'), JSON.stringify({ Name: 42 }));
  assert.equal(workloadOf(`/docker/${ID1}`, state).workload, `/docker/${ID1.slice(0, 12)}`);
  assert.equal(readBounded(join(DIR, 'nope')), null);
  writeFileSync(join(DIR, 'small'), 'abc');
  assert.equal(readBounded(join(DIR, 'small'), 3), 'abc');
  assert.equal(readBounded(join(DIR, 'small'), 2), null);
});

test('the 0:: line of /proc/PID/cgroup, systemd unescaping, the cgroup2 mount from mountinfo', () => {
  assert.equal(cgroupV2Path('12:memory:/docker/abc\n0::/system.slice/nginx.service\n'), '/system.slice/nginx.service');
  assert.equal(cgroupV2Path('4:memory:/x\n'), null, 'a v1-only host');
  assert.equal(cgroupV2Path('0::\n'), '/');
  // seen from an agent in a cgroup namespace of its own (a container)
  assert.equal(cgroupV2Path('0::/../../system.slice/nginx.service\n'), '/system.slice/nginx.service');
  assert.equal(cgroupV2Path('0::/../..\n'), '/');
  assert.equal(cgroupV2Path('0::/..x/a\n'), '/..x/a', 'only whole /.. segments');
  assert.equal(unescapeUnit('a\\x2db\\x40c'), 'a-b@c');
  const hybrid = [
    '30 25 0:27 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755',
    '31 30 0:28 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate',
    '32 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory',
  ].join('\n');
  assert.equal(cgroup2Mount(hybrid), '/sys/fs/cgroup/unified');
  assert.equal(cgroup2Mount('40 1 0:30 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw\n'), '/sys/fs/cgroup');
  assert.equal(cgroup2Mount('40 1 0:30 /kubepods/x /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n'), null, "a container's view of a subtree");
  assert.equal(cgroup2Mount('40 1 0:30 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n'), '/mnt/with space');
  assert.equal(cgroup2Mount(''), null);
});

test('a real process in a real cgroup: its /proc line and its cgroup id both resolve to the unit', { skip: needRoot() ?? false }, async (t) => {
  const tree = new CgroupTree({ rescanMs: 0 });
  if (!tree.root) return t.skip('no cgroup2 file system is mounted (/proc/self/mountinfo)');
  const unitDir = join(tree.root, 'system.slice', `tcptrace\\x2dtest\\x2d${process.pid}.service`);
  const made = !existsSync(join(tree.root, 'system.slice'));
  mkdirSync(unitDir, { recursive: true });
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await new Promise((r) => child.once('spawn', r));
    writeFileSync(join(unitDir, 'cgroup.procs'), String(child.pid));
    const line = cgroupV2Path(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8'));
    const want = `/system.slice/tcptrace\\x2dtest\\x2d${process.pid}.service`;
    assert.equal(line, want);
    // as an agent in a container sees it: a reader in a cgroup namespace rooted in another cgroup
    const nsDir = join(tree.root, `tcptrace-nsview-${process.pid}`);
    mkdirSync(nsDir);
    try {
      const seen = spawnSync('sh', ['-c', `echo $$ > ${nsDir}/cgroup.procs && exec unshare --cgroup cat /proc/${child.pid}/cgroup`], { encoding: 'utf8' });
      assert.equal(seen.status, 0, seen.stderr);
      assert.match(seen.stdout, /^0::\/\.\.\//m, 'the kernel shows the path relative to the namespace root');
      assert.equal(cgroupV2Path(seen.stdout), want);
    } finally {
      assert.ok(await removeCgroup(nsDir), 'the namespace-view cgroup is removed');
    }
    const w = workloadOf(line!);
    assert.deepEqual([w.workload, w.kind, w.unit], [`/system.slice/tcptrace-test-${process.pid}.service`, 'systemd', `tcptrace-test-${process.pid}`]);
    const id = tree.idOf(want);
    assert.ok(id && id > 1n, `cgroup id ${id}`);
    assert.equal(tree.pathOf(id!), want, 'the id walks back to the path');
    assert.equal(tree.pathOf(0xffff_ffff_ffffn), null, 'an id no cgroup has');
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // the cgroup is empty once the child is reaped: removable
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(unitDir);
        break;
      } catch {
        await sleep(20);
      }
    }
    if (made) rmdirSync(join(tree.root, 'system.slice'));
    assert.equal(existsSync(unitDir), false, 'the test cgroup is removed');
  }
});

test('selectors: comm and unit globs, cgroup subtrees, container id prefixes and names', () => {
  const w = (o: Partial<Workload>): Workload => ({ workload: '/host', kind: 'host', cgroup: '/user.slice', ...o });
  const orders = w({ workload: '/system.slice/orders.service', kind: 'systemd', unit: 'orders', cgroup: '/system.slice/orders.service' });
  const pod = w({ workload: '/k8s/shop/api-7f/api', kind: 'kubernetes', containerId: 'ab12'.padEnd(64, '0'), container: 'api', cgroup: '/kubepods.slice/x/cri-containerd-ab12.scope' });
  // a cgroup selector must name a directory under the cgroup2 mount: a stand-in tree
  const root = join(WORK, `selectors-${process.pid}`);
  mkdirSync(join(root, 'system.slice/ord'), { recursive: true });
  after(() => rmSync(root, { recursive: true, force: true }));
  const sel = (spec: Partial<SelectorSpec>) => new Selection({ ...NO_SELECTORS, ...spec }, root);
  assert.throws(() => sel({ cgroup: ['/system.slice/nope'] }), /no such cgroup/);
  assert.ok(sel({}).all && sel({}).selects(1, 'x', () => orders));
  assert.ok(sel({ comm: ['java*'] }).selects(1, 'java', () => orders));
  assert.ok(!sel({ comm: ['java*'] }).selects(2, 'python3', () => orders));
  assert.ok(sel({ unit: ['orders.service'] }).selects(3, 'x', () => orders), 'NAME.service is the unit NAME');
  assert.ok(sel({ unit: ['ord*'] }).selects(4, 'x', () => orders));
  assert.ok(!sel({ unit: ['billing'] }).selects(5, 'x', () => orders));
  assert.ok(sel({ cgroup: ['/system.slice'] }).selects(6, 'x', () => orders), 'a subtree');
  assert.ok(!sel({ cgroup: ['/system.slice/ord'] }).selects(7, 'x', () => orders), 'a path, not a string prefix');
  assert.ok(sel({ container: ['ab12'] }).selects(8, 'x', () => pod), 'an id prefix');
  assert.ok(sel({ container: ['ap?'] }).selects(9, 'x', () => pod), 'a name glob');
  assert.ok(!sel({ container: ['ab12'] }).selects(10, 'x', () => orders), 'not a container');
  assert.ok(sel({ pid: [11], comm: ['nope'] }).selects(11, 'x', () => orders), 'any selector');
  assert.throws(() => sel({ comm: ['a-very-long-process-name'] }), /15 characters/);
  assert.ok(sel({ comm: ['a-very-long-proc*'] }), 'a glob may be longer');
  assert.throws(() => new Selection({ ...NO_SELECTORS, cgroup: ['/x'] }, null), /no cgroup v2 file system/);
  assert.throws(() => sel({ unit: [''] }), /empty value/);
});
