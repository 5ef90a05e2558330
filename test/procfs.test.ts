/** src/sys/procfs.ts: parsers on fixed text, readers on this very process. Runs without root. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fstatSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { TcptraceError } from '../src/errors.js';
import {
  fdTable,
  isKernelThread,
  netnsInode,
  nofileLimit,
  parseFileNr,
  parseLimits,
  parseNetstat,
  parsePortList,
  parseStatus,
  processComm,
  processStatus,
  readNetstat,
  readSysctl,
  socketInodes,
  sysctlNumbers,
  sysctlPath,
} from '../src/sys/procfs.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const NOT_A_PID = 4194304; // above the largest possible pid_max (2^22)

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max processes             63432                63432                processes 
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
Max realtime timeout      unlimited            unlimited            us        
`;

const NETSTAT = `TcpExt: SyncookiesSent ListenOverflows ListenDrops TW
TcpExt: 0 17 19 1234
IpExt: InNoRoutes InOctets
IpExt: 0 987654321
`;

test('parseLimits: soft/hard per line, unlimited as null', () => {
  const l = parseLimits(LIMITS);
  assert.deepEqual(l['Max open files'], { soft: 1024, hard: 524288, units: 'files' });
  assert.deepEqual(l['Max cpu time'], { soft: null, hard: null, units: 'seconds' });
  assert.deepEqual(l['Max realtime timeout'], { soft: null, hard: null, units: 'us' });
  assert.equal(Object.keys(l).length, 6);
});

test('nofileLimit of this process matches what the kernel enforces', () => {
  const lim = nofileLimit('self');
  assert.ok(lim.soft === null || lim.soft > 0);
  const r = spawnSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' });
  const [soft, hard] = r.stdout.trim().split('\n');
  assert.equal(String(lim.soft ?? 'unlimited'), soft);
  assert.equal(String(lim.hard ?? 'unlimited'), hard);
});

test('parseNetstat: header/value line pairs per group', () => {
  const n = parseNetstat(NETSTAT);
  assert.deepEqual(n.TcpExt, { SyncookiesSent: 0, ListenOverflows: 17, ListenDrops: 19, TW: 1234 });
  assert.deepEqual(n.IpExt, { InNoRoutes: 0, InOctets: 987654321 });
  const live = readNetstat();
  assert.equal(typeof live.TcpExt?.ListenOverflows, 'number');
  assert.equal(typeof live.TcpExt?.ListenDrops, 'number');
});

test('parseStatus / processStatus / isKernelThread', () => {
  const s = parseStatus('Name:\tnode\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t42\t7\n');
  assert.deepEqual(s, { Name: 'node', Uid: '1000\t1000\t1000\t1000', NSpid: '42\t7' });
  const me = processStatus('self');
  assert.equal(me.uid[0], process.getuid!());
  assert.equal(me.kernelThread, false);
  assert.equal(me.ppid, process.ppid);
  assert.equal(isKernelThread(process.pid), false);
  if (processComm(2) === 'kthreadd') assert.equal(isKernelThread(2), true);
});

test('processComm: this process; a pid that cannot exist is NO_SUCH_PROCESS', () => {
  assert.equal(processComm(process.pid), processComm('self'));
  assert.equal(processComm('self'), 'node');
  assert.throws(() => processComm(NOT_A_PID), (e: unknown) => e instanceof TcptraceError && e.code === 'NO_SUCH_PROCESS' && /no such process/.test(e.message));
  assert.throws(() => socketInodes(NOT_A_PID), (e: unknown) => e instanceof TcptraceError && e.code === 'NO_SUCH_PROCESS');
  assert.throws(() => netnsInode(NOT_A_PID), (e: unknown) => e instanceof TcptraceError && e.code === 'NO_SUCH_PROCESS');
});

test('socketInodes: the inode of a listening socket maps to its fd', async () => {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    assert.ok(fd > 2);
    const inode = fstatSync(fd).ino;
    const map = socketInodes(process.pid);
    assert.equal(map.get(inode), fd);
    const t = fdTable('self');
    assert.ok(t.open >= map.size && t.sockets.get(inode) === fd);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("socketInodes of another user's process is NOT_PERMITTED", (t) => {
  const procfs = pathToFileURL(join(ROOT, 'dist/src/sys/procfs.js')).href;
  const probe = `import(${JSON.stringify(procfs)}).then((m) => { try { m.socketInodes(${process.pid}); console.log('READ'); } catch (e) { console.log(e.code); } })`;
  if (process.getuid!() === 0) {
    // root reads everything: ask as nobody about this (root-owned) process
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', probe], { encoding: 'utf8' });
    if (r.error) return t.skip(`setpriv not available: ${r.error.message}`);
    assert.equal(r.stdout.trim(), 'NOT_PERMITTED', r.stderr);
  } else {
    const other = readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .find((pid) => {
        try {
          return processStatus(pid).uid[0] !== process.getuid!() && !processStatus(pid).kernelThread;
        } catch {
          return false;
        }
      });
    if (other === undefined) return t.skip('no process of another user to try');
    assert.throws(() => socketInodes(other), (e: unknown) => e instanceof TcptraceError && e.code === 'NOT_PERMITTED');
  }
});

test('netnsInode of self and of our pid agree', () => {
  const a = netnsInode('self');
  assert.ok(a > 0);
  assert.equal(netnsInode(process.pid), a);
});

test('sysctl helpers', () => {
  assert.equal(sysctlPath('net.ipv4.tcp_fin_timeout'), '/proc/sys/net/ipv4/tcp_fin_timeout');
  assert.deepEqual(sysctlNumbers('32768\t60999'), [32768, 60999]);
  assert.deepEqual(sysctlNumbers(''), []);
  assert.deepEqual(sysctlNumbers(null), []);
  assert.deepEqual(parsePortList('8080,9000-9010, 22'), [[8080, 8080], [9000, 9010], [22, 22]]);
  assert.deepEqual(parsePortList(''), []);
  assert.deepEqual(parseFileNr('3136\t0\t9223372036854775807'), { allocated: 3136, free: 0, max: 9223372036854775807 });
  const range = sysctlNumbers(readSysctl('net.ipv4.ip_local_port_range'));
  assert.equal(range.length, 2);
  assert.ok(range[0]! < range[1]!);
  assert.equal(readSysctl('net.ipv4.no_such_setting'), null);
});

test('the seeds map is sized from the TCP sockets the host holds, not from --max-sockets', async () => {
  const { seedsFor } = await import('../src/trace/session.js');
  const stat = (alloc: number) => `sockets: used 9\nTCP: inuse 3 orphan 0 tw 2 alloc ${alloc} mem 1\nUDP: inuse 0 mem 0\n`;
  assert.equal(seedsFor(1_048_576, stat(10)), 4116, 'twice the sockets now, and room for a burst');
  assert.equal(seedsFor(131_072, stat(500_000)), 131_072, 'never past --max-sockets');
  assert.equal(seedsFor(131_072, null), 131_072, 'no sockstat: --max-sockets');
  assert.equal(seedsFor(131_072, 'garbage'), 131_072);
  // and this host's own file parses
  assert.ok(seedsFor(1 << 30) >= 4096);
});
