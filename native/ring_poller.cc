#include "ring_poller.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

#include "owned_fd.h"
#include "ring_map.h"
#include "tcpstate.h"

namespace tcptrace {

namespace {
constexpr size_t kFlushBytes = 4 << 20;  // hand over mid-drain past this, to bound batch size
// Several rings: records younger than this at a wake-up stay in their ring for the next. A record's
// time is read before its reserve: microseconds, unless a preemptible program (7.0+) loses
// its CPU in between; one that comes later still is counted (out_of_order).
constexpr uint64_t kHoldNs = 2'000'000;
constexpr int kHoldMs = 2;

// A record's header fields as read from a ring (0 for one too short to have them).
uint16_t KindOf(const uint8_t* p, size_t size) {
  uint16_t kind = 0;
  if (size >= sizeof(tt_hdr)) std::memcpy(&kind, p + offsetof(tt_hdr, kind), sizeof(kind));
  return kind;
}
uint64_t TsOf(const uint8_t* p, size_t size) {
  uint64_t ts = 0;
  if (size >= sizeof(tt_hdr)) std::memcpy(&ts, p + offsetof(tt_hdr, ts_ns), sizeof(ts));
  return ts;
}

// TT_F_LATE: the agent's sweep sends a lingering CLOSE_WAIT with the time it began (linger.bpf.h)
bool LateOf(const uint8_t* p, size_t size) {
  uint16_t flags = 0;
  if (size >= sizeof(tt_hdr)) std::memcpy(&flags, p + offsetof(tt_hdr, flags), sizeof(flags));
  return (flags & TT_F_LATE) != 0;
}

uint64_t MonotonicNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);  // bpf_ktime_get_ns()'s clock
  return static_cast<uint64_t>(t.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(t.tv_nsec);
}

// Bytes appended without being zeroed first (std::vector::resize would write each byte twice).
class ByteBuf {
 public:
  explicit ByteBuf(size_t cap) : data_(static_cast<uint8_t*>(std::malloc(cap))), cap_(data_ ? cap : 0) {}
  ~ByteBuf() { std::free(data_); }
  ByteBuf(const ByteBuf&) = delete;
  ByteBuf& operator=(const ByteBuf&) = delete;
  void Append(const uint8_t* p, size_t n) {
    if (size_ + n > cap_) Grow(size_ + n);
    std::memcpy(data_ + size_, p, n);
    size_ += n;
  }
  uint8_t* data() { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }

 private:
  void Grow(size_t need) {
    size_t cap = std::max(need, cap_ * 2);
    auto* p = static_cast<uint8_t*>(std::realloc(data_, cap));
    if (p == nullptr) throw std::bad_alloc();
    data_ = p;
    cap_ = cap;
  }
  uint8_t* data_;
  size_t cap_;
  size_t size_ = 0;
};

// One hand-over to JS: the packed records, and where the full stack records among them start
// (found while copying, so JS never walks the batch's headers a second time to find them).
struct Batch {
  explicit Batch(size_t cap) : bytes(cap) {}
  ByteBuf bytes;
  std::vector<uint32_t> stack_offsets;
  // records in bytes, counted while copying: the recorder numbers its frames by records
  // without walking the batch's headers again in JS (a cache miss per record)
  uint32_t records = 0;
};
}  // namespace

struct PollState {
  std::vector<std::unique_ptr<RingMap>> rings;
  // Merge()'s scratch, kept between wake-ups (poll thread only): each ring's next record, and the heap of rings by its time
  struct Head {
    uint64_t ts;
    const uint8_t* p;
    uint32_t size;
  };
  std::vector<Head> heads;
  std::vector<size_t> heap;
  uint64_t last_ts = 0;  // the newest record handed over (poll thread only)
  OwnedFd epfd;
  OwnedFd stopfd;
  int interval_ms = 100;
  size_t max_inflight = 0;
  std::string error;
  std::thread thread;
  Napi::ThreadSafeFunction tsfn;
  Batch* batch = nullptr;                 // poll thread only
  uint64_t batch_records = 0;             // poll thread only
  std::atomic<size_t> inflight{0};
  std::atomic<uint64_t> batches{0}, records{0}, bytes{0}, dropped_batches{0}, dropped_bytes{0}, out_of_order{0};
  Napi::Promise::Deferred* stopped = nullptr;  // JS thread only
  bool stopping = false;                       // JS thread only

  ~PollState() {
    delete batch;
    delete stopped;
  }

  void Signal() {
    uint64_t one = 1;
    if (write(stopfd.get(), &one, sizeof(one)) < 0) { /* the thread still wakes on its timeout */ }
  }

  void Append(const uint8_t* p, size_t size) {
    Batch& b = *batch;
    // full stack copies leave the batch (raw stack bytes are user data); references stay inline
    if (KindOf(p, size) == TT_KIND_STACK) b.stack_offsets.push_back(static_cast<uint32_t>(b.bytes.size()));
    // Records are 8-byte multiples (struct alignment), so they stay aligned when packed.
    b.bytes.Append(p, size);
    b.records++;
    batch_records++;
    if (b.bytes.size() >= kFlushBytes) Flush();
  }

  // One ring: every committed record straight into the batch, in ring order, each released
  // as soon as it is copied (the producer gets its space back during a long drain).
  void DrainOne(RingMap& m) {
    uint32_t size;
    m.Refresh();
    for (const uint8_t* p; (p = m.Peek(&size)) != nullptr;) {
      Append(p, size);
      m.Next(size);
      m.Release();
    }
    m.Release();  // discarded records at the end
  }

  // Several rings: copies the records with a time up to cutoff into the batch, oldest first
  // across the rings (a heap of rings by the time of the record at their read position),
  // reading each in place; each ring's later ones stay in it, unreleased. The ring on top
  // gives a run: its records up to the next ring's first (a CPU's records come in bursts:
  // a softirq's transitions, a syscall's).
  void Merge(uint64_t cutoff) {
    heads.resize(rings.size());
    heap.clear();
    auto peek = [&](size_t i) {  // whether ring i has a record to hand over now
      Head& h = heads[i];
      h.p = rings[i]->Peek(&h.size);
      if (h.p == nullptr) return false;
      h.ts = TsOf(h.p, h.size);
      return h.ts <= cutoff;
    };
    auto later = [&](size_t a, size_t b) { return heads[a].ts > heads[b].ts; };
    for (size_t i = 0; i < rings.size(); i++) {
      rings[i]->Refresh();
      if (peek(i)) heap.push_back(i);
    }
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const size_t i = heap.back();
      RingMap& m = *rings[i];
      // the rest of the heap is heap[0, size - 1): its top is the next ring's first record
      const uint64_t bound = heap.size() > 1 ? std::min(cutoff, heads[heap.front()].ts) : cutoff;
      bool more;
      do {
        const Head& h = heads[i];
        if (h.ts >= last_ts) last_ts = h.ts;
        else if (!LateOf(h.p, h.size)) out_of_order++;  // a late record is old on purpose
        Append(h.p, h.size);
        m.Next(h.size);
        more = peek(i);
      } while (more && heads[i].ts <= bound);
      m.Release();
      if (more) std::push_heap(heap.begin(), heap.end(), later);
      else heap.pop_back();
    }
    for (auto& m : rings) m->Release();  // discarded records before a held one
  }

  // Whether a full stack copy waits among the held records.
  bool StackHeld() const {
    bool held = false;
    for (const auto& m : rings)
      m->ForEachAhead([&](const uint8_t* p, uint32_t size) { held = held || KindOf(p, size) == TT_KIND_STACK; });
    return held;
  }

  // One wake-up's reads: every ring, then (several rings) what is old enough, or all when
  // stopping. Returns the wait before the next: the interval, or the hold-back when a full
  // stack copy is still held. The kernel wakes the agent for those (until it has unwound
  // one, every socket on that path costs another copy); they should not wait an interval.
  int Drain(bool last) {
    bool stack_held = false;
    if (rings.size() == 1) {
      DrainOne(*rings[0]);
    } else {
      const uint64_t now = MonotonicNs();
      Merge(last ? UINT64_MAX : (now > kHoldNs ? now - kHoldNs : 0));
      stack_held = StackHeld();
    }
    Flush();
    return stack_held ? std::min(kHoldMs + 1, interval_ms) : interval_ms;
  }

  // Sized like the last batch handed over (plus a quarter): a busy ring fills
  // megabytes between polls, and growing a buffer from 64 KiB by doubling copies
  // every byte about twice more.
  static Batch* NewBatch(size_t last_bytes = 0) {
    return new Batch(std::min(kFlushBytes + kFlushBytes / 4, std::max<size_t>(64 * 1024, last_bytes + last_bytes / 4)));
  }

  void Flush() {
    if (batch->bytes.empty()) return;
    size_t n = batch->bytes.size();
    records += batch_records;
    bytes += n;
    batch_records = 0;
    if (inflight.load() + n > max_inflight) {
      dropped_batches++;
      dropped_bytes += n;
      batch->bytes.clear();
      batch->stack_offsets.clear();
      return;
    }
    inflight += n;
    Batch* v = batch;
    batch = NewBatch(n);
    auto* counter = &inflight;  // PollState outlives every queued call (finalizer holds it)
    napi_status st = tsfn.NonBlockingCall(v, [counter](Napi::Env env, Napi::Function cb, Batch* v) {
      *counter -= v->bytes.size();
      if (env == nullptr || cb.IsEmpty()) {
        delete v;
        return;
      }
      Napi::Value offsets = env.Undefined();
      if (!v->stack_offsets.empty()) {
        auto a = Napi::Uint32Array::New(env, v->stack_offsets.size());
        std::memcpy(a.Data(), v->stack_offsets.data(), v->stack_offsets.size() * sizeof(uint32_t));
        offsets = a;
      }
      // the Buffer wraps the bytes without a copy and frees the whole batch when collected
      auto buf = Napi::Buffer<uint8_t>::New(
          env, v->bytes.data(), v->bytes.size(), [](Napi::Env, uint8_t*, Batch* hint) { delete hint; }, v);
      cb.Call({buf, offsets, Napi::Number::New(env, v->records)});
    });
    if (st != napi_ok) {
      inflight -= n;
      dropped_batches++;
      dropped_bytes += n;
      delete v;
      return;
    }
    batches++;
  }

  void Run() {
    struct epoll_event evs[16];  // any ring's event means the same: drain them all
    bool stop = false;
    int wait_ms = interval_ms;
    while (!stop) {
      int n = epoll_wait(epfd.get(), evs, 16, wait_ms);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; i++) {
        if (evs[i].data.u32 == 1) stop = true;
      }
      wait_ms = Drain(false);
    }
    Drain(true);  // whatever arrived while stopping, and all still held
    rings.clear();  // unmapped now: this state lives on until JS has taken every batch
    tsfn.Release();
  }
};

RingPoller::RingPoller(Napi::Env env, const std::vector<int>& ring_fds, Napi::Function on_batch, int interval_ms,
                       size_t max_inflight_bytes)
    : state_(std::make_shared<PollState>()) {
  PollState* s = state_.get();
  s->interval_ms = interval_ms;
  s->max_inflight = max_inflight_bytes;
  if (ring_fds.empty()) {
    s->error = "no ring buffer";
    return;
  }
  s->epfd = OwnedFd(epoll_create1(EPOLL_CLOEXEC));
  s->stopfd = OwnedFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (s->epfd.get() < 0 || s->stopfd.get() < 0) {
    s->error = std::string("epoll/eventfd: ") + std::strerror(errno);
    return;
  }
  s->rings.resize(ring_fds.size());
  for (size_t i = 0; i < ring_fds.size(); i++) {
    s->rings[i] = RingMap::Open(ring_fds[i], &s->error);
    if (!s->rings[i]) return;
    // Edge-triggered: a ring whose records are held back still has data, and would keep a
    // level-triggered wait returning at once. The kernel wakes us only past the watermark.
    struct epoll_event ev = {};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u32 = 0;
    if (epoll_ctl(s->epfd.get(), EPOLL_CTL_ADD, ring_fds[i], &ev) != 0) {
      s->error = std::string("epoll_ctl ring buffer: ") + std::strerror(errno);
      return;
    }
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u32 = 1;
  epoll_ctl(s->epfd.get(), EPOLL_CTL_ADD, s->stopfd.get(), &ev);

  auto* keep = new std::shared_ptr<PollState>(state_);
  s->tsfn = Napi::ThreadSafeFunction::New(
      env, on_batch, "tcptrace-ring", 0, 1, keep,
      [](Napi::Env env, std::shared_ptr<PollState>* keep) {
        // Every queued batch has been delivered and the poll thread released us.
        PollState* s = keep->get();
        if (s->thread.joinable()) s->thread.join();
        if (s->stopped != nullptr) {
          s->stopped->Resolve(env.Undefined());
          delete s->stopped;
          s->stopped = nullptr;
        }
        delete keep;
      });
  s->batch = PollState::NewBatch();
  s->thread = std::thread(&PollState::Run, s);
}

RingPoller::~RingPoller() {
  PollState* s = state_.get();
  if (s->thread.joinable()) {
    s->Signal();
    s->thread.join();
  }
}

bool RingPoller::ok() const { return state_->error.empty(); }
std::string RingPoller::error() const { return state_->error; }

Napi::Promise RingPoller::Stop(Napi::Env env) {
  PollState* s = state_.get();
  auto* deferred = new Napi::Promise::Deferred(env);
  Napi::Promise p = deferred->Promise();
  if (s->stopping || !s->thread.joinable()) {
    deferred->Resolve(env.Undefined());
    delete deferred;
    return p;
  }
  s->stopping = true;
  s->stopped = deferred;
  s->Signal();
  return p;
}

PollerStats RingPoller::Stats() const {
  PollState* s = state_.get();
  PollerStats out;
  out.batches = s->batches.load();
  out.records = s->records.load();
  out.bytes = s->bytes.load();
  out.dropped_batches = s->dropped_batches.load();
  out.dropped_bytes = s->dropped_bytes.load();
  out.out_of_order = s->out_of_order.load();
  return out;
}

}  // namespace tcptrace
