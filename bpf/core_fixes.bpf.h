/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel-struct drift, in one place. Every reader of a field or signature that
 * changed between the kernels tcptrace supports (5.10 .. 7.x) lives here, with
 * the reason. vmlinux.h is generated from a new kernel (6.18); CO-RE relocations
 * resolve each access against the running kernel's BTF at load time.
 */
#ifndef TCPTRACE_CORE_FIXES_BPF_H
#define TCPTRACE_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

/*
 * Reading kernel memory. In BTF-typed programs (tp_btf, fentry/fexit: 5.5+) a
 * hook's struct sock * argument is a BTF pointer: plain loads through it, and
 * through the pointers loaded from it, are CO-RE-relocated and turned by the
 * JIT into exception-handled loads (a NULL or bad pointer reads 0). Measured
 * here, each bpf_probe_read_kernel() call costs ~25 ns; a transition reads a
 * dozen fields. Untyped hooks (raw_tp, tracepoint, kprobe) and pointers found
 * by walking a file table must use the helper. `btf` is a literal at every
 * call site and every reader is __always_inline, so the verifier only ever
 * sees one of the two branches.
 */
#define KREAD(btf, src, a, ...) ((btf) ? ___arrow(src, a, ##__VA_ARGS__) : BPF_CORE_READ(src, a, ##__VA_ARGS__))

/*
 * sk_protocol and sk_type were 8- and 16-bit bitfields before 5.6 (commit
 * bf9765145b85 "sock: Make sk_protocol a 16-bit value") and plain u16 after.
 * The BITFIELD_PROBED reader relocates byte offset, size and shifts, so it reads
 * both layouts correctly.
 */
static __always_inline __u16 sk_protocol_of(const bool btf, const struct sock *sk)
{
	return btf ? (__u16)BPF_CORE_READ_BITFIELD(sk, sk_protocol) : (__u16)BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
}

static __always_inline __u16 sk_type_of(const bool btf, const struct sock *sk)
{
	return btf ? (__u16)BPF_CORE_READ_BITFIELD(sk, sk_type) : (__u16)BPF_CORE_READ_BITFIELD_PROBED(sk, sk_type);
}

/*
 * inet_csk_accept() lost its int flags / int *err / bool kern arguments in 6.10
 * (commit 92ef0fd55ac8 "net: change proto and proto_ops accept type"), which
 * introduced struct proto_accept_arg. fexit programs find the return value after
 * the arguments, so its slot moved from ctx[4] to ctx[2]. The type check is a
 * load-time constant, so the verifier only ever sees one of the two reads.
 * (bpf_get_func_ret() would hide this, but needs 5.17.)
 */
static __always_inline struct sock *inet_csk_accept_ret(unsigned long long *ctx)
{
	struct sock *ret;

	if (bpf_core_type_exists(struct proto_accept_arg)) {
		ret = (struct sock *)ctx[2];
		barrier_var(ret);
	} else {
		ret = (struct sock *)ctx[4];
		barrier_var(ret);
	}
	return ret;
}

/*
 * The socket cookie lives in sock_common since 5.? as atomic64_t skc_cookie;
 * sock_diag dumps generate it, which is what lets sockets that predate attach be
 * recognised in the kernel. 0 means "never generated".
 */
static __always_inline __u64 sk_cookie_of(const bool btf, const struct sock *sk)
{
	return KREAD(btf, sk, __sk_common.skc_cookie.counter);
}

/*
 * A listener's new child is traced (LISTEN -> SYN_RECV, from
 * inet_csk_clone_lock()) before or after its 4-tuple and cookie are set,
 * depending on the kernel. Before 6.15 (commit a3a128f611a9 "inet: consolidate
 * inet_csk_clone_lock()") the state was set first: at that tracepoint the child
 * is still a byte copy of the listener, with the listener's addresses, peer
 * port 0 and the listener's sk_cookie (sock_copy() copies sock_common; the
 * child's own cookie and tuple are set right after). Taken at face value, the
 * cookie would claim the listener's seed (the child becomes "pre-existing"
 * with the listener's fd) and user space would tie the child to the
 * listener's attach-time record. A real child always has a peer port, so a
 * zero one identifies the old order at run time (backports included).
 * Callers then report the tuple as not yet known (zero ports and addresses;
 * user space fills it in from the next transition, as for a connecting
 * socket's SYN_SENT) and the cookie as 0 (a child created after attach was
 * never seeded anyway).
 */
static __always_inline bool sk_is_early_clone(const bool btf, const struct sock *sk, int oldstate, int newstate)
{
	return oldstate == 10 /* TCP_LISTEN */ && newstate == 3 /* TCP_SYN_RECV */ &&
	       KREAD(btf, sk, __sk_common.skc_dport) == 0;
}

/* Network namespace inode of a socket (possible_net_t is a struct since 4.x). */
static __always_inline __u32 sk_netns_of(const bool btf, const struct sock *sk)
{
	return KREAD(btf, sk, __sk_common.skc_net.net, ns.inum);
}

/*
 * Syscall arguments from user pt_regs (a raw sys_enter/sys_exit tracepoint's,
 * or the task's own; x86-64 syscall ABI: rdi, rsi, rdx, r10, r8, r9), and the
 * syscall number, which orig_ax keeps for the whole syscall: direct loads
 * through a tp_btf program's typed pointer, CO-RE probe reads otherwise (KREAD).
 */
#if defined(__TARGET_ARCH_x86)
#define SYSCALL_ARG1(btf, regs) KREAD(btf, regs, di)
#define SYSCALL_ARG2(btf, regs) KREAD(btf, regs, si)
#define SYSCALL_NR(btf, regs) KREAD(btf, regs, orig_ax)
/* the same, of the syscall the current task is in, from current_user_regs() (USER_REG) */
#define USER_SYSCALL_ARG1(regs) USER_REG(regs, di)
#define USER_SYSCALL_ARG2(regs) USER_REG(regs, si)
#define USER_SYSCALL_NR(regs) USER_REG(regs, orig_ax)
#else
#error "tcptrace: syscall numbers and registers are only wired up for x86-64"
#endif

/*
 * The current task's user-mode registers (the pt_regs saved at kernel entry).
 * bpf_task_pt_regs() exists from 5.15 (commit dd6e10fbd9fb "bpf: Add
 * bpf_task_pt_regs() helper"); before that the same frame is found at the top
 * of the task's kernel stack (x86-64: THREAD_SIZE 16 KiB without KASAN, no
 * top-of-stack padding). The helper check is a load-time constant: on old
 * kernels the call is dead code the verifier never visits.
 */
#define TT_X86_THREAD_SIZE 16384
static __always_inline struct pt_regs *current_user_regs(void)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
		return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	void *stack = BPF_CORE_READ(task, stack);

	return (struct pt_regs *)(stack + TT_X86_THREAD_SIZE) - 1;
}

/*
 * The current thread's fs base (x86-64 TLS): on glibc it is the thread's
 * pthread_t, which CPython stores as PyThreadState.thread_id. thread.fsbase has
 * this name since 4.15 (commit 296f781a4b7 "x86/asm/64: Rename thread_struct's
 * fs and gs to fsbase and gsbase"); arm64 would read thread.uw.tp_value.
 */
static __always_inline __u64 current_fsbase(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, thread.fsbase);
}

/*
 * A register from current_user_regs(): a plain load through the helper's typed
 * pointer where it exists (5.15+; two probe reads cost ~140 ns a stack site
 * here), a probe read of the computed frame before.
 */
#define USER_REG(regs, reg) \
	(bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs) ? (regs)->reg : BPF_CORE_READ(regs, reg))

/*
 * The current task's open file at fd, or NULL. Two ways, chosen per program
 * (`btf` is a literal at every call site):
 *  - btf: the task as a BTF pointer (bpf_get_current_task_btf, 5.11+), the
 *    file table read with plain loads, one probe read for the fd slot (an
 *    array of pointers is not typed for the verifier), and the file made a
 *    read-only typed pointer again with bpf_rdonly_cast() (kfunc, 6.2+). Only
 *    programs the feature probe found loadable use it (btfWalk): on older
 *    kernels the weak kfunc stays unresolved in programs that are not loaded.
 *  - otherwise a CO-RE probe read per pointer, as on 5.8+.
 * Measured here (bpf_stats, both builds side by side): accept4 exit 1.72 ->
 * 0.85 us, close 1.49 -> 0.75 us a run; the socket's own fields are then read
 * with plain loads too.
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

static __always_inline struct file *current_file(const bool btf, int fd)
{
	struct file **fds, *f = NULL;
	struct fdtable *fdt;

	if (fd < 0)
		return NULL;
	if (btf) {
		fdt = bpf_get_current_task_btf()->files->fdt;
		if ((unsigned int)fd >= fdt->max_fds)
			return NULL;
		fds = fdt->fd;
	} else {
		fdt = BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), files, fdt);
		if (!fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
			return NULL;
		fds = BPF_CORE_READ(fdt, fd);
	}
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	return btf ? bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file)) : f;
}

/* The struct sock behind a socket file (private_data is a struct socket *), typed like the file. */
static __always_inline struct sock *file_sock(const bool btf, struct file *f)
{
	if (btf) {
		struct socket *sock = bpf_rdonly_cast(f->private_data, bpf_core_type_id_kernel(struct socket));

		return sock->sk;
	}
	struct socket *sock = BPF_CORE_READ(f, private_data);

	return BPF_CORE_READ(sock, sk);
}

/*
 * The current task's comm: two loads from task_struct through the BTF task
 * pointer (5.11+, bpf_get_current_task_btf), instead of bpf_get_current_comm()
 * (its strscpy_pad; ~85 ns less a transition, measured side by side). Before
 * 5.11 the helper id is unknown and the branch is dead code the verifier never
 * visits (as in current_user_regs).
 */
static __always_inline void current_comm(char comm[16])
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)) {
		struct task_struct *t = bpf_get_current_task_btf();

		*(__u64 *)comm = *(__u64 *)&t->comm[0];
		*(__u64 *)(comm + 8) = *(__u64 *)&t->comm[8];
		return;
	}
	bpf_get_current_comm(comm, 16);
}

#endif /* TCPTRACE_CORE_FIXES_BPF_H */
