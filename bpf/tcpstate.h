/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between the kernel programs (tcpstate.bpf.c) and user space
 * (native/ and, through a generated decoder, src/).
 *
 * Rules, because both clang -target bpf and the host compiler read this file:
 * only fixed-width __u8..__u64 and fixed arrays, no pointers, no bool, nothing
 * from vmlinux.h. Fields go largest first, padding is explicit, and every size
 * is pinned with _Static_assert. Every record in the ring buffer starts with
 * struct tt_hdr so user space can dispatch on kind and skip by size.
 *
 * src/generated/events.ts is generated from the BTF of this header
 * (scripts/gen-events.mjs): offsets are never kept in sync by hand.
 */
#ifndef TCPTRACE_TCPSTATE_H
#define TCPTRACE_TCPSTATE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#if defined(__cplusplus) && !defined(_Static_assert)
#define _Static_assert static_assert /* the addon includes this header from C++ */
#endif

#define TT_COMM_LEN 16
#define TT_RECORD_VERSION 1

/* Record kinds in the ring buffer (and in recordings). */
enum tt_kind {
	TT_KIND_TRANSITION = 1, /* sock:inet_sock_set_state for a TCP socket */
	TT_KIND_SOCKCALL = 2,	/* a syscall / kernel call that acquires or releases a socket */
	TT_KIND_FORK = 3,	/* a traced process forked (--children) */
	TT_KIND_STACK = 4,	/* user registers + a copy of the user stack, at a socket's sites */
	TT_KIND_STACK_REF = 5,	/* a stack seen before: its id, no copy (see stack dedup below) */
	TT_KIND_TRANSITION4 = 6, /* a transition of an IPv4 socket, owner not in the record (tt_transition4) */
};

/* How the owner got the socket. */
enum tt_origin {
	TT_ORIGIN_UNKNOWN = 0,
	TT_ORIGIN_ACCEPT = 1,	      /* returned by accept()/accept4() */
	TT_ORIGIN_CONNECT = 2,	      /* connect() (CLOSE -> SYN_SENT) */
	TT_ORIGIN_LISTEN = 3,	      /* listen() (CLOSE -> LISTEN) */
	TT_ORIGIN_PREEXISTING = 4,    /* open before tcptrace attached (seeded from sock_diag) */
	TT_ORIGIN_ACCEPT_PENDING = 5, /* child of a traced listener, not yet accepted */
};

/*
 * Socket calls: reported in struct tt_sockcall (accept), or in the transition
 * they make (tt_transition.call: close, shutdown).
 */
enum tt_call {
	TT_CALL_ACCEPT = 1,
	TT_CALL_CONNECT = 2,
	TT_CALL_LISTEN = 3,
	TT_CALL_CLOSE = 4,
	TT_CALL_SHUTDOWN = 5,
};

/* Which kind of hook produced a sockcall (so a report can say how it knows). */
enum tt_via {
	TT_VIA_SYSCALL = 0,  /* syscall tracepoint (tracepoint, raw_tp or tp_btf flavour) */
	TT_VIA_FEXIT = 1,    /* fexit/inet_csk_accept */
	TT_VIA_KRETPROBE = 2 /* kretprobe/inet_csk_accept */
};

/* Where in a socket's life a stack was taken (all in the owner's process context). */
enum tt_site {
	TT_SITE_ACQUIRE = 1, /* accept / connect / listen */
	TT_SITE_IO = 2,	     /* first write/send after acquiring it */
	TT_SITE_EOF = 3,     /* the read that returned 0: the program saw the peer's FIN */
	TT_SITE_READ = 4,    /* first read that returned data: the handler that took the request (accepts in one place, reads in another) */
};
#define TT_SITES 4

/* targets checked in the kernel without a map lookup (the rest spill to the targets map) */
#define TT_FAST_TARGETS 8

/* Per-CPU counters (map "counters"); user space sums and reports them. */
enum tt_counter {
	TT_CNT_EVENTS = 0,	      /* records submitted to the ring buffer */
	TT_CNT_RB_FULL = 1,	      /* bpf_ringbuf_reserve failed: record lost */
	TT_CNT_OWNERS_FULL = 2,	      /* owners map full: a socket's owner is not tracked */
	TT_CNT_LISTENERS_FULL = 3,    /* listeners map full */
	TT_CNT_TARGETS_FULL = 4,      /* targets map full: a forked child is not followed */
	TT_CNT_PENDING_FULL = 5,      /* pending (tid -> fd) map full */
	TT_CNT_FILTERED = 6,	      /* transitions dropped in the kernel by the pid filter */
	TT_CNT_WAKEUPS = 7,	      /* forced ring buffer wake-ups (watermark crossed, or a full stack copy) */
	TT_CNT_SEEDED_HITS = 8,	      /* sockets claimed from the pre-attach seed map */
	TT_CNT_STACKS = 9,	      /* stacks captured */
	TT_CNT_STACKS_LIMITED = 10,   /* stacks not captured: per-process rate limit */
	TT_CNT_STACK_SHORT = 11,      /* stack copies cut short by an unreadable page */
	TT_CNT_STACKS_DEDUPED = 12,   /* stacks recognised in the kernel: a reference, no copy */
	TT_CNT_SUMMARISED = 13,	      /* transitions kept in the kernel (summary mode: socket not published yet) */
	TT_CNT_STACKS_RECALLED = 14,  /* stacks recognised from the walk memo: no rule walk (see "Stack dedup") */
	TT_CNT_STACKS_BUSY = 15,      /* stacks not captured: preempted captures held every scratch of that CPU (7.0+) */
	TT_CNT_CLOSES_FULL = 16,      /* active_closes map full: a held socket's active close is not counted */
	TT_CNT_LINGER_FULL = 17,      /* lingering map full: a held socket entering CLOSE_WAIT was published at once */
	TT_CNT_HELD_COUNTS_FULL = 18, /* held_counts map full: a held socket's brief CLOSE_WAIT or transitions are not counted */
	TT_CNT_LINGER_PUBLISHED = 19, /* held sockets the agent's sweep published after they stayed in CLOSE_WAIT */
	TT_CNT__MAX = 20,
};

/* Flags in tt_hdr.flags */
#define TT_F_OWNER_KNOWN (1u << 0)   /* owner_* fields come from the owners map */
#define TT_F_OWNER_ON_CPU (1u << 1)  /* the owner's own thread was on the CPU */
/*
 * A transition into CLOSE_WAIT sent late, by the agent's sweep (publish_lingering in
 * bpf/lib/linger.bpf.h): hdr.ts_ns is when the socket entered CLOSE_WAIT, a while before
 * the record was written, and no task of the socket's was on the CPU (cpu_* are 0).
 */
#define TT_F_LATE (1u << 2)

struct tt_hdr {
	__u16 kind; /* enum tt_kind */
	__u16 size; /* whole record, header included */
	__u16 flags;
	__u8 version; /* TT_RECORD_VERSION */
	__u8 cpu;
	__u64 ts_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
};
_Static_assert(sizeof(struct tt_hdr) == 16, "tt_hdr layout");

/* The 4-tuple; IPv4 addresses use the first 4 bytes of the 16. */
struct tt_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* host byte order */
	__u16 dport; /* host byte order */
	__u16 family; /* AF_INET / AF_INET6 */
	__u16 pad;
};
_Static_assert(sizeof(struct tt_tuple) == 40, "tt_tuple layout");

struct tt_transition {
	struct tt_hdr hdr;
	__u64 sk;	   /* kernel address of struct sock: identity while the socket lives */
	__u64 owner_first_ns; /* when the owner was first seen holding it (0: unknown) */
	__u64 cookie;	   /* socket cookie if one was generated (sock_diag did, for sockets present at attach), else 0 */
	struct tt_tuple tuple;
	__u32 owner_tgid;  /* 0 when unknown */
	__s32 owner_fd;	   /* -1 when unknown */
	__u32 cpu_tgid;	   /* who was on the CPU: often NOT the owner (softirq) */
	__u32 cpu_tid;
	__u32 netns;	   /* network namespace inode */
	__u8 oldstate;
	__u8 newstate;
	__u8 origin;	   /* enum tt_origin */
	__u8 call;	   /* enum tt_call: the close()/shutdown() of the task on the CPU that made this transition; 0: none */
	char owner_comm[TT_COMM_LEN];
	char cpu_comm[TT_COMM_LEN];
	/*
	 * The call's fd (-1: not known, close_range()) and argument (shutdown: how).
	 * Last, not with the other 32-bit fields: records of 136 bytes (call 0) from
	 * before the call was folded in keep their layout and still decode.
	 */
	__s32 call_fd;
	__s32 call_arg;
};
_Static_assert(sizeof(struct tt_transition) == 144, "tt_transition layout");

/*
 * The transition of an IPv4 socket the record names no owner for: in a whole-system
 * trace without stacks (tcptrace record) the kernel keeps no owners map and the agent
 * attributes every socket, so all but connect() and listen() go out like this. The
 * fields of tt_transition less the owner's, with 4-byte addresses: 88 bytes instead of
 * 144, so the rings, the agent's copies and a recording carry 39 % less (the agent's CPU
 * per connection under the nginx benchmark: 1.85 -> 1.37 us, side by side).
 */
struct tt_transition4 {
	struct tt_hdr hdr;
	__u64 sk;
	__u64 cookie;
	__u8 saddr[4];	 /* network byte order */
	__u8 daddr[4];
	__u16 sport;	 /* host byte order */
	__u16 dport;
	__u32 cpu_tgid;
	__u32 cpu_tid;
	__u32 netns;
	__u8 oldstate;
	__u8 newstate;
	__u8 call;
	__u8 pad;
	char cpu_comm[TT_COMM_LEN];
	__s32 call_fd;
	__s32 call_arg;
	__u32 pad2;
};
_Static_assert(sizeof(struct tt_transition4) == 88, "tt_transition4 layout");

struct tt_sockcall {
	struct tt_hdr hdr;
	__u64 sk;
	__u64 cookie; /* as in tt_transition */
	struct tt_tuple tuple;
	__u32 tgid;
	__u32 tid;
	__s32 fd;     /* -1 when the hook cannot know it (fexit/kretprobe accept) */
	__s32 arg;    /* shutdown: how */
	__u32 netns;
	__u8 call;    /* enum tt_call */
	__u8 state;   /* TCP state at the call */
	__u8 via;     /* enum tt_via */
	__u8 pad;
	char comm[TT_COMM_LEN];
};
_Static_assert(sizeof(struct tt_sockcall) == 112, "tt_sockcall layout");

struct tt_fork {
	struct tt_hdr hdr;
	__u32 parent_tgid;
	__u32 child_tgid;
	char comm[TT_COMM_LEN];
};
_Static_assert(sizeof(struct tt_fork) == 40, "tt_fork layout");

/* The user registers an x86-64 DWARF unwinder needs (CFA + callee-saved) */
struct tt_user_regs {
	__u64 ip;
	__u64 sp;
	__u64 bp;
	__u64 bx;
	__u64 r12;
	__u64 r13;
	__u64 r14;
	__u64 r15;
};
_Static_assert(sizeof(struct tt_user_regs) == 64, "tt_user_regs layout");

#define TT_STACK_MAX 32768 /* most user stack bytes one record carries */
#define TT_SCRATCH_PER_CPU 2 /* stack scratch records per CPU: one capture may be preempted by another (7.0+) */

/*
 * A user stack at one of a socket's sites. Variable size: hdr.size covers the
 * fixed part and stack_len bytes of stack[] (rounded up to 8). The stack bytes
 * are user data: user space unwinds them in memory and never writes them out.
 */
struct tt_stack {
	struct tt_hdr hdr;
	__u64 sk;
	__u64 cookie;
	struct tt_user_regs regs;
	__u32 tgid;
	__u32 tid;
	__u32 stack_len; /* valid bytes in stack[]: whole pages from (regs.sp & ~4095) upwards */
	__u8 site;	 /* enum tt_site */
	__u8 call;	 /* syscall number class: enum tt_call for acquire, else 0 */
	__u8 py_frames;	 /* struct tt_py_frame records after the stack bytes (CPython processes) */
	__u8 py_status;	 /* enum tt_py_status: why the Python frames end where they do */
	__u8 stack[TT_STACK_MAX];
};
_Static_assert(sizeof(struct tt_stack) == 112 + TT_STACK_MAX, "tt_stack layout");
#define TT_STACK_FIXED 112

/*
 * CPython frames (3.11+). A CPython process's Python frames (_PyInterpreterFrame)
 * live in the interpreter's data-stack chunks and generator objects, not on the
 * C stack, and the chain changes as soon as the syscall returns: the kernel
 * copies it at the capture, innermost first, one frame per record. User space
 * names the code objects later (they live long), from the target's memory.
 * See docs/python.md and src/stacks/python/.
 */
#define TT_PY_FRAMES_MAX 96	/* Python frames one capture copies; deeper stacks are cut (TT_PY_TRUNCATED) */
#define TT_PY_THREADS_MAX 64	/* thread states walked to find the calling thread's */
#define TT_PY_RUN_END (1u << 0) /* the oldest frame one _PyEval_EvalFrameDefault call runs: the next belongs to the C frame below */
#define TT_PY_CODE_UNREAD (1u << 1) /* the code object's co_firstlineno did not read: no guard, the name may be wrong */
#define TT_PY_SHIM (1u << 2)	/* 3.12+: a frame a C call into the interpreter pushed on the C stack; the run before it ends there */

enum tt_py_status {
	TT_PY_NONE = 0,	     /* not a CPython process tcptrace knows */
	TT_PY_COMPLETE = 1,  /* every frame, down to the thread's first */
	TT_PY_TRUNCATED = 2, /* cut at TT_PY_FRAMES_MAX */
	TT_PY_NO_THREAD = 3, /* the calling thread has no thread state among the first TT_PY_THREADS_MAX (not a Python thread) */
	TT_PY_FAULT = 4,     /* a frame did not read (paged out, or the chain changed under us) */
};

struct tt_py_frame {
	__u64 code;	   /* the frame's code object (PyCodeObject *; a shim's is not one) */
	__u32 instr;	   /* its instruction pointer, in bytes from the code object */
	__s32 firstlineno; /* the code object's co_firstlineno at the capture: guards against a code object freed and reused */
	__u8 flags;	   /* TT_PY_* */
	__u8 pad[7];
};
_Static_assert(sizeof(struct tt_py_frame) == 24, "tt_py_frame layout");

/*
 * Map py_procs (tgid -> this): where one CPython process keeps what the walk
 * reads, written by user space when it recognises the interpreter
 * (src/stacks/python/). Offsets are of the interpreter's own structs, from its
 * _Py_DebugOffsets (3.13+) or the table for its version (3.11, 3.12).
 */
struct tt_py_proc {
	__u64 interp_head;     /* address of _PyRuntime.interpreters.head */
	__u16 threads_head;    /* PyInterpreterState: threads.head */
	__u16 tstate_next;     /* PyThreadState: next */
	__u16 tstate_thread_id; /* PyThreadState: thread_id (pthread_self(): the thread's fsbase on x86-64 glibc) */
	__u16 tstate_frame;    /* PyThreadState: cframe (3.11, 3.12) or current_frame (3.13+) */
	__u16 cframe_frame;    /* _PyCFrame: current_frame; 0xffff: tstate_frame is the frame itself */
	__u16 frame_code;      /* _PyInterpreterFrame: f_code / f_executable */
	__u16 frame_previous;
	__u16 frame_instr;     /* prev_instr (3.11, 3.12) or instr_ptr (3.13+) */
	__u16 frame_owner;     /* owner (a byte) */
	__u16 frame_is_entry;  /* 3.11: is_entry (a byte); 0xffff: none */
	__u16 code_firstlineno;
	__u8 owner_cstack;     /* 3.12+: the owner value of the C-stack shim frames; 0xff: none */
	__u8 version_minor;
	__u8 pad[8];
};
_Static_assert(sizeof(struct tt_py_proc) == 40, "tt_py_proc layout");
#define TT_PY_NO_OFFSET 0xffff

/*
 * Stack dedup. From each full copy it unwinds, user space learns the CFA rule
 * (CFA = sp + cfa_off) of the innermost frames' pcs and registers a
 * fingerprint of the return addresses they lead to. The kernel walks those
 * rules over the live user stack (a few 8-byte reads, no copy) and, when the
 * fingerprint is known, emits a tt_stack_ref instead of a copy. A walk that
 * ended on a known stack is memoised per (process, site, pc, sp) in the kernel
 * alone (walk_memos in tcpstate.bpf.c): the next call from the same place reads
 * the return addresses back in one copy and compares them, without the walk.
 */
#define TT_DEDUP_DEPTH 6
#define TT_FP_SEED 0xcbf29ce484222325ULL /* FNV-1a 64 over return addresses */
#define TT_FP_PRIME 0x100000001b3ULL
/*
 * In a CPython process every Python code path shows the same interpreter frames
 * natively, so a stack's fingerprint there also folds in its Python frames: ph
 * = FNV-1a 64 (same seed and prime) over each frame's code and instr, and the
 * key's hash = (native hash ^ ph) * TT_FP_PRIME (ph: none when no frames).
 */

struct tt_cfa_key {
	__u64 pc;
	__u32 tgid;
	__u32 pad;
};
_Static_assert(sizeof(struct tt_cfa_key) == 16, "tt_cfa_key layout");

struct tt_known_key {
	__u64 hash;
	__u32 tgid;
	__u32 site;
};
_Static_assert(sizeof(struct tt_known_key) == 16, "tt_known_key layout");

struct tt_stack_ref {
	struct tt_hdr hdr;
	__u64 sk;
	__u64 cookie;
	__u64 hash;
	__u32 tgid;
	__u32 tid;
	__u32 stack_id; /* user space's id for the frames */
	__u8 site;
	__u8 depth;
	__u8 pad[2];
};
_Static_assert(sizeof(struct tt_stack_ref) == 56, "tt_stack_ref layout");

#define TT_OWNER_IO_SEEN (1u << 0)  /* the first write/send stack was taken */
#define TT_OWNER_EOF_SEEN (1u << 1) /* the EOF read stack was taken */
#define TT_OWNER_READ_SEEN (1u << 4) /* the first read's stack was taken */
/*
 * Summary mode (targ_summary: --pid with no live lines and no recording): a
 * target's socket is kept in the kernel, its transitions only counted, until it
 * is published: when it enters CLOSE_WAIT or LISTEN, or a full stack copy is
 * sent for it. From then on every event of it is sent, as without summary.
 */
#define TT_OWNER_PUBLISHED (1u << 2) /* user space knows this socket: send all its events */
#define TT_OWNER_FD_CLOSED (1u << 3) /* the owner closed an fd of it before it was published */

/* Value of the owners map (sk -> owner) and of the seeds map (cookie -> owner). */
struct tt_owner {
	__u64 first_ns;
	__u32 tgid;
	__s32 fd;
	/* summary mode: stack ids seen at its sites (index enum tt_site - 1; 0: none), sent when published */
	__u32 stack_ids[TT_SITES];
	__u8 origin;
	__u8 flags; /* TT_OWNER_* */
	__u8 state; /* TCP state after the last transition seen (summary mode: the end-of-trace states) */
	__u8 pad;
	/*
	 * A lingering socket's claim word (bpf/lib/linger.bpf.h): the sweep adds 1 before it
	 * looks at the state, the transition out of CLOSE_WAIT adds 2 after it set it. 0 otherwise.
	 * Here, where comm stays 8-aligned (it is copied 8 bytes at a time).
	 */
	__u32 linger;
	char comm[TT_COMM_LEN];
	/* the agent: transitions it passed while held (1 << enum tt_passed), added to held_counts when it is published or closes */
	__u32 passed;
	__u32 pad2;
};
_Static_assert(sizeof(struct tt_owner) == 64, "tt_owner layout");

/*
 * Value of the lingering map (the agent, bpf/lib/linger.bpf.h): a held socket now in
 * CLOSE_WAIT, kept from user space until it has stayed there linger_ns.
 */
struct tt_linger {
	__u64 entered_ns; /* when it entered CLOSE_WAIT */
	__u8 oldstate;	  /* the state it came from (ESTABLISHED, or SYN_RECV for a FIN before the handshake's end) */
	__u8 pad[7];
};
_Static_assert(sizeof(struct tt_linger) == 16, "tt_linger layout");

/* upper bounds (targ_cw_bounds_ns) of the brief CLOSE_WAIT histogram; one bucket more holds the rest */
#define TT_CW_BOUNDS 8

/*
 * The transitions a held socket passes in the kernel, one bit each in tt_owner.passed
 * and one counter each in tt_held_counts (the agent's tcptrace_transitions_total of the
 * sockets it never sees). Named FROM__TO (two underscores: state names have one), which
 * user space splits. Into CLOSE_WAIT and out of it are not here: the brief CLOSE_WAIT
 * counts (or the socket's own records, once published) have those. Anything else a
 * socket may pass (a rare simultaneous open) counts as OTHER.
 */
enum tt_passed {
	TT_PASSED_CLOSE__SYN_SENT = 0,
	TT_PASSED_CLOSE__LISTEN = 1,
	TT_PASSED_LISTEN__SYN_RECV = 2,
	TT_PASSED_LISTEN__CLOSE = 3,
	TT_PASSED_SYN_SENT__ESTABLISHED = 4,
	TT_PASSED_SYN_SENT__CLOSE = 5,
	TT_PASSED_SYN_RECV__ESTABLISHED = 6,
	TT_PASSED_SYN_RECV__CLOSE = 7,
	TT_PASSED_SYN_RECV__FIN_WAIT1 = 8,
	TT_PASSED_ESTABLISHED__FIN_WAIT1 = 9,
	TT_PASSED_ESTABLISHED__CLOSE = 10,
	TT_PASSED_FIN_WAIT1__FIN_WAIT2 = 11,
	TT_PASSED_FIN_WAIT1__CLOSING = 12,
	TT_PASSED_FIN_WAIT1__CLOSE = 13,
	TT_PASSED_FIN_WAIT2__CLOSE = 14,
	TT_PASSED_CLOSING__CLOSE = 15,
	TT_PASSED_LAST_ACK__CLOSE = 16,
	TT_PASSED_OTHER = 17,
	TT_PASSED__MAX = 18,
};

/*
 * Value of the held_counts map (key: tgid), the agent's: what the kernel counts of a
 * process's held sockets instead of sending them. Those that left CLOSE_WAIT before the
 * agent's sweep published them (bpf/lib/linger.bpf.h), and the transitions its held
 * sockets passed (bpf/lib/held_counts.bpf.h).
 */
struct tt_held_counts {
	__u64 to_last_ack; /* brief CLOSE_WAIT, closed by the program (CLOSE_WAIT -> LAST_ACK) */
	__u64 to_close;	   /* brief CLOSE_WAIT, reset (CLOSE_WAIT -> CLOSE) */
	__u64 sum_ns;	   /* their time in CLOSE_WAIT, summed */
	__u64 buckets[TT_CW_BOUNDS + 1]; /* how many took <= targ_cw_bounds_ns[i] (not cumulative); the last: longer */
	__u64 passed[TT_PASSED__MAX];	 /* transitions passed while held, by enum tt_passed */
};
_Static_assert(sizeof(struct tt_held_counts) == 96 + 8 * TT_PASSED__MAX, "tt_held_counts layout");

/*
 * Key of the active_closes map (summary mode): a process, and the stack id its
 * socket was acquired at (0: none held), of held sockets it closed first.
 */
struct tt_close_key {
	__u32 tgid;
	__u32 stack_id;
};
_Static_assert(sizeof(struct tt_close_key) == 8, "tt_close_key layout");

/* Key of the listeners map: a traced listener's port in its network namespace. */
struct tt_listen_key {
	__u32 netns;
	__u16 port;
	__u16 pad;
};
_Static_assert(sizeof(struct tt_listen_key) == 8, "tt_listen_key layout");

#endif /* TCPTRACE_TCPSTATE_H */
