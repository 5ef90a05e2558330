#include "probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "bpf_error.h"
#include "libbpf_log.h"
#include "probe.skel.h"
#include "tracefs.h"

namespace tcptrace {

namespace {

struct Outcome {
  bool ok = false;
  std::string reason;
  std::string log;
};

std::string Tail(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(s.size() - n); }

// Load the one named program and attach it; detach and free at once.
Outcome TryProgram(const std::string& name) {
  Outcome out;
  LogCapture capture;
  probe_bpf* skel = probe_bpf__open();
  if (skel == nullptr) {
    out.reason = std::string("open probe object: ") + std::strerror(errno);
    return out;
  }
  bpf_program* prog;
  bpf_program* target = nullptr;
  bpf_object__for_each_program(prog, skel->obj) {
    bool on = name == bpf_program__name(prog);
    bpf_program__set_autoload(prog, on);
    if (on) target = prog;
  }
  int err = probe_bpf__load(skel);
  if (err) {
    out.reason = std::string("load: ") + std::strerror(-err);
    out.log = Tail(capture.Text(), 2000);
    probe_bpf__destroy(skel);
    return out;
  }
  std::string sec = bpf_program__section_name(target);
  bpf_link* link = nullptr;
  if (sec.rfind("tracepoint/", 0) == 0) {
    std::string rest = sec.substr(11);
    std::string why;
    long id = TracepointId(rest.substr(0, rest.find('/')), rest.substr(rest.find('/') + 1), &why);
    if (id < 0) {
      out.reason = "tracepoint id: " + why;
    } else {
      int pfd = OpenTracepointEvent(id);
      if (pfd < 0) {
        out.reason = std::string("perf_event_open: ") + std::strerror(-pfd);
      } else {
        link = bpf_program__attach_perf_event(target, pfd);
        if (link == nullptr) {
          out.reason = std::string("attach: ") + std::strerror(errno);
          close(pfd);
        }
      }
    }
  } else {
    link = bpf_program__attach(target);
    if (link == nullptr) out.reason = std::string("attach: ") + std::strerror(errno);
  }
  if (link != nullptr) {
    out.ok = true;
    bpf_link__destroy(link);
  } else if (out.log.empty()) {
    out.log = Tail(capture.Text(), 2000);
  }
  probe_bpf__destroy(skel);
  return out;
}

Napi::Object ToJs(Napi::Env env, const Outcome& o) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("supported", o.ok);
  r.Set("reason", o.reason);
  if (!o.log.empty()) r.Set("log", o.log);
  return r;
}

// probeKernel(): { btf, bpf, ringbuf, tp_btf, raw_tp, fexit, kretprobe, tracepoint, syscallTracepoint, sockIo, btfWalk, tracefs }
Napi::Value ProbeKernel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);

  Outcome btf;
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
    btf.reason = std::string("/sys/kernel/btf/vmlinux: ") + std::strerror(errno) +
                 " (kernel built without CONFIG_DEBUG_INFO_BTF)";
  } else {
    struct btf* b = btf__load_vmlinux_btf();
    if (b == nullptr) {
      btf.reason = std::string("parse kernel BTF: ") + std::strerror(errno);
    } else {
      btf.ok = true;
      btf__free(b);
    }
  }
  out.Set("btf", ToJs(env, btf));

  Outcome bpf;
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tt_probe", 4, 4, 1, nullptr);
  if (fd < 0) {
    int e = errno;
    bpf.reason = std::string("bpf(BPF_MAP_CREATE): ") + std::strerror(e);
    if (e == EPERM) bpf.reason += " (needs root or CAP_BPF+CAP_PERFMON; or kernel.unprivileged_bpf_disabled / lockdown)";
  } else {
    bpf.ok = true;
    close(fd);
  }
  out.Set("bpf", ToJs(env, bpf));

  Outcome ring;
  if (bpf.ok) {
    int r = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr);
    ring.ok = r == 1;
    if (!ring.ok) ring.reason = r == 0 ? "BPF ring buffer needs kernel 5.8+" : std::string("probe: ") + std::strerror(-r);
  } else {
    ring.reason = "bpf() not permitted";
  }
  out.Set("ringbuf", ToJs(env, ring));

  const char* progs[][2] = {{"tp_btf", "probe_tp_btf"},
                            {"raw_tp", "probe_raw_tp"},
                            {"fexit", "probe_fexit"},
                            {"kretprobe", "probe_kretprobe"},
                            {"tracepoint", "probe_tracepoint"},
                            {"syscallTracepoint", "probe_syscall_tracepoint"},
                            {"sockIo", "probe_sock_io"},
                            {"btfWalk", "probe_btf_walk"}};
  for (auto& p : progs) {
    Outcome o;
    if (!bpf.ok || !btf.ok) {
      o.reason = !bpf.ok ? "bpf() not permitted" : "no kernel BTF";
    } else {
      o = TryProgram(p[1]);
    }
    out.Set(p[0], ToJs(env, o));
  }

  Napi::Object tfs = Napi::Object::New(env);
  std::string mounted = MountedTracefs();
  tfs.Set("mounted", mounted.empty() ? env.Null() : Napi::String::New(env, mounted));
  out.Set("tracefs", tfs);
  return out;
}

Napi::Value DrainLog(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), DrainLibbpfLog()); }

// What `tcptrace --version --verbose` says of the addon: the libbpf it runs with
// (the shared library's own answer, libbpf 0.7+) and the one it was compiled
// against, and the C++ compiler.
Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("libbpf", libbpf_version_string());
  out.Set("libbpfHeaders", std::to_string(LIBBPF_MAJOR_VERSION) + "." + std::to_string(LIBBPF_MINOR_VERSION));
  out.Set("compiler", std::string("g++ ") + __VERSION__);
  out.Set("napiVersion", NAPI_VERSION);
  return out;
}

}  // namespace

void InitProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("probeKernel", Napi::Function::New(env, ProbeKernel, "probeKernel"));
  exports.Set("drainLibbpfLog", Napi::Function::New(env, DrainLog, "drainLibbpfLog"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
}

}  // namespace tcptrace
