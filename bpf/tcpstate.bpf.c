// SPDX-License-Identifier: GPL-2.0
/*
 * tcpstate: follow TCP sockets through their state transitions and attribute
 * each transition to the process that owns the socket, not to whoever happens
 * to be on the CPU.
 *
 * Why ownership is a map: ESTABLISHED -> CLOSE_WAIT (the peer's FIN) and most
 * other transitions run in softirq context, or on loopback in the *peer's*
 * task. The owner is learnt in process context (connect, listen, accept, or
 * seeded from user space for sockets that predate attach) and carried per
 * struct sock in the owners map until the socket reaches TCP_CLOSE.
 *
 * Hooks come in flavours chosen by user space with set_autoload() before load;
 * every flavour is a thin wrapper over the static helpers below:
 *   transitions  tp_btf | raw_tp | tracepoint            sock:inet_sock_set_state (4.16+)
 *   accept       fexit | kretprobe  (+ syscall exit)     inet_csk_accept
 *   connect/listen  the transition they cause reads the fd from the task's saved
 *                syscall registers; hooked (entry) only to take the stack
 *   close/shutdown  likewise: the transition they make carries the call (releasing_call)
 *   syscalls     tracepoint (syscalls:sys_{enter,exit}_<call>: only the hooked calls
 *                run a program; ids from tracefs, mounted privately if needed)
 *                | tp_btf | raw_tp (raw_syscalls sys_enter/sys_exit: a program on
 *                every syscall of the box, ~120 ns each here; the fallback)
 *   stack I/O    tp_btf | raw_tp sock:sock_{send,recv}_length (6.3+)
 *                | the syscall hooks (read/write family)
 *   fork         tp_btf | raw_tp | tracepoint            sched:sched_process_fork
 * Minimum kernel: 5.8 (BPF ring buffer); tp_btf 5.5, fexit 5.5.
 *
 * Transport: one BPF ring buffer per CPU ("rings"; or the shared "events" with
 * --no-ring-per-cpu), merged by time in user space; records are submitted
 * without a wake-up and user space drains on a timer, except when a ring fills
 * past a watermark (a wake-up per event costs ~10 us here: see
 * shared/reference/peer-overhead.md).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "core_fixes.bpf.h"
#include "tcpstate.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9
#define TCP_LISTEN 10

/* how a helper may read the kernel pointer it is handed, a sock or pt_regs (KREAD in core_fixes.bpf.h) */
#define BTF_PTR true  /* a BTF pointer from a tp_btf / fentry argument: direct loads */
#define RAW_PTR false /* an untyped pointer: bpf_probe_read_kernel */

/* x86-64 syscall numbers */
#define NR_close 3
#define NR_dup2 33
#define NR_dup3 292
#define NR_close_range 436
#define NR_connect 42
#define NR_accept 43
#define NR_shutdown 48
#define NR_listen 50
#define NR_accept4 288
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_sendmmsg 307

/* ---- configuration (rodata, set before load) ---- */
const volatile bool targ_filter = false;    /* only sockets owned by tgids in "targets" */
const volatile bool targ_children = false;  /* follow forks of targets */
const volatile __u64 targ_wakeup_bytes = 0; /* force a wake-up past this much unread data */
const volatile __u64 targ_wakeup_gap_ns = 1000000;
const volatile __s32 targ_self_tgid = 0;    /* never trace tcptrace itself */
const volatile bool targ_stacks = false;     /* capture user stacks at acquire / first I/O / EOF */
/* keep a target's sockets in the kernel until they matter (TT_OWNER_PUBLISHED); only with targ_filter */
const volatile bool targ_summary = false;
/*
 * Keep sk -> owner in the kernel (owners, seeds, listeners maps): --pid needs it
 * to drop other processes' sockets before they cost a record, and stacks keep
 * per-socket state in it. The whole system without stacks (what `tcptrace
 * record` runs) sends every socket's events anyway: there the agent's socket
 * table attributes them from the same facts (present sockets, births,
 * accept(), a listener's children) and the kernel skips about 15 hash map
 * operations per connection (README, "How it works").
 */
const volatile bool targ_owners = true;
/* the I/O stack sites come from the read/write syscall hooks (no sock:sock_{send,recv}_length before 6.3) */
const volatile bool targ_io_syscalls = true;
const volatile __u32 targ_stack_bytes = 32768; /* user stack to copy, in whole pages from sp's page (<= TT_STACK_MAX) */
const volatile __u32 targ_stack_rate = 1000;  /* stacks per second per process, burst the same */
const volatile __u64 targ_stack_wakeup_gap_ns = 2000000; /* at most one wake-up per CPU per 2 ms for stack copies */
const volatile bool targ_ring_per_cpu = false; /* records go to this CPU's ring in "rings", not to "events" */

/* ---- state (bss) ---- */
bool seeded = false; /* the seeds map has entries: look up unknown sockets by cookie */
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

/* ---- maps ---- */
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536); /* resized by user space (--max-sockets) */
	__type(key, __u64);	    /* struct sock * */
	__type(value, struct tt_owner);
} owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket cookie, from sock_diag */
	__type(value, struct tt_owner);
} seeds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct tt_listen_key);
	__type(value, struct tt_owner);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, __u8);
} targets SEC(".maps");

/* tid -> fd of an in-flight read-family syscall on a target (I/O stack sites through syscalls: EOF) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __s32);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TT_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * Scratch for stack records (too big for the 512-byte BPF stack), TT_SCRATCH_PER_CPU
 * per CPU: a plain array indexed by CPU * TT_SCRATCH_PER_CPU + slot, sized by user
 * space (per-CPU maps cap values at 32 KiB, less than a record). The slack keeps
 * the verifier's bound on the rounded-up record size inside the value. users:
 * see scratch_take.
 */
struct stack_scratch_value {
	struct tt_stack rec;
	__u8 slack[8];
	__u64 users;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TT_SCRATCH_PER_CPU); /* resized to TT_SCRATCH_PER_CPU x the possible CPUs */
	__type(key, __u32);
	__type(value, struct stack_scratch_value);
} stack_scratch SEC(".maps");

struct budget {
	__u64 last_ns;
	__u64 tokens;
};

/* tgid -> token bucket bounding the stacks one process can cost us under churn */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct budget);
} stack_budget SEC(".maps");

/* stack dedup (see tcpstate.h): CFA rules per (tgid, pc), and known fingerprints */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tt_cfa_key);
	__type(value, __s32); /* CFA = sp + value; 0: no usable rule here */
} cfa_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tt_known_key);
	__type(value, __u32); /* stack id */
} known_stacks SEC(".maps");

/*
 * The walk memo: what fingerprint() read from one (process, site, pc, sp) the
 * last time its walk ended on a known stack. The walk from (pc, sp) reads its
 * i-th return address at an offset fixed by the rules of pc and of the return
 * addresses before it, so reading the same values at the same offsets means
 * the same walk, hence the same stack. An event-loop server calls accept() or
 * writev() from the same depth for every socket: recalling costs one lookup and
 * one copy of the span, where the walk costs a rule lookup and an 8-byte read
 * per frame (bpf_stats here: ~80 ns for each of the 12; a 512-byte copy ~100 ns).
 * Only the kernel uses these maps; a different stack at the same place fails
 * the comparison and is walked (and memoised) as before. A walk whose return
 * addresses reach past TT_WALK_SPAN is not memoised: it is walked each time.
 */
#define TT_WALK_SPAN 4096 /* memoised walks: return addresses within this many bytes of sp, read in one copy */

struct walk_key {
	__u64 ip;
	__u64 sp;
	__u32 tgid;
	__u32 site;
};

struct walk_memo {
	__u64 ret[TT_DEDUP_DEPTH];  /* the return addresses the walk read */
	__u64 hash;
	__u32 slot[TT_DEDUP_DEPTH]; /* where, in bytes above sp */
	__u32 span;		    /* slot[depth - 1] + 8: the bytes a recall reads */
	__u32 depth;
	__u32 stack_id;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct walk_key);
	__type(value, struct walk_memo);
} walk_memos SEC(".maps");

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

/* ---- helpers ---- */

/*
 * Atomic although the value is this CPU's: a preempted program (7.0+, see
 * scratch_take) must not lose another task's increment on the same CPU.
 * BPF_XADD without fetch: every kernel.
 */
static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);

	if (v)
		__sync_fetch_and_add(v, 1);
}

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

/*
 * Summary mode: a held socket's transitions and calls are only counted until it
 * is published (TT_OWNER_PUBLISHED in tcpstate.h). Only --pid sockets have an
 * owners entry to hold them in.
 */
static __always_inline bool held(const struct tt_owner *o)
{
	return targ_summary && o && !(o->flags & TT_OWNER_PUBLISHED);
}

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

static __always_inline void owner_here(struct tt_owner *o, __s32 fd, __u8 origin, __u64 now)
{
	o->first_ns = now;
	o->state = TCP_CLOSE; /* until a transition or the caller says otherwise */
	o->tgid = bpf_get_current_pid_tgid() >> 32;
	o->fd = fd;
	o->origin = origin;
	current_comm(o->comm);
}

/*
 * Stores a new owners entry. Only summary mode writes an entry after making it
 * (state, flags and held stack ids); otherwise the caller's copy, which must
 * live as long as the caller uses it, stands for the entry and the lookup back
 * is saved (two hash lookups per connection in a whole-system recording).
 */
static __always_inline struct tt_owner *owner_put(__u64 skey, struct tt_owner *o)
{
	if (bpf_map_update_elem(&owners, &skey, o, BPF_ANY)) {
		count(TT_CNT_OWNERS_FULL);
		return NULL;
	}
	if (!targ_summary)
		return o;
	return bpf_map_lookup_elem(&owners, &skey);
}

/*
 * The fd of a socket being connected or made a listener, from the syscall the
 * task is in: CLOSE -> SYN_SENT and CLOSE -> LISTEN run inside connect(),
 * sendto()/sendmsg() (TCP Fast Open) and listen(), in the owner's own context.
 * Reading the saved user registers here replaces a connect/listen syscall hook
 * pair that every connect() on the box used to pay for. -1 when the transition
 * comes from elsewhere (io_uring, a kernel socket).
 */
static __always_inline __s32 acquiring_syscall_fd(bool listen)
{
	struct pt_regs *regs = current_user_regs();
	long nr = USER_SYSCALL_NR(regs);

	if (listen ? nr == NR_listen : (nr == NR_connect || nr == NR_sendto || nr == NR_sendmsg))
		return (__s32)USER_SYSCALL_ARG1(regs);
	return -1;
}

/*
 * The close() or shutdown() a transition is made by, read from the task's
 * saved syscall registers like acquiring_syscall_fd: tcp_close() and
 * tcp_shutdown() change the state in the caller's context with the socket
 * locked by it (sk_lock.owned), which no softirq transition has (a socket
 * owned by user gets its packets and timers deferred to the owner). Hooking
 * close() instead costs a program and ~0.3 us of tracepoint dispatch on every
 * close() on the box (README, "Attach modes" and "Benchmark"). Seen this way: a close that
 * releases the socket (FIN, reset, or a listener's or connect's end), dup2()
 * or dup3() over its fd, close_range(). Not seen: a close of one of several
 * fds of a socket (fork, dup), which releases nothing; the report checks who
 * still holds a CLOSE_WAIT socket at its end instead (src/trace/holders.ts).
 * Returns the call (0: none) and its fd (-1 for close_range) and argument.
 */
static __always_inline __u8 releasing_call(const bool btf, const struct sock *sk, int oldstate, int newstate, __s32 *fd, __s32 *arg)
{
	struct pt_regs *regs;
	long nr;

	/* what tcp_close()/tcp_shutdown() do: FIN from a synchronised state, or CLOSE (a listener, a
	 * connect, a reset for unread data); or the state kept, closing a socket already shut down */
	if (oldstate != newstate) {
		if (newstate != TCP_FIN_WAIT1 && newstate != TCP_LAST_ACK && newstate != TCP_CLOSE)
			return 0;
		if (oldstate != TCP_ESTABLISHED && oldstate != TCP_CLOSE_WAIT && oldstate != TCP_SYN_RECV && oldstate != TCP_SYN_SENT &&
		    oldstate != TCP_LISTEN)
			return 0;
	}
	if (!KREAD(btf, sk, sk_lock.owned))
		return 0;
	regs = current_user_regs();
	nr = USER_SYSCALL_NR(regs);
	switch (nr) {
	case NR_close:
		*fd = (__s32)USER_SYSCALL_ARG1(regs);
		return TT_CALL_CLOSE;
	case NR_dup2:
	case NR_dup3:
		*fd = (__s32)USER_SYSCALL_ARG2(regs); /* the fd dup'd over */
		return TT_CALL_CLOSE;
	case NR_close_range:
		return TT_CALL_CLOSE;
	case NR_shutdown:
		*fd = (__s32)USER_SYSCALL_ARG1(regs);
		*arg = (__s32)USER_SYSCALL_ARG2(regs);
		return TT_CALL_SHUTDOWN;
	}
	return 0;
}

/* One token per stack, refilled at targ_stack_rate per second (approximate under concurrency). */
static __always_inline bool stack_allowed(__u32 tgid)
{
	__u64 now = bpf_ktime_get_ns();
	struct budget *b = bpf_map_lookup_elem(&stack_budget, &tgid);

	if (!b) {
		struct budget fresh = { .last_ns = now, .tokens = targ_stack_rate - 1 };

		bpf_map_update_elem(&stack_budget, &tgid, &fresh, BPF_ANY);
		return true;
	}
	__u64 refill = (now - b->last_ns) * targ_stack_rate / 1000000000ULL;
	if (refill) {
		b->tokens = b->tokens + refill > targ_stack_rate ? targ_stack_rate : b->tokens + refill;
		b->last_ns = now;
	}
	if (!b->tokens)
		return false;
	b->tokens--;
	return true;
}

/*
 * Copy the user registers and up to targ_stack_bytes of the user stack into a
 * ring record. bpf_probe_read_user cannot fault pages in, and a read that
 * crosses into an unmapped page fails whole: copy page by page, starting at the
 * page that holds sp, and stop at the first page that does not read (the stack
 * above it is not needed to unwind the frames below it).
 */
/*
 * Walk the learnt CFA rules from the syscall's user registers and fingerprint
 * the return addresses found, noting where each was read (m, for the memo).
 * Returns the depth reached (0: nothing known).
 */
static __always_inline __u32 fingerprint(__u32 tgid, __u64 ip, __u64 sp, struct walk_memo *m)
{
	struct tt_cfa_key k = { .tgid = tgid, .pc = ip };
	__u64 h = TT_FP_SEED, ret, cfa = sp;
	__u32 depth = 0;

	for (int i = 0; i < TT_DEDUP_DEPTH; i++) {
		__s32 *off = bpf_map_lookup_elem(&cfa_rules, &k);

		if (!off || *off <= 0)
			break;
		cfa += *off; /* the return address sits just below the CFA */
		if (bpf_probe_read_user(&ret, sizeof(ret), (void *)(cfa - 8)))
			break;
		h = (h ^ ret) * TT_FP_PRIME;
		m->ret[i] = ret;
		m->slot[i] = (__u32)(cfa - 8 - sp);
		m->span = m->slot[i] + 8; /* CFAs only grow: the last slot is the highest */
		k.pc = ret;
		depth++;
	}
	m->hash = h;
	m->depth = depth;
	return depth;
}

/*
 * The memo of this (process, site, pc, sp), if the live stack still holds the
 * return addresses it was made from. buf: TT_WALK_SPAN bytes of scratch.
 */
static __always_inline struct walk_memo *recall_walk(const struct walk_key *wk, __u8 *buf)
{
	struct walk_memo *m = bpf_map_lookup_elem(&walk_memos, wk);
	__u32 span, depth, slot;

	if (!m)
		return NULL;
	span = m->span;
	depth = m->depth;
	/* memos are made only within these bounds; the checks are for the verifier */
	if (!depth || depth > TT_DEDUP_DEPTH || span > TT_WALK_SPAN)
		return NULL;
	if (bpf_probe_read_user(buf, span, (void *)wk->sp))
		return NULL;
	for (int i = 0; i < TT_DEDUP_DEPTH; i++) {
		if (i >= depth)
			break;
		slot = m->slot[i];
		if (slot > TT_WALK_SPAN - 8 || *(__u64 *)(buf + slot) != m->ret[i])
			return NULL;
	}
	return m;
}

/*
 * A 56-byte reference to a stack user space has the frames of. hash and depth
 * are the fingerprint's (0 for a stack id held in the owners entry: sent later,
 * with the owner's tgid and no tid).
 */
static __always_inline void send_stack_ref(const bool btf, const struct sock *sk, __u8 site, __u32 stack_id, __u32 tgid, __u32 tid,
					   __u64 hash, __u32 depth)
{
	void *ring;
	struct tt_stack_ref *e = reserve(sizeof(*e), &ring);

	if (!e)
		return; /* counted as lost */
	fill_hdr(&e->hdr, TT_KIND_STACK_REF, sizeof(*e), 0);
	e->sk = (__u64)sk;
	e->cookie = sk_cookie_of(btf, sk);
	e->hash = hash;
	e->tgid = tgid;
	e->tid = tid;
	e->stack_id = stack_id;
	e->site = site;
	e->depth = depth;
	submit(ring, e);
	count(TT_CNT_STACKS_DEDUPED);
}

static __always_inline bool emit_stack_ref(const bool btf, const struct sock *sk, struct tt_owner *o, __u8 site, __u32 tgid, __u32 tid, __u64 ip, __u64 sp,
					   __u8 *buf)
{
	struct walk_key wk = { .ip = ip, .sp = sp, .tgid = tgid, .site = site };
	struct tt_known_key kk = { .tgid = tgid, .site = site };
	struct walk_memo fresh = {}, *m;
	__u32 *stack_id, id, depth;

	m = recall_walk(&wk, buf);
	if (m) {
		count(TT_CNT_STACKS_RECALLED);
		id = m->stack_id;
		kk.hash = m->hash;
		depth = m->depth;
	} else {
		depth = fingerprint(tgid, ip, sp, &fresh);
		if (!depth)
			return false;
		kk.hash = fresh.hash;
		stack_id = bpf_map_lookup_elem(&known_stacks, &kk);
		if (!stack_id)
			return false;
		id = fresh.stack_id = *stack_id;
		/* a deeper span (a big frame on the way) is walked each time: one copy would not hold it */
		if (fresh.span <= TT_WALK_SPAN)
			bpf_map_update_elem(&walk_memos, &wk, &fresh, BPF_ANY);
	}
	if (held(o)) {
		/* the first id of each site, sent (and counted as deduped) if the socket is published */
		if (site >= TT_SITE_ACQUIRE && site <= TT_SITE_EOF && !o->stack_ids[site - 1])
			o->stack_ids[site - 1] = id;
		return true;
	}
	/* a lost reference is counted; a copy would not fit either */
	send_stack_ref(btf, sk, site, id, tgid, tid, kk.hash, depth);
	return true;
}

/*
 * Publish a held socket: user space gets every event of it from now on,
 * starting with the stack ids held back. (A close of its fd held back is sent
 * by handle_transition, after the transition that gives user space the socket.)
 */
static __always_inline void publish(const bool btf, const struct sock *sk, struct tt_owner *o)
{
	o->flags |= TT_OWNER_PUBLISHED;
	for (int i = 0; i < 3; i++) {
		__u32 id = o->stack_ids[i];

		if (!id)
			continue;
		o->stack_ids[i] = 0;
		send_stack_ref(btf, sk, i + 1, id, o->tgid, 0, 0, 0);
	}
}

/*
 * A CPU's scratch records are taken by whoever captures. Programs meet on a CPU only
 * by preemption: fentry/fexit programs run preemptible (migrate_disable) on
 * every kernel, and since 7.0 so do raw_tp and tp_btf ones (tracepoints run
 * under SRCU-fast, commit a46023d5616e; Debian's 7.x kernels are PREEMPT_LAZY),
 * so a capture can be preempted by another task's capture on the same CPU.
 * A try-lock from an atomic add and a reread (BPF_XADD works on every kernel;
 * the fetching atomics need 5.12): of any takers, only one can reread 1, as
 * every taker's add is in the count until it gives way.
 */
static __always_inline bool scratch_take(struct stack_scratch_value *v)
{
	__sync_fetch_and_add(&v->users, 1);
	if (*(volatile __u64 *)&v->users == 1)
		return true;
	__sync_fetch_and_add(&v->users, -1);
	return false;
}

static __always_inline void scratch_give(struct stack_scratch_value *v)
{
	__sync_fetch_and_add(&v->users, -1);
}

/*
 * The capture proper, into this CPU's scratch record s (taken). o: the socket's
 * owners entry, if it has one. A full copy publishes a held socket: user space
 * keeps a copy only for a socket whose life it then sees.
 */
static __always_inline void copy_stack(const bool btf, const struct sock *sk, struct tt_owner *o, __u8 site, __u8 call, struct tt_stack *s)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pt_regs *regs;
	__u32 off = 0, size;
	__u64 ip, sp;

	regs = current_user_regs();
	ip = USER_REG(regs, ip);
	sp = USER_REG(regs, sp);
	/* a stack seen before costs a few reads and a 56-byte record, not a copy (s->stack holds the memo's compare) */
	if (emit_stack_ref(btf, sk, o, site, id >> 32, (__u32)id, ip, sp, s->stack))
		return;
	if (!stack_allowed(id >> 32)) {
		count(TT_CNT_STACKS_LIMITED);
		return;
	}
	if (held(o))
		publish(btf, sk, o);
	s->regs.ip = ip;
	s->regs.sp = sp;
	s->regs.bp = USER_REG(regs, bp);
	s->regs.bx = USER_REG(regs, bx);
	s->regs.r12 = USER_REG(regs, r12);
	s->regs.r13 = USER_REG(regs, r13);
	s->regs.r14 = USER_REG(regs, r14);
	s->regs.r15 = USER_REG(regs, r15);

	/* whole pages, from the page that holds sp: constant-size reads the verifier can bound */
	for (int i = 0; i < TT_STACK_MAX / 4096; i++) {
		if (off >= targ_stack_bytes)
			break;
		if (bpf_probe_read_user(&s->stack[i * 4096], 4096, (void *)((sp & ~4095ULL) + i * 4096))) {
			count(TT_CNT_STACK_SHORT);
			break;
		}
		off += 4096;
	}
	s->stack_len = off;
	size = (TT_STACK_FIXED + off + 7) & ~7u;
	fill_hdr(&s->hdr, TT_KIND_STACK, size, 0);
	s->sk = (__u64)sk;
	s->cookie = sk_cookie_of(btf, sk);
	s->tgid = id >> 32;
	s->tid = (__u32)id;
	s->site = site;
	s->call = call;
	/*
	 * Wake the agent now, not at its next poll (up to 100 ms away): until it has
	 * unwound this copy and taught the kernel the stack's fingerprint, every
	 * socket taking the same path costs another full copy (a burst of up to
	 * targ_stack_rate of them at attach). Copies are rare once stacks are
	 * known, and the gap bounds the wake-ups when they are not.
	 */
	void *ring = out_ring();

	if (!ring || bpf_ringbuf_output(ring, s, size, wakeup_flags(WAKE_STACK, targ_stack_wakeup_gap_ns))) {
		count(TT_CNT_RB_FULL);
		return;
	}
	count(TT_CNT_STACKS);
	count(TT_CNT_EVENTS);
}

static __always_inline void capture_stack(const bool btf, const struct sock *sk, struct tt_owner *o, __u8 site, __u8 call)
{
	struct stack_scratch_value *scratch = NULL, *v;
	__u32 first;

	if (!targ_stacks)
		return;
	first = bpf_get_smp_processor_id() * TT_SCRATCH_PER_CPU;
	/* the first free record of this CPU's: a second one serves a capture that preempted one */
	for (__u32 k = 0; k < TT_SCRATCH_PER_CPU; k++) {
		__u32 key = first + k;

		v = bpf_map_lookup_elem(&stack_scratch, &key);
		if (v && scratch_take(v)) {
			scratch = v;
			break;
		}
	}
	if (!scratch) {
		count(TT_CNT_STACKS_BUSY);
		return;
	}
	copy_stack(btf, sk, o, site, call, &scratch->rec);
	scratch_give(scratch);
}

/*
 * connect() (CLOSE -> SYN_SENT) and listen() (CLOSE -> LISTEN) run in the
 * owner's own syscall: the owner is the task on the CPU, fd from its syscall
 * registers. Fills fresh for a target's TCP socket; *now: the clock read.
 */
static __always_inline bool born_here(const bool btf, const struct sock *sk, int oldstate, int newstate, struct tt_owner *fresh,
				      __u64 *now)
{
	bool listen = newstate == TCP_LISTEN;

	if (oldstate != TCP_CLOSE || (newstate != TCP_SYN_SENT && !listen))
		return false;
	if (!is_target(bpf_get_current_pid_tgid() >> 32) || !sk_is_tcp(btf, sk))
		return false;
	/* the stack is taken at syscall entry (on_acquire_enter), not here: a capture is long, and
	 * a softirq transition landing inside this program on the same CPU would be skipped */
	*now = bpf_ktime_get_ns();
	owner_here(fresh, acquiring_syscall_fd(listen), listen ? TT_ORIGIN_LISTEN : TT_ORIGIN_CONNECT, *now);
	return true;
}

/*
 * Learn the owner of a socket the owners map does not know yet. Order matters:
 * sockets seeded from sock_diag at attach; then a new child of a traced
 * listener; then the acquisitions that only ever run in the owner's own syscall
 * (connect: CLOSE -> SYN_SENT, listen: CLOSE -> LISTEN). Every other unknown
 * socket is not ours, and is dropped before any of its fields is read: in
 * --pid mode most transitions on a busy box are other processes' (the cost of
 * this path is what the nginx benchmark measures).
 *
 * fresh: the caller's buffer for the new entry (owner_put may return it); *now:
 * the clock read for a new owner, reused by the caller for its record.
 */
static __always_inline struct tt_owner *learn_owner(const bool btf, const struct sock *sk, int oldstate, int newstate,
						    struct tt_owner *fresh, __u64 *now)
{
	__u64 skey = (__u64)sk;
	struct tt_owner *o;

	/* a listener's new child is never a seeded socket (and its cookie may be the listener's: sk_is_early_clone) */
	if (seeded && !(oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV)) {
		__u64 cookie = sk_cookie_of(btf, sk);

		if (cookie) {
			o = bpf_map_lookup_elem(&seeds, &cookie);
			if (o) {
				*fresh = *o;
				bpf_map_delete_elem(&seeds, &cookie);
				count(TT_CNT_SEEDED_HITS);
				return owner_put(skey, fresh);
			}
		}
	}

	if (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV) {
		struct tt_listen_key lk = { .netns = sk_netns_of(btf, sk), .port = KREAD(btf, sk, __sk_common.skc_num) };

		o = bpf_map_lookup_elem(&listeners, &lk);
		if (!o)
			return NULL;
		*fresh = *o;
		fresh->first_ns = *now = bpf_ktime_get_ns();
		fresh->fd = -1;
		fresh->origin = TT_ORIGIN_ACCEPT_PENDING;
		fresh->flags = 0; /* a new socket: not published, no stack taken (the listener's are its own) */
		__builtin_memset(fresh->stack_ids, 0, sizeof(fresh->stack_ids));
		return owner_put(skey, fresh);
	}

	if (born_here(btf, sk, oldstate, newstate, fresh, now))
		return owner_put(skey, fresh);
	return NULL;
}

/* as: sent on the owner's behalf (a call held back in summary mode), else by the caller */
static __always_inline void emit_sockcall(const bool btf, const struct sock *sk, __u8 call, __s32 fd, __s32 arg, __u8 via,
					  const struct tt_owner *as)
{
	__u64 id = bpf_get_current_pid_tgid();
	void *ring;
	struct tt_sockcall *e = reserve(sizeof(*e), &ring);

	if (!e)
		return;
	fill_hdr(&e->hdr, TT_KIND_SOCKCALL, sizeof(*e), 0);
	e->sk = (__u64)sk;
	e->cookie = sk_cookie_of(btf, sk);
	read_tuple(btf, sk, &e->tuple);
	e->netns = sk_netns_of(btf, sk);
	e->fd = fd;
	e->arg = arg;
	e->call = call;
	e->state = KREAD(btf, sk, __sk_common.skc_state);
	e->via = via;
	if (as) {
		e->tgid = as->tgid;
		e->tid = 0;
		__builtin_memcpy(e->comm, as->comm, sizeof(e->comm));
	} else {
		e->tgid = id >> 32;
		e->tid = (__u32)id;
		current_comm(e->comm);
	}
	submit(ring, e);
}

/*
 * Summary mode pre-creates the owners entry of a socket being connected or
 * made a listener at syscall entry (on_acquire_enter), so that the stack taken
 * there can be held: such an entry is this socket's, not a dead one's.
 */
static __always_inline bool entered_by_owner(const struct tt_owner *o, int newstate)
{
	if (!targ_summary || o->state != TCP_CLOSE || newstate == TCP_SYN_RECV)
		return false;
	return o->tgid == (__u32)(bpf_get_current_pid_tgid() >> 32) && o->fd == acquiring_syscall_fd(newstate == TCP_LISTEN);
}

/*
 * The owners map's entry for a transition's socket (targ_owners): learnt now
 * if the socket is new to it. NULL: not a socket the kernel follows.
 */
static __always_inline struct tt_owner *mapped_owner(const bool btf, const struct sock *sk, int oldstate, int newstate,
						     struct tt_owner *fresh, __u64 *now)
{
	__u64 skey = (__u64)sk;
	/* in --pid mode the owners map only ever holds targets' sockets (every way in checks is_target) */
	struct tt_owner *o = bpf_map_lookup_elem(&owners, &skey);

	if (o && ((oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV) ||
		  (oldstate == TCP_CLOSE && (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN))) &&
	    !entered_by_owner(o, newstate)) {
		/*
		 * A socket is born (a listener's new child, or connect/listen from CLOSE) at
		 * an address the map still holds: the entry is a dead socket's, whose CLOSE
		 * was never seen (the kernel skipped that run: missedInKernel). Its owner
		 * must not be inherited: learn this one's afresh.
		 */
		bpf_map_delete_elem(&owners, &skey);
		o = NULL;
	}
	if (!o)
		o = learn_owner(btf, sk, oldstate, newstate, fresh, now);
	return o;
}

static __always_inline void handle_transition(const bool btf, const struct sock *sk, int oldstate, int newstate)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 skey = (__u64)sk;
	__u64 now = 0; /* set by learn_owner when it makes an entry: one clock read for both */
	struct tt_transition *e;
	void *ring;
	struct tt_owner *o, fresh = {};
	struct tt_tuple t = {};
	__u32 netns;
	__u16 flags = 0;
	__s32 call_fd = -1, call_arg = 0;
	__u8 call;
	bool early;

	if (!sk)
		return;
	if (targ_owners)
		o = mapped_owner(btf, sk, oldstate, newstate, &fresh, &now);
	else /* the agent's table attributes the rest */
		o = born_here(btf, sk, oldstate, newstate, &fresh, &now) ? &fresh : NULL;
	if (!o) {
		/* --pid: not a target's socket. Whole system: any TCP socket but our own. */
		if (targ_filter) {
			count(TT_CNT_FILTERED);
			return;
		}
		if ((__u32)(id >> 32) == (__u32)targ_self_tgid || !sk_is_tcp(btf, sk))
			return;
	}
	call = releasing_call(btf, sk, oldstate, newstate, &call_fd, &call_arg);
	if (o) {
		o->state = newstate;
		if (held(o)) {
			/* summary mode: only CLOSE_WAIT (a leak in the making) and listeners are worth a record */
			if (newstate != TCP_CLOSE_WAIT && newstate != TCP_LISTEN) {
				count(TT_CNT_SUMMARISED);
				if (newstate == TCP_CLOSE)
					bpf_map_delete_elem(&owners, &skey);
				else if (call == TT_CALL_CLOSE) /* sent if the socket is published after all */
					o->flags |= TT_OWNER_FD_CLOSED;
				return;
			}
			publish(btf, sk, o);
		}
		flags |= TT_F_OWNER_KNOWN;
		if (o->tgid == (__u32)(id >> 32))
			flags |= TT_F_OWNER_ON_CPU;
	}

	early = sk_is_early_clone(btf, sk, oldstate, newstate);
	if (early) {
		t.family = KREAD(btf, sk, __sk_common.skc_family); /* tuple not set yet (< 6.15) */
		/* but the port is the listener's, and the child's own: the agent's table finds the listener by it */
		if (!targ_owners)
			t.sport = KREAD(btf, sk, __sk_common.skc_num);
	} else
		read_tuple(btf, sk, &t);
	netns = sk_netns_of(btf, sk);

	/* a traced listener: remember its port so its children are attributed before accept() (no owners map: the agent's table does) */
	if (targ_owners && o && newstate == TCP_LISTEN) {
		struct tt_listen_key lk = { .netns = netns, .port = t.sport };

		if (bpf_map_update_elem(&listeners, &lk, o, BPF_ANY))
			count(TT_CNT_LISTENERS_FULL);
	} else if (targ_owners && oldstate == TCP_LISTEN && newstate == TCP_CLOSE) {
		struct tt_listen_key lk = { .netns = netns, .port = t.sport };

		bpf_map_delete_elem(&listeners, &lk);
	}

/* the fields both transition records have (tt_transition, tt_transition4), from handle_transition's locals */
#define FILL_TRANSITION(r, kind)                                                                     \
	do {                                                                                         \
		fill_hdr_at(&(r)->hdr, kind, sizeof(*(r)), flags, now);                              \
		(r)->sk = skey;                                                                      \
		(r)->cookie = early ? 0 : sk_cookie_of(btf, sk); /* early clone: the listener's (< 6.15) */ \
		(r)->netns = netns;                                                                  \
		(r)->oldstate = oldstate;                                                            \
		(r)->newstate = newstate;                                                            \
		(r)->cpu_tgid = id >> 32;                                                            \
		(r)->cpu_tid = (__u32)id;                                                            \
		current_comm((r)->cpu_comm);                                                         \
		(r)->call = call;                                                                    \
		(r)->call_fd = call_fd;                                                              \
		(r)->call_arg = call_arg;                                                            \
	} while (0)
	if (!o && t.family == AF_INET) {
		/* no owner to carry, 4-byte addresses: the compact record (tt_transition4) */
		struct tt_transition4 *c = reserve(sizeof(*c), &ring);

		if (!c)
			goto out;
		FILL_TRANSITION(c, TT_KIND_TRANSITION4);
		__builtin_memcpy(c->saddr, t.saddr, 4);
		__builtin_memcpy(c->daddr, t.daddr, 4);
		c->sport = t.sport;
		c->dport = t.dport;
		c->pad = 0;
		c->pad2 = 0;
		submit(ring, c);
		goto out;
	}
	e = reserve(sizeof(*e), &ring);
	if (!e)
		goto out;
	FILL_TRANSITION(e, TT_KIND_TRANSITION);
#undef FILL_TRANSITION
	e->tuple = t;
	if (o) {
		e->owner_tgid = o->tgid;
		e->owner_fd = o->fd;
		e->owner_first_ns = o->first_ns;
		e->origin = o->origin;
		__builtin_memcpy(e->owner_comm, o->comm, sizeof(e->owner_comm));
	} else {
		e->owner_fd = -1;
	}
	submit(ring, e);
	/* a close of its fd held back: after the transition that gives user space the socket */
	if (o && (o->flags & TT_OWNER_FD_CLOSED)) {
		o->flags &= ~TT_OWNER_FD_CLOSED;
		emit_sockcall(btf, sk, TT_CALL_CLOSE, o->fd, 0, TT_VIA_SYSCALL, o);
	}
out:
	if (targ_owners && newstate == TCP_CLOSE && o)
		bpf_map_delete_elem(&owners, &skey);
}

/*
 * The accepted socket now belongs to the caller; returns its owners entry.
 * Sockets already reset (CLOSE) are not tracked.
 */
static __always_inline struct tt_owner *claim_accepted(const bool btf, struct sock *sk, __s32 fd, struct tt_owner *fresh)
{
	__u64 skey = (__u64)sk;
	struct tt_owner *o;
	__u8 state;

	if (!targ_owners)
		return NULL; /* the accept record itself tells the agent's table */
	o = bpf_map_lookup_elem(&owners, &skey);
	state = KREAD(btf, sk, __sk_common.skc_state);

	if (state == TCP_CLOSE) {
		if (o)
			bpf_map_delete_elem(&owners, &skey);
		return NULL;
	}
	if (o) {
		/* keep first_ns: the socket was ours (as a listener's child) since SYN_RECV */
		o->tgid = bpf_get_current_pid_tgid() >> 32;
		if (fd >= 0)
			o->fd = fd;
		o->origin = TT_ORIGIN_ACCEPT;
		current_comm(o->comm);
		return o;
	}
	owner_here(fresh, fd, TT_ORIGIN_ACCEPT, bpf_ktime_get_ns());
	fresh->state = state;
	return owner_put(skey, fresh);
}

/* accept()/accept4() returned fd: resolve it, claim the socket, report the acceptor. */
static __always_inline void on_accept_exit(const bool btf, long ret)
{
	struct sock *sk;

	if (ret < 0 || !is_target(bpf_get_current_pid_tgid() >> 32))
		return;
	sk = fd_to_tcp_sk(btf, (int)ret);
	if (!sk)
		return;
	struct tt_owner fresh = {};
	struct tt_owner *o = claim_accepted(btf, sk, (__s32)ret, &fresh);

	/* the stack first: a full copy publishes a held socket, and then its accept is sent too */
	capture_stack(btf, sk, o, TT_SITE_ACQUIRE, TT_CALL_ACCEPT);
	/* held (summary mode): the fd is in the owners entry, sent with the socket when published */
	if (!held(o))
		emit_sockcall(btf, sk, TT_CALL_ACCEPT, (__s32)ret, 0, TT_VIA_SYSCALL, NULL);
}

/* Return of inet_csk_accept (fexit / kretprobe): ownership without the fd, also for io_uring. */
static __always_inline void on_inet_csk_accept(struct sock *sk, __u8 via)
{
	if (!sk || !is_target(bpf_get_current_pid_tgid() >> 32) || !sk_is_tcp(RAW_PTR, sk))
		return;
	if (!targ_owners) {
		/* nothing to claim in: tell the agent, unless accept()'s exit hook is about to, with the fd */
		long nr = USER_SYSCALL_NR(current_user_regs());

		if (nr != NR_accept && nr != NR_accept4)
			emit_sockcall(RAW_PTR, sk, TT_CALL_ACCEPT, -1, 0, via, NULL);
		return;
	}
	struct tt_owner fresh = {};

	claim_accepted(RAW_PTR, sk, -1, &fresh);
}

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
 * connect()/listen() entry, only with stacks: the acquire stack. The fd itself
 * is learnt by the transition the call causes (acquiring_syscall_fd), so
 * without stacks these calls are not hooked at all. In summary mode the owners
 * entry is made here, to hold the stack in (entered_by_owner keeps it).
 */
static __always_inline void on_acquire_enter(const bool btf, __u32 nr, long fd)
{
	struct sock *sk;
	struct tt_owner *o, fresh = {};
	__u64 skey;

	if (!targ_stacks || !is_target(bpf_get_current_pid_tgid() >> 32))
		return;
	sk = fd_to_tcp_sk(btf, (int)fd);
	if (!sk)
		return;
	skey = (__u64)sk;
	o = bpf_map_lookup_elem(&owners, &skey);
	if (targ_summary && (!o || o->state == TCP_CLOSE) && KREAD(btf, sk, __sk_common.skc_state) == TCP_CLOSE) {
		owner_here(&fresh, (__s32)fd, nr == NR_listen ? TT_ORIGIN_LISTEN : TT_ORIGIN_CONNECT, bpf_ktime_get_ns());
		o = owner_put(skey, &fresh);
	}
	capture_stack(btf, sk, o, TT_SITE_ACQUIRE, nr == NR_listen ? TT_CALL_LISTEN : TT_CALL_CONNECT);
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

/* a read-family syscall returned: 0 on a traced socket is the program seeing the peer's FIN */
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
	if (ret != 0)
		return;
	sk = fd_to_tcp_sk(btf, fd);
	if (sk)
		io_site(btf, sk, TT_OWNER_EOF_SEEN, TT_SITE_EOF);
}

/*
 * The raw sys_enter/sys_exit fallback runs for every syscall on the box: the
 * switch on the number is the first test, and the arguments are read only in
 * the cases that use them.
 */
static __always_inline void on_sys_enter(const bool btf, struct pt_regs *regs, long nr)
{
	switch (nr) {
	case NR_write:
	case NR_writev:
	case NR_sendto:
	case NR_sendmsg:
	case NR_sendmmsg:
		if (targ_io_syscalls)
			on_io_enter(RAW_PTR, SYSCALL_ARG1(btf, regs));
		break;
	case NR_read:
	case NR_readv:
	case NR_recvfrom:
	case NR_recvmsg:
		if (targ_io_syscalls)
			on_read_enter(SYSCALL_ARG1(btf, regs));
		break;
	case NR_connect:
	case NR_listen:
		on_acquire_enter(RAW_PTR, nr, SYSCALL_ARG1(btf, regs));
		break;
	}
}

static __always_inline void on_sys_exit(long nr, long ret)
{
	switch (nr) {
	case NR_accept:
	case NR_accept4:
		on_accept_exit(RAW_PTR, ret);
		break;
	case NR_read:
	case NR_readv:
	case NR_recvfrom:
	case NR_recvmsg:
		if (targ_stacks && targ_io_syscalls)
			on_read_exit(RAW_PTR, ret);
		break;
	}
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

/*
 * ==== flavours: tp_btf (5.5+) and raw_tp (4.17+): raw tracepoints, no tracefs ====
 * One definition for both, so that a hook added to one is in the other. tp_btf
 * arguments are typed kernel pointers, read with plain loads (BTF_PTR: no
 * bpf_probe_read call per syscall or transition); raw_tp ones are untyped and
 * read with CO-RE probe reads (RAW_PTR). The sock I/O tracepoints (6.3+) give
 * the socket itself: no fd -> sock walk, and no hook on other syscalls.
 */
#define RAW_TRACEPOINT_FLAVOUR(flavour, btf)                                                          \
	SEC(#flavour "/inet_sock_set_state")                                                          \
	int BPF_PROG(flavour##_inet_sock_set_state, struct sock *sk, int oldstate, int newstate)      \
	{                                                                                             \
		handle_transition(btf, sk, oldstate, newstate);                                       \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sys_enter")                                                                    \
	int BPF_PROG(flavour##_sys_enter, struct pt_regs *regs, long id)                              \
	{                                                                                             \
		on_sys_enter(btf, regs, id);                                                          \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sys_exit")                                                                     \
	int BPF_PROG(flavour##_sys_exit, struct pt_regs *regs, long ret)                              \
	{                                                                                             \
		on_sys_exit(SYSCALL_NR(btf, regs), ret);                                              \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sock_send_length")                                                             \
	int BPF_PROG(flavour##_sock_send_length, struct sock *sk, int ret, int flags)                 \
	{                                                                                             \
		on_sock_io(btf, sk, true, ret);                                                       \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sock_recv_length")                                                             \
	int BPF_PROG(flavour##_sock_recv_length, struct sock *sk, int ret, int flags)                 \
	{                                                                                             \
		on_sock_io(btf, sk, false, ret);                                                      \
		return 0;                                                                             \
	}                                                                                             \
	SEC(#flavour "/sched_process_fork")                                                           \
	int BPF_PROG(flavour##_sched_process_fork, struct task_struct *parent, struct task_struct *child) \
	{                                                                                             \
		on_fork(BPF_CORE_READ(parent, tgid), BPF_CORE_READ(child, tgid));                    \
		return 0;                                                                             \
	}

RAW_TRACEPOINT_FLAVOUR(tp_btf, BTF_PTR)
RAW_TRACEPOINT_FLAVOUR(raw_tp, RAW_PTR)

/* ==== flavour: plain tracepoints (perf events; need tracefs for their ids) ==== */

SEC("tracepoint/sock/inet_sock_set_state")
int tp_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	handle_transition(RAW_PTR, (const struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate);
	return 0;
}

/*
 * The per-syscall tracepoints, in two builds of the same programs: the fd ->
 * sock walk through typed pointers (suffix _btf: 6.2+, when the feature probe
 * loads it) or through probe reads. User space loads one build whole.
 */
#define TP_SYSCALL(dir, name, suffix, call)                                         \
	SEC("tracepoint/syscalls/sys_" #dir "_" #name)                              \
	int tp_sys_##dir##_##name##suffix(struct trace_event_raw_sys_##dir *ctx)    \
	{                                                                           \
		call;                                                               \
		return 0;                                                           \
	}
#define TP_SYS_ENTER(name, suffix, call) TP_SYSCALL(enter, name, suffix, call)
#define TP_SYS_EXIT(name, suffix, call) TP_SYSCALL(exit, name, suffix, call)
/* stack sites (when the sock I/O tracepoints are missing): first write/send, EOF reads */
#define TP_SYS_WRITE(name, suffix, btf) TP_SYS_ENTER(name, suffix, on_io_enter(btf, ctx->args[0]))
#define TP_SYS_READ(name, suffix, btf)                                      \
	TP_SYS_ENTER(name, suffix, on_read_enter(ctx->args[0]))             \
	TP_SYS_EXIT(name, suffix, on_read_exit(btf, ctx->ret))
#define TP_SYSCALLS(suffix, btf)                                                                   \
	TP_SYS_EXIT(accept4, suffix, on_accept_exit(btf, ctx->ret))                                 \
	TP_SYS_EXIT(accept, suffix, on_accept_exit(btf, ctx->ret))                                  \
	TP_SYS_ENTER(connect, suffix, on_acquire_enter(btf, NR_connect, ctx->args[0]))              \
	TP_SYS_ENTER(listen, suffix, on_acquire_enter(btf, NR_listen, ctx->args[0]))                \
	TP_SYS_WRITE(write, suffix, btf)                                                            \
	TP_SYS_WRITE(writev, suffix, btf)                                                           \
	TP_SYS_WRITE(sendto, suffix, btf)                                                           \
	TP_SYS_WRITE(sendmsg, suffix, btf)                                                          \
	TP_SYS_READ(read, suffix, btf)                                                              \
	TP_SYS_READ(readv, suffix, btf)                                                             \
	TP_SYS_READ(recvfrom, suffix, btf)                                                          \
	TP_SYS_READ(recvmsg, suffix, btf)

TP_SYSCALLS(, RAW_PTR)
TP_SYSCALLS(_btf, BTF_PTR)

SEC("tracepoint/sched/sched_process_fork")
int tp_sched_process_fork(struct trace_event_raw_sched_process_fork *ctx)
{
	/* child_pid is a tid: for a new thread it is not a tgid, and adding it is harmless */
	on_fork(bpf_get_current_pid_tgid() >> 32, ctx->child_pid);
	return 0;
}

/* ==== flavour: fexit / kretprobe for inet_csk_accept (accept variants) ==== */

SEC("fexit/inet_csk_accept")
int fexit_inet_csk_accept(unsigned long long *ctx)
{
	on_inet_csk_accept(inet_csk_accept_ret(ctx), TT_VIA_FEXIT);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(kretprobe_inet_csk_accept, struct sock *sk)
{
	on_inet_csk_accept(sk, TT_VIA_KRETPROBE);
	return 0;
}
