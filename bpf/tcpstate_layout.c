// SPDX-License-Identifier: GPL-2.0
/*
 * Not a BPF program: compiled with -g -target bpf only so that the BTF of
 * tcpstate.h (every record struct and enum, with exact offsets) can be read
 * by scripts/gen-events.mjs, which writes src/generated/events.ts from it.
 */
#include "tcpstate.h"

struct tt_hdr layout_hdr;
struct tt_tuple layout_tuple;
struct tt_transition layout_transition;
struct tt_transition4 layout_transition4;
struct tt_sockcall layout_sockcall;
struct tt_fork layout_fork;
struct tt_owner layout_owner;
struct tt_stack layout_stack;
struct tt_stack_ref layout_stack_ref;
struct tt_cfa_key layout_cfa_key;
struct tt_known_key layout_known_key;
struct tt_user_regs layout_user_regs;
struct tt_listen_key layout_listen_key;
struct tt_close_key layout_close_key;
struct tt_linger layout_linger;
struct tt_held_counts layout_held_counts;
struct tt_py_frame layout_py_frame;
struct tt_py_proc layout_py_proc;
enum tt_py_status layout_py_status;
enum tt_kind layout_kind;
enum tt_origin layout_origin;
enum tt_call layout_call;
enum tt_via layout_via;
enum tt_counter layout_counter;
enum tt_site layout_site;
enum tt_passed layout_passed;
