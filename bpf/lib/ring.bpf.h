/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The transport to user space: the rings, reserving and submitting records,
 * their common header (struct tt_hdr), and the bounded wake-ups. Records are
 * submitted without a wake-up and user space drains on a timer, except when a
 * ring fills past a watermark (a wake-up per event costs ~10 us here: see
 * shared/reference/peer-overhead.md); user space merges the per-CPU rings by
 * time (native/ring_poller.h). Needs: BPF ring buffer (5.8), ring buffers as
 * inner maps of an ARRAY_OF_MAPS (5.8).
 */
#ifndef TCPTRACE_LIB_RING_BPF_H
#define TCPTRACE_LIB_RING_BPF_H

#include "config.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by user space */
} events SEC(".maps");

/*
 * One ring per possible CPU (targ_ring_per_cpu; ring buffers as inner maps: 5.8+):
 * a CPU reserves in its own ring, so the rings' locks and producer positions
 * stay on their CPUs. A shared ring's spinlock and positions move between the
 * CPUs that produce. A whole-system recording here (2 CPUs) ran its programs in
 * 2.6-2.7 us per connection instead of 3.1-3.2, and the merge costs the agent
 * about as much (README, Benchmark). User space creates the rings and merges them by time
 * (native/ring_poller.h). The inner map is a template: user space sets its size.
 */
struct ring_of_cpu {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* resized to the possible CPUs */
	__type(key, __u32);
	__array(values, struct ring_of_cpu);
} rings SEC(".maps");

/*
 * Per-CPU time of the last forced wake-up, to bound them: slot WAKE_WATERMARK
 * while the ring is above the watermark, slot WAKE_STACK for full stack copies.
 */
#define WAKE_WATERMARK 0
#define WAKE_STACK 1
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} last_wakeup SEC(".maps");

/* the ring this CPU's records go to (NULL: its ring is missing, counted as a full ring) */
static __always_inline void *out_ring(void)
{
	__u32 cpu;

	if (!targ_ring_per_cpu)
		return &events;
	cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&rings, &cpu);
}

/* a record of size in this CPU's ring (NULL: none, counted); *ring: the ring to submit it to */
static __always_inline void *reserve(__u32 size, void **ring)
{
	void *rec;

	*ring = out_ring();
	rec = *ring ? bpf_ringbuf_reserve(*ring, size, 0) : NULL;

	if (!rec)
		count(TT_CNT_RB_FULL);
	return rec;
}

/* ts: the run's clock reading when it already took one (0: read it now) */
static __always_inline void fill_hdr_at(struct tt_hdr *h, __u16 kind, __u16 size, __u16 flags, __u64 ts)
{
	h->kind = kind;
	h->size = size;
	h->flags = flags;
	h->version = TT_RECORD_VERSION;
	h->cpu = (__u8)bpf_get_smp_processor_id();
	h->ts_ns = ts ? ts : bpf_ktime_get_ns();
}

static __always_inline void fill_hdr(struct tt_hdr *h, __u16 kind, __u16 size, __u16 flags)
{
	fill_hdr_at(h, kind, size, flags, 0);
}

/* BPF_RB_FORCE_WAKEUP at most once per gap on this CPU (slot: WAKE_*), else BPF_RB_NO_WAKEUP */
static __always_inline __u64 wakeup_flags(__u32 slot, __u64 gap_ns)
{
	__u64 *last = bpf_map_lookup_elem(&last_wakeup, &slot);
	__u64 now = bpf_ktime_get_ns();

	if (!last || now - *last < gap_ns)
		return BPF_RB_NO_WAKEUP;
	*last = now;
	count(TT_CNT_WAKEUPS);
	return BPF_RB_FORCE_WAKEUP;
}

/* Submit without a wake-up unless the ring is past the watermark (then at most one per CPU per gap). */
static __always_inline void submit(void *ring, void *rec)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	/* ring: the one reserve() reserved rec in */
	if (targ_wakeup_bytes && bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= targ_wakeup_bytes)
		flags = wakeup_flags(WAKE_WATERMARK, targ_wakeup_gap_ns);
	bpf_ringbuf_submit(rec, flags);
	count(TT_CNT_EVENTS);
}

#endif /* TCPTRACE_LIB_RING_BPF_H */
