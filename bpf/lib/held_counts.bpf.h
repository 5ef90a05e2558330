/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the agent's kernel side counts, per process, of the sockets it holds back
 * instead of sending them (summary mode, owners.bpf.h: held()): their brief
 * CLOSE_WAIT stays (linger.bpf.h) and the transitions they pass. One row per tgid
 * (struct tt_held_counts), read by the agent at most once a second (native
 * heldCounts) into tcptrace_transitions_total and the CLOSE_WAIT counters and
 * histogram of the process's workload; an exited process's row is deleted once
 * folded into its workload's totals.
 *
 * A transition of a held socket costs one bit in its owners entry (tt_owner.passed,
 * the entry is looked up anyway); the bits are added to the row once per socket,
 * when it is published (its later transitions reach the agent as records) or when it
 * reaches CLOSE. So a held socket's transitions count when it closes: a connection
 * open for an hour counts its SYN_SENT -> ESTABLISHED then. A transition passed twice
 * while held (a connect retried on the same socket) counts once.
 *
 * Needs: hash maps and BPF_XADD (every kernel tcptrace runs on).
 */
#ifndef TCPTRACE_LIB_HELD_COUNTS_BPF_H
#define TCPTRACE_LIB_HELD_COUNTS_BPF_H

#include "config.bpf.h"

/* the agent (its kernel summary): count held sockets here (off: the row map has 1 entry, unused) */
const volatile bool targ_held_counts = false;
/* the brief CLOSE_WAIT histogram's upper bounds, ascending (the agent's histogram buckets) */
const volatile __u64 targ_cw_bounds_ns[TT_CW_BOUNDS] = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* tgid */
	__type(value, struct tt_held_counts);
} held_counts SEC(".maps");

/* a new row's value: in .bss, not on the BPF stack (240 bytes; 512 in all, shared with the callers) */
struct tt_held_counts held_zero = {};

/* the process's row, made if it has none (NULL: the map is full, counted) */
static __always_inline struct tt_held_counts *held_row(__u32 tgid)
{
	struct tt_held_counts *r;

	r = bpf_map_lookup_elem(&held_counts, &tgid);
	if (r)
		return r;
	/* EEXIST (another CPU made it) is fine; E2BIG (full) leaves it missing */
	bpf_map_update_elem(&held_counts, &tgid, &held_zero, BPF_NOEXIST);
	r = bpf_map_lookup_elem(&held_counts, &tgid);
	if (!r)
		count(TT_CNT_HELD_COUNTS_FULL);
	return r;
}

/* a held socket's CLOSE_WAIT that did not last: how it left and how long it took */
static __always_inline void count_brief(__u32 tgid, int newstate, __u64 took)
{
	struct tt_held_counts *r = held_row(tgid);
	__u32 i;

	if (!r)
		return;
	for (i = 0; i < TT_CW_BOUNDS; i++)
		if (took <= targ_cw_bounds_ns[i])
			break;
	if (i > TT_CW_BOUNDS)
		i = TT_CW_BOUNDS;
	if (newstate == TCP_LAST_ACK)
		__sync_fetch_and_add(&r->to_last_ack, 1);
	else
		__sync_fetch_and_add(&r->to_close, 1);
	__sync_fetch_and_add(&r->sum_ns, took);
	__sync_fetch_and_add(&r->buckets[i], 1);
}

/* enum tt_passed of a transition (the states of include/net/tcp_states.h) */
static __always_inline __u32 passed_kind(int oldstate, int newstate)
{
	switch (oldstate << 4 | newstate) {
	case TCP_CLOSE << 4 | TCP_SYN_SENT: return TT_PASSED_CLOSE__SYN_SENT;
	case TCP_CLOSE << 4 | TCP_LISTEN: return TT_PASSED_CLOSE__LISTEN;
	case TCP_LISTEN << 4 | TCP_SYN_RECV: return TT_PASSED_LISTEN__SYN_RECV;
	case TCP_LISTEN << 4 | TCP_CLOSE: return TT_PASSED_LISTEN__CLOSE;
	case TCP_SYN_SENT << 4 | TCP_ESTABLISHED: return TT_PASSED_SYN_SENT__ESTABLISHED;
	case TCP_SYN_SENT << 4 | TCP_CLOSE: return TT_PASSED_SYN_SENT__CLOSE;
	case TCP_SYN_RECV << 4 | TCP_ESTABLISHED: return TT_PASSED_SYN_RECV__ESTABLISHED;
	case TCP_SYN_RECV << 4 | TCP_CLOSE: return TT_PASSED_SYN_RECV__CLOSE;
	case TCP_SYN_RECV << 4 | TCP_FIN_WAIT1: return TT_PASSED_SYN_RECV__FIN_WAIT1;
	case TCP_ESTABLISHED << 4 | TCP_FIN_WAIT1: return TT_PASSED_ESTABLISHED__FIN_WAIT1;
	case TCP_ESTABLISHED << 4 | TCP_CLOSE: return TT_PASSED_ESTABLISHED__CLOSE;
	case TCP_FIN_WAIT1 << 4 | TCP_FIN_WAIT2: return TT_PASSED_FIN_WAIT1__FIN_WAIT2;
	case TCP_FIN_WAIT1 << 4 | TCP_CLOSING: return TT_PASSED_FIN_WAIT1__CLOSING;
	case TCP_FIN_WAIT1 << 4 | TCP_CLOSE: return TT_PASSED_FIN_WAIT1__CLOSE;
	case TCP_FIN_WAIT2 << 4 | TCP_CLOSE: return TT_PASSED_FIN_WAIT2__CLOSE;
	case TCP_CLOSING << 4 | TCP_CLOSE: return TT_PASSED_CLOSING__CLOSE;
	case TCP_LAST_ACK << 4 | TCP_CLOSE: return TT_PASSED_LAST_ACK__CLOSE;
	default: return TT_PASSED_OTHER;
	}
}

/* a held socket passes a transition user space will not see (not into or out of CLOSE_WAIT) */
static __always_inline void note_passed(struct tt_owner *o, int oldstate, int newstate)
{
	if (targ_held_counts)
		o->passed |= 1u << passed_kind(oldstate, newstate);
}

/* its transitions so far into its process's row: it is published, or closes */
static __always_inline void flush_passed(struct tt_owner *o)
{
	struct tt_held_counts *r;
	__u32 bits = o->passed;

	if (!targ_held_counts || !bits)
		return;
	o->passed = 0;
	r = held_row(o->tgid);
	if (!r)
		return;
#pragma unroll
	for (int i = 0; i < TT_PASSED__MAX; i++)
		if (bits & (1u << i))
			__sync_fetch_and_add(&r->passed[i], 1);
}

#endif /* TCPTRACE_LIB_HELD_COUNTS_BPF_H */
