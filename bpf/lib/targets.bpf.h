/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Who is traced: the target processes of --pid (and, with --children, the
 * processes they fork), and tcptrace itself, never. Every hook asks is_target()
 * first, so the common case (not a target) is a few compares, not a hash
 * lookup. Needs: 5.8 like the rest (nothing of its own beyond BPF global data).
 */
#ifndef TCPTRACE_LIB_TARGETS_BPF_H
#define TCPTRACE_LIB_TARGETS_BPF_H

#include "config.bpf.h"
#include "ring.bpf.h"

/*
 * The first targets, checked without hashing: every hooked accept() on the box
 * asks whether its caller is a target, and a hash lookup costs ~100 ns here
 * against a few compares. Written by user space (addTargets) before attach;
 * targets_spilled once there are more, or a fork was followed: then the
 * targets map is the only complete list.
 */
__u32 fast_targets[TT_FAST_TARGETS] = {};
__u32 fast_target_count = 0;
bool targets_spilled = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} targets SEC(".maps");

static __always_inline bool is_target(__u32 tgid)
{
	__u32 n = fast_target_count;

	if (!targ_filter)
		return tgid != (__u32)targ_self_tgid;
	for (int i = 0; i < TT_FAST_TARGETS; i++) {
		if (i >= n)
			break;
		if (fast_targets[i] == tgid)
			return true;
	}
	if (!targets_spilled)
		return false;
	return bpf_map_lookup_elem(&targets, &tgid) != NULL;
}

static __always_inline void on_fork(__u32 parent_tgid, __u32 child_tgid)
{
	__u8 one = 1;
	struct tt_fork *e;
	void *ring;

	if (!targ_children || !targ_filter || parent_tgid == child_tgid)
		return;
	if (!bpf_map_lookup_elem(&targets, &parent_tgid))
		return;
	if (bpf_map_update_elem(&targets, &child_tgid, &one, BPF_ANY)) {
		count(TT_CNT_TARGETS_FULL);
		return;
	}
	targets_spilled = true;
	e = reserve(sizeof(*e), &ring);
	if (!e)
		return;
	fill_hdr(&e->hdr, TT_KIND_FORK, sizeof(*e), 0);
	e->parent_tgid = parent_tgid;
	e->child_tgid = child_tgid;
	current_comm(e->comm);
	submit(ring, e);
}

#endif /* TCPTRACE_LIB_TARGETS_BPF_H */
