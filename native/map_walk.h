// Bounded walks of live BPF hash maps, shared by the tracer's map reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

namespace tcptrace {

// Calls fn(key) for each key of a live BPF hash map (BPF_MAP_GET_NEXT_KEY; no
// values copied). Bounded: at most max_entries + 1 keys, whatever user space or
// the kernel does to the map meanwhile (a key deleted under the walk restarts it
// from the first key, so an unbounded walk of a busy map may not end). Returns
// the keys visited.
uint64_t ForEachKey(int fd, size_t key_size, uint32_t max_entries, const std::function<void(const void*)>& fn);

}  // namespace tcptrace
