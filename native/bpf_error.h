// Typed errors across the boundary.
//
// Every failure that reaches JS is an instance of the JS class BpfError
// (src/errors.ts), handed to the addon once by initialize(). It carries a stable
// `code` (EPERM, VERIFIER, NOT_SUPPORTED, NO_BTF, ...), the `errno`, the failed
// operation `op`, and the verifier/libbpf log in `log`, kept apart from the
// one-line message. Thread affinity: JS thread only.
#pragma once

#include <napi.h>

#include <string>

namespace tcptrace {

struct NativeError {
  std::string code;  // stable identifier, see src/errors.ts
  int err = 0;       // positive errno, 0 if none
  std::string op;    // "load BPF object", "attach tp_btf/inet_sock_set_state", ...
  std::string message;
  std::string log;  // libbpf / verifier output, may be empty
};

// Maps an errno to the stable code used when nothing more specific is known.
std::string CodeForErrno(int err);

NativeError MakeError(const std::string& op, int err, const std::string& detail = "",
                      const std::string& log = "");

// Builds a BpfError instance (falls back to Error before initialize()).
Napi::Error ToJsError(Napi::Env env, const NativeError& e);

void InitErrors(Napi::Env env, Napi::Object exports);

}  // namespace tcptrace
