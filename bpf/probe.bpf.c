// SPDX-License-Identifier: GPL-2.0
/*
 * One trivial program per attach kind, on the same kernel functions and
 * tracepoints tcpstate.bpf.c uses. The feature probe (native/probe.cc) loads
 * and attaches each one alone: "the BTF says the function exists" is not
 * enough (a kernel may lack the kprobe PMU, or refuse tracing programs, as
 * this project's own CI kernel does), so a mode counts as available only when
 * its program really attaches.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "core_fixes.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(probe_tp_btf, struct sock *sk, int oldstate, int newstate)
{
	return 0;
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(probe_raw_tp, struct sock *sk, int oldstate, int newstate)
{
	return 0;
}

SEC("fexit/inet_csk_accept")
int probe_fexit(unsigned long long *ctx)
{
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(probe_kretprobe, struct sock *sk)
{
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int probe_tracepoint(void *ctx)
{
	return 0;
}

/* sock:sock_recv_length exists from 6.3 (stack sites at socket I/O) */
SEC("raw_tp/sock_recv_length")
int BPF_PROG(probe_sock_io, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int probe_syscall_tracepoint(void *ctx)
{
	return 0;
}

/*
 * The syscall hooks' fd -> file walk through typed pointers (current_file in
 * core_fixes.bpf.h: bpf_get_current_task_btf 5.11+, bpf_rdonly_cast 6.2+), on
 * a syscall tracepoint. Where the kfunc is missing this program fails to load,
 * and tcpstate's probe-read build of the syscall programs is used.
 */
SEC("tracepoint/syscalls/sys_exit_accept4")
int probe_btf_walk(void *ctx)
{
	return current_file(true, 0) != NULL;
}

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} probe_ring SEC(".maps");
