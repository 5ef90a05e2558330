#include "ring_map.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tcptrace {

std::unique_ptr<RingMap> RingMap::Open(int fd, std::string* why) {
  bpf_map_info info = {};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
    *why = std::string("ring buffer map info: ") + std::strerror(errno);
    return nullptr;
  }
  if (info.type != BPF_MAP_TYPE_RINGBUF || info.max_entries == 0 || (info.max_entries & (info.max_entries - 1)) != 0) {
    *why = "not a BPF ring buffer of a power-of-2 size";
    return nullptr;
  }
  std::unique_ptr<RingMap> r(new RingMap());
  r->page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* cons = mmap(nullptr, r->page_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (cons == MAP_FAILED) {
    *why = std::string("mmap ring buffer consumer page: ") + std::strerror(errno);
    return nullptr;
  }
  r->cons_map_ = cons;
  r->prod_len_ = r->page_ + 2 * static_cast<size_t>(info.max_entries);
  void* prod = mmap(nullptr, r->prod_len_, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(r->page_));
  if (prod == MAP_FAILED) {
    *why = std::string("mmap ring buffer data: ") + std::strerror(errno);
    return nullptr;  // the destructor unmaps the consumer page
  }
  r->prod_map_ = prod;
  r->consumer_ = static_cast<uint64_t*>(cons);
  r->producer_ = static_cast<const uint64_t*>(prod);
  r->data_ = static_cast<const uint8_t*>(prod) + r->page_;
  r->mask_ = info.max_entries - 1;
  // a ring read before (another poller of the same map) resumes where it was released
  r->pos_ = r->prod_ = __atomic_load_n(r->consumer_, __ATOMIC_ACQUIRE);
  return r;
}

RingMap::~RingMap() {
  if (prod_map_ != nullptr) munmap(prod_map_, prod_len_);
  if (cons_map_ != nullptr) munmap(cons_map_, page_);
}

}  // namespace tcptrace
