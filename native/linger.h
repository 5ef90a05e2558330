// The agent's lingering CLOSE_WAIT sockets (bpf/lib/linger.bpf.h): the sweep that
// publishes those that stayed, and the kernel's counts of the brief ones.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "tcpstate.h"

namespace tcptrace {

struct LingerSweep {
  uint32_t lingering = 0;  // entries seen
  uint32_t published = 0;  // sent by publish_lingering
  uint32_t gone = 0;       // left CLOSE_WAIT (or vanished) before the program ran: nothing sent
  int error = 0;           // errno of a refused BPF_PROG_TEST_RUN (0: none); the sweep stops there
};

// Whether the kernel runs prog_fd (a raw_tp program) by BPF_PROG_TEST_RUN (5.10+):
// run on key 0, which no socket has. 0, or the errno it was refused with.
int ProbeTestRun(int prog_fd);

// Runs publish_lingering on every entry of the lingering map that entered CLOSE_WAIT
// at least min_age_ns before now (CLOCK_MONOTONIC, the kernel's bpf_ktime_get_ns).
LingerSweep SweepLingering(int lingering_fd, uint32_t max_entries, int prog_fd, uint64_t min_age_ns);

// The held_counts map (bpf/lib/held_counts.bpf.h) as flat rows: tgid, to_last_ack,
// to_close, sum_ns, TT_CW_BOUNDS + 1 bucket counts, then TT_PASSED__MAX transition
// counts; the keys of the tgids in drop are deleted.
std::vector<double> HeldCounts(int fd, uint32_t max_entries, const std::set<uint32_t>& drop);
constexpr uint32_t kHeldRow = 4 + TT_CW_BOUNDS + 1 + TT_PASSED__MAX;

}  // namespace tcptrace
