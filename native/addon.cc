// tcptrace native addon: libbpf lifecycle, ring buffer transport, feature
// probes and sock_diag enumeration. Threading model: every export runs on the
// JS thread; the one worker thread per started Tracer is described in
// ring_poller.h; short-lived helper threads exist only inside a call (namespace
// switches in tracefs.cc and sock_diag.cc) and are joined before it returns;
// writeBehind() and DirectWriter.write() queue their blocking calls on the
// libuv thread pool (write_behind.h, direct_writer.h).
#include <napi.h>

#include "bpf_error.h"
#include "direct_writer.h"
#include "libbpf_log.h"
#include "probe.h"
#include "sock_diag.h"
#include "stack_resolver.h"
#include "tracer.h"
#include "write_behind.h"

namespace tcptrace {

Napi::Object InitAll(Napi::Env env, Napi::Object exports) {
  InstallLibbpfLogger();
  InitErrors(env, exports);
  InitProbe(env, exports);
  InitSockDiag(env, exports);
  Tracer::Init(env, exports);
  StackResolver::Init(env, exports);
  InitWriteBehind(env, exports);
  DirectWriter::Init(env, exports);
  return exports;
}

}  // namespace tcptrace

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return tcptrace::InitAll(env, exports); }

NODE_API_MODULE(tcptrace, Init)
