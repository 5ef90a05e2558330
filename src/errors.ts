/**
 * Errors and exit codes. The library throws; only the CLI (src/cli.ts) turns an
 * error into a message and an exit code, through exitCodeFor().
 */

/** Raised by the native addon: a stable code, the errno, the failed operation, the libbpf/verifier log. */
export class BpfError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly op: string;
  readonly log: string;
  constructor(message: string, opts: { code: string; errno?: number; op?: string; log?: string }) {
    super(message);
    Object.defineProperty(this, 'name', { value: 'BpfError', enumerable: false });
    this.code = opts.code;
    this.errno = opts.errno ?? 0;
    this.op = opts.op ?? '';
    this.log = opts.log ?? '';
  }
}

/** A user mistake on the command line or in an input; the message is the whole story. */
export class UsageError extends Error {
  readonly code = 'USAGE';
}

/** Something the environment cannot give us (no root, no BTF, no such pid, bad file). */
export class TcptraceError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type ErrorCode =
  | 'NOT_PERMITTED'
  | 'NO_BTF'
  | 'BPF_DISABLED'
  | 'UNSUPPORTED_KERNEL'
  | 'NO_SUCH_PROCESS'
  | 'BPF_LOAD'
  | 'NO_INPUT'
  | 'BAD_INPUT'
  | 'CANNOT_WRITE'
  | 'CANNOT_LISTEN'
  | 'TARGET_EXITED';

/** Exit codes, listed in `tcptrace --help`. Values follow sysexits(3) where one fits. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  TARGET_EXITED: 3,
  USAGE: 64,
  BAD_INPUT: 65,
  NO_INPUT: 66,
  NO_SUCH_PROCESS: 67,
  UNSUPPORTED_KERNEL: 69,
  BPF_LOAD: 71,
  CANNOT_WRITE: 73,
  CANNOT_LISTEN: 75,
  NOT_PERMITTED: 77,
} as const;

export const EXIT_HELP = `Exit codes:
  0   success
  1   unexpected failure
  3   a traced process exited before the end (the report covers what was seen)
  64  bad usage: unknown option, bad value
  65  a recording is corrupt or of an unknown format
  66  an input file does not exist or cannot be read
  67  no such process (--pid)
  69  kernel cannot do it: no BTF (/sys/kernel/btf/vmlinux), BPF disabled, no ring buffer
  71  the kernel refused to load or attach a BPF program (verifier log with --log-level debug)
  73  the recording (-o, --record) cannot be created or written, e.g. a full disk (the
      trace stops; the file reads up to the failure, and the live report is still printed)
  75  tcptrace agent cannot listen on --listen (the address is in use, or not this host's)
  77  not permitted: run as root (or with CAP_BPF and CAP_PERFMON)`;

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError) return EXIT.USAGE;
  if (err instanceof TcptraceError) {
    switch (err.code) {
      case 'NOT_PERMITTED':
        return EXIT.NOT_PERMITTED;
      case 'NO_BTF':
      case 'BPF_DISABLED':
      case 'UNSUPPORTED_KERNEL':
        return EXIT.UNSUPPORTED_KERNEL;
      case 'NO_SUCH_PROCESS':
        return EXIT.NO_SUCH_PROCESS;
      case 'BPF_LOAD':
        return EXIT.BPF_LOAD;
      case 'NO_INPUT':
        return EXIT.NO_INPUT;
      case 'BAD_INPUT':
        return EXIT.BAD_INPUT;
      case 'CANNOT_WRITE':
        return EXIT.CANNOT_WRITE;
      case 'CANNOT_LISTEN':
        return EXIT.CANNOT_LISTEN;
      case 'TARGET_EXITED':
        return EXIT.TARGET_EXITED;
    }
  }
  if (err instanceof BpfError) {
    if (err.code === 'EPERM' || err.code === 'EACCES') return EXIT.NOT_PERMITTED;
    if (err.code === 'NOT_SUPPORTED') return EXIT.UNSUPPORTED_KERNEL;
    return EXIT.BPF_LOAD;
  }
  return EXIT.FAILURE;
}
