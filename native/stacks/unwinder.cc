// See unwinder.h. Design notes:
//  - One Dwfl per target, kept across samples: reporting modules and
//    parsing .eh_frame is the expensive part, a sample is cheap once warm.
//  - dwfl_attach_state() is called once; the thread callbacks read the
//    "current sample" pointers that unwind() sets and clears around each
//    dwfl_getthread_frames() call.
//  - Modules are reported by us with fds from /proc/PID/map_files (or
//    /proc/PID/root), never by path from our own mount namespace.
#include "unwinder.h"

#include <elfutils/libdwfl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "debuginfo.h"
#include "elf_info.h"
#include "proc_maps.h"

namespace tcptrace::stacks {

namespace {
using Clock = std::chrono::steady_clock;
constexpr unsigned kRegRbp = 6, kRegRsp = 7, kNumRegs = 17;
}  // namespace

struct Unwinder::Impl {
  // A file as identified by the kernel; one ElfInfo and one pread fd each.
  struct FileState {
    int fd = -1;  // ours, for reads outside the stack copy
    bool is_elf = false;
    ElfInfo info;
  };
  // One loaded instance of a file (a file mapped twice at different biases
  // is two modules).
  struct ModuleState {
    Dwfl_Module* mod = nullptr;
    std::string name;
    Dwarf_Addr start = 0, end = 0;
  };
  using FileKey = std::pair<uint64_t, uint64_t>;                 // dev, inode
  using ModKey = std::tuple<uint64_t, uint64_t, uint64_t, bool>;  // dev, ino, bias, vdso

  int pid;
  Options opts;
  std::string error;
  Dwfl* dwfl = nullptr;
  std::unique_ptr<DebugInfoConfig> debuginfo;
  std::string debuginfo_root;  // "" on the host, /proc/PID/root in a container
  std::vector<Mapping> maps;
  std::map<FileKey, FileState> files;
  std::map<ModKey, ModuleState> modules;
  Clock::time_point last_refresh{};
  UnwindInfo info;

  // Current sample, valid only inside unwind().
  const UserRegs* regs = nullptr;
  const uint8_t* stack = nullptr;
  size_t stack_len = 0;
  uint64_t stack_addr = 0;
  size_t max_frames = 0;
  // Results of one pass.
  std::vector<uint64_t> pcs;
  uint64_t last_sp = 0, last_bp = 0;
  bool last_sp_known = false, last_bp_known = false;
  bool want_refresh = false;
  bool read_missed = false;  // memory_read refused an address this pass
  std::string abort_reason;

  Impl(int p, Options o) : pid(p), opts(o) {}
  ~Impl() {
    if (dwfl) dwfl_end(dwfl);
    for (auto& f : files)
      if (f.second.fd >= 0) close(f.second.fd);
  }

  bool init();
  bool report_modules();
  static FileKey file_key(const Mapping& m);
  FileState* file_for(const Mapping& m);
  bool exec_at(uint64_t pc) const {
    const Mapping* m = find_mapping(maps, pc);
    return m && m->x;
  }
  bool read_word(uint64_t addr, uint64_t* out);
  bool refresh_allowed() const {
    return Clock::now() - last_refresh >= std::chrono::milliseconds(opts.min_refresh_interval_ms);
  }
  void run_once();
  void fp_walk(uint64_t fp, uint64_t min_addr);

  static const Dwfl_Thread_Callbacks kThreadCallbacks;
  static pid_t next_thread(Dwfl*, void* dwfl_arg, void** thread_argp);
  static bool get_thread(Dwfl*, pid_t tid, void* dwfl_arg, void** thread_argp);
  static bool memory_read(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void* arg);
  static bool set_initial_registers(Dwfl_Thread* thread, void* thread_arg);
  static int frame_cb(Dwfl_Frame* frame, void* arg);
};

const Dwfl_Thread_Callbacks Unwinder::Impl::kThreadCallbacks = {
    &Impl::next_thread, &Impl::get_thread, &Impl::memory_read, &Impl::set_initial_registers,
    nullptr, nullptr};

// ---- module reporting ------------------------------------------------------

Unwinder::Impl::FileKey Unwinder::Impl::file_key(const Mapping& m) {
  // The vdso has no inode; key it by its address so a remap is noticed.
  return m.is_vdso() ? FileKey{~0ull, m.lo} : FileKey{m.dev, m.inode};
}

Unwinder::Impl::FileState* Unwinder::Impl::file_for(const Mapping& m) {
  FileKey key = file_key(m);
  auto it = files.find(key);
  if (it != files.end()) return &it->second;
  FileState fs;
  std::string how, err;
  fs.fd = open_mapping_file(pid, m, &how, &err);
  if (fs.fd >= 0) fs.is_elf = read_elf_info(fs.fd, &fs.info, &err);
  return &files.emplace(key, std::move(fs)).first->second;
}

bool Unwinder::Impl::report_modules() {
  std::vector<Mapping> fresh;
  std::string err;
  if (!read_proc_maps(pid, &fresh, &err)) {
    error = err;
    return false;
  }
  maps.swap(fresh);
  last_refresh = Clock::now();

  dwfl_report_begin(dwfl);
  std::map<ModKey, ModuleState> kept;
  for (const Mapping& m : maps) {
    // Only files with code need CFI; data-only mappings are skipped.
    if (!m.x || !(m.is_file() || m.is_vdso())) continue;
    FileState* fs = file_for(m);
    uint64_t bias = 0;
    if (!fs->is_elf || !load_bias_for(fs->info, m, &bias)) continue;
    ModKey key{m.dev, m.inode, bias, m.is_vdso()};
    if (kept.count(key)) continue;
    auto old = modules.find(key);
    if (old != modules.end()) {
      // Same name and range keeps the existing module (and its parsed CFI);
      // re-reporting with a new fd would count as an overlap in libdwfl.
      ModuleState ms = old->second;
      if (dwfl_report_module(dwfl, ms.name.c_str(), ms.start, ms.end) == ms.mod) {
        kept.emplace(key, ms);
        continue;
      }
    }
    int dupfd = dup(fs->fd);
    if (dupfd < 0) continue;
    std::string name = m.is_vdso() ? "[vdso]" : basename_of(m.path);
    // Only used to look for .debug_frame via debuglink (see symbolizer.cc).
    std::string file = m.is_vdso()          ? "[vdso]"
                       : debuginfo_root.empty() ? m.path
                                                : proc_root_path(pid, m.path);
    // add_p_vaddr=true: base is the load bias, as for PIE and shared objects.
    Dwfl_Module* mod = dwfl_report_elf(dwfl, name.c_str(), file.c_str(), dupfd, bias, true);
    if (!mod) {
      close(dupfd);  // not consumed on failure
      continue;
    }
    debuginfo->attach(mod, m.path);
    ModuleState ms;
    ms.mod = mod;
    ms.name = name;
    dwfl_module_info(mod, nullptr, &ms.start, &ms.end, nullptr, nullptr, nullptr, nullptr);
    kept.emplace(key, ms);
  }
  modules.swap(kept);
  // Close files that are no longer mapped (dlclose), so fds do not pile up.
  std::set<FileKey> mapped;
  for (const Mapping& m : maps) mapped.insert(file_key(m));
  for (auto it = files.begin(); it != files.end();) {
    if (mapped.count(it->first)) {
      ++it;
    } else {
      if (it->second.fd >= 0) close(it->second.fd);
      it = files.erase(it);
    }
  }
  if (dwfl_report_end(dwfl, nullptr, nullptr) != 0) {
    error = std::string("dwfl_report_end: ") + dwfl_errmsg(-1);
    return false;
  }
  if (modules.empty()) {
    error = "no ELF modules could be opened for pid " + std::to_string(pid);
    return false;
  }
  return true;
}

bool Unwinder::Impl::init() {
  if (dwfl) return true;
  debuginfo_root = foreign_root_of(pid);
  debuginfo = std::make_unique<DebugInfoConfig>(debuginfo_root, false);
  dwfl = dwfl_begin(debuginfo->callbacks());
  if (!dwfl) {
    error = std::string("dwfl_begin: ") + dwfl_errmsg(-1);
    return false;
  }
  // Architecture comes from the first reported module (elf == NULL).
  if (!report_modules() || !dwfl_attach_state(dwfl, nullptr, pid, &kThreadCallbacks, this)) {
    if (error.empty()) error = std::string("dwfl_attach_state: ") + dwfl_errmsg(-1);
    dwfl_end(dwfl);
    dwfl = nullptr;
    modules.clear();
    return false;
  }
  return true;
}

// ---- libdwfl thread callbacks -------------------------------------------

pid_t Unwinder::Impl::next_thread(Dwfl*, void* dwfl_arg, void** thread_argp) {
  // A sample is one thread's registers; present it as the only thread.
  if (*thread_argp) return 0;
  *thread_argp = dwfl_arg;
  return static_cast<Impl*>(dwfl_arg)->pid;
}

bool Unwinder::Impl::get_thread(Dwfl*, pid_t tid, void* dwfl_arg, void** thread_argp) {
  *thread_argp = dwfl_arg;
  return tid == static_cast<Impl*>(dwfl_arg)->pid;
}

bool Unwinder::Impl::read_word(uint64_t addr, uint64_t* out) {
  if (stack && addr >= stack_addr && addr - stack_addr <= stack_len &&
      stack_len - (addr - stack_addr) >= sizeof(uint64_t)) {
    std::memcpy(out, stack + (addr - stack_addr), sizeof(uint64_t));
    return true;
  }
  // Outside the copy: only read-only file mappings, whose bytes on disk are
  // what the process sees. Writable or anonymous memory has moved on since
  // the sample, so reading it would invent data.
  const Mapping* m = find_mapping(maps, addr);
  FileState* fs = m && !m->w && m->r && m->is_file() && m->hi - addr >= sizeof(uint64_t)
                      ? file_for(*m)
                      : nullptr;
  off_t off = m ? static_cast<off_t>(addr - m->lo + m->pgoff) : 0;
  if (fs && fs->fd >= 0 &&
      pread(fs->fd, out, sizeof(uint64_t), off) == static_cast<ssize_t>(sizeof(uint64_t)))
    return true;
  read_missed = true;
  return false;
}

bool Unwinder::Impl::memory_read(Dwfl*, Dwarf_Addr addr, Dwarf_Word* result, void* arg) {
  return static_cast<Impl*>(arg)->read_word(addr, result);
}

bool Unwinder::Impl::set_initial_registers(Dwfl_Thread* thread, void* thread_arg) {
  const UserRegs& r = *static_cast<Impl*>(thread_arg)->regs;
  // DWARF numbering for x86-64.
  const Dwarf_Word v[kNumRegs] = {r.ax, r.dx, r.cx,  r.bx,  r.si,  r.di,  r.bp,  r.sp, r.r8,
                                  r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.ip};
  // Set only what the sample captured: an unset register makes CFI that
  // needs it fail cleanly instead of computing from a fake zero.
  for (unsigned i = 0; i < kNumRegs; i++)
    if ((r.present >> i) & 1)
      if (!dwfl_thread_state_registers(thread, static_cast<int>(i), 1, &v[i])) return false;
  dwfl_thread_state_register_pc(thread, r.ip);
  return true;
}

int Unwinder::Impl::frame_cb(Dwfl_Frame* frame, void* arg) {
  Impl* s = static_cast<Impl*>(arg);
  Dwarf_Addr pc;
  if (!dwfl_frame_pc(frame, &pc, nullptr)) {
    s->abort_reason = std::string("dwfl_frame_pc: ") + dwfl_errmsg(-1);
    return DWARF_CB_ABORT;
  }
  Dwarf_Word sp = 0, bp = 0;
  bool have_sp = dwfl_frame_reg(frame, kRegRsp, &sp) == 0;
  bool have_bp = dwfl_frame_reg(frame, kRegRbp, &bp) == 0;
  if (pc == 0 && !s->pcs.empty()) {
    s->abort_reason = "return address 0 (outermost frame)";
    s->info.complete = true;
    return DWARF_CB_ABORT;
  }
  // Return addresses are checked at pc-1: a call that ends the last page
  // of a text mapping returns to the first byte after it.
  if (!s->exec_at(s->pcs.empty() ? pc : pc - 1)) {
    // Unknown address: maybe a library dlopen()ed after our last maps read.
    s->want_refresh = find_mapping(s->maps, pc) == nullptr;
    char buf[64];
    snprintf(buf, sizeof buf, "pc %#lx not in an executable mapping", static_cast<unsigned long>(pc));
    s->abort_reason = buf;
    return DWARF_CB_ABORT;
  }
  if (!s->pcs.empty() && have_sp && s->last_sp_known && sp < s->last_sp) {
    s->abort_reason = "stack pointer moved down (corrupt frame)";
    return DWARF_CB_ABORT;
  }
  if (!s->pcs.empty() && have_sp && s->last_sp_known && sp == s->last_sp && pc == s->pcs.back()) {
    s->abort_reason = "unwinding loop";
    return DWARF_CB_ABORT;
  }
  s->pcs.push_back(pc);
  s->info.sps.push_back(have_sp ? sp : 0);
  s->last_sp = sp;
  s->last_sp_known = have_sp;
  s->last_bp = bp;
  s->last_bp_known = have_bp;
  if (s->pcs.size() >= s->max_frames) {
    s->abort_reason = "max_frames reached";
    return DWARF_CB_ABORT;
  }
  return DWARF_CB_OK;
}

// ---- the unwind itself ------------------------------------------------------

void Unwinder::Impl::fp_walk(uint64_t fp, uint64_t min_addr) {
  while (pcs.size() < max_frames) {
    uint64_t next, ret;
    // Frame records must lie inside the copy, above the previous one, and
    // be 8-aligned; rbp in frame-pointer-less code holds arbitrary data.
    if (fp < min_addr || (fp & 7) || fp < stack_addr) {
      info.stop += "; fp walk: frame pointer below the previous frame";
      return;
    }
    if (fp - stack_addr + 16 > stack_len) {
      info.stack_exhausted = true;
      info.stop += "; fp walk: frame pointer beyond the stack copy";
      return;
    }
    std::memcpy(&next, stack + (fp - stack_addr), 8);
    std::memcpy(&ret, stack + (fp - stack_addr) + 8, 8);
    if (ret == 0) {
      info.complete = true;
      info.stop += "; fp walk: return address 0";
      return;
    }
    if (!exec_at(ret - 1)) {
      info.stop += "; fp walk: return address not in an executable mapping";
      return;
    }
    pcs.push_back(ret);
    info.sps.push_back(fp + 16);  // the caller's sp after return: just above the frame record
    info.fp_frames++;
    if (next == 0) {
      info.complete = true;
      info.stop += "; fp walk: end of frame chain";
      return;
    }
    min_addr = fp + 16;
    fp = next;
  }
  info.stop += "; max_frames reached";
}

void Unwinder::Impl::run_once() {
  pcs.clear();
  info.sps.clear();
  info.dwarf_frames = info.fp_frames = 0;
  info.complete = false;
  info.stop.clear();
  want_refresh = false;
  read_missed = false;
  abort_reason.clear();
  last_sp_known = last_bp_known = false;

  if (!opts.use_dwarf) {
    if (!exec_at(regs->ip)) {
      want_refresh = find_mapping(maps, regs->ip) == nullptr;
      info.stop = "ip not in an executable mapping";
      return;
    }
    pcs.push_back(regs->ip);
    info.sps.push_back(regs->sp);
    info.stop = "frame pointers only";
    fp_walk(regs->bp, regs->sp);
    return;
  }

  int rc = dwfl_getthread_frames(dwfl, pid, &Impl::frame_cb, this);
  info.dwarf_frames = pcs.size();
  if (rc == 0 && read_missed) {
    // libdwfl treats a return address it could not read as "undefined",
    // i.e. as the outermost frame. It was not: the copy ran out.
    info.stack_exhausted = true;
    info.stop = "stack copy exhausted";
  } else if (rc == 0) {
    info.complete = true;
    info.stop = "end of stack";
  } else if (rc == DWARF_CB_ABORT) {
    info.stop = abort_reason;
  } else {
    // libdwfl gave up: no CFI covers the pc, or CFI needed memory outside
    // the copy. Frame pointers may still carry on from the last good frame.
    info.stop = std::string("dwarf: ") + dwfl_errmsg(-1);
    info.stack_exhausted = read_missed;
    if (opts.fp_fallback && !pcs.empty() && last_bp_known && pcs.size() < max_frames)
      fp_walk(last_bp, last_sp_known ? last_sp : stack_addr);
  }
}

// ---- public API ---------------------------------------------------------------

Unwinder::Unwinder(int pid) : Unwinder(pid, Options()) {}
Unwinder::Unwinder(int pid, Options opts) : impl_(std::make_unique<Impl>(pid, opts)) {}
Unwinder::~Unwinder() = default;

bool Unwinder::init() { return impl_->init(); }
const std::string& Unwinder::error() const { return impl_->error; }
const UnwindInfo& Unwinder::last() const { return impl_->info; }
int Unwinder::pid() const { return impl_->pid; }

bool Unwinder::refresh() {
  if (!impl_->init()) return false;
  return impl_->report_modules();
}

std::vector<uint64_t> Unwinder::unwind(const UserRegs& regs, const uint8_t* stack, size_t len,
                                       uint64_t stack_addr, size_t max_frames) {
  Impl& s = *impl_;
  s.info = UnwindInfo();
  if (max_frames == 0) {
    s.info.stop = "max_frames is 0";
    return {};
  }
  if (!s.init()) {
    s.info.stop = s.error;
    return {};
  }
  s.regs = &regs;
  s.stack = stack;
  s.stack_len = stack ? len : 0;
  s.stack_addr = stack_addr;
  s.max_frames = max_frames;
  // A pc we have never seen mapped means the maps changed (dlopen, new
  // JIT region): re-read them, at most once per call and rate-limited.
  bool may_refresh = true;
  if (!find_mapping(s.maps, regs.ip) && s.refresh_allowed()) {
    s.info.refreshed = s.report_modules();
    may_refresh = false;
  }
  s.run_once();
  if (s.want_refresh && may_refresh && s.refresh_allowed()) {
    UnwindInfo before = s.info;
    if (s.report_modules()) {
      s.run_once();
      s.info.refreshed = true;
    } else {
      s.info = before;
    }
  }
  s.info.unknown_pc = s.want_refresh;
  std::vector<uint64_t> out;
  out.swap(s.pcs);
  // Never keep pointers into the caller's buffer past this call.
  s.regs = nullptr;
  s.stack = nullptr;
  s.stack_len = 0;
  return out;
}

}  // namespace tcptrace::stacks
