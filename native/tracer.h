// The Tracer: one BPF object (bpf/tcpstate.bpf.c) through its lifecycle.
//
//   new Tracer(options)  open the skeleton, write rodata, choose programs
//                        (set_autoload), size maps                 [JS thread]
//   load()               verifier; the log is kept in the error   [JS thread]
//   attach()             one link per loaded program               [JS thread]
//   addTargets/seed*()   map updates from user space               [JS thread]
//   start(cb)            RingPoller thread delivers record batches [poll thread -> JS]
//   stop()               last drain, resolves when all delivered   [JS thread]
//   heldStates()         summary mode: held sockets by state       [JS thread]
//   heldByProcess()      the same by (tgid, state)                 [JS thread]
//   mapFill()            entries of every hash map, and its size   [JS thread]
//   cgroupOf(tgid)       the cgroup id a process acquired a socket in [JS thread]
//   activeCloses(drop)   summary mode's active closes; drops the   [JS thread]
//                        keys of exited processes
//   setLinger(ns)        the agent: CLOSE_WAIT sent once it lasts   [JS thread]
//   sweepLingering(age)  publishes the sockets that lasted          [JS thread]
//   heldCounts(drop)     the kernel's counts of held sockets (brief [JS thread]
//                        CLOSE_WAITs, transitions) per process
//   rings()              ring buffers read (after load)            [JS thread]
//   close()              detaches links and frees everything       [JS thread]
//
// C++ owns every handle (skeleton, links, poller) through RAII; close() is
// idempotent and also runs from the environment cleanup hook, so a JS exit
// without close() still detaches. Links are fd-based and never pinned: a
// SIGKILLed agent leaves nothing attached.
#pragma once

#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "owned_fd.h"

struct tcpstate_bpf;
struct bpf_link;

namespace tcptrace {

class RingPoller;

class Tracer : public Napi::ObjectWrap<Tracer> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit Tracer(const Napi::CallbackInfo& info);
  ~Tracer() override;

 private:
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Attach(const Napi::CallbackInfo& info);
  Napi::Value AddTargets(const Napi::CallbackInfo& info);
  Napi::Value SeedOwners(const Napi::CallbackInfo& info);
  Napi::Value SeedListeners(const Napi::CallbackInfo& info);
  Napi::Value LearnStack(const Napi::CallbackInfo& info);
  Napi::Value SetPython(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value Rings(const Napi::CallbackInfo& info);
  Napi::Value HeldStates(const Napi::CallbackInfo& info);
  Napi::Value HeldByProcess(const Napi::CallbackInfo& info);
  Napi::Value MapFill(const Napi::CallbackInfo& info);
  Napi::Value ActiveCloses(const Napi::CallbackInfo& info);
  Napi::Value SetLinger(const Napi::CallbackInfo& info);
  Napi::Value SweepLingering(const Napi::CallbackInfo& info);
  Napi::Value HeldCounts(const Napi::CallbackInfo& info);
  Napi::Value CgroupOf(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  void CloseAll();
  void RequireState(Napi::Env env, int want, const char* what);

  enum State { kOpened = 0, kLoaded = 1, kAttached = 2, kClosed = 3 };
  int state_ = kOpened;
  tcpstate_bpf* skel_ = nullptr;
  std::vector<bpf_link*> links_;
  std::unique_ptr<RingPoller> poller_;
  std::vector<std::string> programs_;
  // One ring per possible CPU (bpf/tcpstate.bpf.c, "rings"), or none: the shared "events" ring.
  bool ring_per_cpu_ = false;
  uint32_t ring_bytes_ = 0;  // each ring's size
  OwnedFd ring_template_;    // the inner map template, until load
  std::vector<OwnedFd> cpu_rings_;
  // the agent's lingering CLOSE_WAIT sockets (linger.bpf.h): maps sized, and the test-run probe (-1: not yet)
  bool linger_ = false;
  bool held_counts_ = false;
  int linger_probe_ = -1;
};

}  // namespace tcptrace
