#include "ring_poller.h"

#include <bpf/libbpf.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "tcpstate.h"

namespace tcptrace {

namespace {
constexpr size_t kFlushBytes = 4 << 20;  // hand over mid-drain past this, to bound batch size

// One hand-over to JS: the packed records, and where the full stack records among them start
// (found while copying, so JS never walks the batch's headers a second time to find them).
struct Batch {
  std::vector<uint8_t> bytes;
  std::vector<uint32_t> stack_offsets;
};
}  // namespace

struct PollState {
  ring_buffer* rb = nullptr;
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
  std::atomic<uint64_t> batches{0}, records{0}, bytes{0}, dropped_batches{0}, dropped_bytes{0};
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

  static int OnRecord(void* ctx, void* data, size_t size) {
    auto* s = static_cast<PollState*>(ctx);
    const auto* p = static_cast<const uint8_t*>(data);
    std::vector<uint8_t>& out = s->batch->bytes;
    uint16_t kind = 0;
    if (size >= sizeof(tt_hdr)) std::memcpy(&kind, p + offsetof(tt_hdr, kind), sizeof(kind));
    // full stack copies leave the batch (raw stack bytes are user data); references stay inline
    if (kind == TT_KIND_STACK) s->batch->stack_offsets.push_back(static_cast<uint32_t>(out.size()));
    // Records are 8-byte multiples (struct alignment), so they stay aligned when packed.
    out.insert(out.end(), p, p + size);
    s->batch_records++;
    if (out.size() >= kFlushBytes) s->Flush();
    return 0;
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
    while (!stop) {
      int n = epoll_wait(epfd, evs, 2, interval_ms);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; i++) {
        if (evs[i].data.u32 == 1) stop = true;
      }
      ring_buffer__consume(rb);
      Flush();
    }
    ring_buffer__consume(rb);  // whatever arrived while stopping
    Flush();
    tsfn.Release();
  }
};

RingPoller::RingPoller(Napi::Env env, int ring_fd, Napi::Function on_batch, int interval_ms,
                       size_t max_inflight_bytes)
    : state_(std::make_shared<PollState>()) {
  PollState* s = state_.get();
  s->interval_ms = interval_ms;
  s->max_inflight = max_inflight_bytes;
  s->rb = ring_buffer__new(ring_fd, &PollState::OnRecord, s, nullptr);
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
  return out;
}

}  // namespace tcptrace
