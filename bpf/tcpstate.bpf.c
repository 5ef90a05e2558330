// SPDX-License-Identifier: GPL-2.0
/*
 * tcpstate: follow TCP sockets through their state transitions and attribute
 * each transition to the process that owns the socket, not to whoever happens
 * to be on the CPU.
 *
 * Why ownership is a map: ESTABLISHED -> CLOSE_WAIT (the peer's FIN) and most
 * other transitions run in softirq context, or on loopback in the *peer's*
 * task. The owner is learnt in process context (connect, listen, accept, or
 * seeded from user space for sockets that predate attach) and carried per
 * struct sock in the owners map until the socket reaches TCP_CLOSE.
 *
 * Hooks come in flavours chosen by user space with set_autoload() before load;
 * every flavour is a thin wrapper over the helpers in bpf/lib/, one file an area:
 *   transitions  tp_btf | raw_tp | tracepoint            sock:inet_sock_set_state (4.16+)
 *   accept       fexit | kretprobe  (+ syscall exit)     inet_csk_accept
 *   connect/listen  the transition they cause reads the fd from the task's saved
 *                syscall registers; hooked (entry) only to take the stack
 *   close/shutdown  likewise: the transition they make carries the call (releasing_call)
 *   syscalls     tracepoint (syscalls:sys_{enter,exit}_<call>: only the hooked calls
 *                run a program; ids from tracefs, mounted privately if needed)
 *                | tp_btf | raw_tp (raw_syscalls sys_enter/sys_exit: a program on
 *                every syscall of the box, ~120 ns each here; the fallback)
 *   stack I/O    tp_btf | raw_tp sock:sock_{send,recv}_length (6.3+)
 *                | the syscall hooks (read/write family)
 *   fork         tp_btf | raw_tp | tracepoint            sched:sched_process_fork
 * Minimum kernel: 5.8 (BPF ring buffer); tp_btf 5.5, fexit 5.5.
 *
 * Transport: one BPF ring buffer per CPU ("rings"; or the shared "events" with
 * --no-ring-per-cpu), merged by time in user space; records are submitted
 * without a wake-up and user space drains on a timer, except when a ring fills
 * past a watermark (a wake-up per event costs ~10 us here: see
 * shared/reference/peer-overhead.md).
 */
#include "lib/config.bpf.h"
#include "lib/ring.bpf.h"
#include "lib/targets.bpf.h"
#include "lib/sock.bpf.h"
#include "lib/owners.bpf.h"
#include "lib/stacks.bpf.h"
#include "lib/syscall.bpf.h"
#include "lib/sockcall.bpf.h"
#include "lib/io_sites.bpf.h"
#include "lib/transition.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * The raw sys_enter/sys_exit fallback runs for every syscall on the box: the
 * switch on the number is the first test, and the arguments are read only in
 * the cases that use them.
 */
static __always_inline void on_sys_enter(const bool btf, struct pt_regs *regs, long nr)
{
	switch (nr) {
	case NR_write:
	case NR_writev:
	case NR_sendto:
	case NR_sendmsg:
	case NR_sendmmsg:
		if (targ_io_syscalls)
			on_io_enter(RAW_PTR, SYSCALL_ARG1(btf, regs));
		break;
	case NR_read:
	case NR_readv:
	case NR_recvfrom:
	case NR_recvmsg:
		if (targ_io_syscalls)
			on_read_enter(SYSCALL_ARG1(btf, regs));
		break;
	case NR_connect:
	case NR_listen:
		on_acquire_enter(RAW_PTR, nr, SYSCALL_ARG1(btf, regs));
		break;
	}
}

static __always_inline void on_sys_exit(long nr, long ret)
{
	switch (nr) {
	case NR_accept:
	case NR_accept4:
		on_accept_exit(RAW_PTR, ret);
		break;
	case NR_read:
	case NR_readv:
	case NR_recvfrom:
	case NR_recvmsg:
		if (targ_stacks && targ_io_syscalls)
			on_read_exit(RAW_PTR, ret);
		break;
	}
}

/*
 * ==== flavours: tp_btf (5.5+) and raw_tp (4.17+): raw tracepoints, no tracefs ====
 * One definition for both, so that a hook added to one is in the other. tp_btf
 * arguments are typed kernel pointers, read with plain loads (BTF_PTR: no
 * bpf_probe_read call per syscall or transition); raw_tp ones are untyped and
 * read with CO-RE probe reads (RAW_PTR). The sock I/O tracepoints (6.3+) give
 * the socket itself: no fd -> sock walk, and no hook on other syscalls.
 */
#define RAW_TRACEPOINT_FLAVOUR(flavour, btf)                                                          \
	SEC(#flavour "/inet_sock_set_state")                                                          \
	int BPF_PROG(flavour##_inet_sock_set_state, struct sock *sk, int oldstate, int newstate)      \
	{                                                                                             \
		handle_transition(btf, sk, oldstate, newstate);                                       \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sys_enter")                                                                    \
	int BPF_PROG(flavour##_sys_enter, struct pt_regs *regs, long id)                              \
	{                                                                                             \
		on_sys_enter(btf, regs, id);                                                          \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sys_exit")                                                                     \
	int BPF_PROG(flavour##_sys_exit, struct pt_regs *regs, long ret)                              \
	{                                                                                             \
		on_sys_exit(SYSCALL_NR(btf, regs), ret);                                              \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sock_send_length")                                                             \
	int BPF_PROG(flavour##_sock_send_length, struct sock *sk, int ret, int flags)                 \
	{                                                                                             \
		on_sock_io(btf, sk, true, ret);                                                       \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sock_recv_length")                                                             \
	int BPF_PROG(flavour##_sock_recv_length, struct sock *sk, int ret, int flags)                 \
	{                                                                                             \
		on_sock_io(btf, sk, false, ret);                                                      \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sched_process_fork")                                                           \
	int BPF_PROG(flavour##_sched_process_fork, struct task_struct *parent, struct task_struct *child) \
	{                                                                                             \
		on_fork(BPF_CORE_READ(parent, tgid), BPF_CORE_READ(child, tgid));                    \
		return 0;                                                                             \
	}

RAW_TRACEPOINT_FLAVOUR(tp_btf, BTF_PTR)
RAW_TRACEPOINT_FLAVOUR(raw_tp, RAW_PTR)

/* ==== flavour: plain tracepoints (perf events; need tracefs for their ids) ==== */

SEC("tracepoint/sock/inet_sock_set_state")
int tp_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	handle_transition(RAW_PTR, (const struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate);
	return 0;
}

/*
 * The per-syscall tracepoints, in two builds of the same programs: the fd ->
 * sock walk through typed pointers (suffix _btf: 6.2+, when the feature probe
 * loads it) or through probe reads. User space loads one build whole.
 */
#define TP_SYSCALL(dir, name, suffix, call)                                         \
	SEC("tracepoint/syscalls/sys_" #dir "_" #name)                              \
	int tp_sys_##dir##_##name##suffix(struct trace_event_raw_sys_##dir *ctx)    \
	{                                                                           \
		call;                                                               \
		return 0;                                                           \
	}
#define TP_SYS_ENTER(name, suffix, call) TP_SYSCALL(enter, name, suffix, call)
#define TP_SYS_EXIT(name, suffix, call) TP_SYSCALL(exit, name, suffix, call)
/* stack sites (when the sock I/O tracepoints are missing): first write/send, EOF reads */
#define TP_SYS_WRITE(name, suffix, btf) TP_SYS_ENTER(name, suffix, on_io_enter(btf, ctx->args[0]))
#define TP_SYS_READ(name, suffix, btf)                                      \
	TP_SYS_ENTER(name, suffix, on_read_enter(ctx->args[0]))             \
	TP_SYS_EXIT(name, suffix, on_read_exit(btf, ctx->ret))
#define TP_SYSCALLS(suffix, btf)                                                                   \
	TP_SYS_EXIT(accept4, suffix, on_accept_exit(btf, ctx->ret))                                 \
	TP_SYS_EXIT(accept, suffix, on_accept_exit(btf, ctx->ret))                                  \
	TP_SYS_ENTER(connect, suffix, on_acquire_enter(btf, NR_connect, ctx->args[0]))              \
	TP_SYS_ENTER(listen, suffix, on_acquire_enter(btf, NR_listen, ctx->args[0]))                \
	TP_SYS_WRITE(write, suffix, btf)                                                            \
	TP_SYS_WRITE(writev, suffix, btf)                                                           \
	TP_SYS_WRITE(sendto, suffix, btf)                                                           \
	TP_SYS_WRITE(sendmsg, suffix, btf)                                                          \
	TP_SYS_READ(read, suffix, btf)                                                              \
	TP_SYS_READ(readv, suffix, btf)                                                             \
	TP_SYS_READ(recvfrom, suffix, btf)                                                          \
	TP_SYS_READ(recvmsg, suffix, btf)

TP_SYSCALLS(, RAW_PTR)
TP_SYSCALLS(_btf, BTF_PTR)

/*
 * The agent's sweep of lingering CLOSE_WAIT sockets (bpf/lib/linger.bpf.h). Never
 * attached: user space runs it with BPF_PROG_TEST_RUN (raw_tp: 5.10+), the
 * socket's struct sock address its one argument.
 */
SEC("raw_tp")
int publish_lingering(struct bpf_raw_tracepoint_args *ctx)
{
	return publish_lingering_sk(ctx->args[0]);
}

SEC("tracepoint/sched/sched_process_fork")
int tp_sched_process_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	/* child_pid is a tid: for a new thread it is not a tgid, and adding it is harmless */
	on_fork(bpf_get_current_pid_tgid() >> 32, ctx->child_pid);
	return 0;
}

/* ==== flavour: fexit / kretprobe for inet_csk_accept (accept variants) ==== */

SEC("fexit/inet_csk_accept")
int fexit_inet_csk_accept(unsigned long long *ctx)
{
	on_inet_csk_accept(inet_csk_accept_ret(ctx), TT_VIA_FEXIT);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(kretprobe_inet_csk_accept, struct sock *sk)
{
	on_inet_csk_accept(sk, TT_VIA_KRETPROBE);
	return 0;
}
