/**
 * Offline CPU cost of the agent's per-record hot path, from a recording:
 *   analysis: Analyzer.batch() over every recorded batch (decode + socket table + analyzer)
 *   writer:   RecordWriter.batch() over every batch, then its flush (to a file in /dev/shm)
 *
 *   node dist/bench/analysis.js FILE.tcptrace [--runs N] [--baseline DIST] [--live]
 *
 * --baseline DIST: another build's dist/ (e.g. of the previous commit) whose
 * Analyzer and RecordWriter are timed in the same process, runs interleaved
 * (order alternating), and whose report and recording are checked to be
 * identical to this build's. --live also formats live lines (as without --quiet).
 * Prints ns/record per run and the medians (and the ratio to the baseline).
 */
import { readSync, openSync, closeSync, unlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { replay as replayRecording } from '../src/record/reader.js';
import type { PresentEvent } from '../src/model/events.js';
import type { ResolvedStack } from '../src/stacks/types.js';
import type { Counters, SessionEnd, SessionInfo, TraceSink } from '../src/trace/types.js';
import { median, parseOptions, run, UsageError } from './common.js';

type Item = { t: 'batch'; buf: Buffer } | { t: 'stacks'; items: ResolvedStack[] } | { t: 'counters'; c: Counters };

interface Loaded {
  info: SessionInfo;
  present: PresentEvent[][];
  items: Item[];
  end: SessionEnd | null;
  records: number;
  batchBytes: number;
}

/** the recording in memory, read by the reader (any format version; damage is skipped as report skips it) */
async function load(path: string): Promise<Loaded> {
  let info: SessionInfo | null = null;
  const present: PresentEvent[][] = [];
  const items: Item[] = [];
  let end: SessionEnd | null = null;
  let batchBytes = 0;
  const r = await replayRecording(path, {
    begin: (i) => void (info = i),
    present: (p) => void present.push(p),
    // a private copy, as the addon hands over (not a view into the file)
    batch: (buf) => {
      items.push({ t: 'batch', buf: Buffer.from(buf) });
      batchBytes += buf.length;
    },
    stacks: (s) => void items.push({ t: 'stacks', items: s }),
    counters: (c) => void items.push({ t: 'counters', c }),
    finish: (e) => void (end = e),
  });
  if (!info) throw new Error(`${path}: no header`);
  return { info, present, items, end: r.interrupted ? null : end, records: r.records, batchBytes };
}

interface AnalyzerLike extends TraceSink {
  result(): unknown;
  onLine?: (l: never) => void;
}
interface Impl {
  name: string;
  Analyzer: new (o: { leakAfterMs: number; top: number }) => AnalyzerLike;
  RecordWriter: new (path: string, flushMs?: number) => TraceSink & { flush(): void };
  formatLive: (l: never, startedNs: bigint) => string;
}

async function impl(name: string, dist: string): Promise<Impl> {
  const mod = async (p: string) => import(pathToFileURL(join(dist, p)).href);
  const a = await mod('src/analysis/analyzer.js');
  const w = await mod('src/record/writer.js');
  const t = await mod('src/report/text.js');
  return { name, Analyzer: a.Analyzer, RecordWriter: w.RecordWriter, formatLive: t.formatLive };
}

function endOf(d: Loaded): SessionEnd {
  if (d.end) return d.end;
  const counters = d.items.filter((i) => i.t === 'counters').map((i) => (i as { c: Counters }).c);
  return { endedNs: d.info.startedNs, reason: 'interrupted', exitedPids: [], counters: counters[counters.length - 1] };
}

/** Feeds every recorded item to a sink as a live session would; ns spent, `then` included. */
function replay(sink: Pick<TraceSink, 'batch' | 'stacks' | 'counters'>, d: Loaded, then?: () => void): number {
  const t0 = process.hrtime.bigint();
  for (const it of d.items) {
    if (it.t === 'batch') sink.batch(it.buf);
    else if (it.t === 'stacks') sink.stacks(it.items);
    else sink.counters(it.c);
  }
  then?.();
  return Number(process.hrtime.bigint() - t0);
}

/** One pass of the analysis; returns ns spent in batch()/stacks()/counters() and the report. */
async function runAnalysis(im: Impl, d: Loaded, live: boolean, keepLines = false): Promise<{ ns: number; report: string }> {
  const a = new im.Analyzer({ leakAfterMs: d.info.analysis?.leakAfterMs ?? 5000, top: d.info.analysis?.top ?? 10 });
  let lines = 0;
  const text = createHash('sha256');
  if (live && keepLines) a.onLine = (l: never) => void text.update(im.formatLive(l, d.info.startedNs) + '\n');
  else if (live) a.onLine = (l: never) => void (lines += im.formatLive(l, d.info.startedNs).length);
  a.begin(d.info);
  for (const p of d.present) a.present(p);
  const ns = replay(a, d);
  await a.finish(endOf(d));
  return { ns, report: JSON.stringify(a.result()) + (live && keepLines ? ` lines:${text.digest('hex')}` : '') };
}

/** One pass of the recorder over every batch, writing to path. */
async function runWriter(im: Impl, d: Loaded, path: string): Promise<number> {
  const w = new im.RecordWriter(path, 1 << 30);
  w.begin(d.info);
  for (const p of d.present) w.present(p);
  const ns = replay(w, d, () => w.flush());
  await w.finish(endOf(d));
  return ns;
}

function sha(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const b = Buffer.allocUnsafe(1 << 20);
  for (let n; (n = readSync(fd, b)) > 0; ) h.update(b.subarray(0, n));
  closeSync(fd);
  return h.digest('hex');
}

async function main(): Promise<void> {
  const { values, positionals } = parseOptions(
    'usage: node dist/bench/analysis.js FILE.tcptrace [options]   (npm run bench:analysis -- FILE)\n\nThe agent\'s per-record CPU (analysis, recording) offline, over a recording.',
    {
      runs: { default: '7', kind: 'count', help: 'timed runs per implementation' },
      baseline: { default: '', kind: 'text', help: "another build's dist/ to time side by side (and check for identical output)" },
      live: { default: '', kind: 'flag', help: 'also format live lines (as without --quiet)' },
    },
    { positionals: true },
  );
  const runs = Number(values.runs);
  const baseline = values.baseline || undefined;
  const live = values.live === '1';
  if (positionals.length !== 1) throw new UsageError('want one recording: analysis.js FILE.tcptrace [options] (see --help)');
  const file = positionals[0];

  const d = await load(file);
  console.log(`${file}: ${d.records} records, ${d.items.filter((i) => i.t === 'batch').length} batches, ${(d.batchBytes / 1e6).toFixed(1)} MB`);
  const here = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const impls = [await impl('current', here)];
  if (baseline) impls.unshift(await impl('baseline', resolve(baseline)));

  // correctness first: same report, byte-identical recording
  const reports = new Map<string, string>();
  const hashes = new Map<string, string>();
  const tmp = (name: string) => `/dev/shm/tcptrace-bench-${process.pid}-${name}.tcptrace`;
  for (const im of impls) {
    reports.set(im.name, (await runAnalysis(im, d, live, true)).report);
    await runWriter(im, d, tmp(im.name));
    hashes.set(im.name, sha(tmp(im.name)));
    unlinkSync(tmp(im.name));
  }
  if (baseline) {
    const same = reports.get('baseline') === reports.get('current');
    const sameRec = hashes.get('baseline') === hashes.get('current');
    console.log(`report${live ? ' and live lines' : ''} identical to baseline: ${same}; recording identical to baseline: ${sameRec}`);
    if (!same || !sameRec) process.exitCode = 1;
  }

  const res = new Map<string, { analysis: number[]; writer: number[] }>(impls.map((im) => [im.name, { analysis: [], writer: [] }]));
  for (let r = 0; r < runs; r++) {
    const order = r % 2 ? [...impls].reverse() : impls;
    for (const im of order) {
      const x = res.get(im.name)!;
      x.analysis.push((await runAnalysis(im, d, live)).ns / d.records);
      x.writer.push((await runWriter(im, d, tmp(im.name))) / d.records);
      unlinkSync(tmp(im.name));
    }
  }
  const f = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ');
  for (const [name, x] of res) {
    console.log(`${name.padEnd(8)} analysis${live ? '+live lines' : ''} ns/record: median ${median(x.analysis).toFixed(1)}  [${f(x.analysis)}]`);
    console.log(`${name.padEnd(8)} writer   ns/record: median ${median(x.writer).toFixed(1)}  [${f(x.writer)}]`);
  }
  if (baseline) {
    const b = res.get('baseline')!, c = res.get('current')!;
    const ratios = (k: 'analysis' | 'writer') => b[k].map((v, i) => c[k][i] / v);
    console.log(`current/baseline, paired per run: analysis median ${median(ratios('analysis')).toFixed(3)}, writer median ${median(ratios('writer')).toFixed(3)}`);
  }
}

run(main);
