#include "ring_poller.h"

#include <bpf/libbpf.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "tcpstate.h"

namespace tcptrace {

namespace {
constexpr size_t kFlushBytes = 4 << 20;  // hand over mid-drain past this, to bound batch size
// Several rings: records younger than this at a wake-up wait for the next one. A record's
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

uint64_t MonotonicNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);  // bpf_ktime_get_ns()'s clock
  return static_cast<uint64_t>(t.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(t.tv_nsec);
}

// One hand-over to JS: the packed records, and where the full stack records among them start
// (found while copying, so JS never walks the batch's headers a second time to find them).
struct Batch {
  std::vector<uint8_t> bytes;
  std::vector<uint32_t> stack_offsets;
};
}  // namespace

struct PollState;

// One ring's records read but not handed over yet (several rings only).
struct RingStage {
  struct Rec {
    uint64_t ts;
    uint32_t off;
    uint32_t size;
    bool stack;  // a full stack copy: the agent learns its stack from it (see Drain)
  };
  std::vector<uint8_t> bytes;
  std::vector<Rec> recs;
  size_t head = 0;    // the first record not handed over
  size_t stacks = 0;  // full stack copies among the staged records
};

struct PollState {
  ring_buffer* rb = nullptr;
  std::vector<RingStage> stages;  // one per ring when there are several; empty: straight to the batch
  uint64_t last_ts = 0;           // the newest record handed over (poll thread only)
  int epfd = -1;
  int stopfd = -1;
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
    if (rb != nullptr) ring_buffer__free(rb);
    if (epfd >= 0) close(epfd);
    if (stopfd >= 0) close(stopfd);
  }

  void Signal() {
    uint64_t one = 1;
    if (write(stopfd, &one, sizeof(one)) < 0) { /* the thread still wakes on its timeout */ }
  }

  // one ring: straight into the batch
  static int OnRecord(void* ctx, void* data, size_t size) {
    static_cast<PollState*>(ctx)->Append(static_cast<const uint8_t*>(data), size);
    return 0;
  }

  // several rings: into the ring's stage, for Merge()
  static int OnStaged(void* ctx, void* data, size_t size) {
    auto* st = static_cast<RingStage*>(ctx);
    const auto* p = static_cast<const uint8_t*>(data);
    const bool stack = KindOf(p, size) == TT_KIND_STACK;
    st->stacks += stack;
    st->recs.push_back({TsOf(p, size), static_cast<uint32_t>(st->bytes.size()), static_cast<uint32_t>(size), stack});
    st->bytes.insert(st->bytes.end(), p, p + size);
    return 0;
  }

  void Append(const uint8_t* p, size_t size) {
    std::vector<uint8_t>& out = batch->bytes;
    // full stack copies leave the batch (raw stack bytes are user data); references stay inline
    if (KindOf(p, size) == TT_KIND_STACK) batch->stack_offsets.push_back(static_cast<uint32_t>(out.size()));
    // Records are 8-byte multiples (struct alignment), so they stay aligned when packed.
    out.insert(out.end(), p, p + size);
    Appended(1);
  }

  void Appended(size_t records) {
    batch_records += records;
    if (batch->bytes.size() >= kFlushBytes) Flush();
  }

  // Hands over the staged records with a time up to cutoff, oldest first across the rings
  // (a heap of rings by their first record's time); each ring's later ones stay staged.
  // The ring on top gives a run: its records up to the next ring's first, copied at once
  // (a CPU's records come in bursts: a softirq's transitions, a syscall's).
  void Merge(uint64_t cutoff) {
    auto first_ts = [&](size_t i) { return stages[i].recs[stages[i].head].ts; };
    auto ready = [&](size_t i) { return stages[i].head < stages[i].recs.size() && first_ts(i) <= cutoff; };
    auto later = [&](size_t a, size_t b) { return first_ts(a) > first_ts(b); };
    std::vector<size_t> heap;
    for (size_t i = 0; i < stages.size(); i++)
      if (ready(i)) heap.push_back(i);
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const size_t i = heap.back();
      RingStage& st = stages[i];
      // the rest of the heap is heap[0, size - 1): its top is the next ring's first record
      const uint64_t bound = heap.size() > 1 ? std::min(cutoff, first_ts(heap.front())) : cutoff;
      const size_t from = st.head;
      do {
        const uint64_t ts = st.recs[st.head].ts;
        if (ts < last_ts) out_of_order++;
        else last_ts = ts;
        st.head++;
      } while (st.head < st.recs.size() && st.recs[st.head].ts <= bound);
      AppendRun(st, from, st.head);
      if (ready(i)) std::push_heap(heap.begin(), heap.end(), later);
      else heap.pop_back();
    }
    for (RingStage& st : stages) {
      if (st.head == st.recs.size()) {
        st.bytes.clear();
        st.recs.clear();
      } else if (st.head > 0) {
        const uint32_t base = st.recs[st.head].off;
        st.bytes.erase(st.bytes.begin(), st.bytes.begin() + base);
        st.recs.erase(st.recs.begin(), st.recs.begin() + static_cast<std::ptrdiff_t>(st.head));
        for (RingStage::Rec& rec : st.recs) rec.off -= base;
      }
      st.head = 0;
    }
  }

  // st's records [from, to), contiguous in its bytes, into the batch at once
  void AppendRun(RingStage& st, size_t from, size_t to) {
    std::vector<uint8_t>& out = batch->bytes;
    const uint32_t start = st.recs[from].off;
    const RingStage::Rec& last = st.recs[to - 1];
    const size_t base = out.size();
    for (size_t k = from; k < to; k++) {
      if (!st.recs[k].stack) continue;
      batch->stack_offsets.push_back(static_cast<uint32_t>(base + st.recs[k].off - start));
      st.stacks--;
    }
    out.insert(out.end(), st.bytes.data() + start, st.bytes.data() + last.off + last.size);
    Appended(to - from);
  }

  // One wake-up's reads: every ring, then (several rings) what is old enough, or all when
  // stopping. Returns the wait before the next: the interval, or the hold-back when a full
  // stack copy is still staged. The kernel wakes the agent for those (until it has unwound
  // one, every socket on that path costs another copy); they should not wait an interval.
  int Drain(bool last) {
    const uint64_t now = MonotonicNs();
    ring_buffer__consume(rb);
    bool stack_staged = false;
    if (!stages.empty()) {
      Merge(last ? UINT64_MAX : (now > kHoldNs ? now - kHoldNs : 0));
      for (const RingStage& st : stages) stack_staged = stack_staged || st.stacks > 0;
    }
    Flush();
    return stack_staged ? std::min(kHoldMs + 1, interval_ms) : interval_ms;
  }

  // Sized like the last batch handed over (plus a quarter): a busy ring fills
  // megabytes between polls, and growing a vector from 64 KiB by doubling copies
  // every byte about twice more.
  static Batch* NewBatch(size_t last_bytes = 0) {
    auto* b = new Batch();
    b->bytes.reserve(std::min(kFlushBytes + kFlushBytes / 4, std::max<size_t>(64 * 1024, last_bytes + last_bytes / 4)));
    return b;
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
      cb.Call({buf, offsets});
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
    struct epoll_event evs[2];
    bool stop = false;
    int wait_ms = interval_ms;
    while (!stop) {
      int n = epoll_wait(epfd, evs, 2, wait_ms);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; i++) {
        if (evs[i].data.u32 == 1) stop = true;
      }
      wait_ms = Drain(false);
    }
    Drain(true);  // whatever arrived while stopping, and all still staged
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
  if (ring_fds.size() == 1) {
    s->rb = ring_buffer__new(ring_fds[0], &PollState::OnRecord, s, nullptr);
  } else {
    s->stages.resize(ring_fds.size());  // never resized again: libbpf holds pointers to them
    s->rb = ring_buffer__new(ring_fds[0], &PollState::OnStaged, &s->stages[0], nullptr);
    for (size_t i = 1; s->rb != nullptr && i < ring_fds.size(); i++) {
      if (ring_buffer__add(s->rb, ring_fds[i], &PollState::OnStaged, &s->stages[i]) != 0) {
        s->error = std::string("ring_buffer__add: ") + std::strerror(errno);
        return;
      }
    }
  }
  if (s->rb == nullptr) {
    s->error = std::string("ring_buffer__new: ") + std::strerror(errno);
    return;
  }
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  s->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->epfd < 0 || s->stopfd < 0) {
    s->error = std::string("epoll/eventfd: ") + std::strerror(errno);
    return;
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u32 = 0;
  epoll_ctl(s->epfd, EPOLL_CTL_ADD, ring_buffer__epoll_fd(s->rb), &ev);
  ev.data.u32 = 1;
  epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stopfd, &ev);

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
