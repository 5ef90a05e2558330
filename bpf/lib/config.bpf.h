/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What user space sets before load, and what every part of tcpstate counts
 * with: the const volatile rodata knobs (set through the skeleton between open
 * and load, so the verifier prunes the branches they turn off), the constants
 * of the TCP and socket ABI, and the per-CPU counters user space sums (TT_CNT_*
 * in tcpstate.h). Needs: BPF global data (5.2), CO-RE (BTF, 5.2+).
 */
#ifndef TCPTRACE_LIB_CONFIG_BPF_H
#define TCPTRACE_LIB_CONFIG_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "core_fixes.bpf.h"
#include "tcpstate.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10

/* how a helper may read the kernel pointer it is handed, a sock or pt_regs (KREAD in core_fixes.bpf.h) */
#define BTF_PTR true  /* a BTF pointer from a tp_btf / fentry argument: direct loads */
#define RAW_PTR false /* an untyped pointer: bpf_probe_read_kernel */

/* ---- configuration (rodata, set before load) ---- */
const volatile bool targ_filter = false;    /* only sockets owned by tgids in "targets" */
const volatile bool targ_children = false;  /* follow forks of targets */
const volatile __u64 targ_wakeup_bytes = 0; /* force a wake-up past this much unread data */
const volatile __u64 targ_wakeup_gap_ns = 1000000;
const volatile __s32 targ_self_tgid = 0;    /* never trace tcptrace itself */
const volatile bool targ_stacks = false;     /* capture user stacks at acquire / first I/O / EOF */
/* keep a target's sockets in the kernel until they matter (TT_OWNER_PUBLISHED); needs targ_owners
 * (--pid, or the whole system with stacks: the agent) */
const volatile bool targ_summary = false;
/*
 * Keep sk -> owner in the kernel (owners, seeds, listeners maps): --pid needs it
 * to drop other processes' sockets before they cost a record, and stacks keep
 * per-socket state in it. The whole system without stacks (what `tcptrace
 * record` runs) sends every socket's events anyway: there the agent's socket
 * table attributes them from the same facts (present sockets, births,
 * accept(), a listener's children) and the kernel skips about 15 hash map
 * operations per connection (README, "How it works").
 */
const volatile bool targ_owners = true;
/* the I/O stack sites come from the read/write syscall hooks (no sock:sock_{send,recv}_length before 6.3) */
const volatile bool targ_io_syscalls = true;
const volatile __u32 targ_stack_bytes = 32768; /* user stack to copy, in whole pages from sp's page (<= TT_STACK_MAX) */
const volatile __u32 targ_stack_rate = 1000;  /* stacks per second per process, burst the same */
const volatile __u64 targ_stack_wakeup_gap_ns = 2000000; /* at most one wake-up per CPU per 2 ms for stack copies */
const volatile bool targ_ring_per_cpu = false; /* records go to this CPU's ring in "rings", not to "events" */
const volatile bool targ_cgroups = false;      /* note each acquiring process's cgroup (proc_cgroups): the agent */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TT_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * Atomic although the value is this CPU's: a preempted program (7.0+, see
 * scratch_take) must not lose another task's increment on the same CPU.
 * BPF_XADD without fetch: every kernel.
 */
static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);

	if (v)
		__sync_fetch_and_add(v, 1);
}

#endif /* TCPTRACE_LIB_CONFIG_BPF_H */
