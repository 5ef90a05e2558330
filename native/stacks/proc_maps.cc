// See proc_maps.h.
#include "proc_maps.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace tcptrace::stacks {

namespace {

std::string errno_text(const char* what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

// One line: "lo-hi perms pgoff major:minor inode   path".
bool parse_maps_line(const char* line, Mapping* m) {
  unsigned long long lo, hi, pgoff, inode;
  unsigned major, minor;
  char perms[8] = {};
  int path_at = 0;
  if (std::sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &lo, &hi, perms, &pgoff, &major,
                  &minor, &inode, &path_at) < 7)
    return false;
  m->lo = lo;
  m->hi = hi;
  m->pgoff = pgoff;
  m->r = perms[0] == 'r';
  m->w = perms[1] == 'w';
  m->x = perms[2] == 'x';
  m->dev = makedev(major, minor);
  m->inode = inode;
  m->path = path_at > 0 ? line + path_at : "";
  while (!m->path.empty() && (m->path.back() == '\n' || m->path.back() == ' '))
    m->path.pop_back();
  static const char kDeleted[] = " (deleted)";
  const size_t dl = sizeof(kDeleted) - 1;
  m->deleted = m->path.size() > dl && m->path.compare(m->path.size() - dl, dl, kDeleted) == 0;
  if (m->deleted) m->path.resize(m->path.size() - dl);
  return true;
}

// Copies the vdso out of the live process. The kernel maps the same image
// into every process, but reading it from the target keeps us honest about
// kernels with per-process vdso variants (time namespaces).
int vdso_memfd(int pid, const Mapping& m, std::string* err) {
  const size_t size = m.hi - m.lo;
  if (size == 0 || size > (16u << 20)) {
    *err = "unexpected [vdso] size";
    return -1;
  }
  std::string mem = "/proc/" + std::to_string(pid) + "/mem";
  int memfd_src = open(mem.c_str(), O_RDONLY | O_CLOEXEC);
  if (memfd_src < 0) {
    *err = errno_text("open", mem);
    return -1;
  }
  std::vector<char> buf(size);
  ssize_t n = pread(memfd_src, buf.data(), size, static_cast<off_t>(m.lo));
  close(memfd_src);
  if (n != static_cast<ssize_t>(size)) {
    *err = "short read of [vdso] from " + mem;
    return -1;
  }
  int fd = memfd_create("vdso", MFD_CLOEXEC);
  if (fd < 0) {
    *err = errno_text("memfd_create for", "[vdso]");
    return -1;
  }
  if (write(fd, buf.data(), size) != static_cast<ssize_t>(size)) {
    *err = errno_text("write", "[vdso] memfd");
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool read_proc_maps(int pid, std::vector<Mapping>* out, std::string* err) {
  std::string path = "/proc/" + std::to_string(pid) + "/maps";
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) {
    *err = errno_text("open", path);
    return false;
  }
  out->clear();
  char* line = nullptr;
  size_t cap = 0;
  while (getline(&line, &cap, f) > 0) {
    Mapping m;
    if (parse_maps_line(line, &m)) out->push_back(std::move(m));
  }
  free(line);
  std::fclose(f);
  if (out->empty()) {
    // An exited (zombie) process has an empty maps file.
    *err = "no mappings in " + path + " (process exited?)";
    return false;
  }
  std::sort(out->begin(), out->end(),
            [](const Mapping& a, const Mapping& b) { return a.lo < b.lo; });
  return true;
}

const Mapping* find_mapping(const std::vector<Mapping>& maps, uint64_t addr) {
  auto it = std::upper_bound(maps.begin(), maps.end(), addr,
                             [](uint64_t a, const Mapping& m) { return a < m.lo; });
  if (it == maps.begin()) return nullptr;
  --it;
  return addr < it->hi ? &*it : nullptr;
}

std::string proc_root_path(int pid, const std::string& path) {
  return "/proc/" + std::to_string(pid) + "/root" + path;
}

int open_mapping_file(int pid, const Mapping& m, std::string* how, std::string* err) {
  if (m.is_vdso()) {
    *how = "vdso";
    return vdso_memfd(pid, m, err);
  }
  if (!m.is_file()) {
    *err = "mapping has no backing file";
    return -1;
  }
  char mf[96];
  std::snprintf(mf, sizeof mf, "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, m.lo, m.hi);
  int fd = open(mf, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    *how = "map_files";
    return fd;
  }
  std::string first = errno_text("open", mf);
  std::string rooted = proc_root_path(pid, m.path);
  fd = open(rooted.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    *how = "root";
    return fd;
  }
  *err = first + "; " + errno_text("open", rooted);
  return -1;
}

int ns_pid_of(int pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/status";
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return pid;
  int result = pid;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "NSpid:", 6) != 0) continue;
    // The last number is the pid in the innermost namespace.
    char* p = line + 6;
    char* end = nullptr;
    for (;;) {
      long v = std::strtol(p, &end, 10);
      if (end == p) break;
      result = static_cast<int>(v);
      p = end;
    }
    break;
  }
  std::fclose(f);
  return result;
}

std::string basename_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace tcptrace::stacks
