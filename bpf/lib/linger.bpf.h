/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CLOSE_WAIT that lasts (the agent's summary mode). A socket whose peer closed
 * first passes CLOSE_WAIT on every connection a server closes: a client without
 * keep-alive, the load generator of a benchmark, any program that reads the EOF
 * and closes at once. Sending each such socket to user space when it enters
 * CLOSE_WAIT (its transition, its held stack ids, then its LAST_ACK and CLOSE)
 * cost the agent most of its CPU under connection churn (README, Benchmark),
 * for sockets that are gone a few microseconds later. So a held socket that
 * enters CLOSE_WAIT only goes into the lingering map; if it leaves CLOSE_WAIT
 * while still held, its stay is counted per process (held_counts, held_counts.bpf.h:
 * how it left, the time summed, a histogram) and nothing is sent. The agent
 * sweeps the lingering map (native publishLingering) and publishes each socket
 * that has stayed linger_ns by running publish_lingering (tcpstate.bpf.c) on
 * it with BPF_PROG_TEST_RUN, which sends the transition late (TT_F_LATE: its
 * time is when the socket entered CLOSE_WAIT) with the held stack ids.
 *
 * The sweep and the socket's own transition out of CLOSE_WAIT may run at once
 * on two CPUs, and must not both miss the other (the socket would be sent in
 * CLOSE_WAIT, and its close counted as brief and never sent: a leak that is
 * not). Each side writes, then does a locked add on the owner's claim word,
 * then reads: the sweep claims (+1) and then reads the state; the transition
 * sets the state, adds 2, then reads the claim. On x86-64 a locked add is a
 * full barrier, so at least one side sees the other's write: either the sweep
 * sees the socket gone from CLOSE_WAIT and sends nothing, or the transition
 * sees the claim and is sent as published (user space then ignores a late
 * record older than what it already knows of the socket). BPF_XADD without
 * fetch is enough (every kernel; x86-64 only, as the rest of tcptrace).
 *
 * Needs: hash maps and BPF_XADD; the sweep needs BPF_PROG_TEST_RUN for raw_tp
 * programs (5.10). Where it is refused, user space leaves linger_ns at 0: a
 * socket is then published when it enters CLOSE_WAIT, as before.
 */
#ifndef TCPTRACE_LIB_LINGER_BPF_H
#define TCPTRACE_LIB_LINGER_BPF_H

#include "config.bpf.h"
#include "held_counts.bpf.h"

/*
 * How long a held socket stays in CLOSE_WAIT before it is sent (0: at once).
 * Not rodata: user space sets it after load, once it knows the kernel runs the
 * sweep's program, and a reload of --leak-after may lower it.
 */
volatile __u64 linger_ns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock * */
	__type(value, struct tt_linger);
} lingering SEC(".maps");

/*
 * A held socket enters CLOSE_WAIT. True: it lingers (kept back; the sweep sends it
 * if it stays). False: publish it now (lingering off, or the map full: counted).
 */
static __always_inline bool linger_begin(__u64 skey, struct tt_owner *o, int oldstate, __u64 now)
{
	struct tt_linger l = { .entered_ns = now, .oldstate = oldstate };

	if (!linger_ns)
		return false;
	o->linger = 0; /* before the entry is there for the sweep to find */
	if (bpf_map_update_elem(&lingering, &skey, &l, BPF_ANY)) {
		count(TT_CNT_LINGER_FULL);
		return false;
	}
	return true;
}

/*
 * True while the sweep is the one to publish this held socket: it is in CLOSE_WAIT
 * and in the lingering map. Not so for one whose owner was learnt after it entered
 * CLOSE_WAIT (accepted from a listener traced from before, a fd found later), nor
 * with lingering off (--pid) or the map full: those are published where they are met.
 */
static __always_inline bool lingers(__u64 skey, const struct tt_owner *o)
{
	return linger_ns && o->state == TCP_CLOSE_WAIT && bpf_map_lookup_elem(&lingering, &skey);
}

/*
 * A held socket in CLOSE_WAIT leaves it (o->state already says where to). True:
 * the sweep claimed it meanwhile, so it is published (the caller sends it as
 * such). False: a brief stay, counted; nothing is sent.
 */
static __always_inline bool linger_end(__u64 skey, struct tt_owner *o, int newstate, __u64 now)
{
	struct tt_linger *l;
	__u64 took;

	__sync_fetch_and_add(&o->linger, 2); /* after the state was written: see the top of this file */
	if (*(volatile __u32 *)&o->linger & 1) {
		bpf_map_delete_elem(&lingering, &skey);
		return true;
	}
	l = bpf_map_lookup_elem(&lingering, &skey);
	if (!l)
		return false; /* published at once (the map was full), or never lingered */
	took = now - l->entered_ns;
	bpf_map_delete_elem(&lingering, &skey);
	count_brief(o->tgid, newstate, took);
	return false;
}

#endif /* TCPTRACE_LIB_LINGER_BPF_H */
