/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The socket calls that are records of their own (tt_sockcall): accept(),
 * whose exit claims the new socket for its caller with its fd (syscall exit
 * tracepoint, or fexit/kretprobe of inet_csk_accept for io_uring and the
 * like), connect()/listen() entry for the acquire stack, and the close of a
 * held socket sent once it is published. close() and shutdown() are not hooked:
 * the transition they make carries them (releasing_call in syscall.bpf.h).
 */
#ifndef TCPTRACE_LIB_SOCKCALL_BPF_H
#define TCPTRACE_LIB_SOCKCALL_BPF_H

#include "config.bpf.h"
#include "ring.bpf.h"
#include "targets.bpf.h"
#include "sock.bpf.h"
#include "owners.bpf.h"
#include "stacks.bpf.h"
#include "syscall.bpf.h"

/* as: sent on the owner's behalf (a call held back in summary mode), else by the caller */
static __always_inline void emit_sockcall(const bool btf, const struct sock *sk, __u8 call, __s32 fd, __s32 arg, __u8 via,
					  const struct tt_owner *as)
{
	__u64 id = bpf_get_current_pid_tgid();
	void *ring;
	struct tt_sockcall *e = reserve(sizeof(*e), &ring);

	if (!e)
		return;
	fill_hdr(&e->hdr, TT_KIND_SOCKCALL, sizeof(*e), 0);
	e->sk = (__u64)sk;
	e->cookie = sk_cookie_of(btf, sk);
	read_tuple(btf, sk, &e->tuple);
	e->netns = sk_netns_of(btf, sk);
	e->fd = fd;
	e->arg = arg;
	e->call = call;
	e->state = KREAD(btf, sk, __sk_common.skc_state);
	e->via = via;
	if (as) {
		e->tgid = as->tgid;
		e->tid = 0;
		__builtin_memcpy(e->comm, as->comm, sizeof(e->comm));
	} else {
		e->tgid = id >> 32;
		e->tid = (__u32)id;
		current_comm(e->comm);
	}
	submit(ring, e);
}

/* accept()/accept4() returned fd: resolve it, claim the socket, report the acceptor. */
static __always_inline void on_accept_exit(const bool btf, long ret)
{
	struct sock *sk;

	if (ret < 0 || !is_target(bpf_get_current_pid_tgid() >> 32))
		return;
	sk = fd_to_tcp_sk(btf, (int)ret);
	if (!sk)
		return;
	struct tt_owner fresh = {};
	struct tt_owner *o = claim_accepted(btf, sk, (__s32)ret, &fresh);

	/* the stack first: a full copy publishes a held socket, and then its accept is sent too */
	capture_stack(btf, sk, o, TT_SITE_ACQUIRE, TT_CALL_ACCEPT);
	/* held (summary mode): the fd is in the owners entry, sent with the socket when published */
	if (!held(o))
		emit_sockcall(btf, sk, TT_CALL_ACCEPT, (__s32)ret, 0, TT_VIA_SYSCALL, NULL);
}

/* Return of inet_csk_accept (fexit / kretprobe): ownership without the fd, also for io_uring. */
static __always_inline void on_inet_csk_accept(struct sock *sk, __u8 via)
{
	if (!sk || !is_target(bpf_get_current_pid_tgid() >> 32) || !sk_is_tcp(RAW_PTR, sk))
		return;
	if (!targ_owners) {
		/* nothing to claim in: tell the agent, unless accept()'s exit hook is about to, with the fd */
		long nr = USER_SYSCALL_NR(current_user_regs());

		if (nr != NR_accept && nr != NR_accept4)
			emit_sockcall(RAW_PTR, sk, TT_CALL_ACCEPT, -1, 0, via, NULL);
		return;
	}
	struct tt_owner fresh = {};

	claim_accepted(RAW_PTR, sk, -1, &fresh);
}

/*
 * connect()/listen() entry, only with stacks: the acquire stack. The fd itself
 * is learnt by the transition the call causes (acquiring_syscall_fd), so
 * without stacks these calls are not hooked at all. In summary mode the owners
 * entry is made here, to hold the stack in (entered_by_owner keeps it).
 */
static __always_inline void on_acquire_enter(const bool btf, __u32 nr, long fd)
{
	struct sock *sk;
	struct tt_owner *o, fresh = {};
	__u64 skey;

	if (!targ_stacks || !is_target(bpf_get_current_pid_tgid() >> 32))
		return;
	sk = fd_to_tcp_sk(btf, (int)fd);
	if (!sk)
		return;
	skey = (__u64)sk;
	o = bpf_map_lookup_elem(&owners, &skey);
	if (targ_summary && (!o || o->state == TCP_CLOSE) && KREAD(btf, sk, __sk_common.skc_state) == TCP_CLOSE) {
		owner_here(&fresh, (__s32)fd, nr == NR_listen ? TT_ORIGIN_LISTEN : TT_ORIGIN_CONNECT, bpf_ktime_get_ns());
		o = owner_put(skey, &fresh);
	}
	capture_stack(btf, sk, o, TT_SITE_ACQUIRE, nr == NR_listen ? TT_CALL_LISTEN : TT_CALL_CONNECT);
}

#endif /* TCPTRACE_LIB_SOCKCALL_BPF_H */
