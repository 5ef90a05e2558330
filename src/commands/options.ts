/**
 * Options shared by the tracing commands, with their validation. Commander
 * parsers throw InvalidArgumentError: one line, exit 64.
 */
import { InvalidArgumentError, Option } from 'commander';
import { MODE_NAMES, SYSCALL_HOOKS, type SyscallHooks } from '../attach/modes.js';
import { DEFAULTS } from '../trace/session.js';

export function parsePid(v: string, prev: number[] = []): number[] {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 4194304) throw new InvalidArgumentError(`'${v}' is not a process id`);
  return [...prev, Number(v)];
}

export function parsePositive(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`'${v}' is not a positive number`);
  return n;
}

/** "16M", "8192K", "4096": bytes. (Takes one argument: commander passes argParsers the previous value too.) */
function parseBytes(v: string): number {
  const m = /^(\d+)([kKmM]?)(i?[bB])?$/.exec(v);
  if (!m) throw new InvalidArgumentError(`'${v}' is not a size (e.g. 16M, 8192K)`);
  return Number(m[1]) * (m[2].toLowerCase() === 'm' ? 1 << 20 : m[2].toLowerCase() === 'k' ? 1024 : 1);
}

/** --ring-size: a power of two, at least one page */
function parseRingSize(v: string): number {
  const n = parseBytes(v);
  if (n < 4096 || (n & (n - 1)) !== 0) throw new InvalidArgumentError(`'${v}': the ring size must be a power of two, at least 4K`);
  return n;
}

/** A parser for whole numbers of at least min. */
function wholeAtLeast(min: number): (v: string) => number {
  return (v) => {
    if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`'${v}' is not a whole number >= ${min}`);
    return Number(v);
  };
}
const parseCount = wholeAtLeast(16);
const parseWhole = wholeAtLeast(1);

export interface SelectorOpts {
  pid?: number[];
  children: boolean;
  duration?: number;
  attachMode?: string;
  syscallHooks: SyscallHooks;
  ringSize: number;
  /** false: --no-ring-per-cpu */
  ringPerCpu: boolean;
  maxSockets: number;
  /** undefined: on with --pid, off for the whole system */
  stacks?: boolean;
  stackBytes: number;
  stackRate: number;
  /** false: --no-python-frames */
  pythonFrames: boolean;
}

export interface AnalysisOpts {
  leakAfter: number;
  interval?: number;
  top: number;
}

/** --stack-bytes: whole pages, at most 32K */
function parseStackBytes(v: string): number {
  const n = parseBytes(v);
  if (n < 4096 || n % 4096) throw new InvalidArgumentError(`'${v}': must be a multiple of 4096`);
  if (n > 32768) throw new InvalidArgumentError(`'${v}': at most 32K of stack is copied`);
  return n;
}


/** --leak-after, --interval, --top: how leaks are judged and shown (trace, record, report) */
export function analysisOptions(): Option[] {
  return [
    new Option('--leak-after <seconds>', 'a socket in CLOSE_WAIT this long, and not closed, is leaked').argParser(parsePositive).default(5),
    new Option('--interval <seconds>', 'also print the leak report every this many seconds (text output)').argParser(parsePositive),
    new Option('--top <n>', 'leak groups shown, largest first').argParser(parseWhole).default(10),
  ];
}

/** --pid, --children, --duration, --attach-mode, --ring-size, --max-sockets */
export function selectorOptions(): Option[] {
  return [
    new Option('-p, --pid <pid>', 'trace the sockets owned by this process (repeatable; all its threads count). Without it: the whole system').argParser(parsePid),
    new Option('-c, --children', 'also follow processes the targets fork, and their existing descendants').default(false),
    new Option('-d, --duration <seconds>', 'stop after this many seconds (default: until Ctrl-C or the targets exit)').argParser(parsePositive),
    new Option('--attach-mode <mode>', 'force an attach mode instead of the best one the probe finds (see `tcptrace features`)').choices(MODE_NAMES),
    new Option('--syscall-hooks <how>', 'how syscalls are hooked: per-syscall tracepoints (only hooked calls pay), or raw sys_enter/sys_exit on every syscall (the path of kernels without them)').choices(SYSCALL_HOOKS).default('auto'),
    new Option('--ring-size <bytes>', 'BPF ring buffers\' size in all (power of two): split among the CPUs\' rings, 64K each at least (else one shared ring)').argParser(parseRingSize).default(DEFAULTS.ringBytes, '16M'),
    new Option('--no-ring-per-cpu', 'one ring buffer shared by every CPU, not one per CPU merged by time (its lock then moves between the CPUs that produce)'),
    new Option('--max-sockets <n>', 'sockets tracked at once in the kernel (map size)').argParser(parseCount).default(DEFAULTS.maxSockets),
    new Option('--stacks', 'capture user stacks for leak attribution (default with --pid)'),
    new Option('--no-stacks', 'do not capture user stacks (no leak attribution; lowest overhead; default for the whole system)'),
    new Option('--stack-bytes <bytes>', 'user stack copied per capture, whole pages from the stack pointer').argParser(parseStackBytes).default(DEFAULTS.stackBytes, '32K'),
    new Option('--stack-rate <n>', 'stacks captured per second per process at most (bounds the cost under churn)').argParser(parseWhole).default(DEFAULTS.stackRate),
    new Option('--no-python-frames', "do not read CPython processes' frames (3.11-3.13, named by default from their memory): their stacks show the interpreter's C frames"),
  ];
}

export function formatOption(): Option {
  return new Option('-f, --format <format>', 'output: text (live lines + report) or json (one document at exit)').choices(['text', 'json']).default('text');
}
