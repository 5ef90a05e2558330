// Drains the BPF ring buffers on a worker thread and hands records to JS in batches.
//
// Threading model:
//  - The poll thread owns the rings' mappings (RingMap, ring_map.h: the ring is read in
//    place, not through libbpf's consumer) and is the only thread that reads or releases
//    them. It sleeps in epoll_wait on the ring fds (edge-triggered) and a stop eventfd,
//    waking on the interval timeout (the kernel side submits with BPF_RB_NO_WAKEUP) or
//    when the kernel forces a wake-up past the watermark.
//  - Each wake-up copies every available record out of the ring into one
//    buffer (records never point into ring memory) and posts that buffer to
//    the JS thread through a ThreadSafeFunction: one JS call per batch, never
//    one per event. The JS Buffer wraps it without another copy. The
//    offsets of full stack records are noted while copying and passed along
//    (onBatch(buffer, stackOffsets?)), so JS splits them out without a pass;
//    stack references (56 bytes, no user data) stay inline and are decoded
//    with the other records.
//  - With one ring per CPU, each ring's records are in the order its CPU
//    reserved them, but a socket's transitions run on any CPU: each wake-up
//    notes where every ring's new records lie, then copies those older than the
//    wake-up minus a hold-back (kHoldNs, 2 ms) into the batch, merged by hdr.ts_ns,
//    and releases each ring up to the first record it holds back; the younger ones
//    stay in the ring for the next wake-up, in case another CPU's older record is
//    still between its clock read and its commit (the next wake-up comes after the
//    hold-back, not the interval, while a full stack copy waits). Each record is
//    copied once. One handed over behind a newer one (a program held longer than
//    the hold-back) is counted (out_of_order). Held records still count toward the
//    kernel's watermark (the ring's available data): a ring that fills its quarter
//    within the hold-back is drained at each wake-up the kernel allows (one per
//    CPU per ms), not every interval.
//  - Batches waiting for the JS thread are bounded by bytes; past the bound a
//    batch is dropped and counted (dropped_batches/dropped_bytes), never silently.
//  - Stop(): the JS thread signals the eventfd; the poll thread does a last
//    drain, releases the ThreadSafeFunction and exits; the promise resolves when
//    every queued batch has been delivered (TSFN finalizer), so a final report
//    sees all events. Join happens in the finalizer / destructor.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>
#include <string>
#include <cstdint>
#include <thread>
#include <vector>

namespace tcptrace {

struct PollerStats {
  uint64_t batches = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t dropped_batches = 0;
  uint64_t dropped_bytes = 0;
  uint64_t out_of_order = 0;  // records handed over behind a newer one (several rings)
};

struct PollState;

class RingPoller {
 public:
  // ring_fds: the BPF_MAP_TYPE_RINGBUF map fds (several: merged by time). Check ok() after construction.
  RingPoller(Napi::Env env, const std::vector<int>& ring_fds, Napi::Function on_batch, int interval_ms,
             size_t max_inflight_bytes);
  // Stops the thread (joins it) if Stop() was never called.
  ~RingPoller();
  RingPoller(const RingPoller&) = delete;
  RingPoller& operator=(const RingPoller&) = delete;

  // JS thread. Returns a promise resolved once all batches were delivered.
  Napi::Promise Stop(Napi::Env env);
  PollerStats Stats() const;
  bool ok() const;
  std::string error() const;

 private:
  // Shared with the ThreadSafeFunction finalizer, which may run after this
  // handle is gone (it runs on a later turn of the JS event loop).
  std::shared_ptr<PollState> state_;
};

}  // namespace tcptrace
