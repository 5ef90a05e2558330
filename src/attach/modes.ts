/**
 * Attach modes: which flavour of each hook to load. Every mode covers the same
 * facts (transitions, accept, connect/listen fds, close/shutdown, forks); they
 * differ in how they reach them. A mode is usable only when the feature probe
 * attached each kind it needs on this kernel (src/attach/probe.ts).
 */
import type { KernelProbe } from '../native.js';
import { TcptraceError } from '../errors.js';

export type ProbeKind = 'tp_btf' | 'raw_tp' | 'fexit' | 'kretprobe' | 'tracepoint' | 'syscallTracepoint' | 'sockIo';

export type HookFact = 'transitions' | 'accept' | 'connect' | 'close' | 'syscalls' | 'io' | 'fork';

export interface AttachMode {
  name: ModeName;
  summary: string;
  needs: ProbeKind[];
  /** transitions, forks, and the accept return hook where the mode has one */
  programs: string[];
  hooks: Record<'transitions' | 'accept' | 'fork', string>;
  /** how the mode's own tracepoint programs are written; the raw-tracepoint flavours also have raw sys_enter/sys_exit and sock I/O programs */
  flavour: 'tp_btf' | 'raw_tp' | 'tracepoint';
}

export type ModeName = 'fentry' | 'tp_btf' | 'kprobe' | 'raw_tp' | 'tracepoint';

const btf = ['tp_btf_inet_sock_set_state', 'tp_btf_sched_process_fork'];
const raw = ['raw_tp_inet_sock_set_state', 'raw_tp_sched_process_fork'];
/** a flavour's programs on these raw tracepoints ([] for plain tracepoints, which have none) */
const rawPrograms = (mode: AttachMode, tracepoints: string[]): string[] => (mode.flavour === 'tracepoint' ? [] : tracepoints.map((t) => `${mode.flavour}_${t}`));

/**
 * Per-syscall tracepoints. Preferred in every mode: any syscall hook moves all
 * tasks onto the traced syscall path, but with these only the hooked calls run
 * a program, where a raw sys_enter/sys_exit program runs on every syscall of
 * the box. bench/syscall-cost here: +97 ns per unrelated syscall against +221
 * ns with raw programs (wrk makes 14 syscalls per request, none of them hooked:
 * connect() and listen() are hooked only with stacks, for the acquire stack;
 * their transitions read the fd from the syscall registers, and so do the
 * transitions close() and shutdown() make: releasing_call in
 * bpf/tcpstate.bpf.c). accept() is the one call hooked for itself: no state
 * changes when a socket is accepted. fexit on the
 * syscall functions would leave the other tasks on the fast path, but a
 * trampoline misses a call already in flight at attach: the accept() an idle
 * server is blocked in (tried on the kernel matrix, 6.1-7.2: that connection's
 * accept and fd were lost).
 */
const SYSCALL_TPS = ['tp_sys_exit_accept4', 'tp_sys_exit_accept'];
/** with stacks: connect()/listen() entry, for the acquire stack (their fds come from the transition) */
const ACQUIRE_SYSCALL_TPS = ['tp_sys_enter_connect', 'tp_sys_enter_listen'];
/** stack sites through the read/write family of syscalls: kernels before 6.3, and the tracepoint mode */
const IO_SYSCALL_TPS = ['write', 'writev', 'sendto', 'sendmsg'].map((c) => `tp_sys_enter_${c}`).concat(
  ...['read', 'readv', 'recvfrom', 'recvmsg'].map((c) => [`tp_sys_enter_${c}`, `tp_sys_exit_${c}`]),
);

/** In order of preference: the first usable one is chosen. */
export const MODES: readonly AttachMode[] = [
  {
    name: 'fentry',
    summary: 'BTF-typed tracepoints plus fexit on inet_csk_accept (5.5+; needs BPF trampolines)',
    needs: ['tp_btf', 'fexit'],
    programs: [...btf, 'fexit_inet_csk_accept'],
    flavour: 'tp_btf',
    hooks: {
      transitions: 'tp_btf/inet_sock_set_state',
      accept: 'fexit/inet_csk_accept + accept syscall exit (fd)',
      fork: 'tp_btf/sched_process_fork',
    },
  },
  {
    name: 'tp_btf',
    summary: 'BTF-typed raw tracepoints (5.5+), per-syscall tracepoints where present',
    needs: ['tp_btf'],
    programs: btf,
    flavour: 'tp_btf',
    hooks: {
      transitions: 'tp_btf/inet_sock_set_state',
      accept: 'accept syscall exit (fd -> sock)',
      fork: 'tp_btf/sched_process_fork',
    },
  },
  {
    name: 'kprobe',
    summary: 'raw tracepoints plus a kretprobe on inet_csk_accept (needs the kprobe PMU or kprobe_events)',
    needs: ['raw_tp', 'kretprobe'],
    programs: [...raw, 'kretprobe_inet_csk_accept'],
    flavour: 'raw_tp',
    hooks: {
      transitions: 'raw_tp/inet_sock_set_state',
      accept: 'kretprobe/inet_csk_accept + accept syscall exit (fd)',
      fork: 'raw_tp/sched_process_fork',
    },
  },
  {
    name: 'raw_tp',
    summary: 'untyped raw tracepoints (4.17+), per-syscall tracepoints where present',
    needs: ['raw_tp'],
    programs: raw,
    flavour: 'raw_tp',
    hooks: {
      transitions: 'raw_tp/inet_sock_set_state',
      accept: 'accept syscall exit (fd -> sock)',
      fork: 'raw_tp/sched_process_fork',
    },
  },
  {
    name: 'tracepoint',
    summary: 'plain perf tracepoints (sock:, syscalls:, sched:); ids from tracefs, mounted privately if needed',
    needs: ['tracepoint', 'syscallTracepoint'],
    programs: ['tp_inet_sock_set_state', 'tp_sched_process_fork'],
    flavour: 'tracepoint',
    hooks: {
      transitions: 'tracepoint/sock/inet_sock_set_state',
      accept: 'accept syscall exit (fd -> sock)',
      fork: 'tracepoint/sched/sched_process_fork',
    },
  },
];

/** The programs a trace loads in a mode on this kernel, and what each fact is hooked with. */
export interface HookPlan {
  programs: string[];
  hooks: Record<HookFact, string>;
  /** the read/write syscall hooks carry the I/O stack sites (no sock I/O tracepoints used) */
  ioViaSyscalls: boolean;
}

/**
 * syscallHooks 'raw' forces the oldest kernels' path (raw sys_enter/sys_exit for
 * the syscalls and the read/write stack sites), so it stays tested here too.
 */
export type SyscallHooks = 'auto' | 'tracepoint' | 'raw';
export const SYSCALL_HOOKS: SyscallHooks[] = ['auto', 'tracepoint', 'raw'];

export function hookPlan(mode: AttachMode, probe: Pick<KernelProbe, 'syscallTracepoint' | 'sockIo' | 'btfWalk'>, stacks: boolean, syscallHooks: SyscallHooks = 'auto'): HookPlan {
  // raw sys_enter only serves stacks (connect/listen entry, the write family): without them
  // it would run on every syscall of the box for nothing
  const rawSyscalls = rawPrograms(mode, stacks ? ['sys_enter', 'sys_exit'] : ['sys_exit']);
  const sockIoPrograms = rawPrograms(mode, ['sock_send_length', 'sock_recv_length']);
  if (syscallHooks === 'raw' && rawSyscalls.length === 0) {
    throw new TcptraceError('UNSUPPORTED_KERNEL', `--syscall-hooks raw: attach mode ${mode.name} has no raw syscall hooks`);
  }
  if (syscallHooks === 'tracepoint' && !probe.syscallTracepoint.supported) {
    throw new TcptraceError('UNSUPPORTED_KERNEL', `--syscall-hooks tracepoint: per-syscall tracepoints unavailable: ${probe.syscallTracepoint.reason}`);
  }
  const perSyscall = syscallHooks !== 'raw' && (probe.syscallTracepoint.supported || rawSyscalls.length === 0);
  const sockIo = syscallHooks !== 'raw' && stacks && probe.sockIo.supported && sockIoPrograms.length > 0;
  // Every per-syscall tracepoint program comes in a second build (suffix _btf) that walks
  // fd -> file -> sock through typed pointers, used whole where the probe loads it (6.2+).
  // bpf_stats here, both builds attached side by side under nginx + wrk (4 rounds, order
  // alternated): accept4 exit 1.72 -> 0.85 us, close 1.49 -> 0.75 us a run.
  const typedWalk = perSyscall && probe.btfWalk.supported;
  const syscallTps = (names: string[]): string[] => (typedWalk ? names.map((n) => `${n}_btf`) : names);
  const programs = [...mode.programs, ...(perSyscall ? syscallTps([...SYSCALL_TPS, ...(stacks ? ACQUIRE_SYSCALL_TPS : [])]) : rawSyscalls)];
  let io = 'off (no stacks)';
  if (stacks && sockIo) {
    programs.push(...sockIoPrograms);
    io = `${mode.flavour}/sock_send_length, ${mode.flavour}/sock_recv_length`;
  } else if (stacks && perSyscall) {
    programs.push(...syscallTps(IO_SYSCALL_TPS));
    io = 'tracepoint/syscalls/sys_enter_{write,writev,sendto,sendmsg}, sys_{enter,exit}_{read,readv,recvfrom,recvmsg}';
  } else if (stacks) {
    io = `${mode.flavour}/sys_enter, ${mode.flavour}/sys_exit (read/write family)`;
  }
  return {
    programs,
    ioViaSyscalls: stacks && !sockIo,
    hooks: {
      ...mode.hooks,
      connect: `fd from the syscall registers at the CLOSE->SYN_SENT / CLOSE->LISTEN transition; ${
        stacks ? `stack at ${perSyscall ? 'tracepoint/syscalls/sys_enter_{connect,listen}' : `${mode.flavour}/sys_enter`}` : 'no hook'
      }`,
      close: 'no hook: the transition a close()/shutdown() (dup2, dup3, close_range) makes carries the call, from the syscall registers',
      syscalls: perSyscall
        ? `tracepoint/syscalls/sys_exit_{accept,accept4} (fd -> sock ${typedWalk ? 'through typed pointers' : 'by probe reads'})`
        : stacks
          ? `${mode.flavour}/sys_enter, ${mode.flavour}/sys_exit (every syscall)`
          : `${mode.flavour}/sys_exit (every syscall)`,
      io,
    },
  };
}

export const MODE_NAMES = MODES.map((m) => m.name);

export function modeByName(name: string): AttachMode | undefined {
  return MODES.find((m) => m.name === name);
}

export interface ModeVerdict {
  mode: AttachMode;
  usable: boolean;
  /** why not, naming each missing kind and the probe's own reason */
  why: string;
}

export function judgeModes(probe: KernelProbe): ModeVerdict[] {
  return MODES.map((mode) => {
    const missing = mode.needs.filter((k) => !probe[k].supported);
    return {
      mode,
      usable: missing.length === 0,
      why: missing.map((k) => `${k}: ${probe[k].reason || 'not supported'}`).join('; '),
    };
  });
}
