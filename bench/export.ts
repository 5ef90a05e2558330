/**
 * `npm run bench:export`: the cost of `tcptrace export` next to `tcptrace
 * report` on the same recording, in the same run.
 *
 *   node dist/bench/export.js [--transitions N] [--runs N] [--keep]
 *
 * Makes a recording of N transitions (default 1,000,000) of a server under
 * churn (accepted sockets that the server closes after the peer's FIN, some it
 * closes first (TIME_WAIT), 1 % that it leaks), written by RecordWriter as
 * `tcptrace record` writes. Then runs, interleaved and in fresh processes,
 * `report -f json` and `export -f perfetto|chrome-json|html`, and prints
 * for each the wall time, records per second, peak RSS (the process's own
 * getrusage at exit) and the ratio to report. Target: the Perfetto export
 * takes at most 2x report's time, and memory bounded by the sockets alive at
 * once, not by the records (the synthetic server keeps about 300 open).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as G from '../src/generated/events.js';
import { TCP } from '../src/model/states.js';
import { RecordWriter } from '../src/record/writer.js';
import { zeroCounters, type SessionInfo } from '../src/trace/types.js';
import { CLI, median, parseOptions, ROOT, run, table } from './common.js';

const USAGE = 'usage: node dist/bench/export.js [--transitions N] [--runs N] [--keep]';

const PID = 4242;
const NETNS = 4026531840;

/** one transition record, as the kernel writes it (bpf/tcpstate.h tt_transition) */
function transition(buf: Buffer, off: number, ts: number, sk: number, port: number, from: number, to: number, call: number): void {
  buf.fill(0, off, off + G.SIZE_TRANSITION);
  buf.writeUInt16LE(G.TT_KIND.TRANSITION, off + G.O_HDR_KIND);
  buf.writeUInt16LE(G.SIZE_TRANSITION, off + G.O_HDR_SIZE);
  buf.writeUInt16LE(1, off + G.O_HDR_FLAGS); // the owner is known (the kernel's owners map)
  buf.writeUInt8(1, off + G.O_HDR_VERSION);
  buf.writeBigUInt64LE(BigInt(ts), off + G.O_HDR_TS_NS);
  buf.writeBigUInt64LE(BigInt(sk), off + G.O_TRANSITION_SK);
  buf.writeBigUInt64LE(BigInt(ts), off + G.O_TRANSITION_OWNER_FIRST_NS);
  buf.writeUInt32BE(0x7f000001, off + G.O_TRANSITION_TUPLE_SADDR);
  buf.writeUInt32BE(0x7f000001, off + G.O_TRANSITION_TUPLE_DADDR);
  buf.writeUInt16LE(8080, off + G.O_TRANSITION_TUPLE_SPORT);
  buf.writeUInt16LE(port, off + G.O_TRANSITION_TUPLE_DPORT);
  buf.writeUInt16LE(2, off + G.O_TRANSITION_TUPLE_FAMILY);
  buf.writeUInt32LE(PID, off + G.O_TRANSITION_OWNER_TGID);
  buf.writeInt32LE(3 + (sk % 300), off + G.O_TRANSITION_OWNER_FD);
  buf.writeUInt32LE(PID, off + G.O_TRANSITION_CPU_TGID);
  buf.writeUInt32LE(PID, off + G.O_TRANSITION_CPU_TID);
  buf.writeUInt32LE(NETNS, off + G.O_TRANSITION_NETNS);
  buf.writeUInt8(from, off + G.O_TRANSITION_OLDSTATE);
  buf.writeUInt8(to, off + G.O_TRANSITION_NEWSTATE);
  buf.writeUInt8(G.TT_ORIGIN.ACCEPT, off + G.O_TRANSITION_ORIGIN);
  buf.writeUInt8(call, off + G.O_TRANSITION_CALL);
  buf.write('churn_server', off + G.O_TRANSITION_OWNER_COMM, 'latin1');
  buf.write('churn_server', off + G.O_TRANSITION_CPU_COMM, 'latin1');
  buf.writeInt32LE(call ? 3 + (sk % 300) : -1, off + G.O_TRANSITION_CALL_FD);
}

/** the life of socket i: its transitions, as [from, to, call] */
function lifeOf(i: number): [number, number, number][] {
  const born: [number, number, number][] = [
    [TCP.LISTEN, TCP.SYN_RECV, 0],
    [TCP.SYN_RECV, TCP.ESTABLISHED, 0],
  ];
  if (i % 100 === 7) return [...born, [TCP.ESTABLISHED, TCP.CLOSE_WAIT, 0]]; // leaked: never closed
  if (i % 5 === 0)
    // the server closes first: TIME_WAIT
    return [...born, [TCP.ESTABLISHED, TCP.FIN_WAIT1, G.TT_CALL.CLOSE], [TCP.FIN_WAIT1, TCP.FIN_WAIT2, 0], [TCP.FIN_WAIT2, TCP.CLOSE, 0]];
  return [...born, [TCP.ESTABLISHED, TCP.CLOSE_WAIT, 0], [TCP.CLOSE_WAIT, TCP.LAST_ACK, G.TT_CALL.CLOSE], [TCP.LAST_ACK, TCP.CLOSE, 0]];
}

/** writes a recording of about n transitions; returns the exact count */
async function makeRecording(path: string, n: number): Promise<number> {
  const started = 1_000_000_000_000;
  const info: SessionInfo = {
    tool: { name: 'tcptrace', version: 'bench' },
    host: 'bench',
    kernel: 'synthetic',
    bootId: 'bench',
    clock: { monotonicNs: BigInt(started), wallNs: 1_790_000_000_000_000_000n },
    attach: { mode: 'tp_btf', chosenBy: 'option', hooks: {}, programs: [] },
    selectors: { pids: [PID], children: false },
    stacks: null,
    owners: 'kernel',
    startedNs: BigInt(started),
  };
  const w = new RecordWriter(path, 60_000, { direct: false });
  w.begin(info);
  // sockets interleave: about 300 alive at once, each transition 20 µs after the last
  const WINDOW = 300;
  const lives: { i: number; steps: [number, number, number][]; at: number }[] = [];
  let next = 0;
  let count = 0;
  let ts = started + 1000;
  const BATCH = 4096;
  let buf = Buffer.allocUnsafe(BATCH * G.SIZE_TRANSITION);
  let inBatch = 0;
  while (count < n) {
    while (lives.length < WINDOW) {
      lives.push({ i: next, steps: lifeOf(next), at: 0 });
      next++;
    }
    const k = (count * 7919) % lives.length; // a spread of sockets, not one after another
    const life = lives[k];
    const [from, to, call] = life.steps[life.at++];
    transition(buf, inBatch * G.SIZE_TRANSITION, ts, 0x10000 + life.i * 64, 10000 + (life.i % 50000), from, to, call);
    ts += 20_000;
    count++;
    if (++inBatch === BATCH) {
      w.batch(buf);
      buf = Buffer.allocUnsafe(BATCH * G.SIZE_TRANSITION);
      inBatch = 0;
    }
    if (life.at === life.steps.length) lives.splice(k, 1);
  }
  if (inBatch) w.batch(buf.subarray(0, inBatch * G.SIZE_TRANSITION));
  await w.finish({ endedNs: BigInt(ts), reason: 'stopped', exitedPids: [], counters: { ...zeroCounters(), records: count, events: count } });
  return count;
}

interface Run {
  seconds: number;
  maxRssKiB: number;
}

/** one command in a fresh node, its wall time and its own peak RSS (getrusage, written at exit by a preload) */
function measure(args: string[], rusageFile: string): Run {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--require', join(ROOT, 'bench/rusage-at-exit.cjs'), CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, TCPTRACE_RUSAGE_FILE: rusageFile },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 << 20,
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`tcptrace ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const usage = JSON.parse(readFileSync(rusageFile, 'utf8')) as { maxRSS: number };
  return { seconds, maxRssKiB: usage.maxRSS };
}

run(async () => {
  const { values } = parseOptions(USAGE, {
    transitions: { default: '1000000', kind: 'count', help: 'transitions in the recording' },
    runs: { default: '3', kind: 'count', help: 'runs of each command (interleaved); medians are printed' },
    keep: { default: '', kind: 'flag', help: 'keep the recording and the exports (in the folder printed)' },
  });
  const dir = join(statSafe('/dev/shm') ? '/dev/shm' : tmpdir(), `tcptrace-bench-export-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    const rec = join(dir, 'churn.tcptrace');
    const t0 = performance.now();
    const n = await makeRecording(rec, Number(values.transitions));
    process.stderr.write(`bench: recording of ${n.toLocaleString('en')} transitions (${(statSync(rec).size / 2 ** 20).toFixed(0)} MiB) made in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const commands: [string, string[], string | null][] = [
      ['report -f json', ['report', rec, '-f', 'json'], null],
      ['export -f perfetto', ['export', rec, '-q', '-o', join(dir, 'out.pftrace')], join(dir, 'out.pftrace')],
      ['export -f perfetto (.gz)', ['export', rec, '-q', '-o', join(dir, 'out.pftrace.gz')], join(dir, 'out.pftrace.gz')],
      ['export -f chrome-json', ['export', rec, '-q', '-o', join(dir, 'out.json')], join(dir, 'out.json')],
      ['export -f html', ['export', rec, '-q', '-o', join(dir, 'out.html')], join(dir, 'out.html')],
    ];
    const runs = new Map<string, Run[]>(commands.map(([name]) => [name, []]));
    for (let r = 0; r < Number(values.runs); r++) {
      // alternate the order, so that neither side always runs on a warmer machine
      const order = r % 2 ? [...commands].reverse() : commands;
      for (const [name, args] of order) runs.get(name)!.push(measure(args, join(dir, 'rusage.json')));
    }
    const base = median(runs.get('report -f json')!.map((x) => x.seconds));
    const rows = [['command', 'seconds (median)', 'records/s', 'peak RSS', 'vs report', 'output']];
    for (const [name, , out] of commands) {
      const rs = runs.get(name)!;
      const s = median(rs.map((x) => x.seconds));
      rows.push([
        name,
        s.toFixed(2),
        `${((n / s) / 1e6).toFixed(2)}M`,
        `${(median(rs.map((x) => x.maxRssKiB)) / 1024).toFixed(0)} MiB`,
        `${(s / base).toFixed(2)}x`,
        out ? `${(statSync(out).size / 2 ** 20).toFixed(1)} MiB` : '',
      ]);
    }
    process.stdout.write(`export of ${n.toLocaleString('en')} transitions (${Number(values.runs)} runs each, interleaved; fresh processes)\n`);
    process.stdout.write(table(rows) + '\n');
    const ratio = median(runs.get('export -f perfetto')!.map((x) => x.seconds)) / base;
    process.stdout.write(`perfetto export / report: ${ratio.toFixed(2)}x (target <= 2x): ${ratio <= 2 ? 'met' : 'NOT met'}\n`);
    if (values.keep) process.stdout.write(`kept in ${dir}\n`);
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
});

function statSafe(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
