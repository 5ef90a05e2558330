/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The syscall a hook runs inside, read from the task's saved user registers
 * (x86-64 numbers and argument registers): connect()/listen() make the
 * transitions that acquire a socket, close()/shutdown()/dup2() the ones that
 * release it. Reading the registers at the transition replaces a syscall hook
 * pair that every such call on the box would otherwise pay for.
 */
#ifndef TCPTRACE_LIB_SYSCALL_BPF_H
#define TCPTRACE_LIB_SYSCALL_BPF_H

#include "config.bpf.h"

/* x86-64 syscall numbers */
#define NR_close 3
#define NR_dup2 33
#define NR_dup3 292
#define NR_close_range 436
#define NR_connect 42
#define NR_accept 43
#define NR_shutdown 48
#define NR_listen 50
#define NR_accept4 288
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_sendmmsg 307

/*
 * The fd of a socket being connected or made a listener, from the syscall the
 * task is in: CLOSE -> SYN_SENT and CLOSE -> LISTEN run inside connect(),
 * sendto()/sendmsg() (TCP Fast Open) and listen(), in the owner's own context.
 * Reading the saved user registers here replaces a connect/listen syscall hook
 * pair that every connect() on the box used to pay for. -1 when the transition
 * comes from elsewhere (io_uring, a kernel socket).
 */
static __always_inline __s32 acquiring_syscall_fd(bool listen)
{
	struct pt_regs *regs = current_user_regs();
	long nr = USER_SYSCALL_NR(regs);

	if (listen ? nr == NR_listen : (nr == NR_connect || nr == NR_sendto || nr == NR_sendmsg))
		return (__s32)USER_SYSCALL_ARG1(regs);
	return -1;
}

/*
 * The close() or shutdown() a transition is made by, read from the task's
 * saved syscall registers like acquiring_syscall_fd: tcp_close() and
 * tcp_shutdown() change the state in the caller's context with the socket
 * locked by it (sk_lock.owned), which no softirq transition has (a socket
 * owned by user gets its packets and timers deferred to the owner). Hooking
 * close() instead costs a program and ~0.3 us of tracepoint dispatch on every
 * close() on the box (README, "Attach modes" and "Benchmark"). Seen this way: a close that
 * releases the socket (FIN, reset, or a listener's or connect's end), dup2()
 * or dup3() over its fd, close_range(). Not seen: a close of one of several
 * fds of a socket (fork, dup), which releases nothing; the report checks who
 * still holds a CLOSE_WAIT socket at its end instead (src/trace/holders.ts).
 * Returns the call (0: none) and its fd (-1 for close_range) and argument.
 */
static __always_inline __u8 releasing_call(const bool btf, const struct sock *sk, int oldstate, int newstate, __s32 *fd, __s32 *arg)
{
	struct pt_regs *regs;
	long nr;

	/* what tcp_close()/tcp_shutdown() do: FIN from a synchronised state, or CLOSE (a listener, a
	 * connect, a reset for unread data); or the state kept, closing a socket already shut down */
	if (oldstate != newstate) {
		if (newstate != TCP_FIN_WAIT1 && newstate != TCP_LAST_ACK && newstate != TCP_CLOSE)
			return 0;
		if (oldstate != TCP_ESTABLISHED && oldstate != TCP_CLOSE_WAIT && oldstate != TCP_SYN_RECV && oldstate != TCP_SYN_SENT &&
		    oldstate != TCP_LISTEN)
			return 0;
	}
	if (!KREAD(btf, sk, sk_lock.owned))
		return 0;
	regs = current_user_regs();
	nr = USER_SYSCALL_NR(regs);
	switch (nr) {
	case NR_close:
		*fd = (__s32)USER_SYSCALL_ARG1(regs);
		return TT_CALL_CLOSE;
	case NR_dup2:
	case NR_dup3:
		*fd = (__s32)USER_SYSCALL_ARG2(regs); /* the fd dup'd over */
		return TT_CALL_CLOSE;
	case NR_close_range:
		return TT_CALL_CLOSE;
	case NR_shutdown:
		*fd = (__s32)USER_SYSCALL_ARG1(regs);
		*arg = (__s32)USER_SYSCALL_ARG2(regs);
		return TT_CALL_SHUTDOWN;
	}
	return 0;
}

#endif /* TCPTRACE_LIB_SYSCALL_BPF_H */
