/**
 * Loads the native addon (build/Release, then build/Debug) and gives it a
 * typed face. Only MODULE_NOT_FOUND is swallowed while searching; the final
 * error says what was tried and how to build.
 */
import { createRequire } from 'node:module';
import { BpfError } from './errors.js';

export interface ProbeOutcome {
  supported: boolean;
  reason: string;
  log?: string;
}

export interface KernelProbe {
  btf: ProbeOutcome;
  bpf: ProbeOutcome;
  ringbuf: ProbeOutcome;
  tp_btf: ProbeOutcome;
  raw_tp: ProbeOutcome;
  fexit: ProbeOutcome;
  kretprobe: ProbeOutcome;
  tracepoint: ProbeOutcome;
  syscallTracepoint: ProbeOutcome;
  /** sock:sock_recv_length exists (6.3+): stack sites at socket I/O without syscall hooks */
  sockIo: ProbeOutcome;
  /** the syscall hooks' fd -> sock walk through typed pointers (bpf_get_current_task_btf 5.11+, bpf_rdonly_cast 6.2+) */
  btfWalk: ProbeOutcome;
  tracefs: { mounted: string | null };
}

export interface DiagSocket {
  family: number;
  state: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  inode: number;
  uid: number;
  /** LISTEN: current accept-queue length; otherwise bytes not yet read */
  rqueue: number;
  /** LISTEN: backlog; otherwise bytes not yet acknowledged */
  wqueue: number;
  timer: number;
  retrans: number;
  expiresMs: number;
  ifindex: number;
  cookie: bigint;
}

export interface SeedOwner {
  cookie: bigint;
  tgid: number;
  fd: number;
  firstNs?: bigint;
  origin?: number;
  comm: string;
}

export interface SeedListener {
  netns: number;
  port: number;
  tgid: number;
  fd: number;
  comm: string;
}

export interface NativeCounters {
  kernel: bigint[];
  /**
   * program runs the kernel skipped (one of our programs was already running on that CPU;
   * fentry 5.12+, raw_tp 6.2+, kprobe/tracepoint 6.7+), by BPF program name; programs
   * that missed none are left out
   */
  missedBy: Record<string, number>;
  batches: bigint;
  records: bigint;
  bytes: bigint;
  droppedBatches: bigint;
  droppedBytes: bigint;
  /** records handed over behind a newer one (one ring per CPU: merged by time) */
  outOfOrder: bigint;
}

export interface NativeTracerOptions {
  programs: string[];
  filter: boolean;
  children: boolean;
  /** every ring's bytes together: split among the CPUs with ringPerCpu */
  ringBytes: number;
  /** one ring buffer per possible CPU, merged by time in the poller (default true; one CPU: one ring) */
  ringPerCpu?: boolean;
  wakeupBytes?: number;
  maxSockets: number;
  maxTargets?: number;
  /** capture user stacks at acquire / first I/O / EOF */
  stacks?: boolean;
  /** the read/write syscall hooks carry the I/O stack sites (no sock I/O tracepoints loaded) */
  ioViaSyscalls?: boolean;
  stackBytes?: number;
  /** stacks per second per process */
  stackRate?: number;
  /** summary mode: keep the targets' sockets in the kernel until they enter CLOSE_WAIT (needs filter) */
  summary?: boolean;
  /**
   * keep sk -> owner in the kernel (default); false leaves attribution to the
   * socket table (whole system without stacks). filter and stacks imply it.
   */
  owners?: boolean;
  /** note each acquiring process's cgroup id in the kernel (proc_cgroups) */
  /** entries of the seeds map (sockets present at attach); at most maxSockets */
  maxSeeds?: number;
  cgroups?: boolean;
  /** the agent: size the lingering CLOSE_WAIT maps (bpf/lib/linger.bpf.h); programs must name publish_lingering */
  linger?: boolean;
  /** the agent (summary mode): count held sockets' transitions and brief CLOSE_WAITs per process (held_counts.bpf.h) */
  heldCounts?: boolean;
  /** upper bounds of the kernel's brief CLOSE_WAIT histogram, ascending (at most 8, ns) */
  closeWaitBoundsNs?: number[];
}

export interface MapFill {
  map: string;
  entries: number;
  maxEntries: number;
  /** an LRU map evicts when full (stack caches): full is normal there, not a loss */
  lru: boolean;
}

export interface NativeTracer {
  load(): void;
  attach(): { program: string; section: string }[];
  addTargets(tgids: number[]): void;
  seedOwners(owners: SeedOwner[]): number;
  seedListeners(listeners: SeedListener[]): void;
  learnStack(stack: { tgid: number; site: number; hash: bigint; stackId: number; rules: { pc: number; cfaOff: number }[] }): void;
  /** the tt_py_proc entry of a CPython process (null: drop it) */
  setPython(tgid: number, config: Buffer | null): void;
  /** onBatch gets the packed records, and the offsets of the stack records among them (when there are any) */
  start(onBatch: (batch: Buffer, stackOffsets: Uint32Array | undefined, records: number) => void, opts?: { intervalMs?: number; maxInflightBytes?: number }): void;
  stop(): Promise<void>;
  counters(): NativeCounters;
  /** the ring buffers records come through, after load(): one per possible CPU, or the one shared ring */
  rings(): number;
  /** summary mode: sockets the kernel holds (never sent to user space), counted by TCP state (index) */
  heldStates(): number[];
  /** summary mode: held sockets by (tgid, TCP state), flat [tgid, state, count, ...] */
  heldByProcess(): number[];
  /** entries of every hash map (walked key by key: call it seldom), after load() */
  mapFill(): MapFill[];
  /** the cgroup v2 id the process acquired its last socket in (the "cgroups" option); null: unknown */
  cgroupOf(tgid: number): bigint | null;
  /** summary mode's active closes, flat [tgid, stackId, count, ...]; deletes the keys of the tgids in drop first */
  activeCloses(drop?: number[]): number[];
  /**
   * how long a held socket stays in CLOSE_WAIT before the sweep sends it (0: at once); returns
   * the value in force: 0 when the kernel refused to test-run the sweep's program (errno)
   */
  setLinger(ns: number): { lingerNs: number; errno: number };
  /** publishes the lingering sockets in CLOSE_WAIT for at least minAgeNs */
  sweepLingering(minAgeNs: number): { lingering: number; published: number; gone: number; errno: number };
  /** the kernel's counts of held sockets per process (held_counts.bpf.h): rows of `row` numbers [tgid, toLastAck, toClose, sumNs, ...buckets, ...transitions by enum tt_passed]; deletes the tgids in drop first */
  heldCounts(drop?: number[]): { row: number; values: number[] };
  close(): void;
}

export interface Native {
  initialize(errorClass: typeof BpfError): void;
  probeKernel(): KernelProbe;
  drainLibbpfLog(): string;
  /** the addon's build: libbpf at run time and at compile time, compiler, Node-API version */
  buildInfo(): { libbpf: string; libbpfHeaders: string; compiler: string; napiVersion: number };
  sockDiag(opts?: { netnsPid?: number; states?: number; families?: number[] }): DiagSocket[];
  Tracer: new (opts: NativeTracerOptions) => NativeTracer;
  /** on the thread pool: start writeback of [from, to) of fd, then write back and drop [dropFrom, from) from the page cache */
  writeBehind(fd: number, from: number, to: number, dropFrom: number): Promise<void>;
  /** a second descriptor of an existing file, opened O_DIRECT (throws where the file system refuses it) */
  DirectWriter: (new (path: string) => NativeDirectWriter) & { readonly align: number };
}

/** Direct-I/O appends (native/direct_writer.h). */
export interface NativeDirectWriter {
  /**
   * On the thread pool: writes the largest whole number of `align`-byte blocks
   * the buffers hold, in order, at offset (a multiple of align); resolves with
   * that count (0, at once, when they hold less than a block). One at a time.
   */
  write(buffers: Buffer[], offset: number): Promise<number>;
  close(): void;
}

let cached: Native | undefined;

export function native(): Native {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const rel of ['../../build/Release/tcptrace.node', '../../build/Debug/tcptrace.node']) {
    try {
      const mod = require(rel) as Native;
      mod.initialize(BpfError);
      cached = mod;
      return mod;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
      tried.push(rel);
    }
  }
  throw new Error(`native addon not built (tried ${tried.join(', ')}): run \`npm install\` in the checkout`);
}
