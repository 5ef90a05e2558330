#include "map_walk.h"

#include <bpf/bpf.h>

#include <vector>

namespace tcptrace {

uint64_t ForEachKey(int fd, size_t key_size, uint32_t max_entries, const std::function<void(const void*)>& fn) {
  std::vector<uint8_t> a(key_size), b(key_size);
  uint8_t* prev = nullptr;
  uint8_t* next = a.data();
  uint64_t n = 0;
  while (n <= max_entries && bpf_map_get_next_key(fd, prev, next) == 0) {
    fn(next);
    n++;
    prev = next;
    next = next == a.data() ? b.data() : a.data();
  }
  return n;
}

}  // namespace tcptrace
