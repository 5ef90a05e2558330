/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Who owns a socket. ESTABLISHED -> CLOSE_WAIT (the peer's FIN) and most other
 * transitions run in softirq context, or on loopback in the *peer's* task, so
 * the owner is learnt in process context (connect, listen, accept, or seeded
 * from user space for sockets that predate attach) and carried per struct sock
 * in the owners map until the socket reaches TCP_CLOSE. Also summary mode's
 * hold: a socket's records are kept back until it matters (held()). How a
 * transition finds its owner is in transition.bpf.h.
 */
#ifndef TCPTRACE_LIB_OWNERS_BPF_H
#define TCPTRACE_LIB_OWNERS_BPF_H

#include "config.bpf.h"
#include "linger.bpf.h"

bool seeded = false; /* the seeds map has entries: look up unknown sockets by cookie */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized by user space (--max-sockets) */
	__type(key, __u64);	    /* struct sock * */
	__type(value, struct tt_owner);
} owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie, from sock_diag */
	__type(value, struct tt_owner);
} seeds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tt_listen_key);
	__type(value, struct tt_owner);
} listeners SEC(".maps");

/*
 * Summary mode: a held socket's transitions and calls are only counted until it
 * is published (TT_OWNER_PUBLISHED in tcpstate.h). Only sockets with an owners
 * entry can be held: --pid targets', or any process's in the whole-system agent
 * (owners kept for its stacks); a socket whose owner is unknown is always sent.
 */
static __always_inline bool held(const struct tt_owner *o)
{
	return targ_summary && o && !(o->flags & TT_OWNER_PUBLISHED);
}

/*
 * The cgroup of each process that acquires a socket, noted where it acquires it
 * (bpf_get_current_cgroup_id: 4.18+, the cgroup v2 id, the inode of its directory).
 * The agent names a process's workload from /proc/PID/cgroup, which a short-lived
 * process takes with it when it exits before the agent reads it (a CronJob, a
 * client that connects, leaks and exits): this map still says where it ran. LRU:
 * the processes that acquired most recently. One lookup per acquisition; an update
 * only for a process new to the map (or moved).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);   /* tgid */
	__type(value, __u64); /* cgroup id */
} proc_cgroups SEC(".maps");

static __always_inline void note_cgroup(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 cg, *had;

	if (!targ_cgroups)
		return;
	cg = bpf_get_current_cgroup_id();
	had = bpf_map_lookup_elem(&proc_cgroups, &tgid);
	if (!had || *had != cg)
		bpf_map_update_elem(&proc_cgroups, &tgid, &cg, BPF_ANY);
}

/* a new owners entry for the task on the CPU, which acquires the socket now (its own syscall) */
static __always_inline void owner_here(struct tt_owner *o, __s32 fd, __u8 origin, __u64 now)
{
	note_cgroup();
	o->first_ns = now;
	o->state = TCP_CLOSE; /* until a transition or the caller says otherwise */
	o->tgid = bpf_get_current_pid_tgid() >> 32;
	o->fd = fd;
	o->origin = origin;
	current_comm(o->comm);
}

/*
 * Stores a new owners entry. Only summary mode writes an entry after making it
 * (state, flags and held stack ids); otherwise the caller's copy, which must
 * live as long as the caller uses it, stands for the entry and the lookup back
 * is saved (two hash lookups per connection in a whole-system recording).
 */
static __always_inline struct tt_owner *owner_put(__u64 skey, struct tt_owner *o)
{
	if (bpf_map_update_elem(&owners, &skey, o, BPF_ANY)) {
		count(TT_CNT_OWNERS_FULL);
		return NULL;
	}
	if (!targ_summary)
		return o;
	return bpf_map_lookup_elem(&owners, &skey);
}

/*
 * The accepted socket now belongs to the caller; returns its owners entry.
 * Sockets already reset (CLOSE) are not tracked.
 */
static __always_inline struct tt_owner *claim_accepted(const bool btf, struct sock *sk, __s32 fd, struct tt_owner *fresh)
{
	__u64 skey = (__u64)sk;
	struct tt_owner *o;
	__u64 now;
	__u8 state;

	if (!targ_owners)
		return NULL; /* the accept record itself tells the agent's table */
	o = bpf_map_lookup_elem(&owners, &skey);
	state = KREAD(btf, sk, __sk_common.skc_state);

	if (state == TCP_CLOSE) {
		if (o)
			bpf_map_delete_elem(&owners, &skey);
		return NULL;
	}
	if (o) {
		note_cgroup(); /* the accepting process's (owner_here notes it for a fresh entry) */
		/* keep first_ns: the socket was ours (as a listener's child) since SYN_RECV */
		o->tgid = bpf_get_current_pid_tgid() >> 32;
		if (fd >= 0)
			o->fd = fd;
		o->origin = TT_ORIGIN_ACCEPT;
		current_comm(o->comm);
		return o;
	}
	now = bpf_ktime_get_ns();
	owner_here(fresh, fd, TT_ORIGIN_ACCEPT, now);
	fresh->state = state;
	o = owner_put(skey, fresh);
	/*
	 * The peer closed before the accept, and no owner was there to see it (a listener
	 * older than the trace): the socket lingers from here, or the agent would only ever
	 * count it (held, unpublished) and never age it as a leak. Its CLOSE_WAIT began a
	 * little earlier than this.
	 */
	if (o && targ_summary && state == TCP_CLOSE_WAIT)
		linger_begin(skey, o, TCP_ESTABLISHED, now);
	return o;
}

#endif /* TCPTRACE_LIB_OWNERS_BPF_H */
