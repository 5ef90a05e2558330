/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CPython frames at a stack site (3.11+; see "CPython frames" in tcpstate.h).
 * The Python frame chain is not on the C stack and is gone once the syscall
 * returns, so it is copied here: the calling thread's PyThreadState (found by
 * its thread_id, the thread's fsbase: a socket call releases the GIL, so the
 * interpreter's "current thread" is NULL then), its current frame, and up to
 * TT_PY_FRAMES_MAX frames following `previous`, 2 user reads each. Every
 * offset comes from py_procs, which user space fills per process; a process
 * it has no entry for costs one hash lookup. Needs bpf_probe_read_user (5.5).
 */
#ifndef TCPTRACE_LIB_PYTHON_BPF_H
#define TCPTRACE_LIB_PYTHON_BPF_H

#include "config.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, struct tt_py_proc);
} py_procs SEC(".maps");

/* user space has told the kernel of a CPython process: forked children are looked for from then on */
volatile bool py_registered = false;

/*
 * The py_procs entry of the process on the CPU. A process with none that a
 * CPython process forked without exec (a pre-fork server's worker, a
 * multiprocessing child) has its parent's address space, so its parent's entry
 * holds: it is copied in, and this first capture already has the Python frames
 * (user space recognises the process at this stack, and drops the entry when it
 * exits). fork() shares mm->exe_file, exec opens the file anew: an equal
 * pointer tells a fork from an exec. Only the direct parent is looked at.
 */
static __always_inline struct tt_py_proc *py_proc_of(__u32 tgid)
{
	struct tt_py_proc *p = bpf_map_lookup_elem(&py_procs, &tgid);
	struct task_struct *task, *parent;
	__u32 ptgid;

	if (p || !py_registered)
		return p;
	task = (struct task_struct *)bpf_get_current_task();
	parent = BPF_CORE_READ(task, real_parent);
	ptgid = BPF_CORE_READ(parent, tgid);
	if (ptgid == tgid)
		return NULL;
	p = bpf_map_lookup_elem(&py_procs, &ptgid);
	if (!p || BPF_CORE_READ(task, mm, exe_file) != BPF_CORE_READ(parent, mm, exe_file))
		return NULL;
	bpf_map_update_elem(&py_procs, &tgid, p, BPF_NOEXIST); /* full: found through the parent each time */
	return p;
}

/* (tgid << 32 | tid) -> that thread's PyThreadState, checked against its thread_id at each use */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} py_tstates SEC(".maps");

#define TT_PY_FRAME_READ 80 /* the bytes of a frame one read takes: every field used is below 80 on 3.11-3.13 */

/* A capture's Python frames, built in the CPU's stack scratch before it is known whether a copy is sent. */
struct py_walk {
	struct tt_py_frame f[TT_PY_FRAMES_MAX];
	__u8 frame[TT_PY_FRAME_READ + 8]; /* one frame as read; fields at offsets from py_procs */
	__u64 hash;			  /* FNV-1a over (code, instr): the fingerprint's Python part */
	__u32 n;
	__u32 status;
};

static __always_inline __u64 py_field(const struct py_walk *w, __u16 off, __u32 size)
{
	/* offsets are user data: bound them for the verifier (and for a wrong table) */
	__u32 o = off;

	if (o > TT_PY_FRAME_READ - 8)
		return 0;
	if (size == 1)
		return w->frame[o];
	return *(__u64 *)&w->frame[o];
}

/* The calling thread's PyThreadState, or 0. */
static __always_inline __u64 py_thread_state(const struct tt_py_proc *p, __u64 pid_tgid)
{
	__u64 fsbase = current_fsbase(), ts = 0, tid = 0, interp = 0;
	__u64 *cached = bpf_map_lookup_elem(&py_tstates, &pid_tgid);

	if (cached) {
		ts = *cached;
		if (!bpf_probe_read_user(&tid, sizeof(tid), (void *)(ts + p->tstate_thread_id)) && tid == fsbase)
			return ts;
	}
	if (bpf_probe_read_user(&interp, sizeof(interp), (void *)p->interp_head) || !interp)
		return 0;
	if (bpf_probe_read_user(&ts, sizeof(ts), (void *)(interp + p->threads_head)))
		return 0;
	for (int i = 0; i < TT_PY_THREADS_MAX; i++) {
		if (!ts)
			return 0;
		if (bpf_probe_read_user(&tid, sizeof(tid), (void *)(ts + p->tstate_thread_id)))
			return 0;
		if (tid == fsbase) {
			bpf_map_update_elem(&py_tstates, &pid_tgid, &ts, BPF_ANY);
			return ts;
		}
		if (bpf_probe_read_user(&ts, sizeof(ts), (void *)(ts + p->tstate_next)))
			return 0;
	}
	return 0;
}

/*
 * Copy the calling thread's Python frames into w (w->n of them, innermost
 * first) and fingerprint them. The frames a C call into the interpreter
 * pushes on the C stack (3.12+ shims: owner == owner_cstack) are copied too,
 * flagged TT_PY_SHIM: user space drops them and ends the run before them, as
 * 3.11's is_entry ends it in the frame itself.
 *
 * For the verifier, frame i is always w->f[i] and everything a frame decides
 * goes to map memory, not registers: one path per iteration, not 2^i.
 */
static __always_inline void py_walk_frames(const struct tt_py_proc *p, __u64 pid_tgid, struct py_walk *w)
{
	__u64 ts, frame = 0, code, instr, h = TT_FP_SEED;
	__u32 n = 0;

	w->n = 0;
	w->hash = 0;
	w->status = TT_PY_NO_THREAD;
	ts = py_thread_state(p, pid_tgid);
	if (!ts)
		return;
	w->status = TT_PY_FAULT;
	if (bpf_probe_read_user(&frame, sizeof(frame), (void *)(ts + p->tstate_frame)))
		return;
	if (p->cframe_frame != TT_PY_NO_OFFSET && frame &&
	    bpf_probe_read_user(&frame, sizeof(frame), (void *)(frame + p->cframe_frame)))
		return;
	w->status = TT_PY_COMPLETE;
	for (int i = 0; i < TT_PY_FRAMES_MAX; i++) {
		struct tt_py_frame *f = &w->f[i];

		if (!frame)
			goto done;
		if (bpf_probe_read_user(w->frame, TT_PY_FRAME_READ, (void *)frame)) {
			w->status = TT_PY_FAULT;
			goto done;
		}
		frame = py_field(w, p->frame_previous, 8);
		code = py_field(w, p->frame_code, 8) & ~1ULL; /* 3.14 tags f_executable's low bit */
		instr = py_field(w, p->frame_instr, 8);
		f->code = code;
		f->instr = instr > code && instr - code < (1ULL << 31) ? (__u32)(instr - code) : 0;
		f->flags = 0;
		if (p->frame_is_entry != TT_PY_NO_OFFSET && py_field(w, p->frame_is_entry, 1))
			f->flags |= TT_PY_RUN_END;
		if (p->owner_cstack != 0xff && py_field(w, p->frame_owner, 1) == p->owner_cstack)
			f->flags |= TT_PY_SHIM;
		else if (bpf_probe_read_user(&f->firstlineno, sizeof(f->firstlineno), (void *)(code + p->code_firstlineno)))
			f->flags |= TT_PY_CODE_UNREAD;
		h = (h ^ code) * TT_FP_PRIME;
		h = (h ^ f->instr) * TT_FP_PRIME;
		n = i + 1;
	}
	if (frame)
		w->status = TT_PY_TRUNCATED;
done:
	w->n = n;
	w->hash = n ? h : 0;
}

/* The fingerprint with the Python part folded in (tcpstate.h: the same in src/stacks/resolver.ts). */
static __always_inline __u64 py_fold(__u64 native_hash, const struct py_walk *w)
{
	return w && w->n ? (native_hash ^ w->hash) * TT_FP_PRIME : native_hash;
}

#endif /* TCPTRACE_LIB_PYTHON_BPF_H */
