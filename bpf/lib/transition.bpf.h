/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A state transition (sock:inet_sock_set_state, 4.16+): find or learn the
 * socket's owner, apply summary mode's hold, keep the listeners map, and send
 * the record (tt_transition, or the compact tt_transition4 for an IPv4 socket
 * whose record names no owner).
 */
#ifndef TCPTRACE_LIB_TRANSITION_BPF_H
#define TCPTRACE_LIB_TRANSITION_BPF_H

#include "config.bpf.h"
#include "ring.bpf.h"
#include "targets.bpf.h"
#include "sock.bpf.h"
#include "owners.bpf.h"
#include "stacks.bpf.h"
#include "syscall.bpf.h"
#include "sockcall.bpf.h"
#include "closes.bpf.h"
#include "linger.bpf.h"

/*
 * connect() (CLOSE -> SYN_SENT) and listen() (CLOSE -> LISTEN) run in the
 * owner's own syscall: the owner is the task on the CPU, fd from its syscall
 * registers. Fills fresh for a target's TCP socket; *now: the clock read.
 */
static __always_inline bool born_here(const bool btf, const struct sock *sk, int oldstate, int newstate, struct tt_owner *fresh,
				      __u64 *now)
{
	bool listen = newstate == TCP_LISTEN;

	if (oldstate != TCP_CLOSE || (newstate != TCP_SYN_SENT && !listen))
		return false;
	if (!is_target(bpf_get_current_pid_tgid() >> 32) || !sk_is_tcp(btf, sk))
		return false;
	/* the stack is taken at syscall entry (on_acquire_enter), not here: a capture is long, and
	 * a softirq transition landing inside this program on the same CPU would be skipped */
	*now = bpf_ktime_get_ns();
	owner_here(fresh, acquiring_syscall_fd(listen), listen ? TT_ORIGIN_LISTEN : TT_ORIGIN_CONNECT, *now);
	return true;
}

/*
 * Learn the owner of a socket the owners map does not know yet. Order matters:
 * sockets seeded from sock_diag at attach; then a new child of a traced
 * listener; then the acquisitions that only ever run in the owner's own syscall
 * (connect: CLOSE -> SYN_SENT, listen: CLOSE -> LISTEN). Every other unknown
 * socket is not ours, and is dropped before any of its fields is read: in
 * --pid mode most transitions on a busy box are other processes' (the cost of
 * this path is what the nginx benchmark measures).
 *
 * fresh: the caller's buffer for the new entry (owner_put may return it); *now:
 * the clock read for a new owner, reused by the caller for its record.
 */
static __always_inline struct tt_owner *learn_owner(const bool btf, const struct sock *sk, int oldstate, int newstate,
						    struct tt_owner *fresh, __u64 *now)
{
	__u64 skey = (__u64)sk;
	struct tt_owner *o;

	/* a listener's new child is never a seeded socket (and its cookie may be the listener's: sk_is_early_clone) */
	if (seeded && !(oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV)) {
		__u64 cookie = sk_cookie_of(btf, sk);

		if (cookie) {
			o = bpf_map_lookup_elem(&seeds, &cookie);
			if (o) {
				*fresh = *o;
				bpf_map_delete_elem(&seeds, &cookie);
				count(TT_CNT_SEEDED_HITS);
				return owner_put(skey, fresh);
			}
		}
	}

	if (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV) {
		struct tt_listen_key lk = { .netns = sk_netns_of(btf, sk), .port = KREAD(btf, sk, __sk_common.skc_num) };

		o = bpf_map_lookup_elem(&listeners, &lk);
		if (!o)
			return NULL;
		*fresh = *o;
		fresh->first_ns = *now = bpf_ktime_get_ns();
		fresh->fd = -1;
		fresh->origin = TT_ORIGIN_ACCEPT_PENDING;
		fresh->flags = 0; /* a new socket: not published, no stack taken (the listener's are its own) */
		fresh->passed = 0;
		__builtin_memset(fresh->stack_ids, 0, sizeof(fresh->stack_ids));
		return owner_put(skey, fresh);
	}

	if (born_here(btf, sk, oldstate, newstate, fresh, now))
		return owner_put(skey, fresh);
	return NULL;
}

/*
 * Summary mode pre-creates the owners entry of a socket being connected or
 * made a listener at syscall entry (on_acquire_enter), so that the stack taken
 * there can be held: such an entry is this socket's, not a dead one's.
 */
static __always_inline bool entered_by_owner(const struct tt_owner *o, int newstate)
{
	if (!targ_summary || o->state != TCP_CLOSE || newstate == TCP_SYN_RECV)
		return false;
	return o->tgid == (__u32)(bpf_get_current_pid_tgid() >> 32) && o->fd == acquiring_syscall_fd(newstate == TCP_LISTEN);
}

/*
 * The owners map's entry for a transition's socket (targ_owners): learnt now
 * if the socket is new to it. NULL: not a socket the kernel follows.
 */
static __always_inline struct tt_owner *mapped_owner(const bool btf, const struct sock *sk, int oldstate, int newstate,
						     struct tt_owner *fresh, __u64 *now)
{
	__u64 skey = (__u64)sk;
	/* in --pid mode the owners map only ever holds targets' sockets (every way in checks is_target) */
	struct tt_owner *o = bpf_map_lookup_elem(&owners, &skey);

	if (o && ((oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV) ||
		  (oldstate == TCP_CLOSE && (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN))) &&
	    !entered_by_owner(o, newstate)) {
		/*
		 * A socket is born (a listener's new child, or connect/listen from CLOSE) at
		 * an address the map still holds: the entry is a dead socket's, whose CLOSE
		 * was never seen (the kernel skipped that run: missedInKernel). Its owner
		 * must not be inherited: learn this one's afresh.
		 */
		bpf_map_delete_elem(&owners, &skey);
		o = NULL;
	}
	if (!o)
		o = learn_owner(btf, sk, oldstate, newstate, fresh, now);
	return o;
}

/*
 * The transition's record: the compact tt_transition4 for an IPv4 socket whose record
 * names no owner, else tt_transition. A late one (TT_F_LATE, the sweep's) names no task
 * on the CPU: the agent's own thread runs it.
 */
static __always_inline void send_transition(const bool btf, const struct sock *sk, const struct tt_owner *o, int oldstate, int newstate,
					    __u16 flags, __u64 now, __u8 call, __s32 call_fd, __s32 call_arg, bool early,
					    const struct tt_tuple *t, __u32 netns)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tt_transition *e;
	void *ring;

/* the fields both transition records have (tt_transition, tt_transition4) */
#define FILL_TRANSITION(r, kind)                                                                     \
	do {                                                                                         \
		fill_hdr_at(&(r)->hdr, kind, sizeof(*(r)), flags, now);                              \
		(r)->sk = (__u64)sk;                                                                 \
		(r)->cookie = early ? 0 : sk_cookie_of(btf, sk); /* early clone: the listener's (< 6.15) */ \
		(r)->netns = netns;                                                                  \
		(r)->oldstate = oldstate;                                                            \
		(r)->newstate = newstate;                                                            \
		if (flags & TT_F_LATE) {                                                             \
			(r)->cpu_tgid = 0;                                                           \
			(r)->cpu_tid = 0;                                                            \
			__builtin_memset((r)->cpu_comm, 0, sizeof((r)->cpu_comm));                   \
		} else {                                                                             \
			(r)->cpu_tgid = id >> 32;                                                    \
			(r)->cpu_tid = (__u32)id;                                                    \
			current_comm((r)->cpu_comm);                                                 \
		}                                                                                    \
		(r)->call = call;                                                                    \
		(r)->call_fd = call_fd;                                                              \
		(r)->call_arg = call_arg;                                                            \
	} while (0)
	if (!o && t->family == AF_INET) {
		struct tt_transition4 *c = reserve(sizeof(*c), &ring);

		if (!c)
			return;
		FILL_TRANSITION(c, TT_KIND_TRANSITION4);
		__builtin_memcpy(c->saddr, t->saddr, 4);
		__builtin_memcpy(c->daddr, t->daddr, 4);
		c->sport = t->sport;
		c->dport = t->dport;
		c->pad = 0;
		c->pad2 = 0;
		submit(ring, c);
		return;
	}
	e = reserve(sizeof(*e), &ring);
	if (!e)
		return;
	FILL_TRANSITION(e, TT_KIND_TRANSITION);
#undef FILL_TRANSITION
	e->tuple = *t;
	if (o) {
		e->owner_tgid = o->tgid;
		e->owner_fd = o->fd;
		e->owner_first_ns = o->first_ns;
		e->origin = o->origin;
		__builtin_memcpy(e->owner_comm, o->comm, sizeof(e->owner_comm));
	} else {
		e->owner_fd = -1;
	}
	submit(ring, e);
}

static __always_inline void handle_transition(const bool btf, const struct sock *sk, int oldstate, int newstate)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 skey = (__u64)sk;
	__u64 now = 0; /* set by learn_owner when it makes an entry: one clock read for both */
	struct tt_owner *o, fresh = {};
	struct tt_tuple t = {};
	__u32 netns;
	__u16 flags = 0;
	__s32 call_fd = -1, call_arg = 0;
	__u8 call;
	bool early;

	if (!sk)
		return;
	if (targ_owners)
		o = mapped_owner(btf, sk, oldstate, newstate, &fresh, &now);
	else /* the agent's table attributes the rest */
		o = born_here(btf, sk, oldstate, newstate, &fresh, &now) ? &fresh : NULL;
	if (!o) {
		/* --pid: not a target's socket. Whole system: any TCP socket, tcptrace's own too:
		 * its own close() moves its socket out of CLOSE_WAIT (on loopback the peer's final
		 * ACK lands in that context as well), and a dropped exit would leave the agent's
		 * table with a CLOSE_WAIT socket for ever (a scrape's connection, seen leaking).
		 * Its syscalls stay unseen (is_target), so such sockets have no owner. */
		if (targ_filter) {
			count(TT_CNT_FILTERED);
			return;
		}
		if (!sk_is_tcp(btf, sk))
			return;
	}
	call = releasing_call(btf, sk, oldstate, newstate, &call_fd, &call_arg);
	if (o) {
		o->state = newstate;
		if (held(o)) {
			/* summary mode: only CLOSE_WAIT (a leak in the making) and listeners are worth a record */
			bool keep = newstate != TCP_CLOSE_WAIT && newstate != TCP_LISTEN;

			/*
			 * The agent: a CLOSE_WAIT is sent only once it lasts (linger.bpf.h). The clock
			 * is read only into or out of CLOSE_WAIT, and not into `now`: the record's time
			 * must stay later than the stack records a publish() below sends, or user space
			 * would not give the socket its stacks.
			 */
			if (oldstate == TCP_CLOSE_WAIT && linger_end(skey, o, newstate, now ?: bpf_ktime_get_ns()))
				keep = false; /* the sweep claimed it: sent as published */
			else if (newstate == TCP_CLOSE_WAIT && linger_begin(skey, o, oldstate, now ?: bpf_ktime_get_ns()))
				keep = true;
			if (keep) {
				count(TT_CNT_SUMMARISED);
				/* into and out of CLOSE_WAIT: counted as a brief stay, or sent with the socket */
				if (oldstate != TCP_CLOSE_WAIT && newstate != TCP_CLOSE_WAIT)
					note_passed(o, oldstate, newstate);
				if (oldstate == TCP_ESTABLISHED && newstate == TCP_FIN_WAIT1)
					count_active_close(o);
				if (newstate == TCP_CLOSE) {
					flush_passed(o);
					bpf_map_delete_elem(&owners, &skey);
				} else if (call == TT_CALL_CLOSE) /* sent if the socket is published after all */
					o->flags |= TT_OWNER_FD_CLOSED;
				return;
			}
			publish(btf, sk, o);
		}
		flags |= TT_F_OWNER_KNOWN;
		if (o->tgid == (__u32)(id >> 32))
			flags |= TT_F_OWNER_ON_CPU;
	}

	early = sk_is_early_clone(btf, sk, oldstate, newstate);
	if (early) {
		t.family = KREAD(btf, sk, __sk_common.skc_family); /* tuple not set yet (< 6.15) */
		/* but the port is the listener's, and the child's own: the agent's table finds the listener by it */
		if (!targ_owners)
			t.sport = KREAD(btf, sk, __sk_common.skc_num);
	} else
		read_tuple(btf, sk, &t);
	netns = sk_netns_of(btf, sk);

	/* a traced listener: remember its port so its children are attributed before accept() (no owners map: the agent's table does) */
	if (targ_owners && o && newstate == TCP_LISTEN) {
		struct tt_listen_key lk = { .netns = netns, .port = t.sport };

		if (bpf_map_update_elem(&listeners, &lk, o, BPF_ANY))
			count(TT_CNT_LISTENERS_FULL);
	} else if (targ_owners && oldstate == TCP_LISTEN && newstate == TCP_CLOSE) {
		struct tt_listen_key lk = { .netns = netns, .port = t.sport };

		bpf_map_delete_elem(&listeners, &lk);
	}

	send_transition(btf, sk, o, oldstate, newstate, flags, now, call, call_fd, call_arg, early, &t, netns);
	/* a close of its fd held back: after the transition that gives user space the socket */
	if (o && (o->flags & TT_OWNER_FD_CLOSED)) {
		o->flags &= ~TT_OWNER_FD_CLOSED;
		emit_sockcall(btf, sk, TT_CALL_CLOSE, o->fd, 0, TT_VIA_SYSCALL, o);
	}
	if (targ_owners && newstate == TCP_CLOSE && o)
		bpf_map_delete_elem(&owners, &skey);
}

/*
 * The agent's sweep: publish a held socket that has stayed in CLOSE_WAIT (run by
 * user space through BPF_PROG_TEST_RUN, see linger.bpf.h; skey: its struct sock).
 * Returns 1 when it sent the socket, 0 when there was nothing to send (it left
 * CLOSE_WAIT meanwhile, or is gone).
 */
static __always_inline int publish_lingering_sk(__u64 skey)
{
	const struct sock *sk = (const struct sock *)skey;
	struct tt_owner *o = bpf_map_lookup_elem(&owners, &skey);
	struct tt_linger *l = bpf_map_lookup_elem(&lingering, &skey);
	struct tt_tuple t = {};
	__u64 entered;
	__u8 oldstate;

	if (!l)
		return 0;
	entered = l->entered_ns;
	oldstate = l->oldstate;
	/* gone without its CLOSE seen (a skipped hook run), or published meanwhile (then it was sent) */
	if (!o || !held(o)) {
		bpf_map_delete_elem(&lingering, &skey);
		return 0;
	}
	__sync_fetch_and_add(&o->linger, 1); /* the claim, before the state is read: see linger.bpf.h */
	if (*(volatile __u8 *)&o->state != TCP_CLOSE_WAIT) {
		bpf_map_delete_elem(&lingering, &skey);
		return 0;
	}
	publish(RAW_PTR, sk, o);
	read_tuple(RAW_PTR, sk, &t);
	send_transition(RAW_PTR, sk, o, oldstate, TCP_CLOSE_WAIT, TT_F_OWNER_KNOWN | TT_F_LATE, entered, 0, -1, 0, false, &t,
			sk_netns_of(RAW_PTR, sk));
	/* one of its fds closed while another (a fork's copy) keeps it in CLOSE_WAIT */
	if (o->flags & TT_OWNER_FD_CLOSED) {
		o->flags &= ~TT_OWNER_FD_CLOSED;
		emit_sockcall(RAW_PTR, sk, TT_CALL_CLOSE, o->fd, 0, TT_VIA_SYSCALL, o);
	}
	bpf_map_delete_elem(&lingering, &skey);
	count(TT_CNT_LINGER_PUBLISHED);
	return 1;
}

#endif /* TCPTRACE_LIB_TRANSITION_BPF_H */
