// Direct-I/O appends for recordings (O_DIRECT): whole aligned blocks go from
// one reused buffer of the agent's straight to the disk, past the page cache.
//
// Why: a whole-system recording under connection churn appends ~47 MB/s here
// (nginx, wrk, Connection: close). Buffered, the copy into the page cache and
// the page and buffer-head bookkeeping around it were 40 % of the agent's CPU
// (perf, 2026-11-22), and write-behind (write_behind.h) then had to write the
// pages back and drop them again so that a long recording does not push the
// server's own files out of the cache. Direct I/O does neither: the copy into
// the aligned buffer is the only one, and the cache never holds the recording.
// File systems that refuse O_DIRECT (tmpfs before 6.6, some FUSE) fail at open
// or at the first write, and the recording stays buffered (src/record/writer.ts).
//
// Threading model: the DirectWriter object lives on the JS thread. write()
// queues one AsyncWorker on the libuv thread pool, which copies the whole
// blocks of the given Buffers (held by reference until it settles) into the
// aligned buffer and pwrite()s them; one write at a time (a second while one
// runs throws). The worker shares the descriptor and buffer with the object
// (shared_ptr), so close() while a write runs only lets go of them.
#pragma once

#include <napi.h>

#include <cstddef>
#include <memory>

namespace tcptrace {

class DirectWriter : public Napi::ObjectWrap<DirectWriter> {
 public:
  // Alignment of file offsets, lengths and the buffer: the page size, which is
  // at least the logical block size of the devices O_DIRECT is used on.
  static constexpr size_t kAlign = 4096;

  static void Init(Napi::Env env, Napi::Object exports);
  explicit DirectWriter(const Napi::CallbackInfo& info);

  struct State;

 private:
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<State> state_;
};

}  // namespace tcptrace
