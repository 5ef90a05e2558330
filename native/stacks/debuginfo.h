// Dwfl_Callbacks for modules we report ourselves (with an fd), and the
// separate-debug-file lookup they use.
//
// Lookup order: build-id (.build-id/xx/rest.debug under /usr/lib/debug and,
// for a containerised target, under /proc/PID/root/usr/lib/debug), then
// .gnu_debuglink next to the file, in its .debug/ directory and under
// <root>/usr/lib/debug/<dir>, CRC-checked. MiniDebugInfo (.gnu_debugdata)
// needs nothing here: libdwfl reads it from the main file itself.
//
// debuginfod is off unless asked for: libdwfl's standard lookup falls back
// to the network whenever DEBUGINFOD_URLS is set (Debian sets it for login
// shells), which would block the tracer's worker thread on a cache miss.
//
// Threading: a DebugInfoConfig belongs to the Dwfl it was made for.
#pragma once

#include <elfutils/libdwfl.h>

#include <deque>
#include <string>

namespace tcptrace::stacks {

class DebugInfoConfig {
 public:
  // root: "" for the host, or "/proc/PID/root" when the target runs in
  // another mount namespace.
  DebugInfoConfig(const std::string& root, bool use_debuginfod);
  DebugInfoConfig(const DebugInfoConfig&) = delete;
  DebugInfoConfig& operator=(const DebugInfoConfig&) = delete;

  // Must outlive every Dwfl created with it.
  const Dwfl_Callbacks* callbacks() const { return &callbacks_; }

  // Call right after dwfl_report_elf so the callback knows the module's
  // path inside the target (for debuglink lookups under <root>/usr/lib/debug).
  void attach(Dwfl_Module* mod, const std::string& path_in_target);

 private:
  static int find_elf(Dwfl_Module* mod, void** userdata, const char* modname, Dwarf_Addr base,
                      char** file_name, Elf** elfp);
  static int find_debuginfo(Dwfl_Module* mod, void** userdata, const char* modname,
                            Dwarf_Addr base, const char* file_name, const char* debuglink,
                            GElf_Word crc, char** debuginfo_file_name);
  struct ModuleCtx {
    const DebugInfoConfig* config;
    std::string path_in_target;
  };
  std::deque<ModuleCtx> modules_;  // deque: stable addresses for userdata
  std::string root_;
  std::string search_path_;
  char* search_path_cstr_;
  bool use_debuginfod_;
  Dwfl_Callbacks callbacks_;
};

// "/proc/PID/root" if the target's root differs from ours, else "".
std::string foreign_root_of(int pid);

}  // namespace tcptrace::stacks
