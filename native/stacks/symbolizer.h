// Turns the pcs of a user stack into named frames: symbol+offset (ELF
// symbol tables, demangled), file:line and inlined calls (DWARF, from the
// file itself or a separate debug file), or a perf-map name for JIT code.
//
// Results are cached by (build-id, file offset), so the same binary or
// library in another process, or a replaced copy with the same build-id,
// is only looked up once. Files are opened through /proc/PID/map_files or
// /proc/PID/root, so containers and deleted binaries resolve.
//
// Threading: NOT thread-safe. Owned and called by one worker thread (the
// tracer's). elfutils makes no thread-safety promise, so keep every libdw
// user, Unwinder included, on that thread.
//
// No exceptions cross this interface: failures end up in Frame::reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tcptrace::stacks {

// A function inlined into the physical frame at this pc.
struct InlinedFrame {
  std::string function;             // demangled
  std::optional<std::string> file;  // where in `function` execution was
  std::optional<int> line;
};

struct Frame {
  uint64_t addr = 0;        // the pc as given
  std::string symbol;       // demangled; empty when unknown (see reason)
  uint64_t offset = 0;      // addr - start of symbol (0 when unnamed)
  // File offset of addr in module_path: with build_id, enough to symbolize
  // offline later (e.g. once debug symbols are installed).
  uint64_t module_offset = 0;
  std::string module;       // basename, "[vdso]", or "[jit]" for perf-map hits
  std::string module_path;  // path as the target sees it, or the perf map
  std::string build_id;     // lowercase hex, empty when the file has none
  // Location inside `symbol`. When calls were inlined at this pc it is the
  // call site of the outermost inlined call; `inlined` holds the rest.
  std::optional<std::string> file;
  std::optional<int> line;
  // Innermost first: inlined[0] is where the pc really is; inlined.back()
  // was called from `symbol` at file:line.
  std::vector<InlinedFrame> inlined;
  bool jit = false;          // named from a perf map
  bool deleted = false;      // the mapped file was deleted or replaced
  std::string reason;        // why symbol is empty
};

class Symbolizer {
 public:
  struct Options {
    // Frame cache entries; the cache is dropped wholesale when full (cheap,
    // rare, and avoids LRU bookkeeping per lookup).
    size_t max_cached_frames = 1 << 20;
    // Files with parsed debug info; least recently used are unloaded first.
    // Files no longer mapped by any known process are closed by forget()
    // once there are more than this many.
    size_t max_files = 512;
    // Re-read /proc/PID/maps at most this often for unknown pcs.
    unsigned min_refresh_interval_ms = 100;
    // Let libdwfl fetch debug info from DEBUGINFOD_URLS servers. Off by
    // default: a network round trip would stall the worker thread.
    bool use_debuginfod = false;
    // Debug aid for tests: also ask dwfl_module_addrinfo (a linear scan)
    // and count disagreements with our sorted index in Stats. Addresses
    // libdwfl names only after a non-code label (padding before .text)
    // do not count: the index deliberately names code only.
    bool cross_check_symbols = false;
  };

  struct Stats {
    uint64_t cache_hits = 0;    // frames answered from the (build-id, offset) cache
    uint64_t cache_misses = 0;  // frames looked up in debug info
    uint64_t files_opened = 0;  // distinct files given a Dwfl
    uint64_t perf_map_hits = 0;
    uint64_t unresolved = 0;    // frames returned with a reason
    uint64_t symbol_mismatches = 0;  // only with Options::cross_check_symbols
    std::string last_mismatch;       // "module addr: ours vs libdwfl"
  };

  Symbolizer();
  explicit Symbolizer(Options opts);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // pcs as returned by Unwinder::unwind: pcs[0] is where the thread was and
  // is looked up as is; every later pc is a return address and is looked up
  // at pc-1 (inside the call instruction), so calls to noreturn functions at
  // the very end of a function still resolve to the caller. Set
  // first_is_return_address when pcs[0] is a return address too.
  std::vector<Frame> symbolize(int pid, const std::vector<uint64_t>& pcs,
                               bool first_is_return_address = false);

  // Reads the maps and opens every executable file now, so frames of a
  // process that exits before symbolize() still resolve. Optional.
  bool attach(int pid, std::string* err);
  // Drops per-process state (maps, perf map); call when the process exits.
  // Cached frames stay.
  void forget(int pid);
  // For measurements: empties the frame cache but keeps files loaded.
  void clear_frame_cache();

  const Stats& stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Frames flattened for display, innermost first: each inlined call becomes
// its own line, followed by the physical frame.
struct DisplayFrame {
  std::string function;
  std::optional<std::string> file;
  std::optional<int> line;
  bool inlined;
  const Frame* frame;
};
std::vector<DisplayFrame> expand_inlined(const std::vector<Frame>& frames);

}  // namespace tcptrace::stacks
