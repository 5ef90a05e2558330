/**
 * Attach modes: which flavour of each hook to load. Every mode covers the same
 * facts (transitions, accept, connect/listen fds, close/shutdown, forks); they
 * differ in how they reach them. A mode is usable only when the feature probe
 * attached each kind it needs on this kernel (src/attach/probe.ts).
 */
import type { KernelProbe } from '../native.js';

export type ProbeKind = 'tp_btf' | 'raw_tp' | 'fexit' | 'kretprobe' | 'tracepoint' | 'syscallTracepoint';

export interface AttachMode {
  name: ModeName;
  summary: string;
  needs: ProbeKind[];
  programs: string[];
  /** what each fact is hooked with, for `tcptrace features` and JSON reports */
  hooks: Record<'transitions' | 'accept' | 'syscalls' | 'fork', string>;
}

export type ModeName = 'fentry' | 'tp_btf' | 'kprobe' | 'raw_tp' | 'tracepoint';

const btf = ['tp_btf_inet_sock_set_state', 'tp_btf_sys_enter', 'tp_btf_sys_exit', 'tp_btf_sched_process_fork'];
const raw = ['raw_tp_inet_sock_set_state', 'raw_tp_sys_enter', 'raw_tp_sys_exit', 'raw_tp_sched_process_fork'];
const tp = [
  'tp_inet_sock_set_state',
  'tp_sys_enter_connect',
  'tp_sys_exit_connect',
  'tp_sys_enter_listen',
  'tp_sys_exit_listen',
  'tp_sys_exit_accept4',
  'tp_sys_exit_accept',
  'tp_sys_enter_close',
  'tp_sys_enter_shutdown',
  'tp_sched_process_fork',
];

/** In order of preference: the first usable one is chosen. */
export const MODES: readonly AttachMode[] = [
  {
    name: 'fentry',
    summary: 'BTF-typed tracepoints plus fexit on inet_csk_accept (5.5+; needs BPF trampolines)',
    needs: ['tp_btf', 'fexit'],
    programs: [...btf, 'fexit_inet_csk_accept'],
    hooks: {
      transitions: 'tp_btf/inet_sock_set_state',
      accept: 'fexit/inet_csk_accept + tp_btf/sys_exit (fd)',
      syscalls: 'tp_btf/sys_enter, tp_btf/sys_exit',
      fork: 'tp_btf/sched_process_fork',
    },
  },
  {
    name: 'tp_btf',
    summary: 'BTF-typed raw tracepoints only (5.5+); no tracefs needed',
    needs: ['tp_btf'],
    programs: btf,
    hooks: {
      transitions: 'tp_btf/inet_sock_set_state',
      accept: 'tp_btf/sys_exit (accept/accept4 fd -> sock)',
      syscalls: 'tp_btf/sys_enter, tp_btf/sys_exit',
      fork: 'tp_btf/sched_process_fork',
    },
  },
  {
    name: 'kprobe',
    summary: 'raw tracepoints plus a kretprobe on inet_csk_accept (needs the kprobe PMU or kprobe_events)',
    needs: ['raw_tp', 'kretprobe'],
    programs: [...raw, 'kretprobe_inet_csk_accept'],
    hooks: {
      transitions: 'raw_tp/inet_sock_set_state',
      accept: 'kretprobe/inet_csk_accept + raw_tp/sys_exit (fd)',
      syscalls: 'raw_tp/sys_enter, raw_tp/sys_exit',
      fork: 'raw_tp/sched_process_fork',
    },
  },
  {
    name: 'raw_tp',
    summary: 'untyped raw tracepoints (4.17+); no tracefs needed',
    needs: ['raw_tp'],
    programs: raw,
    hooks: {
      transitions: 'raw_tp/inet_sock_set_state',
      accept: 'raw_tp/sys_exit (accept/accept4 fd -> sock)',
      syscalls: 'raw_tp/sys_enter, raw_tp/sys_exit',
      fork: 'raw_tp/sched_process_fork',
    },
  },
  {
    name: 'tracepoint',
    summary: 'plain perf tracepoints (sock:, syscalls:, sched:); ids from tracefs, mounted privately if needed',
    needs: ['tracepoint', 'syscallTracepoint'],
    programs: tp,
    hooks: {
      transitions: 'tracepoint/sock/inet_sock_set_state',
      accept: 'tracepoint/syscalls/sys_exit_accept4, sys_exit_accept',
      syscalls: 'tracepoint/syscalls/sys_{enter,exit}_{connect,listen}, sys_enter_{close,shutdown}',
      fork: 'tracepoint/sched/sched_process_fork',
    },
  },
];

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
