// StackResolver: turns a TT_KIND_STACK ring record (user registers + a copy of
// the user stack) into pcs (resolve), and pcs into symbolized frames
// (symbolize), while the process is alive. Two calls, so that the caller can
// teach the kernel a new stack's fingerprint from its pcs before paying for the
// first symbolization (debug info loads lazily: tens of ms), during which every
// socket on the same path would cost another full copy.
//
// Threading model: JS thread only. The libdwfl-based Unwinder/Symbolizer
// (native/stacks) are not thread-safe and are only ever used from here. Stack
// bytes are read from the record in the JS Buffer and never copied elsewhere,
// logged, or returned: only frames leave this file.
#pragma once

#include <napi.h>

#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "stacks/symbolizer.h"
#include "stacks/unwinder.h"

namespace tcptrace {

class StackResolver : public Napi::ObjectWrap<StackResolver> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit StackResolver(const Napi::CallbackInfo& info);

 private:
  Napi::Value Resolve(const Napi::CallbackInfo& info);
  Napi::Value Symbolize(const Napi::CallbackInfo& info);
  Napi::Value Prepare(const Napi::CallbackInfo& info);
  Napi::Value Forget(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);

  stacks::Unwinder* UnwinderFor(int pid);

  size_t max_frames_ = 64;
  size_t max_pids_ = 256;
  // one Unwinder per process, least recently used evicted (each holds fds for its mapped files)
  std::list<int> lru_;
  std::unordered_map<int, std::pair<std::unique_ptr<stacks::Unwinder>, std::list<int>::iterator>> unwinders_;
  stacks::Symbolizer symbolizer_;
  uint64_t resolved_ = 0, failed_ = 0, unwind_ns_ = 0, symbolize_ns_ = 0, frames_ = 0;
};

}  // namespace tcptrace
