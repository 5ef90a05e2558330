/**
 * Options shared by the tracing commands, with their validation. Commander
 * parsers throw InvalidArgumentError: one line, exit 64.
 */
import { InvalidArgumentError, Option } from 'commander';
import { MODE_NAMES } from '../attach/modes.js';
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

function parseSize(v: string): number {
  const m = /^(\d+)([kKmM]?)(i?[bB])?$/.exec(v);
  if (!m) throw new InvalidArgumentError(`'${v}' is not a size (e.g. 16M, 8192K)`);
  const n = Number(m[1]) * (m[2].toLowerCase() === 'm' ? 1 << 20 : m[2].toLowerCase() === 'k' ? 1024 : 1);
  if (n < 4096 || (n & (n - 1)) !== 0) throw new InvalidArgumentError(`'${v}': the ring size must be a power of two, at least 4K`);
  return n;
}

function parseCount(v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 16) throw new InvalidArgumentError(`'${v}' is not a count (>= 16)`);
  return Number(v);
}

export interface SelectorOpts {
  pid?: number[];
  children: boolean;
  duration?: number;
  attachMode?: string;
  ringSize: number;
  maxSockets: number;
}

/** --pid, --children, --duration, --attach-mode, --ring-size, --max-sockets */
export function selectorOptions(): Option[] {
  return [
    new Option('-p, --pid <pid>', 'trace the sockets owned by this process (repeatable; all its threads count). Without it: the whole system').argParser(parsePid),
    new Option('-c, --children', 'also follow processes the targets fork, and their existing descendants').default(false),
    new Option('-d, --duration <seconds>', 'stop after this many seconds (default: until Ctrl-C or the targets exit)').argParser(parsePositive),
    new Option('--attach-mode <mode>', 'force an attach mode instead of the best one the probe finds (see `tcptrace features`)').choices(MODE_NAMES),
    new Option('--ring-size <bytes>', 'BPF ring buffer size (power of two)').argParser(parseSize).default(DEFAULTS.ringBytes, '16M'),
    new Option('--max-sockets <n>', 'sockets tracked at once in the kernel (map size)').argParser(parseCount).default(DEFAULTS.maxSockets),
  ];
}

export function formatOption(): Option {
  return new Option('-f, --format <format>', 'output: text (live lines + report) or json (one document at exit)').choices(['text', 'json']).default('text');
}
