// See symbolizer.h. Design notes:
//  - A pc becomes (mapped file, file offset) using the process's maps; the
//    lookup itself is per FILE, not per process: every distinct file (by
//    build-id) gets its own small Dwfl with the module reported at bias 0,
//    so its link-time addresses are module addresses. That is what lets a
//    second process reuse both the cache and the parsed debug info.
//  - Frame results are cached by (build-id or file identity, file offset).
//  - Anonymous executable memory is looked up in the target's perf map.
#include "symbolizer.h"

#include <cxxabi.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include "debuginfo.h"
#include "elf_info.h"
#include "perf_map.h"
#include "proc_maps.h"
#include "sym_index.h"

namespace tcptrace::stacks {

namespace {

using Clock = std::chrono::steady_clock;

const char kNoPerfMapReason[] =
    "anonymous executable memory without a perf map: for Node run with "
    "--perf-basic-prof-only-functions --interpreted-frames-native-stack; for "
    "Java use -XX:+PreserveFramePointer and jcmd <pid> Compiler.perfmap; for "
    "Python 3.12+ use -X perf";

// ELF symbol names may carry a symbol version ("__libc_start_main@@GLIBC_2.34"
// from .symver); it is noise in a stack trace.
std::string strip_version(const char* name) {
  const char* at = std::strchr(name, '@');
  return at && at != name ? std::string(name, at) : std::string(name);
}

std::string demangle(const char* name) {
  if (name[0] == '_' && name[1] == 'Z') {
    int status = 0;
    char* out = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    if (out && status == 0) {
      std::string s(out);
      std::free(out);
      return s;
    }
    std::free(out);
  }
  return name;
}

// Prefer the linkage name (qualified, with parameter types once
// demangled) over DW_AT_name, following abstract origins of inlined copies.
std::string die_function_name(Dwarf_Die* die) {
  Dwarf_Attribute attr;
  const char* n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
  if (!n) n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
  if (n) return demangle(n);
  n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
  return n ? n : "??";
}

struct CachedFrame {
  std::string symbol;
  uint64_t sym_delta = 0;  // lookup address - symbol start
  std::optional<std::string> file;
  std::optional<int> line;
  std::vector<InlinedFrame> inlined;
  std::string reason;
};

struct CacheKey {
  std::string file_key;
  uint64_t offset;
  bool operator==(const CacheKey& o) const { return offset == o.offset && file_key == o.file_key; }
};
struct CacheKeyHash {
  size_t operator()(const CacheKey& k) const {
    return std::hash<std::string>()(k.file_key) ^ (k.offset * 0x9e3779b97f4a7c15ull);
  }
};

// Identity of an open file; cheaper than reading its build-id.
using FileIdentity = std::tuple<uint64_t, uint64_t, int64_t, int64_t, int64_t>;

}  // namespace

struct FileEntry {
  std::string key;       // build-id hex, or "noid:dev:ino:size:mtime"
  std::string build_id;
  std::string name;      // basename, or [vdso]
  std::string debuglink_path;  // /proc/PID/root/<path> of the first opener
  std::string path_in_target;
  std::string root;      // foreign root of the first opener, "" for host
  int fd = -1;
  ElfInfo info;
  std::unique_ptr<DebugInfoConfig> debug;
  Dwfl* dwfl = nullptr;
  Dwfl_Module* mod = nullptr;
  SymIndex syms;  // built on first lookup, dropped with the Dwfl
  std::string load_error;
  uint64_t last_use = 0;

  ~FileEntry() {
    if (dwfl) dwfl_end(dwfl);
    if (fd >= 0) close(fd);
  }
  void unload() {
    if (dwfl) dwfl_end(dwfl);
    dwfl = nullptr;
    mod = nullptr;
    syms = SymIndex();
    debug.reset();
  }
};

struct ProcState {
  int pid = 0;
  std::vector<Mapping> maps;
  std::vector<std::shared_ptr<FileEntry>> files;  // parallel to maps, lazily filled
  std::vector<std::string> open_errors;           // parallel to maps
  std::unique_ptr<PerfMap> perf_map;
  std::string perf_map_target_path;  // /tmp/perf-<nspid>.map as the target names it
  std::string root;                  // foreign root, "" for host
  Clock::time_point last_refresh{};
  std::string maps_error;
};

struct Symbolizer::Impl {
  Options opts;
  Stats stats;
  uint64_t tick = 0;
  size_t loaded = 0;  // entries with a Dwfl
  std::map<int, ProcState> procs;
  std::map<FileIdentity, std::shared_ptr<FileEntry>> by_identity;
  std::map<std::string, std::shared_ptr<FileEntry>> by_key;
  std::unordered_map<CacheKey, CachedFrame, CacheKeyHash> cache;

  ProcState& proc(int pid);
  bool refresh(ProcState& ps);
  std::shared_ptr<FileEntry> file_for(ProcState& ps, size_t idx, std::string* err);
  bool load(FileEntry& fe);
  void evict_if_needed();
  CachedFrame resolve(FileEntry& fe, uint64_t file_off);
  void symbolize_file(ProcState& ps, size_t idx, uint64_t look, Frame* f);
  void symbolize_jit(ProcState& ps, uint64_t look, Frame* f);
};

// ---- per-process state -----------------------------------------------------

bool Symbolizer::Impl::refresh(ProcState& ps) {
  ps.last_refresh = Clock::now();
  std::vector<Mapping> fresh;
  std::string err;
  if (!read_proc_maps(ps.pid, &fresh, &err)) {
    // Keep the old snapshot: the process may have exited, and what we
    // already know still names its frames.
    ps.maps_error = err;
    return false;
  }
  ps.maps.swap(fresh);
  ps.files.assign(ps.maps.size(), nullptr);
  ps.open_errors.assign(ps.maps.size(), std::string());
  ps.maps_error.clear();
  return true;
}

ProcState& Symbolizer::Impl::proc(int pid) {
  auto it = procs.find(pid);
  if (it != procs.end()) return it->second;
  ProcState& ps = procs[pid];
  ps.pid = pid;
  ps.root = foreign_root_of(pid);
  refresh(ps);
  return ps;
}

std::shared_ptr<FileEntry> Symbolizer::Impl::file_for(ProcState& ps, size_t idx,
                                                      std::string* err) {
  if (ps.files[idx]) return ps.files[idx];
  if (!ps.open_errors[idx].empty()) {
    *err = ps.open_errors[idx];
    return nullptr;
  }
  const Mapping& m = ps.maps[idx];
  std::string how;
  int fd = open_mapping_file(ps.pid, m, &how, err);
  if (fd < 0) {
    ps.open_errors[idx] = *err;
    return nullptr;
  }
  // Same inode, size and mtime as a file we already have: reuse it without
  // reading the ELF headers. (memfd copies of the vdso are always new.)
  struct stat st;
  FileIdentity id{};
  bool have_id = !m.is_vdso() && fstat(fd, &st) == 0;
  if (have_id) {
    id = FileIdentity{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
    auto hit = by_identity.find(id);
    if (hit != by_identity.end()) {
      close(fd);
      return ps.files[idx] = hit->second;
    }
  }
  ElfInfo info;
  if (!read_elf_info(fd, &info, err)) {
    close(fd);
    *err = "cannot read ELF headers of " + m.path + ": " + *err;
    ps.open_errors[idx] = *err;
    return nullptr;
  }
  std::string key = info.build_id;
  if (key.empty() && have_id)
    key = "noid:" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
          std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec);
  else if (key.empty())
    key = "noid:" + m.path;
  auto same = by_key.find(key);
  std::shared_ptr<FileEntry> fe;
  if (same != by_key.end()) {
    close(fd);  // another copy of a build we already know
    fe = same->second;
  } else {
    fe = std::make_shared<FileEntry>();
    fe->key = key;
    fe->build_id = info.build_id;
    fe->name = m.is_vdso() ? "[vdso]" : basename_of(m.path);
    // Debuglink lookups use this path's directory. On the host the plain
    // path keeps working after the process exits; in a container only the
    // /proc/PID/root view reaches the container's files.
    fe->debuglink_path =
        m.is_vdso() ? "[vdso]" : ps.root.empty() ? m.path : proc_root_path(ps.pid, m.path);
    fe->path_in_target = m.path;
    fe->root = ps.root;
    fe->fd = fd;
    fe->info = std::move(info);
    by_key.emplace(key, fe);
  }
  if (have_id) by_identity.emplace(id, fe);
  return ps.files[idx] = fe;
}

// ---- per-file lookups ----------------------------------------------------------

void Symbolizer::Impl::evict_if_needed() {
  while (loaded > opts.max_files) {
    FileEntry* oldest = nullptr;
    for (auto& kv : by_key)
      if (kv.second->dwfl && (!oldest || kv.second->last_use < oldest->last_use))
        oldest = kv.second.get();
    if (!oldest) return;
    oldest->unload();
    loaded--;
  }
}

bool Symbolizer::Impl::load(FileEntry& fe) {
  fe.last_use = ++tick;  // before evict_if_needed(), which must not pick fe
  if (fe.dwfl) return true;
  if (!fe.load_error.empty()) return false;
  fe.debug = std::make_unique<DebugInfoConfig>(fe.root, opts.use_debuginfod);
  fe.dwfl = dwfl_begin(fe.debug->callbacks());
  int dupfd = fe.dwfl ? dup(fe.fd) : -1;
  if (dupfd >= 0) {
    dwfl_report_begin(fe.dwfl);
    // Base 0 with add_p_vaddr: module addresses are link-time addresses.
    fe.mod = dwfl_report_elf(fe.dwfl, fe.name.c_str(), fe.debuglink_path.c_str(), dupfd, 0, true);
    if (!fe.mod) close(dupfd);
    dwfl_report_end(fe.dwfl, nullptr, nullptr);
  }
  if (!fe.mod) {
    fe.load_error = std::string("libdwfl cannot load ") + fe.name + ": " + dwfl_errmsg(-1);
    fe.unload();
    return false;
  }
  fe.debug->attach(fe.mod, fe.path_in_target);
  stats.files_opened++;
  loaded++;
  evict_if_needed();
  return fe.dwfl != nullptr;
}

CachedFrame Symbolizer::Impl::resolve(FileEntry& fe, uint64_t file_off) {
  CachedFrame out;
  if (!load(fe)) {
    out.reason = fe.load_error;
    return out;
  }
  uint64_t addr;
  if (!file_offset_to_vaddr(fe.info, file_off, &addr)) {
    out.reason = "file offset is outside every PT_LOAD of " + fe.name;
    return out;
  }
  if (!fe.syms.built()) fe.syms.build(fe.mod);
  const SymIndex::Sym* sym = fe.syms.lookup(addr);
  if (sym) {
    out.symbol = demangle(strip_version(sym->name).c_str());
    out.sym_delta = addr - sym->start;
  } else if (dwfl_module_getsymtab(fe.mod) <= 0) {
    out.reason = "no symbol table in " + fe.name + " (stripped; install its debug symbols)";
  } else {
    out.reason = "no symbol covers this address in " + fe.name +
                 " (local function of a stripped file? install its debug symbols)";
  }
  if (opts.cross_check_symbols) {
    GElf_Sym ref;
    GElf_Off refoff = 0;
    const char* refname =
        dwfl_module_addrinfo(fe.mod, addr, &refoff, &ref, nullptr, nullptr, nullptr);
    // Compare starts, not names: aliases at one address are equally right.
    // libdwfl may also answer with a label outside code (__ehdr_start for
    // padding before .text); the index names only code, so that is no
    // disagreement.
    unsigned reftype = refname ? GELF_ST_TYPE(ref.st_info) : STT_NOTYPE;
    bool ref_is_code = refname && (reftype == STT_FUNC || reftype == STT_GNU_IFUNC);
    bool differ = sym ? (!refname || addr - refoff != sym->start) : ref_is_code;
    if (differ) {
      stats.symbol_mismatches++;
      char buf[512];
      snprintf(buf, sizeof buf, "%s %#lx: ours %s@%#lx vs libdwfl %s@%#lx", fe.name.c_str(),
               static_cast<unsigned long>(addr), sym ? sym->name : "-",
               static_cast<unsigned long>(sym ? sym->start : 0), refname ? refname : "-",
               static_cast<unsigned long>(addr - refoff));
      stats.last_mismatch = buf;
    }
  }

  // file:line of the pc itself; it belongs to the innermost inlined call.
  std::optional<std::string> file;
  std::optional<int> line;
  if (Dwfl_Line* l = dwfl_module_getsrc(fe.mod, addr)) {
    int lineno = 0;
    const char* src = dwfl_lineinfo(l, nullptr, &lineno, nullptr, nullptr, nullptr);
    if (src) file = src;
    if (lineno > 0) line = lineno;
  }

  // Inlined calls, as eu-addr2line -i: walk the scopes outwards; each
  // DW_TAG_inlined_subroutine owns the current location, and its call site
  // becomes the location inside the next enclosing function.
  Dwarf_Addr bias = 0;
  if (Dwarf_Die* cu = dwfl_module_addrdie(fe.mod, addr, &bias)) {
    Dwarf_Die* scopes = nullptr;
    int n = dwarf_getscopes(cu, addr - bias, &scopes);
    Dwarf_Files* files = nullptr;
    size_t nfiles = 0;
    bool have_files = dwarf_getsrcfiles(cu, &files, &nfiles) == 0;
    for (int i = 0; i < n; i++) {
      int tag = dwarf_tag(&scopes[i]);
      if (tag == DW_TAG_subprogram) break;
      if (tag != DW_TAG_inlined_subroutine) continue;
      out.inlined.push_back({die_function_name(&scopes[i]), file, line});
      Dwarf_Attribute attr;
      Dwarf_Word v;
      file.reset();
      line.reset();
      if (have_files && dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &attr), &v) == 0)
        if (const char* f = dwarf_filesrc(files, v, nullptr, nullptr)) file = f;
      if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &attr), &v) == 0 && v > 0)
        line = static_cast<int>(v);
    }
    std::free(scopes);
  }
  out.file = file;
  out.line = line;
  return out;
}

void Symbolizer::Impl::symbolize_file(ProcState& ps, size_t idx, uint64_t look, Frame* f) {
  const Mapping& m = ps.maps[idx];
  f->module_path = m.path;
  f->module = m.is_vdso() ? "[vdso]" : basename_of(m.path);
  f->deleted = m.deleted;
  std::string err;
  std::shared_ptr<FileEntry> fe = file_for(ps, idx, &err);
  if (!fe) {
    f->reason = "cannot open " + m.path + ": " + err;
    return;
  }
  fe->last_use = ++tick;
  f->build_id = fe->build_id;
  if (!m.x) {
    f->reason = "address is in a non-executable mapping of " + f->module + " (bad frame)";
    return;
  }
  CacheKey key{fe->key, look - m.lo + m.pgoff};
  auto hit = cache.find(key);
  if (hit != cache.end()) {
    stats.cache_hits++;
  } else {
    stats.cache_misses++;
    if (cache.size() >= opts.max_cached_frames) cache.clear();
    hit = cache.emplace(key, resolve(*fe, key.offset)).first;
  }
  const CachedFrame& c = hit->second;
  f->symbol = c.symbol;
  f->offset = c.symbol.empty() ? 0 : f->addr - look + c.sym_delta;
  f->module_offset = f->addr - m.lo + m.pgoff;
  f->file = c.file;
  f->line = c.line;
  f->inlined = c.inlined;
  f->reason = c.reason;
}

void Symbolizer::Impl::symbolize_jit(ProcState& ps, uint64_t look, Frame* f) {
  if (!ps.perf_map) {
    // Inside a container the JIT names the file after its own pid.
    std::string name = "/tmp/perf-" + std::to_string(ns_pid_of(ps.pid)) + ".map";
    ps.perf_map_target_path = name;
    ps.perf_map = std::make_unique<PerfMap>(proc_root_path(ps.pid, name));
  }
  f->module = "[anon]";
  const PerfMap::Entry* e = ps.perf_map->lookup(look);
  if (!e && ps.perf_map->update()) e = ps.perf_map->lookup(look);
  if (!ps.perf_map->exists() && ps.perf_map->size() == 0) {
    f->reason = kNoPerfMapReason;
    return;
  }
  f->module_path = ps.perf_map_target_path;
  if (!e) {
    f->reason = "JIT address not in " + ps.perf_map_target_path +
                " (code generated after the last write, or not a JIT function)";
    return;
  }
  stats.perf_map_hits++;
  f->module = "[jit]";
  f->jit = true;
  f->symbol = e->name;
  f->offset = f->addr - e->start;
}

// ---- public API ---------------------------------------------------------------

Symbolizer::Symbolizer() : Symbolizer(Options()) {}
Symbolizer::Symbolizer(Options opts) : impl_(std::make_unique<Impl>()) { impl_->opts = opts; }
Symbolizer::~Symbolizer() {
  // Drop processes first: they hold references to the file entries.
  impl_->procs.clear();
}

const Symbolizer::Stats& Symbolizer::stats() const { return impl_->stats; }
void Symbolizer::forget(int pid) {
  Impl& s = *impl_;
  s.procs.erase(pid);
  // Files no live process maps are kept (a restarted process hits the
  // cache) until there are more than max_files of them; then they go, with
  // their fds. Cached frames stay: they are keyed by build-id.
  if (s.by_key.size() <= s.opts.max_files) return;
  std::set<const FileEntry*> used;
  for (const auto& p : s.procs)
    for (const auto& f : p.second.files)
      if (f) used.insert(f.get());
  for (auto it = s.by_identity.begin(); it != s.by_identity.end();)
    it = used.count(it->second.get()) ? std::next(it) : s.by_identity.erase(it);
  for (auto it = s.by_key.begin(); it != s.by_key.end();) {
    if (used.count(it->second.get())) {
      ++it;
    } else {
      if (it->second->dwfl) s.loaded--;
      it = s.by_key.erase(it);
    }
  }
}
void Symbolizer::clear_frame_cache() { impl_->cache.clear(); }

bool Symbolizer::attach(int pid, std::string* err) {
  Impl& s = *impl_;
  ProcState& ps = s.proc(pid);
  if (ps.maps.empty()) {
    *err = ps.maps_error;
    s.procs.erase(pid);
    return false;
  }
  for (size_t i = 0; i < ps.maps.size(); i++) {
    const Mapping& m = ps.maps[i];
    if (!m.x || !(m.is_file() || m.is_vdso())) continue;
    std::string e;
    if (auto fe = s.file_for(ps, i, &e)) {
      // Resolving the symbol table now finds separate debug files through
      // /proc/PID/root while that path still exists. Building the symbol index
      // and opening the DWARF now also takes the first symbolization's cost
      // (~50 ms for nginx + libc here) off the first stack: until that stack's
      // fingerprint is taught to the kernel, every socket taking the same path
      // costs a full copy, and the next batch's stacks are taught only after
      // this one's are symbolized.
      if (s.load(*fe) && fe->mod) {
        dwfl_module_getsymtab(fe->mod);
        if (!fe->syms.built()) fe->syms.build(fe->mod);
        Dwarf_Addr bias = 0;
        dwfl_module_getdwarf(fe->mod, &bias);
      }
    }
  }
  return true;
}

std::vector<Frame> Symbolizer::symbolize(int pid, const std::vector<uint64_t>& pcs,
                                         bool first_is_return_address) {
  Impl& s = *impl_;
  ProcState& ps = s.proc(pid);
  std::vector<Frame> out(pcs.size());
  bool refreshed = false;
  for (size_t i = 0; i < pcs.size(); i++) {
    Frame& f = out[i];
    f.addr = pcs[i];
    // A return address points after the call; pc-1 is inside it.
    const uint64_t look = (i == 0 && !first_is_return_address) || f.addr == 0 ? f.addr : f.addr - 1;
    const Mapping* m = find_mapping(ps.maps, look);
    if (!m && !refreshed &&
        Clock::now() - ps.last_refresh >= std::chrono::milliseconds(s.opts.min_refresh_interval_ms)) {
      refreshed = true;
      s.refresh(ps);
      m = find_mapping(ps.maps, look);
    }
    if (!m) {
      f.reason = ps.maps.empty() ? "cannot read maps (" + ps.maps_error + ")"
                                 : std::string("address is not mapped in the process");
    } else if (m->is_file() || m->is_vdso()) {
      s.symbolize_file(ps, static_cast<size_t>(m - ps.maps.data()), look, &f);
    } else if (m->is_anon_exec()) {
      s.symbolize_jit(ps, look, &f);
    } else if (m->path == "[vsyscall]") {
      f.module = f.module_path = "[vsyscall]";
      f.reason = "legacy vsyscall page";
    } else {
      f.module_path = m->path;
      f.reason = "address is in non-executable memory " +
                 (m->path.empty() ? std::string("(anonymous)") : m->path) + " (bad frame)";
    }
    if (f.symbol.empty()) s.stats.unresolved++;
  }
  return out;
}

std::vector<DisplayFrame> expand_inlined(const std::vector<Frame>& frames) {
  std::vector<DisplayFrame> out;
  for (const Frame& f : frames) {
    for (const InlinedFrame& in : f.inlined) out.push_back({in.function, in.file, in.line, true, &f});
    out.push_back({f.symbol.empty() ? std::string("??") : f.symbol, f.file, f.line, false, &f});
  }
  return out;
}

}  // namespace tcptrace::stacks
