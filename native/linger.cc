#include "linger.h"

#include <bpf/bpf.h>
#include <time.h>

#include <cerrno>

#include "map_walk.h"

namespace tcptrace {

namespace {

uint64_t MonotonicNow() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(t.tv_nsec);
}

// publish_lingering(sk): its return value (1: sent), or -errno
int RunOn(int prog_fd, uint64_t sk) {
  uint64_t args[1] = {sk};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof(args));
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) return -errno;
  return static_cast<int>(opts.retval);
}

}  // namespace

int ProbeTestRun(int prog_fd) {
  const int r = RunOn(prog_fd, 0);
  return r < 0 ? -r : 0;
}

LingerSweep SweepLingering(int lingering_fd, uint32_t max_entries, int prog_fd, uint64_t min_age_ns) {
  LingerSweep s;
  // keys first, then the runs: the program deletes the entries it handles, which would restart a walk
  std::vector<uint64_t> due;
  const uint64_t now = MonotonicNow();
  ForEachKey(lingering_fd, sizeof(uint64_t), max_entries, [&](const void* k) {
    s.lingering++;
    tt_linger l;
    const uint64_t sk = *static_cast<const uint64_t*>(k);
    if (bpf_map_lookup_elem(lingering_fd, &sk, &l) != 0) return;  // left CLOSE_WAIT meanwhile
    if (now >= l.entered_ns && now - l.entered_ns >= min_age_ns) due.push_back(sk);
  });
  for (uint64_t sk : due) {
    const int r = RunOn(prog_fd, sk);
    if (r < 0) {
      s.error = -r;
      break;
    }
    if (r == 1) s.published++;
    else s.gone++;
  }
  return s;
}

std::vector<double> HeldCounts(int fd, uint32_t max_entries, const std::set<uint32_t>& drop) {
  std::vector<uint32_t> keys;
  ForEachKey(fd, sizeof(uint32_t), max_entries, [&](const void* k) { keys.push_back(*static_cast<const uint32_t*>(k)); });
  std::vector<double> out;
  for (uint32_t tgid : keys) {
    if (drop.count(tgid)) {
      bpf_map_delete_elem(fd, &tgid);
      continue;
    }
    tt_held_counts b;
    if (bpf_map_lookup_elem(fd, &tgid, &b) != 0) continue;  // deleted meanwhile
    out.push_back(tgid);
    out.push_back(static_cast<double>(b.to_last_ack));
    out.push_back(static_cast<double>(b.to_close));
    out.push_back(static_cast<double>(b.sum_ns));
    for (uint64_t n : b.buckets) out.push_back(static_cast<double>(n));
    for (uint64_t n : b.passed) out.push_back(static_cast<double>(n));
  }
  return out;
}

}  // namespace tcptrace
