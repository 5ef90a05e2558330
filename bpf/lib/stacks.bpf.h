/* SPDX-License-Identifier: GPL-2.0 */
/*
 * User stacks at the stack sites (acquire, first write, EOF read): the
 * per-process budget, the recognition of stacks user space has already
 * unwound (learnt CFA rules, fingerprints, the walk memo: a known stack costs
 * a 56-byte reference, not a copy), the full copy of registers and stack pages
 * when it is not known, and the per-CPU scratch records the copy is built in.
 * Unwinding itself is user space's (native/stacks/). Needs: bpf_probe_read_user
 * (5.5), the ring buffer (5.8); preemptible programs (fentry, and raw_tp/tp_btf
 * on 7.0+) are why the scratch records have a try-lock.
 */
#ifndef TCPTRACE_LIB_STACKS_BPF_H
#define TCPTRACE_LIB_STACKS_BPF_H

#include "config.bpf.h"
#include "ring.bpf.h"
#include "owners.bpf.h"
#include "held_counts.bpf.h"
#include "python.bpf.h"
#include "linger.bpf.h"

/*
 * Scratch for stack records (too big for the 512-byte BPF stack), TT_SCRATCH_PER_CPU
 * per CPU: a plain array indexed by CPU * TT_SCRATCH_PER_CPU + slot, sized by user
 * space (per-CPU maps cap values at 32 KiB, less than a record). The slack keeps
 * the verifier's bound on the rounded-up record size inside the value. users:
 * see scratch_take.
 */
struct stack_scratch_value {
	struct tt_stack rec;
	struct tt_py_frame py_tail[TT_PY_FRAMES_MAX]; /* the Python frames follow the stack bytes in the record */
	__u8 slack[8];
	__u64 users;
	struct py_walk py;
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
					   __u8 *buf, const struct py_walk *py)
{
	struct walk_key wk = { .ip = ip, .sp = sp, .tgid = tgid, .site = site };
	struct tt_known_key kk = { .tgid = tgid, .site = site };
	struct walk_memo fresh = {}, *m;
	__u32 *stack_id, id, depth;

	m = recall_walk(&wk, buf);
	if (m && py && py->n) {
		/* the native walk is recalled, the stack is not: the Python frames decide it */
		count(TT_CNT_STACKS_RECALLED);
		kk.hash = py_fold(m->hash, py);
		depth = m->depth;
		stack_id = bpf_map_lookup_elem(&known_stacks, &kk);
		if (!stack_id)
			return false;
		id = *stack_id;
	} else if (m) {
		count(TT_CNT_STACKS_RECALLED);
		id = m->stack_id;
		kk.hash = m->hash;
		depth = m->depth;
	} else {
		depth = fingerprint(tgid, ip, sp, &fresh);
		if (!depth)
			return false;
		kk.hash = py_fold(fresh.hash, py);
		stack_id = bpf_map_lookup_elem(&known_stacks, &kk);
		if (!stack_id)
			return false;
		/* a memo holds the native walk; in a CPython process its stack id is not used (recalls fold the frames in again) */
		id = fresh.stack_id = *stack_id;
		/* a deeper span (a big frame on the way) is walked each time: one copy would not hold it */
		if (fresh.span <= TT_WALK_SPAN)
			bpf_map_update_elem(&walk_memos, &wk, &fresh, BPF_ANY);
	}
	if (held(o)) {
		/* the first id of each site, sent (and counted as deduped) if the socket is published */
		if (site >= TT_SITE_ACQUIRE && site <= TT_SITES && !o->stack_ids[site - 1])
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
	flush_passed(o); /* what it passed while held: its records from here on */
	for (int i = 0; i < TT_SITES; i++) {
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
 * Copy the user registers and up to targ_stack_bytes of the user stack into a
 * ring record. bpf_probe_read_user cannot fault pages in, and a read that
 * crosses into an unmapped page fails whole: copy page by page, starting at the
 * page that holds sp, and stop at the first page that does not read (the stack
 * above it is not needed to unwind the frames below it).
 */
/*
 * The capture proper, into this CPU's scratch record s (taken). o: the socket's
 * owners entry, if it has one. A full copy publishes a held socket: user space
 * keeps a copy only for a socket whose life it then sees.
 */
static __always_inline void copy_stack(const bool btf, const struct sock *sk, struct tt_owner *o, __u8 site, __u8 call,
				       struct stack_scratch_value *v)
{
	struct tt_stack *s = &v->rec;
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, off = 0, size, py_len = 0;
	struct tt_py_proc *pyp = py_proc_of(tgid);
	struct py_walk *py = NULL;
	struct pt_regs *regs;
	__u64 ip, sp;

	/* a CPython process: its Python frames now, before the syscall returns (and they are part of the fingerprint) */
	if (pyp) {
		py = &v->py;
		py_walk_frames(pyp, id, py);
	}
	regs = current_user_regs();
	ip = USER_REG(regs, ip);
	sp = USER_REG(regs, sp);
	/* a stack seen before costs a few reads and a 56-byte record, not a copy (s->stack holds the memo's compare) */
	if (emit_stack_ref(btf, sk, o, site, tgid, (__u32)id, ip, sp, s->stack, py))
		return;
	if (!stack_allowed(id >> 32)) {
		count(TT_CNT_STACKS_LIMITED);
		return;
	}
	/* a held socket that lingers in CLOSE_WAIT (linger.bpf.h): the sweep publishes it, with its CLOSE_WAIT */
	if (held(o) && !lingers((__u64)sk, o))
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
	s->py_frames = 0;
	s->py_status = py ? py->status : TT_PY_NONE;
	if (py && py->n && off <= TT_STACK_MAX) {
		__u32 n = py->n;

		if (n > TT_PY_FRAMES_MAX)
			n = TT_PY_FRAMES_MAX;
		py_len = n * sizeof(struct tt_py_frame);
		if (py_len && !bpf_probe_read_kernel(&s->stack[off], py_len, py->f))
			s->py_frames = n;
		else
			py_len = 0;
	}
	size = (TT_STACK_FIXED + off + py_len + 7) & ~7u;
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
	copy_stack(btf, sk, o, site, call, scratch);
	scratch_give(scratch);
}

#endif /* TCPTRACE_LIB_STACKS_BPF_H */
