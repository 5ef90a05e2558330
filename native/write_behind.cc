// See write_behind.h. Thread affinity: WriteBehind() on the JS thread, Execute() on the libuv pool.
#include "write_behind.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "bpf_error.h"

namespace tcptrace {

namespace {

class WriteBehindWorker : public Napi::AsyncWorker {
 public:
  WriteBehindWorker(Napi::Env env, int fd, int64_t from, int64_t to, int64_t drop_from)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), fd_(fd), from_(from), to_(to), drop_from_(drop_from) {}
  ~WriteBehindWorker() override {
    if (fd_ >= 0) close(fd_);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    // the new range: queue its writeback and return (WRITE alone does not wait for it)
    if (to_ > from_ && sync_file_range(fd_, from_, to_ - from_, SYNC_FILE_RANGE_WRITE) != 0) return Fail("start writeback", errno);
    if (from_ <= drop_from_) return;
    // the range before it: wait until it is on disk, then it can leave the cache
    const off_t len = from_ - drop_from_;
    if (sync_file_range(fd_, drop_from_, len, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0)
      return Fail("write back", errno);
    int e = posix_fadvise(fd_, drop_from_, len, POSIX_FADV_DONTNEED);  // returns the error, sets no errno
    if (e != 0) Fail("drop written pages", e);
  }

  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error&) override { deferred_.Reject(ToJsError(Env(), error_).Value()); }

 private:
  void Fail(const char* op, int err) {
    error_ = MakeError(op, err);
    SetError(error_.message);
  }

  Napi::Promise::Deferred deferred_;
  int fd_;
  int64_t from_, to_, drop_from_;
  NativeError error_;
};

// writeBehind(fd, from, to, dropFrom): starts writeback of [from, to), then
// writes back and drops [dropFrom, from). Resolves when done; rejects with a
// BpfError (code from the errno, op naming the step).
Napi::Value WriteBehind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber()) {
    throw Napi::TypeError::New(env, "writeBehind(fd, from, to, dropFrom): numbers expected");
  }
  int fd = dup(info[0].As<Napi::Number>().Int32Value());
  if (fd < 0) throw ToJsError(env, MakeError("dup recording descriptor", errno));
  auto* w = new WriteBehindWorker(env, fd, info[1].As<Napi::Number>().Int64Value(), info[2].As<Napi::Number>().Int64Value(),
                                  info[3].As<Napi::Number>().Int64Value());
  Napi::Promise p = w->Promise();
  w->Queue();  // the worker deletes itself after OnOK/OnError
  return p;
}

}  // namespace

void InitWriteBehind(Napi::Env env, Napi::Object exports) {
  exports.Set("writeBehind", Napi::Function::New(env, WriteBehind, "writeBehind"));
}

}  // namespace tcptrace
