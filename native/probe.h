// Feature probes: what this kernel can attach, and why not when it cannot.
// Each probe really loads and attaches a trivial program (bpf/probe.bpf.c).
// Thread affinity: JS thread (synchronous; a full probe takes ~100 ms).
#pragma once

#include <napi.h>

namespace tcptrace {
void InitProbe(Napi::Env env, Napi::Object exports);
}
