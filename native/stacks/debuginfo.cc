// See debuginfo.h.
#include "debuginfo.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

namespace tcptrace::stacks {

namespace {

// .gnu_debuglink carries the CRC-32 (IEEE, as zlib's crc32) of the debug
// file; a stale debug file with the right name must be rejected.
struct Crc32Table {
  uint32_t v[256];
  Crc32Table() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      v[i] = c;
    }
  }
};

uint32_t crc32_update(uint32_t crc, const unsigned char* p, size_t n) {
  static const Crc32Table table;  // magic static: initialised once, thread-safe
  crc = ~crc;
  while (n--) crc = table.v[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

bool file_crc_matches(int fd, uint32_t want) {
  std::vector<unsigned char> buf(1 << 16);
  uint32_t crc = 0;
  off_t off = 0;
  for (;;) {
    ssize_t n = pread(fd, buf.data(), buf.size(), off);
    if (n < 0) return false;
    if (n == 0) break;
    crc = crc32_update(crc, buf.data(), static_cast<size_t>(n));
    off += n;
  }
  return crc == want;
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

std::string foreign_root_of(int pid) {
  std::string root = "/proc/" + std::to_string(pid) + "/root";
  struct stat a, b;
  if (stat(root.c_str(), &a) != 0 || stat("/", &b) != 0) return "";
  return (a.st_dev == b.st_dev && a.st_ino == b.st_ino) ? "" : root;
}

DebugInfoConfig::DebugInfoConfig(const std::string& root, bool use_debuginfod)
    : root_(root), use_debuginfod_(use_debuginfod) {
  // Only absolute entries matter for build-id lookups; the debuglink search
  // below is ours. A leading '-' turns off libdwfl's own CRC checks.
  search_path_ = "-/usr/lib/debug";
  if (!root_.empty()) search_path_ += ":" + root_ + "/usr/lib/debug";
  search_path_cstr_ = search_path_.data();
  std::memset(&callbacks_, 0, sizeof callbacks_);
  callbacks_.find_elf = &DebugInfoConfig::find_elf;
  callbacks_.find_debuginfo = &DebugInfoConfig::find_debuginfo;
  callbacks_.section_address = dwfl_offline_section_address;
  callbacks_.debuginfo_path = &search_path_cstr_;
}

// Every module we report comes with an fd, so libdwfl never needs to find
// an ELF file by itself; refuse rather than let dwfl_build_id_find_elf fall
// back to debuginfod.
int DebugInfoConfig::find_elf(Dwfl_Module*, void**, const char*, Dwarf_Addr, char**, Elf**) {
  errno = ENOENT;
  return -1;
}

void DebugInfoConfig::attach(Dwfl_Module* mod, const std::string& path_in_target) {
  void** userdata = nullptr;
  if (!dwfl_module_info(mod, &userdata, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr) ||
      !userdata)
    return;
  modules_.push_back({this, path_in_target});
  *userdata = &modules_.back();
}

int DebugInfoConfig::find_debuginfo(Dwfl_Module* mod, void** userdata, const char* modname,
                                    Dwarf_Addr base, const char* file_name,
                                    const char* debuglink, GElf_Word crc,
                                    char** debuginfo_file_name) {
  const auto* ctx = userdata ? static_cast<const ModuleCtx*>(*userdata) : nullptr;
  if (ctx && ctx->config->use_debuginfod_)
    return dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink, crc,
                                        debuginfo_file_name);

  // Build-id first: exact, and also finds dwz alt files. No network.
  int fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink, crc,
                                        debuginfo_file_name);
  if (fd >= 0 || !debuglink || !*debuglink || !file_name) return fd;

  std::vector<std::string> candidates;
  const std::string root = ctx ? ctx->config->root_ : std::string();
  if (debuglink[0] == '/') {
    // dwz alt links are absolute paths inside the target.
    candidates.push_back(root + debuglink);
  } else {
    const std::string dir = dir_of(file_name);  // already under /proc/PID/root
    candidates.push_back(dir + "/" + debuglink);
    candidates.push_back(dir + "/.debug/" + debuglink);
    const std::string tdir = ctx ? dir_of(ctx->path_in_target) : dir;
    candidates.push_back(root + "/usr/lib/debug" + tdir + "/" + debuglink);
    if (!root.empty()) candidates.push_back("/usr/lib/debug" + tdir + "/" + debuglink);
  }
  struct stat main_st;
  bool have_main = stat(file_name, &main_st) == 0;
  for (const auto& c : candidates) {
    int cfd = open(c.c_str(), O_RDONLY | O_CLOEXEC);
    if (cfd < 0) continue;
    struct stat st;
    // The main file itself can sit where a debug file would (same name).
    bool is_main = have_main && fstat(cfd, &st) == 0 && st.st_dev == main_st.st_dev &&
                   st.st_ino == main_st.st_ino;
    if (is_main || (crc != 0 && !file_crc_matches(cfd, crc))) {
      close(cfd);
      continue;
    }
    *debuginfo_file_name = strdup(c.c_str());
    return cfd;
  }
  errno = 0;  // "not found" rather than an error, as libdwfl expects
  return -1;
}

}  // namespace tcptrace::stacks
