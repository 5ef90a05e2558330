// SPDX-License-Identifier: GPL-2.0
/*
 * The floors the targets are set against (../shared/reference/
 * peer-overhead.md, "the author's minimal prototype programs"), built and run
 * by bench/nginx.ts beside tcptrace in the same rounds:
 *   count  tp_btf on inet_sock_set_state, a per-CPU counter: the least any
 *          transition tracer pays (the "bare counting program")
 *   ring   the same hook, a 64-byte record per transition into a BPF ring
 *          buffer without wake-ups, drained every 50 ms: the least a tracer
 *          that sends every transition to user space pays
 * Neither looks at the socket: not tools, yardsticks.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2); /* 0: transitions, 1: ring reservations that failed */
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} ring SEC(".maps");

struct floor_rec {
	__u64 ts_ns;
	__u64 sk;
	__s32 oldstate;
	__s32 newstate;
	__u8 pad[40];
};
_Static_assert(sizeof(struct floor_rec) == 64, "floor_rec is the reference's 64-byte record");

static __always_inline void bump(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &which);

	if (v)
		(*v)++;
}

/* tp_btf args of inet_sock_set_state: (const struct sock *sk, int oldstate, int newstate) */
SEC("tp_btf/inet_sock_set_state")
int floor_count(__u64 *ctx)
{
	bump(0);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int floor_ring(__u64 *ctx)
{
	struct floor_rec *r = bpf_ringbuf_reserve(&ring, sizeof(*r), 0);

	bump(0);
	if (!r) {
		bump(1);
		return 0;
	}
	r->ts_ns = bpf_ktime_get_ns();
	r->sk = ctx[0];
	r->oldstate = (__s32)ctx[1];
	r->newstate = (__s32)ctx[2];
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}
