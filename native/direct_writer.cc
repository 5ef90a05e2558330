// See direct_writer.h. Thread affinity: DirectWriter methods on the JS thread,
// DirectWriteWorker::Execute() on the libuv pool.
#include "direct_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bpf_error.h"
#include "owned_fd.h"

namespace tcptrace {

struct DirectWriter::State {
  OwnedFd fd;
  uint8_t* buf = nullptr;  // kAlign-aligned, reused: grows to the largest write
  size_t cap = 0;
  std::atomic<bool> busy{false};

  ~State() { free(buf); }

  // 0, or the errno of the allocation
  int Reserve(size_t n) {
    if (n <= cap) return 0;
    size_t want = (n + n / 4 + kAlign - 1) & ~(kAlign - 1);
    void* p = nullptr;
    int e = posix_memalign(&p, kAlign, want);
    if (e != 0) return e;
    free(buf);
    buf = static_cast<uint8_t*>(p);
    cap = want;
    return 0;
  }
};

namespace {

struct Span {
  const uint8_t* data;
  size_t len;
};

class DirectWriteWorker : public Napi::AsyncWorker {
 public:
  DirectWriteWorker(Napi::Env env, std::shared_ptr<DirectWriter::State> state, Napi::Array buffers, std::vector<Span> spans,
                    size_t bytes, int64_t offset)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        state_(std::move(state)),
        keep_(Napi::Persistent(buffers)),
        spans_(std::move(spans)),
        bytes_(bytes),
        offset_(offset) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    DirectWriter::State& s = *state_;
    if (int e = s.Reserve(bytes_)) return Fail("allocate the direct I/O buffer", e);
    size_t at = 0;
    for (const Span& sp : spans_) {
      size_t n = std::min(sp.len, bytes_ - at);
      std::memcpy(s.buf + at, sp.data, n);
      at += n;
      if (at == bytes_) break;
    }
    for (size_t done = 0; done < bytes_;) {
      ssize_t w = pwrite(s.fd.get(), s.buf + done, bytes_ - done, offset_ + static_cast<int64_t>(done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return Fail("write (direct I/O)", errno);
      }
      if (w == 0) return Fail("write (direct I/O)", ENOSPC);  // no progress: never loop on it
      // a short direct write (a full disk) ends on a block boundary or not at all; what it
      // wrote is kept and the rest is tried again, where ENOSPC then says why
      done += static_cast<size_t>(w);
    }
  }

  void OnOK() override {
    state_->busy = false;
    deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(bytes_)));
  }
  void OnError(const Napi::Error&) override {
    state_->busy = false;
    deferred_.Reject(ToJsError(Env(), error_).Value());
  }

 private:
  void Fail(const char* op, int err) {
    error_ = MakeError(op, err);
    SetError(error_.message);
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<DirectWriter::State> state_;
  Napi::Reference<Napi::Array> keep_;  // the Buffers spans_ points into
  std::vector<Span> spans_;
  size_t bytes_;
  int64_t offset_;
  NativeError error_;
};

}  // namespace

void DirectWriter::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "DirectWriter",
                                    {InstanceMethod("write", &DirectWriter::Write), InstanceMethod("close", &DirectWriter::Close),
                                     StaticValue("align", Napi::Number::New(env, static_cast<double>(kAlign)))});
  exports.Set("DirectWriter", ctor);
}

// new DirectWriter(path): a second descriptor of an existing file, for direct I/O
DirectWriter::DirectWriter(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DirectWriter>(info), state_(std::make_shared<State>()) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "DirectWriter(path): a path expected");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  state_->fd = OwnedFd(open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC));
  if (state_->fd.get() < 0) throw ToJsError(env, MakeError("open " + path + " for direct I/O", errno));
}

// write(buffers, offset): writes the largest whole number of aligned blocks the
// buffers hold, in order, at offset (aligned); resolves with that byte count
// (0 when they hold less than one block: nothing is queued).
Napi::Value DirectWriter::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "write(buffers, offset): an array of Buffers and a number expected");
  if (!state_ || state_->fd.get() < 0) throw ToJsError(env, {"CLOSED", 0, "direct write", "direct writer is closed", ""});
  Napi::Array arr = info[0].As<Napi::Array>();
  int64_t offset = info[1].As<Napi::Number>().Int64Value();
  if (offset < 0 || offset % static_cast<int64_t>(kAlign) != 0)
    throw Napi::RangeError::New(env, "write(buffers, offset): offset must be a multiple of " + std::to_string(kAlign));
  std::vector<Span> spans;
  size_t total = 0;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsBuffer()) throw Napi::TypeError::New(env, "write(buffers, offset): buffers must all be Buffers");
    auto b = v.As<Napi::Buffer<uint8_t>>();
    spans.push_back({b.Data(), b.Length()});
    total += b.Length();
  }
  size_t whole = total & ~(kAlign - 1);
  if (whole == 0) {
    auto none = Napi::Promise::Deferred::New(env);
    none.Resolve(Napi::Number::New(env, 0));
    return none.Promise();
  }
  if (state_->busy.exchange(true)) throw ToJsError(env, {"BAD_STATE", 0, "direct write", "a direct write is already running", ""});
  auto* w = new DirectWriteWorker(env, state_, arr, std::move(spans), whole, offset);
  Napi::Promise p = w->Promise();
  w->Queue();  // deletes itself after OnOK/OnError
  return p;
}

// close(): lets go of the descriptor (a write still running keeps it until it settles)
Napi::Value DirectWriter::Close(const Napi::CallbackInfo& info) {
  state_.reset();
  return info.Env().Undefined();
}

}  // namespace tcptrace
