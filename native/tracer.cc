// Thread affinity: every method runs on the JS thread; the only other thread is
// the RingPoller's (see ring_poller.h).
#include "tracer.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "bpf_error.h"
#include "libbpf_log.h"
#include "linger.h"
#include "map_walk.h"
#include "ring_poller.h"
#include "tcpstate.h"
#include "tcpstate.skel.h"
#include "tracefs.h"

namespace tcptrace {

namespace {

uint32_t GetU32(Napi::Object o, const char* key, uint32_t def) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : def;
}

bool GetBool(Napi::Object o, const char* key, bool def) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() ? v.As<Napi::Boolean>().Value() : def;
}

uint64_t GetU64(Napi::Value v) {
  if (v.IsBigInt()) {
    bool lossless;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  return v.IsNumber() ? static_cast<uint64_t>(v.As<Napi::Number>().Int64Value()) : 0;
}

void CopyComm(Napi::Object o, char* dst) {
  std::memset(dst, 0, TT_COMM_LEN);
  Napi::Value v = o.Get("comm");
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    std::strncpy(dst, s.c_str(), TT_COMM_LEN - 1);
  }
}

tt_owner OwnerFrom(Napi::Object o) {
  tt_owner ow;
  std::memset(&ow, 0, sizeof(ow));
  ow.first_ns = GetU64(o.Get("firstNs"));
  ow.tgid = GetU32(o, "tgid", 0);
  Napi::Value fd = o.Get("fd");
  ow.fd = fd.IsNumber() ? fd.As<Napi::Number>().Int32Value() : -1;
  ow.origin = static_cast<uint8_t>(GetU32(o, "origin", TT_ORIGIN_PREEXISTING));
  // a socket present at attach is in user space's table already: never summarised
  // (a listener's children clear this flag: they are new)
  ow.flags = TT_OWNER_PUBLISHED;
  CopyComm(o, ow.comm);
  return ow;
}

// "tracepoint/sock/inet_sock_set_state" -> attach through tracefs ids (see tracefs.h).
bpf_link* AttachTracepoint(bpf_program* prog, const std::string& sec, NativeError* err) {
  std::string rest = sec.substr(sec.find('/') + 1);
  size_t slash = rest.find('/');
  std::string cat = rest.substr(0, slash), name = rest.substr(slash + 1);
  std::string why;
  long id = TracepointId(cat, name, &why);
  if (id < 0) {
    *err = MakeError("attach " + sec, static_cast<int>(-id), why);
    return nullptr;
  }
  int pfd = OpenTracepointEvent(id);
  if (pfd < 0) {
    *err = MakeError("attach " + sec, -pfd, "perf_event_open");
    return nullptr;
  }
  bpf_link* link = bpf_program__attach_perf_event(prog, pfd);
  if (link == nullptr) {
    int e = errno;
    close(pfd);
    *err = MakeError("attach " + sec, e);
    return nullptr;
  }
  return link;
}

}  // namespace

void Tracer::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "Tracer",
                                    {
                                        InstanceMethod("load", &Tracer::Load),
                                        InstanceMethod("attach", &Tracer::Attach),
                                        InstanceMethod("addTargets", &Tracer::AddTargets),
                                        InstanceMethod("seedOwners", &Tracer::SeedOwners),
                                        InstanceMethod("seedListeners", &Tracer::SeedListeners),
                                        InstanceMethod("learnStack", &Tracer::LearnStack),
                                        InstanceMethod("setPython", &Tracer::SetPython),
                                        InstanceMethod("start", &Tracer::Start),
                                        InstanceMethod("stop", &Tracer::Stop),
                                        InstanceMethod("counters", &Tracer::Counters),
                                        InstanceMethod("rings", &Tracer::Rings),
                                        InstanceMethod("heldStates", &Tracer::HeldStates),
                                        InstanceMethod("heldByProcess", &Tracer::HeldByProcess),
                                        InstanceMethod("mapFill", &Tracer::MapFill),
                                        InstanceMethod("activeCloses", &Tracer::ActiveCloses),
                                        InstanceMethod("setLinger", &Tracer::SetLinger),
                                        InstanceMethod("sweepLingering", &Tracer::SweepLingering),
                                        InstanceMethod("heldCounts", &Tracer::HeldCounts),
                                        InstanceMethod("cgroupOf", &Tracer::CgroupOf),
                                        InstanceMethod("close", &Tracer::Close),
                                    });
  exports.Set("Tracer", ctor);
}

Tracer::Tracer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tracer>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    throw Napi::TypeError::New(env, "Tracer(options): expected an options object");
  }
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Value progs = o.Get("programs");
  if (!progs.IsArray()) throw Napi::TypeError::New(env, "Tracer: options.programs must be an array");

  LogCapture capture;
  skel_ = tcpstate_bpf__open();
  if (skel_ == nullptr) {
    throw ToJsError(env, MakeError("open BPF object", errno, "", capture.Text()));
  }

  Napi::Array arr = progs.As<Napi::Array>();
  std::set<std::string> want;
  for (uint32_t i = 0; i < arr.Length(); i++) want.insert(arr.Get(i).As<Napi::String>().Utf8Value());
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    std::string name = bpf_program__name(prog);
    bool on = want.count(name) > 0;
    bpf_program__set_autoload(prog, on);
    if (on) {
      programs_.push_back(name);
      want.erase(name);
    }
  }
  if (!want.empty()) {
    std::string missing = *want.begin();
    CloseAll();
    throw Napi::TypeError::New(env, "Tracer: no BPF program named " + missing);
  }

  // Configuration is rodata: constant for the verifier, dead branches pruned.
  skel_->rodata->targ_filter = GetBool(o, "filter", false);
  skel_->rodata->targ_children = GetBool(o, "children", false);
  skel_->rodata->targ_self_tgid = static_cast<int32_t>(getpid());
  skel_->rodata->targ_stacks = GetBool(o, "stacks", false);
  // sk -> owner in the kernel: --pid filters with it and stacks keep per-socket state in it
  const bool owners = GetBool(o, "owners", true) || skel_->rodata->targ_filter || skel_->rodata->targ_stacks;
  skel_->rodata->targ_owners = owners;
  // a held socket lives in its owners entry: --pid, or the whole system with stacks (the agent)
  skel_->rodata->targ_summary = GetBool(o, "summary", false) && owners;
  skel_->rodata->targ_io_syscalls = GetBool(o, "ioViaSyscalls", true);
  skel_->rodata->targ_stack_bytes = std::min<uint32_t>(GetU32(o, "stackBytes", 16384), TT_STACK_MAX);
  skel_->rodata->targ_stack_rate = std::max<uint32_t>(GetU32(o, "stackRate", 2000), 1);
  uint32_t ring = GetU32(o, "ringBytes", 8u << 20);
  // --ring-size is split among the possible CPUs' rings, a power of two each; below
  // kMinCpuRing each (many possible CPUs for the size) one shared ring keeps the memory to it
  constexpr uint32_t kMinCpuRing = 64 * 1024;
  const uint32_t ncpu = static_cast<uint32_t>(std::max(libbpf_num_possible_cpus(), 1));
  ring_per_cpu_ = GetBool(o, "ringPerCpu", true) && ncpu > 1 && ring / ncpu >= kMinCpuRing;
  ring_bytes_ = ring;
  if (ring_per_cpu_) {
    uint32_t each = kMinCpuRing;
    while (each * 2 <= ring / ncpu) each *= 2;
    ring_bytes_ = each;
  }
  skel_->rodata->targ_ring_per_cpu = ring_per_cpu_;
  skel_->rodata->targ_cgroups = GetBool(o, "cgroups", false);
  skel_->rodata->targ_wakeup_bytes = GetU32(o, "wakeupBytes", ring_bytes_ / 4);
  // the agent's brief CLOSE_WAIT histogram: its buckets' upper bounds, ascending (the rest: 0 = none)
  Napi::Value bounds = o.Get("closeWaitBoundsNs");
  if (bounds.IsArray()) {
    Napi::Array b = bounds.As<Napi::Array>();
    for (uint32_t i = 0; i < TT_CW_BOUNDS && i < b.Length(); i++) skel_->rodata->targ_cw_bounds_ns[i] = GetU64(b.Get(i));
  }
  linger_ = GetBool(o, "linger", false);
  // the agent: held sockets' brief CLOSE_WAITs and transitions, per process (lingering needs it)
  held_counts_ = GetBool(o, "heldCounts", false) || linger_;
  skel_->rodata->targ_held_counts = held_counts_;
  uint32_t max_sockets = GetU32(o, "maxSockets", 65536);
  uint32_t max_targets = GetU32(o, "maxTargets", 4096);

  // the ring that is not used gets one page; the inner map template is this tracer's, sized
  ring_template_ = OwnedFd(bpf_map_create(BPF_MAP_TYPE_RINGBUF, "tt_ring_tmpl", 0, 0, ring_per_cpu_ ? ring_bytes_ : 4096, nullptr));
  if (ring_template_.get() < 0) {
    int e = errno;
    CloseAll();
    throw ToJsError(env, MakeError("create ring buffer template", e));
  }
  int err = bpf_map__set_max_entries(skel_->maps.events, ring_per_cpu_ ? 4096 : ring);
  if (!err) err = bpf_map__set_max_entries(skel_->maps.rings, ring_per_cpu_ ? ncpu : 1);
  if (!err) err = bpf_map__set_inner_map_fd(skel_->maps.rings, ring_template_.get());
  // unused without targ_owners: one entry each instead of preallocated megabytes
  if (!err) err = bpf_map__set_max_entries(skel_->maps.owners, owners ? max_sockets : 1);
  // seeds: the sockets present at attach; sized by the caller from what the host holds (maxSeeds),
  // at most max_sockets (an 1M-socket --max-sockets would otherwise preallocate 120 MiB for it)
  const uint32_t max_seeds = std::max<uint32_t>(std::min<uint32_t>(GetU32(o, "maxSeeds", max_sockets), max_sockets), 1);
  if (!err) err = bpf_map__set_max_entries(skel_->maps.seeds, owners ? max_seeds : 1);
  if (!err && !owners) err = bpf_map__set_max_entries(skel_->maps.listeners, 1);
  if (!err) err = bpf_map__set_max_entries(skel_->maps.targets, max_targets);
  // the agent's lingering CLOSE_WAIT sockets and brief counts (linger.bpf.h): one entry each otherwise
  if (!err && !linger_) err = bpf_map__set_max_entries(skel_->maps.lingering, 1);
  if (!err && !held_counts_) err = bpf_map__set_max_entries(skel_->maps.held_counts, 1);
  if (!err) err = bpf_map__set_max_entries(skel_->maps.stack_scratch, static_cast<uint32_t>(std::max(libbpf_num_possible_cpus(), 1) * TT_SCRATCH_PER_CPU));
  if (err) {
    CloseAll();
    throw ToJsError(env, MakeError("size BPF maps", -err, "ring size must be a power of 2 multiple of the page size"));
  }
}

Tracer::~Tracer() { CloseAll(); }

void Tracer::RequireState(Napi::Env env, int want, const char* what) {
  if (state_ == kClosed) throw ToJsError(env, {"CLOSED", 0, what, std::string("tracer is closed"), ""});
  if (state_ != want) {
    throw ToJsError(env, {"BAD_STATE", 0, what,
                          std::string(what) + " called out of order (open -> load -> attach -> start)", ""});
  }
}

Napi::Value Tracer::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kOpened, "load");
  LogCapture capture;
  int err = tcpstate_bpf__load(skel_);
  if (err) {
    std::string log = capture.Text();
    NativeError e = MakeError("load BPF programs", -err, "", log);
    // The verifier's own words start after this marker in libbpf's output.
    if (log.find("BEGIN PROG LOAD LOG") != std::string::npos || log.find("processed ") != std::string::npos)
      e.code = "VERIFIER";
    throw ToJsError(env, e);
  }
  ring_template_.Reset();
  if (ring_per_cpu_) {
    // before attach: a program that finds its CPU's slot empty counts a full ring
    int outer = bpf_map__fd(skel_->maps.rings);
    for (uint32_t cpu = 0; cpu < bpf_map__max_entries(skel_->maps.rings); cpu++) {
      OwnedFd r(bpf_map_create(BPF_MAP_TYPE_RINGBUF, "tt_ring_cpu", 0, 0, ring_bytes_, nullptr));
      int fd = r.get();
      int e = fd < 0 ? errno : 0;
      if (!e && bpf_map_update_elem(outer, &cpu, &fd, BPF_ANY) != 0) e = errno;
      if (e) {
        throw ToJsError(env, MakeError("create the ring buffer of CPU " + std::to_string(cpu), e,
                                       std::to_string(ring_bytes_) + " bytes each: lower --ring-size, or use --no-ring-per-cpu"));
      }
      cpu_rings_.push_back(std::move(r));
    }
  }
  state_ = kLoaded;
  return env.Undefined();
}

Napi::Value Tracer::Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kLoaded, "attach");
  Napi::Array out = Napi::Array::New(env);
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (!bpf_program__autoload(prog)) continue;
    std::string sec = bpf_program__section_name(prog);
    if (sec == "raw_tp") continue;  // run by BPF_PROG_TEST_RUN, never attached (publish_lingering)
    LogCapture capture;
    NativeError nerr;
    bpf_link* link;
    if (sec.rfind("tracepoint/", 0) == 0) {
      link = AttachTracepoint(prog, sec, &nerr);
    } else {
      link = bpf_program__attach(prog);
      if (link == nullptr) nerr = MakeError("attach " + sec, errno, "", capture.Text());
    }
    if (link == nullptr) {
      for (bpf_link* l : links_) bpf_link__destroy(l);
      links_.clear();
      throw ToJsError(env, nerr);
    }
    links_.push_back(link);
    Napi::Object rec = Napi::Object::New(env);
    rec.Set("program", bpf_program__name(prog));
    rec.Set("section", sec);
    out.Set(out.Length(), rec);
  }
  state_ = kAttached;
  return out;
}

Napi::Value Tracer::AddTargets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ != kLoaded && state_ != kAttached) RequireState(env, kLoaded, "addTargets");
  Napi::Array arr = info[0].As<Napi::Array>();
  uint8_t one = 1;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    uint32_t tgid = arr.Get(i).As<Napi::Number>().Uint32Value();
    int err = bpf_map__update_elem(skel_->maps.targets, &tgid, sizeof(tgid), &one, sizeof(one), BPF_ANY);
    if (err) throw ToJsError(env, MakeError("add target pid " + std::to_string(tgid), -err));
    // the map is complete; the fast list is a prefix of it (the count is written after the entry)
    auto* bss = skel_->bss;
    uint32_t n = __atomic_load_n(&bss->fast_target_count, __ATOMIC_ACQUIRE);
    bool known = false;
    for (uint32_t j = 0; j < n; j++) known = known || bss->fast_targets[j] == tgid;
    if (known) continue;
    if (n < TT_FAST_TARGETS) {
      bss->fast_targets[n] = tgid;
      __atomic_store_n(&bss->fast_target_count, n + 1, __ATOMIC_RELEASE);
    } else {
      bss->targets_spilled = true;
    }
  }
  return env.Undefined();
}

// seedOwners([{cookie, tgid, fd, firstNs, origin, comm}]): sockets that predate attach.
Napi::Value Tracer::SeedOwners(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ != kLoaded && state_ != kAttached) RequireState(env, kLoaded, "seedOwners");
  Napi::Array arr = info[0].As<Napi::Array>();
  uint32_t n = 0;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    uint64_t cookie = GetU64(o.Get("cookie"));
    if (cookie == 0) continue;
    tt_owner ow = OwnerFrom(o);
    int err = bpf_map__update_elem(skel_->maps.seeds, &cookie, sizeof(cookie), &ow, sizeof(ow), BPF_ANY);
    if (err == -E2BIG) break;  // the seeds map is full: the caller counts the rest (unattributed in the kernel)
    if (err) throw ToJsError(env, MakeError("seed socket owner", -err));
    n++;
  }
  if (n > 0) skel_->bss->seeded = true;
  return Napi::Number::New(env, n);
}

// seedListeners([{netns, port, tgid, fd, comm}]): traced listeners that predate attach.
Napi::Value Tracer::SeedListeners(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ != kLoaded && state_ != kAttached) RequireState(env, kLoaded, "seedListeners");
  Napi::Array arr = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object o = arr.Get(i).As<Napi::Object>();
    tt_listen_key key = {};
    key.netns = GetU32(o, "netns", 0);
    key.port = static_cast<uint16_t>(GetU32(o, "port", 0));
    tt_owner ow = OwnerFrom(o);
    ow.origin = TT_ORIGIN_LISTEN;
    int err = bpf_map__update_elem(skel_->maps.listeners, &key, sizeof(key), &ow, sizeof(ow), BPF_ANY);
    if (err) throw ToJsError(env, MakeError("seed listener", -err));
  }
  return env.Undefined();
}

// learnStack({tgid, site, hash, stackId, rules: [{pc, cfaOff}]}): teach the kernel a stack
// it can recognise from now on without copying it (see "Stack dedup" in tcpstate.h).
// Both maps are LRU: an evicted entry only costs one more full copy.
Napi::Value Tracer::LearnStack(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ != kAttached) return env.Undefined();
  Napi::Object o = info[0].As<Napi::Object>();
  uint32_t tgid = GetU32(o, "tgid", 0);
  Napi::Array rules = o.Get("rules").As<Napi::Array>();
  for (uint32_t i = 0; i < rules.Length(); i++) {
    Napi::Object r = rules.Get(i).As<Napi::Object>();
    tt_cfa_key key = {};
    key.tgid = tgid;
    key.pc = static_cast<uint64_t>(r.Get("pc").As<Napi::Number>().DoubleValue());
    int32_t off = r.Get("cfaOff").As<Napi::Number>().Int32Value();
    bpf_map__update_elem(skel_->maps.cfa_rules, &key, sizeof(key), &off, sizeof(off), BPF_ANY);
  }
  tt_known_key kk = {};
  kk.tgid = tgid;
  kk.site = GetU32(o, "site", 0);
  kk.hash = GetU64(o.Get("hash"));
  uint32_t id = GetU32(o, "stackId", 0);
  int err = bpf_map__update_elem(skel_->maps.known_stacks, &kk, sizeof(kk), &id, sizeof(id), BPF_ANY);
  if (err) throw ToJsError(env, MakeError("register a known stack", -err));
  return env.Undefined();
}

// setPython(tgid, config: Buffer | null): the tt_py_proc entry of a CPython process
// (src/stacks/python/process.ts), or null to drop it. The kernel copies the
// process's Python frames at each capture from then on.
Napi::Value Tracer::SetPython(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ != kAttached) return env.Undefined();
  if (info.Length() < 2 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "setPython(tgid, config): expected a tgid");
  uint32_t tgid = info[0].As<Napi::Number>().Uint32Value();
  if (info[1].IsNull() || info[1].IsUndefined()) {
    bpf_map__delete_elem(skel_->maps.py_procs, &tgid, sizeof(tgid), 0);
    return env.Undefined();
  }
  if (!info[1].IsBuffer() || info[1].As<Napi::Buffer<uint8_t>>().Length() != sizeof(tt_py_proc)) {
    throw Napi::TypeError::New(env, "setPython: config must be a Buffer of sizeof(struct tt_py_proc)");
  }
  tt_py_proc p;
  std::memcpy(&p, info[1].As<Napi::Buffer<uint8_t>>().Data(), sizeof(p));
  int err = bpf_map__update_elem(skel_->maps.py_procs, &tgid, sizeof(tgid), &p, sizeof(p), BPF_ANY);
  if (err) throw ToJsError(env, MakeError("register a CPython process", -err));
  skel_->bss->py_registered = true;  // its forked children inherit the entry (python.bpf.h)
  return env.Undefined();
}

// start(onBatch(buffer, stackOffsets?: Uint32Array, records: number), {intervalMs, maxInflightBytes})
Napi::Value Tracer::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kAttached, "start");
  if (poller_) throw ToJsError(env, {"BAD_STATE", 0, "start", "tracer already started", ""});
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "start(onBatch): expected a function");
  uint32_t interval = 100;
  double max_inflight = 256.0 * 1024 * 1024;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    interval = GetU32(o, "intervalMs", interval);
    Napi::Value m = o.Get("maxInflightBytes");
    if (m.IsNumber()) max_inflight = m.As<Napi::Number>().DoubleValue();
  }
  std::vector<int> rings;
  for (const OwnedFd& r : cpu_rings_) rings.push_back(r.get());
  if (rings.empty()) rings.push_back(bpf_map__fd(skel_->maps.events));
  poller_ = std::make_unique<RingPoller>(env, rings, info[0].As<Napi::Function>(),
                                         static_cast<int>(interval), static_cast<size_t>(max_inflight));
  if (!poller_->ok()) {
    std::string why = poller_->error();
    poller_.reset();
    throw ToJsError(env, {"EPOLL", 0, "start ring buffer poller", "failed to start ring buffer poller: " + why, ""});
  }
  return env.Undefined();
}

Napi::Value Tracer::Stop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!poller_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  return poller_->Stop(env);
}

// counters(): kernel per-CPU counters summed (index = enum tt_counter) and the poller's own.
Napi::Value Tracer::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  if (state_ == kClosed || skel_ == nullptr) return out;
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> vals(ncpu > 0 ? ncpu : 1);
  Napi::Array kernel = Napi::Array::New(env);
  for (uint32_t k = 0; k < TT_CNT__MAX; k++) {
    uint64_t sum = 0;
    if (bpf_map__lookup_elem(skel_->maps.counters, &k, sizeof(k), vals.data(), vals.size() * sizeof(uint64_t), 0) == 0) {
      for (uint64_t v : vals) sum += v;
    }
    kernel.Set(k, Napi::BigInt::New(env, sum));
  }
  out.Set("kernel", kernel);
  // Runs the kernel skipped because a BPF program was already running on that CPU
  // (bpf_prog_info.recursion_misses: counted for fentry/fexit since 5.12, raw_tp /
  // tp_btf since 6.2, kprobes and plain tracepoints since 6.7; older kernels skip
  // without counting). Plain tracepoint programs share one per-CPU guard: a
  // transition in a softirq that interrupts a syscall hook is not seen at all.
  // Since 7.0 raw_tp / tp_btf programs are preemptible, so a hook also misses
  // when it preempted another task's run of the same program. missedBy names
  // the programs, so a report can say which events can be missing (the total is
  // their sum, taken in JS).
  Napi::Object missed_by = Napi::Object::New(env);
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    int fd = bpf_program__fd(prog);
    if (fd < 0) continue;
    bpf_prog_info pi = {};
    uint32_t len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(fd, &pi, &len) != 0 || !pi.recursion_misses) continue;
    missed_by.Set(bpf_program__name(prog), Napi::Number::New(env, static_cast<double>(pi.recursion_misses)));
  }
  out.Set("missedBy", missed_by);
  PollerStats s = poller_ ? poller_->Stats() : PollerStats();
  out.Set("batches", Napi::BigInt::New(env, s.batches));
  out.Set("records", Napi::BigInt::New(env, s.records));
  out.Set("bytes", Napi::BigInt::New(env, s.bytes));
  out.Set("droppedBatches", Napi::BigInt::New(env, s.dropped_batches));
  out.Set("droppedBytes", Napi::BigInt::New(env, s.dropped_bytes));
  out.Set("outOfOrder", Napi::BigInt::New(env, s.out_of_order));
  return out;
}

// rings(): the ring buffers records come through, after load: one per possible CPU, or the shared one
Napi::Value Tracer::Rings(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(std::max<size_t>(cpu_rings_.size(), 1)));
}

namespace {

// The owners map's held entries (summary mode: never published), one call each.
void ForEachHeld(bpf_map* owners, const std::function<void(const tt_owner&)>& fn) {
  const int fd = bpf_map__fd(owners);
  ForEachKey(fd, sizeof(uint64_t), bpf_map__max_entries(owners), [&](const void* key) {
    tt_owner ow;
    // an entry deleted between the two calls is skipped: the map is live
    if (bpf_map_lookup_elem(fd, key, &ow) == 0 && !(ow.flags & TT_OWNER_PUBLISHED)) fn(ow);
  });
}

}  // namespace

// mapFill(): entries of each hash map of the object, counted by walking its keys
// (about 0.3 us a key). No kernel keeps an element count user space can read
// without an iterator program (the bpf_map_sum_elem_count kfunc, 6.6+, is for BPF
// programs), so this walks. Arrays are full by construction, ring buffers have
// no entries: left out.
Napi::Value Tracer::MapFill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kAttached, "mapFill");
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  bpf_map* map;
  bpf_object__for_each_map(map, skel_->obj) {
    const bpf_map_type type = bpf_map__type(map);
    const bool lru = type == BPF_MAP_TYPE_LRU_HASH || type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
    if (type != BPF_MAP_TYPE_HASH && type != BPF_MAP_TYPE_PERCPU_HASH && !lru) continue;
    const int fd = bpf_map__fd(map);
    if (fd < 0) continue;  // not created (a map of programs not loaded)
    const uint32_t max = bpf_map__max_entries(map);
    const uint64_t entries = ForEachKey(fd, bpf_map__key_size(map), max, [](const void*) {});
    Napi::Object o = Napi::Object::New(env);
    o.Set("map", bpf_map__name(map));
    o.Set("entries", static_cast<double>(entries));
    o.Set("maxEntries", static_cast<double>(max));
    o.Set("lru", lru);
    out.Set(n++, o);
  }
  return out;
}

namespace {

// info[i] as a set of tgids (the exited processes whose rows a read deletes); none if absent
std::set<uint32_t> TgidsArg(const Napi::CallbackInfo& info, size_t i) {
  std::set<uint32_t> out;
  if (info.Length() > i && info[i].IsArray()) {
    Napi::Array a = info[i].As<Napi::Array>();
    for (uint32_t k = 0; k < a.Length(); k++) out.insert(a.Get(k).As<Napi::Number>().Uint32Value());
  }
  return out;
}

}  // namespace

// activeCloses(drop?: number[]): the active_closes map (bpf/lib/closes.bpf.h) as a
// flat array [tgid, stackId, count, ...]; the keys of the tgids in drop (exited
// processes the agent has folded into its totals) are deleted. The keys are taken
// first and then read, so deleting does not disturb the walk.
Napi::Value Tracer::ActiveCloses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kAttached, "activeCloses");
  const std::set<uint32_t> drop = TgidsArg(info, 0);
  const int fd = bpf_map__fd(skel_->maps.active_closes);
  std::vector<tt_close_key> keys;
  ForEachKey(fd, sizeof(tt_close_key), bpf_map__max_entries(skel_->maps.active_closes),
             [&](const void* k) { keys.push_back(*static_cast<const tt_close_key*>(k)); });
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (const tt_close_key& k : keys) {
    if (drop.count(k.tgid)) {
      bpf_map_delete_elem(fd, &k);
      continue;
    }
    uint64_t count = 0;
    if (bpf_map_lookup_elem(fd, &k, &count) != 0) continue;  // deleted meanwhile
    out.Set(n++, k.tgid);
    out.Set(n++, k.stack_id);
    out.Set(n++, static_cast<double>(count));
  }
  return out;
}

// setLinger(ns): how long a held socket stays in CLOSE_WAIT before the sweep sends it
// (linger.bpf.h; 0: at once). Needs the publish_lingering program, and a kernel that
// test-runs raw_tp programs (5.10+): probed once; refused, lingering stays off.
// Returns {lingerNs, errno}: the value in force, and the probe's errno (0: none).
Napi::Value Tracer::SetLinger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ != kLoaded && state_ != kAttached) RequireState(env, kLoaded, "setLinger");
  uint64_t ns = info.Length() > 0 ? GetU64(info[0]) : 0;
  bpf_program* prog = skel_->progs.publish_lingering;
  if (ns && (!linger_ || !bpf_program__autoload(prog))) throw Napi::TypeError::New(env, "setLinger: the tracer was made without linger and publish_lingering");
  if (ns && linger_probe_ < 0) linger_probe_ = ProbeTestRun(bpf_program__fd(prog));
  if (ns && linger_probe_ != 0) ns = 0;
  skel_->bss->linger_ns = ns;
  Napi::Object out = Napi::Object::New(env);
  out.Set("lingerNs", static_cast<double>(ns));
  out.Set("errno", linger_probe_ > 0 ? linger_probe_ : 0);
  return out;
}

// sweepLingering(minAgeNs): publishes the lingering sockets that entered CLOSE_WAIT at
// least minAgeNs ago. {lingering, published, gone, errno}.
Napi::Value Tracer::SweepLingering(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kAttached, "sweepLingering");
  const uint64_t min_age = info.Length() > 0 ? GetU64(info[0]) : 0;
  LingerSweep r;
  if (linger_ && bpf_program__autoload(skel_->progs.publish_lingering))
    r = tcptrace::SweepLingering(bpf_map__fd(skel_->maps.lingering), bpf_map__max_entries(skel_->maps.lingering),
                                 bpf_program__fd(skel_->progs.publish_lingering), min_age);
  Napi::Object out = Napi::Object::New(env);
  out.Set("lingering", r.lingering);
  out.Set("published", r.published);
  out.Set("gone", r.gone);
  out.Set("errno", r.error);
  return out;
}

// heldCounts(drop?: number[]): the held_counts map (held_counts.bpf.h) as flat rows
// {row, values: [tgid, toLastAck, toClose, sumNs, bucket0 .. bucketN, passed0 .. passedM, ...]}
// (row: the numbers a row has); the keys of the tgids in
// drop (exited processes the agent folded into its totals) are deleted.
Napi::Value Tracer::HeldCounts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kAttached, "heldCounts");
  const std::set<uint32_t> drop = TgidsArg(info, 0);
  const std::vector<double> rows = tcptrace::HeldCounts(bpf_map__fd(skel_->maps.held_counts), bpf_map__max_entries(skel_->maps.held_counts), drop);
  Napi::Array values = Napi::Array::New(env, rows.size());
  for (uint32_t i = 0; i < rows.size(); i++) values.Set(i, rows[i]);
  Napi::Object out = Napi::Object::New(env);
  out.Set("row", Napi::Number::New(env, tcptrace::kHeldRow));
  out.Set("values", values);
  return out;
}

// heldByProcess(): the sockets held in the kernel, counted by (tgid, TCP state), as
// a flat array [tgid, state, count, ...]: the agent's sockets-by-state gauges add
// them to the sockets it sees.
Napi::Value Tracer::HeldByProcess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kAttached, "heldByProcess");
  std::map<uint64_t, uint32_t> counts;  // tgid << 8 | state
  ForEachHeld(skel_->maps.owners, [&](const tt_owner& ow) { counts[(static_cast<uint64_t>(ow.tgid) << 8) | (ow.state & 15)]++; });
  Napi::Array out = Napi::Array::New(env, counts.size() * 3);
  uint32_t i = 0;
  for (const auto& [k, n] : counts) {
    out.Set(i++, static_cast<double>(k >> 8));
    out.Set(i++, static_cast<double>(k & 15));
    out.Set(i++, n);
  }
  return out;
}

// cgroupOf(tgid): the cgroup v2 id the process acquired its last socket in
// (proc_cgroups, with the "cgroups" option), as a BigInt; null when unknown.
Napi::Value Tracer::CgroupOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kAttached, "cgroupOf");
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "cgroupOf(tgid): a number");
  const uint32_t tgid = info[0].As<Napi::Number>().Uint32Value();
  uint64_t id = 0;
  if (bpf_map__lookup_elem(skel_->maps.proc_cgroups, &tgid, sizeof(tgid), &id, sizeof(id), 0) != 0) return env.Null();
  return Napi::BigInt::New(env, id);
}

// heldStates(): sockets the kernel holds in summary mode (never published), counted
// by TCP state (index = state). One pass over the owners map, at the end of a trace.
Napi::Value Tracer::HeldStates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireState(env, kAttached, "heldStates");
  uint32_t counts[16] = {};
  ForEachHeld(skel_->maps.owners, [&](const tt_owner& ow) { counts[ow.state & 15]++; });
  Napi::Array out = Napi::Array::New(env, 16);
  for (uint32_t i = 0; i < 16; i++) out.Set(i, counts[i]);
  return out;
}

Napi::Value Tracer::Close(const Napi::CallbackInfo& info) {
  CloseAll();
  return info.Env().Undefined();
}

void Tracer::CloseAll() {
  poller_.reset();  // joins the poll thread before the ring's map goes away
  for (bpf_link* l : links_) bpf_link__destroy(l);
  links_.clear();
  if (skel_ != nullptr) {
    tcpstate_bpf__destroy(skel_);
    skel_ = nullptr;
  }
  cpu_rings_.clear();
  ring_template_.Reset();
  state_ = kClosed;
}

}  // namespace tcptrace
