// Thread affinity: JS thread only (builds JS objects).
#include "bpf_error.h"

#include <cerrno>
#include <cstring>

namespace tcptrace {

namespace {
// One per environment would be needed for workers; tcptrace uses the main thread only.
Napi::FunctionReference* g_error_ctor = nullptr;

Napi::Value Initialize(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(info.Env(), "initialize(BpfError): expected a class");
  }
  if (g_error_ctor == nullptr) g_error_ctor = new Napi::FunctionReference();
  *g_error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}
}  // namespace

std::string CodeForErrno(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINVAL: return "EINVAL";
    case E2BIG: return "E2BIG";
    case ENOMEM: return "ENOMEM";
    case EBUSY: return "EBUSY";
    case ENOTSUP: return "NOT_SUPPORTED";
    case ENOSYS: return "NOT_SUPPORTED";
    default: return "EUNKNOWN";
  }
}

NativeError MakeError(const std::string& op, int err, const std::string& detail,
                      const std::string& log) {
  NativeError e;
  e.code = CodeForErrno(err);
  e.err = err;
  e.op = op;
  e.message = "failed to " + op + ": " + (err ? std::strerror(err) : "error");
  if (!detail.empty()) e.message += " (" + detail + ")";
  e.log = log;
  return e;
}

Napi::Error ToJsError(Napi::Env env, const NativeError& e) {
  Napi::Object obj;
  if (g_error_ctor != nullptr && !g_error_ctor->IsEmpty()) {
    Napi::Object opts = Napi::Object::New(env);
    opts.Set("code", e.code);
    opts.Set("errno", e.err);
    opts.Set("op", e.op);
    opts.Set("log", e.log);
    obj = g_error_ctor->New({Napi::String::New(env, e.message), opts});
  } else {
    Napi::Error plain = Napi::Error::New(env, e.message);
    obj = plain.Value();
    obj.Set("code", e.code);
    obj.Set("errno", e.err);
    obj.Set("op", e.op);
    obj.Set("log", e.log);
  }
  return Napi::Error(env, obj);
}

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports.Set("initialize", Napi::Function::New(env, Initialize, "initialize"));
}

}  // namespace tcptrace
