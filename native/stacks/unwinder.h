// DWARF (CFI) unwinding of one user stack sample, perf --call-graph=dwarf
// style: the BPF side captures the user registers (bpf_task_pt_regs) and a
// bounded copy of the stack above sp; this class replays the unwind in user
// space with libdwfl, reading CFI from .eh_frame/.debug_frame of the files
// mapped in the target.
//
// Threading: NOT thread-safe. One Unwinder per target process, owned and
// called by a single worker thread (the tracer's). Distinct instances share
// no state of ours, but elfutils makes no thread-safety promise, so keep
// every libdw user, Symbolizer included, on that one thread.
//
// No exceptions cross this interface; failures are reported through
// init()'s return value, error() and last().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tcptrace::stacks {

// x86-64 user registers as saved at kernel entry (struct pt_regs, field
// names without the "r" prefix). libdwfl's x86-64 CFI needs rip (pc) and
// rsp (CFA base) plus the callee-saved rbx, rbp, r12-r15 that CFI restores
// frame by frame; the caller-saved ones matter only when a frame's CFA
// rule names them (hand-written asm, stack realignment in main), so they
// are optional: mark them in `present` when the BPF side copies them.
struct UserRegs {
  uint64_t ip = 0, sp = 0, bp = 0, bx = 0;
  uint64_t r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  uint64_t ax = 0, dx = 0, cx = 0, si = 0, di = 0;
  uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0;
  // Bit n set = DWARF register n is valid (0 rax, 1 rdx, 2 rcx, 3 rbx,
  // 4 rsi, 5 rdi, 6 rbp, 7 rsp, 8-15 r8-r15, 16 rip).
  uint32_t present = kRequired;

  static constexpr uint32_t kRequired =
      (1u << 3) | (1u << 6) | (1u << 7) | (0xfu << 12) | (1u << 16);
  static constexpr uint32_t kAll = 0x1ffff;
};

// Why the last unwind() stopped and how it got there.
struct UnwindInfo {
  size_t dwarf_frames = 0;  // frames produced by libdwfl (CFI, or its own FP step)
  size_t fp_frames = 0;     // frames added by our frame-pointer fallback
  bool complete = false;    // reached the outermost frame (CFI says rip undefined)
  bool stack_exhausted = false;  // a read fell outside the stack copy: copy more
  bool refreshed = false;   // /proc/PID/maps was re-read during this call
  bool unknown_pc = false;  // stopped at a pc outside every known mapping (refresh() may help)
  std::string stop;         // human-readable stop reason
  // stack pointer at each returned frame (0 if unknown): sps[i+1] is frame i's
  // CFA, so sps[i+1] - sps[i] is the CFA rule at pcs[i] (used to deduplicate
  // stacks in the kernel without copying them)
  std::vector<uint64_t> sps;
};

class Unwinder {
 public:
  struct Options {
    // Re-read /proc/PID/maps at most this often when a pc falls outside
    // every known mapping (dlopen, JIT). Garbage return addresses would
    // otherwise force a re-read per sample.
    unsigned min_refresh_interval_ms = 100;
    bool use_dwarf = true;    // false: frame-pointer walk only (tests, comparison)
    bool fp_fallback = true;  // continue with frame pointers where CFI stops early
  };

  explicit Unwinder(int pid);
  Unwinder(int pid, Options opts);
  ~Unwinder();
  Unwinder(const Unwinder&) = delete;
  Unwinder& operator=(const Unwinder&) = delete;

  // Reads the maps, reports every mapped ELF file to libdwfl and attaches
  // the sample callbacks. Called lazily by unwind(); call it early to pay
  // the setup cost (and open the files) while the process is alive.
  bool init();
  const std::string& error() const;

  // Unwinds one sample. `stack` holds `len` bytes copied from the target's
  // address `stack_addr` (normally regs.sp); it may be short (the copy
  // stops at the first unreadable page) and unwinding then just stops.
  // Memory outside the copy is read only from read-only file mappings.
  // Returns pcs: [0] = regs.ip, then return addresses (callers look them
  // up at pc-1). Empty when init() failed.
  std::vector<uint64_t> unwind(const UserRegs& regs, const uint8_t* stack, size_t len,
                               uint64_t stack_addr, size_t max_frames);

  const UnwindInfo& last() const;
  // Forces a maps re-read now (e.g. after the tracer saw an mmap/dlopen).
  bool refresh();
  int pid() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tcptrace::stacks
