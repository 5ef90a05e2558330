/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Active closes, for TIME_WAIT storms (a client without keep-alive, a crawler
 * running out of ephemeral ports): the program closed its socket first
 * (ESTABLISHED -> FIN_WAIT1), so the socket goes to TIME_WAIT. In summary mode a
 * held socket's transitions never reach user space, so its active close is
 * counted here, per (process, stack id of its acquisition): the agent reads the
 * map (tcptrace_active_closes_total, the profile's active_closes) and adds the
 * active closes of published sockets, which it sees. Bounded: a full map is
 * counted (TT_CNT_CLOSES_FULL); the agent deletes the keys of exited processes.
 * Needs: nothing beyond the hash map and BPF_XADD (every kernel tcptrace runs on).
 */
#ifndef TCPTRACE_LIB_CLOSES_BPF_H
#define TCPTRACE_LIB_CLOSES_BPF_H

#include "config.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tt_close_key);
	__type(value, __u64);
} active_closes SEC(".maps");

static __always_inline void count_active_close(const struct tt_owner *o)
{
	struct tt_close_key k = { .tgid = o->tgid, .stack_id = o->stack_ids[TT_SITE_ACQUIRE - 1] };
	__u64 one = 1, *n;

	n = bpf_map_lookup_elem(&active_closes, &k);
	if (!n) {
		if (!bpf_map_update_elem(&active_closes, &k, &one, BPF_NOEXIST))
			return;
		/* another CPU made the entry first (EEXIST), or the map is full (E2BIG) */
		n = bpf_map_lookup_elem(&active_closes, &k);
		if (!n) {
			count(TT_CNT_CLOSES_FULL);
			return;
		}
	}
	__sync_fetch_and_add(n, 1);
}

#endif /* TCPTRACE_LIB_CLOSES_BPF_H */
