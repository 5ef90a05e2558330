// /proc/PID helpers shared by Unwinder and Symbolizer: parse the maps,
// open a mapping's backing file the way that survives containers and
// deleted/replaced binaries, find the namespace pid for perf maps.
//
// Threading: plain functions with no shared state; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tcptrace::stacks {

struct Mapping {
  uint64_t lo = 0, hi = 0;  // [lo, hi) in the target's address space
  uint64_t pgoff = 0;       // file offset of lo
  bool r = false, w = false, x = false;
  uint64_t dev = 0;         // makedev(major, minor) as printed in maps
  uint64_t inode = 0;
  std::string path;         // as the target sees it, " (deleted)" removed
  bool deleted = false;

  // A regular file mapping (inode != 0, absolute path).
  bool is_file() const { return inode != 0 && !path.empty() && path[0] == '/'; }
  bool is_vdso() const { return path == "[vdso]"; }
  // Executable memory with no file behind it: JIT code, or garbage.
  bool is_anon_exec() const { return x && !is_file() && !is_vdso() && path != "[vsyscall]"; }
};

// Reads /proc/PID/maps, sorted by lo (the kernel already sorts it).
bool read_proc_maps(int pid, std::vector<Mapping>* out, std::string* err);

// Binary search; nullptr when addr is in no mapping.
const Mapping* find_mapping(const std::vector<Mapping>& maps, uint64_t addr);

// Opens the file behind a mapping, read-only, O_CLOEXEC.
// Order: /proc/PID/map_files/<lo>-<hi> (exact inode even if the path was
// deleted, replaced or lives in another mount namespace; needs
// CAP_SYS_ADMIN), then /proc/PID/root/<path> (container view of the path).
// For [vdso] the image is copied from /proc/PID/mem into a memfd so libelf
// can treat it like a file. *how says which route worked (for messages).
// Returns -1 with *err set on failure.
int open_mapping_file(int pid, const Mapping& m, std::string* how, std::string* err);

// "/proc/PID/root" + path: the path as seen from inside the target's mount
// namespace. Debuglink lookups use its directory.
std::string proc_root_path(int pid, const std::string& path);

// Innermost namespace pid (last field of "NSpid:" in /proc/PID/status),
// which is what a containerised JIT uses to name /tmp/perf-<pid>.map.
// Falls back to pid when the line is missing (old kernels).
int ns_pid_of(int pid);

std::string basename_of(const std::string& path);

}  // namespace tcptrace::stacks
