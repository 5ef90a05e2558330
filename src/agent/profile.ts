/**
 * The agent's pprof profile of live sockets (GET /debug/pprof/close_wait), the
 * way Go's heap profile shows live objects: one sample per (process, code
 * path, preexisting or not) with three values: sockets leaked (in CLOSE_WAIT
 * past --leak-after, the default sample type), in CLOSE_WAIT, and in use (open,
 * fd not closed). `go tool pprof`, Pyroscope and Parca read it.
 *
 * A sample's stack is one of the socket's captured sites, the one that names
 * the code owning the socket best: the first write (the handler answering,
 * the client sending its request), else the EOF read, else the acquisition.
 * A server's sockets all share one acquisition stack (its accept loop), and an
 * event loop (Node, Go, asyncio) reads EOF from its poller, not from the code
 * that dropped the socket. The site is a label, and so is the acquiring
 * function when the stack is not its own.
 * Sockets that predate the agent and were never touched since have a single
 * `[acquired before tcptrace started]` frame.
 *
 * Addresses are per process (ASLR): Locations and Mappings are keyed by pid.
 */
import { gzipSync } from 'node:zlib';
import { Function as PFunction, Label, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import type { Analyzer } from '../analysis/analyzer.js';
import type { SocketRecord } from '../model/socket-table.js';
import { TCP } from '../model/states.js';
import type { Frame, Site } from '../stacks/types.js';
import type { Workload } from './workload.js';

export const SAMPLE_TYPES = ['leaked_sockets', 'close_wait_sockets', 'inuse_sockets', 'active_closes'] as const;
export const PREEXISTING_FRAME = '[acquired before tcptrace started]';
export const NO_STACK_FRAME = '[no stack captured]';

const SITE_LABEL: Record<Site, string> = { eof: 'eof read', io: 'first write', read: 'first read', acquire: 'acquire' };
/** the site whose stack a sample shows, best first (see above) */
const SITE_ORDER: Site[] = ['io', 'read', 'eof', 'acquire'];

export interface ProfileInputs {
  analyzer: Analyzer;
  workloadOf: (pid: number) => Workload;
  nowNs: number;
  /** wall clock of nowNs, ns since the epoch */
  wallNs: bigint;
  /** the agent's selectors: the processes profiled (all without it) */
  selects?: (pid: number, comm: string) => boolean;
  /** active closes (TIME_WAIT makers) per pid and acquire stack id (0: none), with the process's name */
  activeCloses?: { entries: Map<number, Map<number, number>>; comm(pid: number): string };
}

interface Group {
  pid: number;
  comm: string;
  workload: string;
  site: Site | null;
  stackId: number | undefined;
  acquireStackId: number | undefined;
  preexisting: boolean;
  /** leaked, close_wait, inuse, active_closes (SAMPLE_TYPES) */
  values: [number, number, number, number];
}

/** the sockets a process holds, grouped by code path */
function groups(inp: ProfileInputs): Group[] {
  const { analyzer, nowNs } = inp;
  const table = analyzer.table;
  const startedNs = Number(analyzer.info.startedNs);
  const leakAfterNs = analyzer.options.leakAfterMs * 1e6;
  const out = new Map<string, Group>();
  for (const rec of table.live.values()) {
    if (rec.state === TCP.CLOSE || !rec.pid || !table.isTarget(rec)) continue;
    const holder = table.holder(rec);
    // closed by its owner, and no other process holds it: not the program's any more
    if (holder.pid === rec.pid && rec.fdClosedAt !== null) continue;
    if (inp.selects && !inp.selects(holder.pid, rec.heldBy?.comm ?? rec.comm)) continue;
    const site = shownSite(rec);
    const stackId = site ? rec.stacks[site] : undefined;
    const key = `${holder.pid}|${site ?? '-'}|${stackId ?? '-'}|${rec.preexisting ? 1 : 0}`;
    let g = out.get(key);
    if (!g) {
      const comm = rec.heldBy?.comm ?? rec.comm;
      out.set(key, (g = { pid: holder.pid, comm, workload: inp.workloadOf(holder.pid).workload, site, stackId, acquireStackId: rec.stacks.acquire, preexisting: rec.preexisting, values: [0, 0, 0, 0] }));
    }
    g.values[2]++;
    if (rec.state === TCP.CLOSE_WAIT) {
      g.values[1]++;
      const since = rec.stateSince ?? startedNs;
      if (nowNs - since >= leakAfterNs) g.values[0]++;
    }
  }
  // active closes are counted by acquiring stack: a sample of its own unless the same
  // process and stack already have one (a socket in use shown at its acquisition)
  const ac = inp.activeCloses;
  for (const [pid, byStack] of ac?.entries ?? []) {
    for (const [stack, n] of byStack) {
      const stackId = stack || undefined;
      const site: Site | null = stackId === undefined ? null : 'acquire';
      const key = `${pid}|${site ?? '-'}|${stackId ?? '-'}|0`;
      let g = out.get(key);
      if (!g) {
        const comm = ac!.comm(pid);
        if (inp.selects && !inp.selects(pid, comm)) continue;
        out.set(key, (g = { pid, comm, workload: inp.workloadOf(pid).workload, site, stackId, acquireStackId: stackId, preexisting: false, values: [0, 0, 0, 0] }));
      }
      g.values[3] += n;
    }
  }
  return [...out.values()];
}

function shownSite(rec: SocketRecord): Site | null {
  for (const s of SITE_ORDER) if (rec.stacks[s] !== undefined) return s;
  return null;
}

/** the function a stack names first that is not libc's or the runtime's (the acquiring function, as a label) */
function firstNamed(frames: Frame[]): string | null {
  for (const f of frames) if (f.symbol && !/^(?:lib(?:c|pthread)[.-]|ld-linux)/.test(f.module)) return f.symbol;
  return frames[0]?.symbol || null;
}

/** "0x1f", "1f" (the resolver gives 0x-prefixed hex); 0 when empty or malformed */
function hex(v: string | undefined): bigint {
  const m = /^(?:0x)?([0-9a-fA-F]{1,16})$/.exec(v ?? '');
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/** Builds the profile; gzipped protobuf, as pprof endpoints serve it. */
export function closeWaitProfile(inp: ProfileInputs): Buffer {
  const strings = new StringTable();
  const s = (v: string) => strings.dedup(v);
  const functions = new Map<string, PFunction>();
  const locations = new Map<string, Location>();
  const mappings = new Map<string, Mapping>();
  const fn = (name: string, file: string | undefined): number => {
    const key = `${name}\0${file ?? ''}`;
    let f = functions.get(key);
    if (!f) functions.set(key, (f = new PFunction({ id: functions.size + 1, name: s(name), systemName: s(name), filename: s(file ?? '') })));
    return f.id as number;
  };
  const mapping = (pid: number, f: Frame, addr: bigint): number => {
    const key = `${pid}\0${f.module}`;
    let m = mappings.get(key);
    const base = addr - hex(f.moduleOffset);
    if (!m) mappings.set(key, (m = new Mapping({ id: mappings.size + 1, memoryStart: base, memoryLimit: addr + 1n, fileOffset: 0, filename: s(f.module), buildId: s(f.buildId ?? ''), hasFunctions: true, hasFilenames: true, hasLineNumbers: true, hasInlineFrames: true })));
    else {
      if (base < BigInt(m.memoryStart)) m.memoryStart = base;
      if (addr + 1n > BigInt(m.memoryLimit)) m.memoryLimit = addr + 1n;
    }
    return m.id as number;
  };
  const frameLocation = (pid: number, f: Frame): number => {
    // an interpreted frame is a code object (a method) and an instruction in it: no mapping
    const py = f.kind === 'python' || f.kind === 'java';
    const key = py ? `${pid}\0${f.addr}+${f.offset}` : `${pid}\0${f.addr}`;
    let loc = locations.get(key);
    if (!loc && py) {
      locations.set(key, (loc = new Location({ id: locations.size + 1, line: [new Line({ functionId: fn(f.symbol || `[unnamed ${f.kind === 'java' ? 'Java' : 'Python'} frame]`, f.file), line: f.line ?? 0 })] })));
    }
    if (!loc) {
      const addr = hex(f.addr);
      const name = f.symbol || `${f.module}+${f.moduleOffset}`;
      // pprof lines run innermost first, each inlined into the next; the frame's own function last
      const lines = [...(f.inlined ?? []).map((i) => new Line({ functionId: fn(i.symbol, i.file), line: i.line ?? 0 })), new Line({ functionId: fn(name, f.file), line: f.line ?? 0 })];
      locations.set(key, (loc = new Location({ id: locations.size + 1, mappingId: mapping(pid, f, addr), address: addr, line: lines })));
    }
    return loc.id as number;
  };
  const pseudoLocation = (name: string): number => {
    let loc = locations.get(name);
    if (!loc) locations.set(name, (loc = new Location({ id: locations.size + 1, line: [new Line({ functionId: fn(name, undefined) })] })));
    return loc.id as number;
  };

  const { analyzer } = inp;
  const samples: Sample[] = [];
  for (const g of analyzer.table ? groups(inp) : []) {
    const frames = g.stackId !== undefined ? analyzer.stacksById.get(g.stackId) : undefined;
    // outermost frame first, so the executable's mapping comes first (pprof names the profile by its first mapping)
    const locationId = frames?.length ? [...frames].reverse().map((f) => frameLocation(g.pid, f)).reverse() : [pseudoLocation(g.preexisting ? PREEXISTING_FRAME : NO_STACK_FRAME)];
    const label = [
      new Label({ key: s('pid'), num: g.pid }),
      new Label({ key: s('comm'), str: s(g.comm) }),
      new Label({ key: s('workload'), str: s(g.workload) }),
    ];
    if (g.site) label.push(new Label({ key: s('site'), str: s(SITE_LABEL[g.site]) }));
    if (g.preexisting) label.push(new Label({ key: s('origin'), str: s('preexisting') }));
    if (g.site && g.site !== 'acquire' && g.acquireStackId !== undefined) {
      const acq = analyzer.stacksById.get(g.acquireStackId);
      const name = acq && firstNamed(acq);
      if (name) label.push(new Label({ key: s('acquired_in'), str: s(name) }));
    }
    samples.push(new Sample({ locationId, value: [...g.values], label }));
  }
  const sampleType = SAMPLE_TYPES.map((t) => new ValueType({ type: s(t), unit: s('count') }));
  const profile = new Profile({
    sampleType,
    sample: samples,
    mapping: [...mappings.values()],
    location: [...locations.values()],
    function: [...functions.values()],
    stringTable: strings,
    timeNanos: inp.wallNs,
    defaultSampleType: s('leaked_sockets'),
    comment: [s(`tcptrace: sockets held by traced processes; leaked = CLOSE_WAIT for ${analyzer.options.leakAfterMs / 1000} s or longer`)],
  });
  return gzipSync(profile.encode());
}
