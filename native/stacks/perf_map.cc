// See perf_map.h.
#include "perf_map.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace tcptrace::stacks {

bool PerfMap::update() {
  int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    exists_ = false;
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return false;
  }
  if (!exists_ || st.st_dev != dev_ || st.st_ino != ino_ || st.st_size < offset_) {
    // New file (process restarted with the same pid, or first read).
    entries_.clear();
    partial_.clear();
    offset_ = 0;
  }
  exists_ = true;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t got = pread(fd, buf.data(), buf.size(), offset_);
    if (got <= 0) break;
    offset_ += got;
    const size_t n = static_cast<size_t>(got);
    for (size_t i = 0; i < n; i++) {
      if (buf[i] == '\n') {
        add_line(partial_);
        partial_.clear();
      } else if (partial_.size() < 4096) {  // longer lines are not perf-map lines
        partial_.push_back(buf[i]);
      }
    }
  }
  close(fd);
  return true;
}

void PerfMap::add_line(const std::string& line) {
  const char* p = line.c_str();
  char* end = nullptr;
  uint64_t start = std::strtoull(p, &end, 16);
  if (end == p || *end != ' ') return;
  p = end + 1;
  uint64_t size = std::strtoull(p, &end, 16);
  if (end == p || *end != ' ' || size == 0) return;
  Entry e{start, size, std::string(end + 1)};
  // Drop every older entry overlapping [start, start+size): the newer code
  // owns that range now.
  auto it = entries_.upper_bound(start);
  if (it != entries_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.start + prev->second.size > start) it = prev;
  }
  while (it != entries_.end() && it->second.start < start + size) it = entries_.erase(it);
  entries_.emplace(start, std::move(e));
}

const PerfMap::Entry* PerfMap::lookup(uint64_t addr) const {
  auto it = entries_.upper_bound(addr);
  if (it == entries_.begin()) return nullptr;
  --it;
  return addr - it->second.start < it->second.size ? &it->second : nullptr;
}

}  // namespace tcptrace::stacks
