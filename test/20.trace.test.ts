/**
 * The core pipeline on the real kernel: a leaky C server traced by pid in every
 * attach mode this kernel supports. Asserts ordering per socket, owner
 * attribution of softirq transitions, in-kernel pid filtering, pre-existing
 * CLOSE_WAIT sockets with their fds, equality with `ss`, the JSON shape, and
 * that `tcptrace report` of the recording equals the live report.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildC, FIXTURES, kernelAtLeast, needKernelBtf, needRoot, runClient, runTcptrace, sleep, ssCloseWait, startServer, startTcptrace, WORK, type Server } from './helpers/proc.js';
import { lifetimes, stopRecordedTrace, type Recorded } from './helpers/recording.js';
import type { TransitionEvent, SockcallEvent } from '../src/model/events.js';
import { TCP } from '../src/model/states.js';
import { TT_CALL } from '../src/generated/events.js';

const skip = needRoot() ?? needKernelBtf();

interface FeaturesDoc {
  chosen: string | null;
  modes: { name: string; usable: boolean; why: string }[];
}

function features(): FeaturesDoc {
  const r = spawnSync(process.execPath, [join(FIXTURES, '../../bin/tcptrace.js'), 'features', '--format', 'json'], { encoding: 'utf8' });
  return JSON.parse(r.stdout) as FeaturesDoc;
}

// Modes the kernel under test must support (the kernel matrix sets this): a
// mode listed here that the probe rejects fails instead of skipping.
const required = (process.env.TCPTRACE_REQUIRE_MODES ?? '').split(',').filter(Boolean);
const modes = skip ? [] : features().modes;

describe('tcptrace --pid on a leaky server', { skip: skip ?? false }, () => {
  // each mode as chosen, plus the best one with raw sys_enter/sys_exit syscall hooks: the path of
  // kernels without per-syscall or sock I/O tracepoints, which this kernel would otherwise never take
  const variants = (modes.length ? modes : [{ name: 'tp_btf', usable: false, why: skip ?? '' }]).map((m) => ({ ...m, label: m.name, extra: [] as string[] }));
  const best = variants.find((v) => v.usable && v.name !== 'tracepoint');
  if (best) variants.push({ ...best, label: `${best.name} --syscall-hooks raw`, extra: ['--syscall-hooks', 'raw'] });
  for (const m of variants) {
    const why = m.usable ? false : required.includes(m.name) ? false : `attach mode ${m.name} unavailable on this kernel: ${m.why}`;
    describe(`attach mode ${m.label}`, { skip: why }, () => {
      let server: Server;
      let other: Server;
      let live: Record<string, any>;
      let ssAtEnd: Set<string>;
      let rec: Recorded;
      let leakPorts: number[];
      let goodPorts: number[];
      let preexistingPorts: number[];
      const file = join(WORK, `trace-${m.label.replace(/[^a-z_]+/g, '-')}.tcptrace`);

      before(async () => {
        assert.ok(m.usable, `required attach mode ${m.name} is not usable on this kernel: ${m.why}`);
        server = await startServer(buildC('leaky_server', ['-O2', '-g']));
        other = await startServer(process.execPath, [join(FIXTURES, 'node_server.mjs')]);
        preexistingPorts = runClient(server.port, 'leak', 2);
        await sleep(100);
        const t = startTcptrace(['--pid', String(server.pid), '--attach-mode', m.name, ...m.extra, '--format', 'json', '--record', file]);
        await t.ready;
        leakPorts = runClient(server.port, 'leak', 3);
        goodPorts = runClient(server.port, 'good', 3, true);
        runClient(other.port, 'leak', 2);
        runClient(other.port, 'good', 2, true);
        await sleep(400); // > 2 drain intervals
        ssAtEnd = ssCloseWait(server.pid);
        ({ live, rec } = await stopRecordedTrace(t, file));
      });

      after(async () => {
        await server?.stop();
        await other?.stop();
      });

      test('the JSON report has the documented shape', () => {
        assert.equal(live.schema, 'tcptrace.report/1');
        assert.equal(live.attach.mode, m.name);
        assert.deepEqual(live.target.pids, [server.pid]);
        for (const k of ['events', 'transitions', 'calls', 'lost', 'missedInKernel', 'presentAtAttach']) assert.equal(typeof live.counts[k], 'number', k);
        assert.equal(live.counts.lost, 0);
        // the per-program breakdown of runs the kernel skipped adds up to the total
        const by = Object.values(live.counts.missedInKernelBy) as number[];
        assert.equal(by.reduce((x, y) => x + y, 0), live.counts.missedInKernel);
        assert.equal(live.states.CLOSE_WAIT, 5);
        assert.equal(live.states.LISTEN, 1);
        for (const e of live.closeWait) {
          assert.equal(e.pid, server.pid);
          assert.equal(typeof e.fd, 'number');
          assert.match(e.local, /^127\.0\.0\.1:\d+$/);
          assert.match(e.remote, /^127\.0\.0\.1:\d+$/);
          assert.equal(typeof e.closeWaitMs, 'number');
        }
      });

      test('the CLOSE_WAIT sockets reported are exactly those ss shows for the pid', () => {
        const ours = new Set(live.closeWait.map((e: any) => `${e.local} ${e.remote}`));
        assert.equal(ssAtEnd.size, 5);
        assert.deepEqual(ours, ssAtEnd);
      });

      test('CLOSE_WAIT sockets that predate attach are reported with their fd', () => {
        const pre = live.closeWait.filter((e: any) => e.since === 'attach');
        assert.deepEqual(pre.map((e: any) => Number(e.remote.split(':')[1])).sort(), [...preexistingPorts].sort());
        const fds = spawnSync('ss', ['-tanpH', 'state', 'close-wait'], { encoding: 'utf8' }).stdout;
        for (const e of pre) {
          assert.equal(e.origin, 'preexisting');
          assert.ok(fds.includes(`${e.remote} users:(("leaky_server`) && fds.includes(`fd=${e.fd})`), `fd ${e.fd} of ${e.remote} not in ss output`);
        }
      });

      test('each socket\'s transitions arrive complete and in order', () => {
        const bySocket = lifetimes(rec, server.port);
        const states = (p: number) => (bySocket.get(p) ?? []).map((e) => `${e.oldState}>${e.newState}`);
        for (const p of leakPorts) {
          assert.deepEqual(states(p), [`${TCP.LISTEN}>${TCP.SYN_RECV}`, `${TCP.SYN_RECV}>${TCP.ESTABLISHED}`, `${TCP.ESTABLISHED}>${TCP.CLOSE_WAIT}`], `leaked socket from port ${p}`);
        }
        for (const p of goodPorts) {
          const evs = bySocket.get(p) ?? [];
          assert.deepEqual(states(p).slice(0, 2), [`${TCP.LISTEN}>${TCP.SYN_RECV}`, `${TCP.SYN_RECV}>${TCP.ESTABLISHED}`], `good socket from port ${p}`);
          assert.equal(evs[evs.length - 1].newState, TCP.CLOSE, `good socket from port ${p} ends in CLOSE`);
          for (let i = 1; i < evs.length; i++) {
            assert.equal(evs[i].oldState, evs[i - 1].newState, `chain broken for port ${p}`);
            assert.ok(evs[i].ts >= evs[i - 1].ts);
          }
        }
      });

      test('softirq transitions are attributed to the owner, not to whoever was on the CPU', () => {
        const serverEvents = rec.events.filter((e): e is TransitionEvent => e.type === 'transition' && e.local.endsWith(`:${server.port}`));
        assert.ok(serverEvents.length >= 6 * 3);
        for (const e of serverEvents) {
          assert.equal(e.ownerPid, server.pid, `${e.oldState}>${e.newState} attributed to ${e.ownerPid}`);
          assert.equal(e.ownerComm, 'leaky_server');
        }
        const fins = serverEvents.filter((e) => e.newState === TCP.CLOSE_WAIT);
        assert.ok(fins.some((e) => e.cpuPid !== server.pid), 'expected at least one FIN processed while another task was on the CPU');
      });

      test('accept() reports the acceptor and the fd of every new connection', () => {
        const accepts = rec.events.filter((e): e is SockcallEvent => e.type === 'sockcall' && e.call === TT_CALL.ACCEPT);
        const peers = new Set(accepts.map((a) => Number(a.remote.split(':')[1])));
        for (const p of [...leakPorts, ...goodPorts]) assert.ok(peers.has(p), `no accept for peer port ${p}`);
        for (const a of accepts) {
          assert.equal(a.pid, server.pid);
          assert.ok(a.fd >= 3);
        }
      });

      test('stacks are taken at accept and at the first write, through this variant\'s hooks', () => {
        const hooks = live.attach.hooks as Record<string, string>;
        if (m.extra.length) assert.match(hooks.syscalls, /sys_enter, .*sys_exit \(every syscall\)/);
        else {
          assert.match(hooks.syscalls, /tracepoint\/syscalls/);
          // 6.2+ kernels have bpf_rdonly_cast(): their fd -> sock walk must be the typed one
          if (kernelAtLeast(6, 2)) assert.match(hooks.syscalls, /through typed pointers/);
        }
        const names = (site: string) => new Set(rec.stacks.filter((st) => st.pid === server.pid && st.site === site).flatMap((st) => st.frames.map((f) => f.symbol)));
        assert.ok(names('acquire').has('serve_clients'), `acquire stacks (${hooks.io}) name: ${[...names('acquire')].join(', ')}`);
        // only the well-behaved path writes (reply_and_close); the first write is an I/O stack site
        assert.ok(names('io').has('reply_and_close'), `I/O stacks (${hooks.io}) name: ${[...names('io')].join(', ')}`);
      });

      test('other processes\' sockets are filtered out in the kernel', () => {
        const leaked = rec.events.filter((e) => (e.type === 'transition' || e.type === 'sockcall') && (e.local.endsWith(`:${other.port}`) || e.remote.endsWith(`:${other.port}`)));
        assert.deepEqual(leaked, []);
        assert.ok(live.counts.filteredInKernel > 0, 'the kernel filter should have dropped the other server\'s transitions');
      });

      test('tcptrace report on the recording gives the live report', async () => {
        const r = await runTcptrace(['report', file, '--format', 'json']);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout), live);
      });
    });
  }
});
