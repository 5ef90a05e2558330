/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The I/O stack sites, once per socket: the first write/send names the handler
 * that owns the socket, the first read that returns data names the one that took
 * the request (a server that accepts in one loop and reads in a handler: the
 * handler that then drops the socket writes nothing), and the first read that
 * returns 0 is the program seeing the peer's FIN. From sock:sock_{send,recv}_length (6.3+: the socket itself, only
 * for socket I/O) or, before 6.3, the read/write syscall hooks (an fd -> sock
 * walk, and a tid -> fd map across a read).
 */
#ifndef TCPTRACE_LIB_IO_SITES_BPF_H
#define TCPTRACE_LIB_IO_SITES_BPF_H

#include "config.bpf.h"
#include "targets.bpf.h"
#include "sock.bpf.h"
#include "stacks.bpf.h"

/* tid -> fd of an in-flight read-family syscall on a target (I/O stack sites through syscalls: EOF) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __s32);
} pending SEC(".maps");

/* a read-family syscall on a target: remember the fd until it returns (0 is EOF, see on_read_exit) */
static __always_inline void on_read_enter(long fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__s32 p = (__s32)fd;

	if (!targ_stacks || !is_target(id >> 32))
		return;
	if (bpf_map_update_elem(&pending, &tid, &p, BPF_ANY))
		count(TT_CNT_PENDING_FULL);
}

/*
 * An I/O stack site of a traced socket, once per socket: the first write/send
 * after acquiring it names the handler that owns it; the first read that
 * returned 0 is the program seeing the peer's FIN.
 */
static __always_inline void io_site(const bool btf, const struct sock *sk, __u32 seen, __u8 site)
{
	__u64 skey = (__u64)sk;
	struct tt_owner *o = bpf_map_lookup_elem(&owners, &skey);

	if (!o || (o->flags & seen))
		return;
	o->flags |= seen;
	capture_stack(btf, sk, o, site, 0);
}

/* sock:sock_{send,recv}_length (6.3+): the socket itself, in the caller's context, only for socket I/O */
static __always_inline void on_sock_io(const bool btf, const struct sock *sk, bool send, int ret)
{
	if (!targ_stacks || !sk || !is_target(bpf_get_current_pid_tgid() >> 32))
		return;
	if (send)
		io_site(btf, sk, TT_OWNER_IO_SEEN, TT_SITE_IO);
	else if (ret == 0)
		io_site(btf, sk, TT_OWNER_EOF_SEEN, TT_SITE_EOF);
	else if (ret > 0)
		io_site(btf, sk, TT_OWNER_READ_SEEN, TT_SITE_READ);
}

/* write/send syscall on a traced socket (kernels without the sock I/O tracepoints) */
static __always_inline void on_io_enter(const bool btf, long fd)
{
	struct sock *sk;

	if (!targ_stacks || !is_target(bpf_get_current_pid_tgid() >> 32))
		return;
	sk = fd_to_tcp_sk(btf, (int)fd);
	if (sk)
		io_site(btf, sk, TT_OWNER_IO_SEEN, TT_SITE_IO);
}

/* a read-family syscall returned: data on a traced socket is its first read (once), 0 the program seeing the peer's FIN */
static __always_inline void on_read_exit(const bool btf, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__s32 *p = bpf_map_lookup_elem(&pending, &tid);
	struct sock *sk;
	int fd;

	if (!p)
		return;
	fd = *p;
	bpf_map_delete_elem(&pending, &tid);
	if (ret < 0)
		return;
	sk = fd_to_tcp_sk(btf, fd);
	if (sk)
		io_site(btf, sk, ret ? TT_OWNER_READ_SEEN : TT_OWNER_EOF_SEEN, ret ? TT_SITE_READ : TT_SITE_EOF);
}

#endif /* TCPTRACE_LIB_IO_SITES_BPF_H */
