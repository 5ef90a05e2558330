/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading a struct sock: is it TCP, its 4-tuple, and the socket behind a file
 * descriptor of the current task. Field drift between kernels is in
 * core_fixes.bpf.h; this file only composes those readers.
 */
#ifndef TCPTRACE_LIB_SOCK_BPF_H
#define TCPTRACE_LIB_SOCK_BPF_H

#include "config.bpf.h"

static __always_inline bool sk_is_tcp(const bool btf, const struct sock *sk)
{
	__u16 family = KREAD(btf, sk, __sk_common.skc_family);

	if (family != AF_INET && family != AF_INET6)
		return false;
	return sk_protocol_of(btf, sk) == IPPROTO_TCP && sk_type_of(btf, sk) == SOCK_STREAM;
}

static __always_inline void read_tuple(const bool btf, const struct sock *sk, struct tt_tuple *t)
{
	__u16 family = KREAD(btf, sk, __sk_common.skc_family);

	t->family = family;
	t->sport = KREAD(btf, sk, __sk_common.skc_num);
	t->dport = bpf_ntohs(KREAD(btf, sk, __sk_common.skc_dport));
	if (btf) {
		if (family == AF_INET6) {
			__builtin_memcpy(t->saddr, sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
			__builtin_memcpy(t->daddr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
		} else {
			*(__u32 *)t->saddr = sk->__sk_common.skc_rcv_saddr;
			*(__u32 *)t->daddr = sk->__sk_common.skc_daddr;
		}
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&t->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&t->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		BPF_CORE_READ_INTO((__u32 *)t->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)t->daddr, sk, __sk_common.skc_daddr);
	}
}

/* fd -> struct sock of the current task, or NULL if fd is not a TCP socket (typed like current_file's). */
static __always_inline struct sock *fd_to_tcp_sk(const bool btf, int fd)
{
	struct file *f = current_file(btf, fd);
	struct sock *sk;

	if (!f || (KREAD(btf, f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sk = file_sock(btf, f);
	if (!sk || !sk_is_tcp(btf, sk))
		return NULL;
	return sk;
}

#endif /* TCPTRACE_LIB_SOCK_BPF_H */
