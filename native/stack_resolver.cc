#include "stack_resolver.h"

#include <chrono>
#include <cstring>

#include "tcpstate.h"

namespace tcptrace {

namespace {
uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string Hex(uint64_t v) {
  char b[24];
  snprintf(b, sizeof(b), "0x%llx", static_cast<unsigned long long>(v));
  return b;
}
}  // namespace

void StackResolver::Init(Napi::Env env, Napi::Object exports) {
  exports.Set("StackResolver", DefineClass(env, "StackResolver",
                                           {
                                               InstanceMethod("resolve", &StackResolver::Resolve),
                                               InstanceMethod("symbolize", &StackResolver::Symbolize),
                                               InstanceMethod("prepare", &StackResolver::Prepare),
                                               InstanceMethod("forget", &StackResolver::Forget),
                                               InstanceMethod("stats", &StackResolver::Stats),
                                           }));
}

StackResolver::StackResolver(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StackResolver>(info) {
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    if (o.Get("maxFrames").IsNumber()) max_frames_ = o.Get("maxFrames").As<Napi::Number>().Uint32Value();
    if (o.Get("maxPids").IsNumber()) max_pids_ = o.Get("maxPids").As<Napi::Number>().Uint32Value();
  }
}

stacks::Unwinder* StackResolver::UnwinderFor(int pid) {
  auto it = unwinders_.find(pid);
  if (it != unwinders_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first.get();
  }
  if (unwinders_.size() >= max_pids_) {
    int victim = lru_.back();
    lru_.pop_back();
    unwinders_.erase(victim);
    symbolizer_.forget(victim);
  }
  lru_.push_front(pid);
  auto u = std::make_unique<stacks::Unwinder>(pid);
  u->init();  // open the mapped files now, while the process lives
  std::string err;
  symbolizer_.attach(pid, &err);
  stacks::Unwinder* raw = u.get();
  unwinders_.emplace(pid, std::make_pair(std::move(u), lru_.begin()));
  return raw;
}

// prepare(pid): open a process's files early (e.g. at attach), so stacks still
// resolve if it exits before its first stack arrives.
Napi::Value StackResolver::Prepare(const Napi::CallbackInfo& info) {
  UnwinderFor(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

// resolve(buf, off) for a TT_KIND_STACK record at buf[off]:
// {pid, tid, site, call, sk, cookie, ts, stop, complete, stackBytes, pcs, sps}. No
// symbols: symbolize(pid, pcs) names a pc list the caller has not seen before.
Napi::Value StackResolver::Resolve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBuffer() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "resolve(buffer, offset): expected a Buffer and an offset");
  }
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  size_t off = info[1].As<Napi::Number>().Uint32Value();
  if (off + TT_STACK_FIXED > buf.Length()) throw Napi::RangeError::New(env, "resolve: record out of range");
  tt_stack rec;  // the fixed part only; the stack bytes stay in the Buffer
  std::memcpy(&rec, buf.Data() + off, TT_STACK_FIXED);
  if (rec.hdr.kind != TT_KIND_STACK) throw Napi::TypeError::New(env, "resolve: not a stack record");
  size_t len = rec.stack_len;
  if (off + TT_STACK_FIXED + len > buf.Length() || len > TT_STACK_MAX) throw Napi::RangeError::New(env, "resolve: stack bytes out of range");
  const uint8_t* stack = buf.Data() + off + TT_STACK_FIXED;

  stacks::UserRegs regs;
  regs.ip = rec.regs.ip;
  regs.sp = rec.regs.sp;
  regs.bp = rec.regs.bp;
  regs.bx = rec.regs.bx;
  regs.r12 = rec.regs.r12;
  regs.r13 = rec.regs.r13;
  regs.r14 = rec.regs.r14;
  regs.r15 = rec.regs.r15;

  // resolve(buf, off, {ip, sp, bp}): unwind again from another frame of the same copy
  // (an interpreter's unwinder hands back the native frame below its own: the HotSpot call
  // stub's caller); only those three registers are known there
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    regs = stacks::UserRegs();
    regs.ip = static_cast<uint64_t>(o.Get("ip").As<Napi::Number>().DoubleValue());
    regs.sp = static_cast<uint64_t>(o.Get("sp").As<Napi::Number>().DoubleValue());
    regs.bp = static_cast<uint64_t>(o.Get("bp").As<Napi::Number>().DoubleValue());
    regs.present = (1u << 6) | (1u << 7) | (1u << 16);
  }
  int pid = static_cast<int>(rec.tgid);
  uint64_t t0 = NowNs();
  stacks::Unwinder* u = UnwinderFor(pid);
  std::vector<uint64_t> pcs = u->unwind(regs, stack, len, rec.regs.sp & ~4095ULL, max_frames_);
  // A pc in memory mapped since the last maps read (fresh JIT pages, dlopen):
  // re-read the maps now and unwind once more, before the mapping can go away.
  // The unwinder re-reads the maps for an unknown pc itself, but at most every
  // 100 ms; a batch of samples crossing a fresh JIT page lands inside that
  // window. A stack is only captured once: refresh now and unwind again.
  bool remapped = u->last().refreshed;
  if (u->last().unknown_pc && !remapped && u->refresh()) {
    pcs = u->unwind(regs, stack, len, rec.regs.sp & ~4095ULL, max_frames_);
    remapped = true;
  }
  // Whenever the unwinder saw the maps change, the symbolizer's copy (and perf
  // map) is as old as the unwinder's was: drop it so both name the same memory.
  if (remapped) symbolizer_.forget(pid);
  unwind_ns_ += NowNs() - t0;
  if (pcs.empty()) failed_++; else resolved_++;

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", pid);
  out.Set("tid", rec.tid);
  out.Set("site", rec.site);
  out.Set("call", rec.call);
  out.Set("sk", Napi::BigInt::New(env, static_cast<uint64_t>(rec.sk)));
  out.Set("cookie", Napi::BigInt::New(env, static_cast<uint64_t>(rec.cookie)));
  out.Set("ts", static_cast<double>(rec.hdr.ts_ns));
  out.Set("stop", u->last().stop.empty() ? u->error() : u->last().stop);
  out.Set("complete", u->last().complete);
  out.Set("stackBytes", static_cast<double>(len));
  // pcs and the stack pointer at each frame, for in-kernel dedup (numbers: user addresses < 2^53)
  const std::vector<uint64_t>& sps = u->last().sps;
  Napi::Array pa = Napi::Array::New(env, pcs.size());
  Napi::Array sa = Napi::Array::New(env, pcs.size());
  for (size_t i = 0; i < pcs.size(); i++) {
    pa.Set(static_cast<uint32_t>(i), static_cast<double>(pcs[i]));
    sa.Set(static_cast<uint32_t>(i), static_cast<double>(i < sps.size() ? sps[i] : 0));
  }
  out.Set("pcs", pa);
  out.Set("sps", sa);
  return out;
}

// symbolize(pid, pcs): [{addr, symbol, offset, module, moduleOffset, buildId?, file?, line?, jit?, reason?, inlined?}]
Napi::Value StackResolver::Symbolize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsArray()) {
    throw Napi::TypeError::New(env, "symbolize(pid, pcs): expected a pid and an array of addresses");
  }
  int pid = info[0].As<Napi::Number>().Int32Value();
  Napi::Array in = info[1].As<Napi::Array>();
  std::vector<uint64_t> pcs(in.Length());
  for (uint32_t i = 0; i < in.Length(); i++) pcs[i] = static_cast<uint64_t>(in.Get(i).As<Napi::Number>().DoubleValue());
  uint64_t t0 = NowNs();
  std::vector<stacks::Frame> frames = symbolizer_.symbolize(pid, pcs);
  symbolize_ns_ += NowNs() - t0;
  frames_ += frames.size();

  Napi::Array arr = Napi::Array::New(env, frames.size());
  for (size_t i = 0; i < frames.size(); i++) {
    const stacks::Frame& f = frames[i];
    Napi::Object fo = Napi::Object::New(env);
    fo.Set("addr", Hex(f.addr));
    fo.Set("symbol", f.symbol);
    fo.Set("offset", static_cast<double>(f.offset));
    fo.Set("module", f.module);
    fo.Set("moduleOffset", Hex(f.module_offset));
    if (!f.build_id.empty()) fo.Set("buildId", f.build_id);
    if (f.file) fo.Set("file", *f.file);
    if (f.line) fo.Set("line", *f.line);
    if (f.jit) fo.Set("jit", true);
    if (!f.reason.empty()) fo.Set("reason", f.reason);
    if (!f.inlined.empty()) {
      Napi::Array inl = Napi::Array::New(env, f.inlined.size());
      for (size_t j = 0; j < f.inlined.size(); j++) {
        Napi::Object io = Napi::Object::New(env);
        io.Set("symbol", f.inlined[j].function);
        if (f.inlined[j].file) io.Set("file", *f.inlined[j].file);
        if (f.inlined[j].line) io.Set("line", *f.inlined[j].line);
        inl.Set(static_cast<uint32_t>(j), io);
      }
      fo.Set("inlined", inl);
    }
    arr.Set(static_cast<uint32_t>(i), fo);
  }
  return arr;
}

Napi::Value StackResolver::Forget(const Napi::CallbackInfo& info) {
  int pid = info[0].As<Napi::Number>().Int32Value();
  auto it = unwinders_.find(pid);
  if (it != unwinders_.end()) {
    lru_.erase(it->second.second);
    unwinders_.erase(it);
  }
  symbolizer_.forget(pid);
  return info.Env().Undefined();
}

Napi::Value StackResolver::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  const auto& s = symbolizer_.stats();
  o.Set("resolved", static_cast<double>(resolved_));
  o.Set("failed", static_cast<double>(failed_));
  o.Set("frames", static_cast<double>(frames_));
  o.Set("unwindNs", static_cast<double>(unwind_ns_));
  o.Set("symbolizeNs", static_cast<double>(symbolize_ns_));
  o.Set("cacheHits", static_cast<double>(s.cache_hits));
  o.Set("cacheMisses", static_cast<double>(s.cache_misses));
  o.Set("unresolvedFrames", static_cast<double>(s.unresolved));
  o.Set("processes", static_cast<double>(unwinders_.size()));
  return o;
}

}  // namespace tcptrace
