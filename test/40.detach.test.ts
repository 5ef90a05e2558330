/** Nothing stays attached: not after a clean stop, not after SIGKILL. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bpfProgIdsOf, buildC, loadedBpfProgIds, needKernelBtf, needRoot, startServer, startTcptrace, stillLoaded } from './helpers/proc.js';

const skip = needRoot() ?? needKernelBtf();

for (const signal of ['SIGINT', 'SIGKILL'] as const) {
  test(`no BPF program of the agent survives ${signal}`, { skip: skip ?? false }, async () => {
    const server = await startServer(buildC('leaky_server', ['-O2', '-g']));
    try {
      const t = startTcptrace(['--pid', String(server.pid), '--quiet']);
      await t.ready;
      const mine = bpfProgIdsOf(t.proc.pid!);
      assert.ok(mine.length >= 4, `expected the agent to hold its programs, found ${mine.length}`);
      assert.deepEqual(mine.filter((id) => !loadedBpfProgIds().includes(id)), [], 'bpftool lists them');
      const r = await t.stop(signal);
      assert.equal(signal === 'SIGKILL' ? r.signal : r.code, signal === 'SIGKILL' ? 'SIGKILL' : 0);
      assert.deepEqual(await stillLoaded(mine), []);
    } finally {
      await server.stop();
    }
  });
}
