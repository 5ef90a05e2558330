// One BPF ring buffer (BPF_MAP_TYPE_RINGBUF, 5.8+) read in place, the way libbpf's consumer
// maps it, but without its callback per record and without consuming what is read.
//
// Why not libbpf's ring_buffer: its callback hands each record over once and releases it
// at once, so records of several rings merged by time had to be copied into a staging
// area first and copied again in merged order (a second copy of every record, and the
// agent's largest cost in a whole-system recording). Here the poller merges the rings by
// looking at each one's next record in place, copies each record once, in merged order,
// straight from ring memory, and releases a ring only up to the first record it holds back. libbpf 1.1
// (Debian 12) has no API to read a ring without consuming it (ring__consume and friends
// came in 1.3, and still release what they hand over).
//
// Layout (kernel/bpf/ringbuf.c, stable since 5.8): page 0 holds consumer_pos (mapped
// read-write); page 1 producer_pos; the data follows, mapped twice in a row so that a
// record that wraps around the end is contiguous. Each record starts with an 8-byte
// header: a u32 length with BUSY (still being written) and DISCARD bits, and a u32 the
// kernel uses; the record is padded to 8 bytes.
//
// Thread: one thread (the poll thread) scans and releases; the kernel produces concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tcptrace {

class RingMap {
 public:
  // Maps the ring of fd (not owned). On failure returns null and sets *why.
  static std::unique_ptr<RingMap> Open(int fd, std::string* why);
  ~RingMap();
  RingMap(const RingMap&) = delete;
  RingMap& operator=(const RingMap&) = delete;

  // Takes what the producer has committed so far: records reserved after wait for the next
  // call, so one drain is bounded even while the kernel keeps writing.
  void Refresh() { prod_ = __atomic_load_n(producer_, __ATOMIC_ACQUIRE); }

  // The record at the read position (discarded ones are skipped), or null: none left of
  // what Refresh() took, or the next one is still being written. It stays valid, in ring
  // memory, until Release() passes it.
  const uint8_t* Peek(uint32_t* size) {
    while (pos_ < prod_) {
      const uint8_t* hdr = data_ + (pos_ & mask_);
      const uint32_t len = __atomic_load_n(reinterpret_cast<const uint32_t*>(hdr), __ATOMIC_ACQUIRE);
      if (len & kBusy) return nullptr;
      if (len & kDiscard) {
        pos_ += Padded(len & ~kDiscard);
        continue;
      }
      *size = len;
      return hdr + kHdr;
    }
    return nullptr;
  }
  // Past the record Peek() returned (size as it gave).
  void Next(uint32_t size) { pos_ += Padded(size); }

  // Calls f(data, size) for each committed record past the read position, without moving it.
  template <class F>
  void ForEachAhead(F&& f) const {
    for (uint64_t at = pos_; at < prod_;) {
      const uint8_t* hdr = data_ + (at & mask_);
      const uint32_t len = __atomic_load_n(reinterpret_cast<const uint32_t*>(hdr), __ATOMIC_ACQUIRE);
      if (len & kBusy) return;
      at += Padded(len & ~kDiscard);
      if (!(len & kDiscard)) f(hdr + kHdr, len);
    }
  }

  // Gives the kernel back the space before the read position.
  void Release() { __atomic_store_n(consumer_, pos_, __ATOMIC_RELEASE); }

 private:
  RingMap() = default;
  static constexpr uint32_t kBusy = 1u << 31;     // BPF_RINGBUF_BUSY_BIT
  static constexpr uint32_t kDiscard = 1u << 30;  // BPF_RINGBUF_DISCARD_BIT
  static constexpr uint32_t kHdr = 8;             // BPF_RINGBUF_HDR_SZ
  static uint64_t Padded(uint32_t size) { return (uint64_t{size} + kHdr + 7) & ~uint64_t{7}; }

  void* cons_map_ = nullptr;  // consumer page, read-write
  void* prod_map_ = nullptr;  // producer page + data twice, read-only
  size_t prod_len_ = 0;
  size_t page_ = 0;
  uint64_t* consumer_ = nullptr;
  const uint64_t* producer_ = nullptr;
  const uint8_t* data_ = nullptr;
  uint64_t mask_ = 0;
  uint64_t pos_ = 0;   // the read position: the next record not handed over
  uint64_t prod_ = 0;  // the producer position Refresh() took
};

}  // namespace tcptrace
