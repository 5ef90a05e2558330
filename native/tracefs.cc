#include "tracefs.h"

#include <fcntl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

namespace tcptrace {

namespace {
constexpr long kTracefsMagic = 0x74726163;  // TRACEFS_MAGIC

std::mutex g_mu;
std::map<std::string, long> g_ids;  // "cat/name" -> id (ids never change while booted)

bool IsTracefsDir(const std::string& path) {
  struct statfs st;
  if (statfs(path.c_str(), &st) != 0) return false;
  // /sys/kernel/debug/tracing is an automount of tracefs when debugfs is mounted
  return st.f_type == kTracefsMagic;
}

long ReadId(const std::string& root, const std::string& key) {
  std::ifstream in(root + "/events/" + key + "/id");
  long id = -1;
  if (!(in >> id)) return -ENOENT;
  return id;
}

// Runs in its own thread: a private mount namespace dies with the thread.
void PrivateMountRead(const std::string& key, long* out, std::string* why) {
  if (unshare(CLONE_NEWNS | CLONE_FS) != 0) {
    *out = -errno;
    *why = std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
    return;
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    *out = -errno;
    *why = std::string("make mounts private: ") + std::strerror(errno);
    return;
  }
  char dir[] = "/tmp/tcptrace-tracefs-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    *out = -errno;
    *why = std::string("mkdtemp: ") + std::strerror(errno);
    return;
  }
  if (mount("tracefs", dir, "tracefs", 0, nullptr) != 0) {
    *out = -errno;
    *why = std::string("mount tracefs: ") + std::strerror(errno);
    rmdir(dir);
    return;
  }
  *out = ReadId(dir, key);
  if (*out < 0) *why = "no such tracepoint in tracefs";
  umount2(dir, MNT_DETACH);
  rmdir(dir);
}
}  // namespace

std::string MountedTracefs() {
  for (const char* p : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
    if (IsTracefsDir(p)) return p;
  }
  return "";
}

long TracepointId(const std::string& category, const std::string& name, std::string* why) {
  const std::string key = category + "/" + name;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_ids.find(key);
    if (it != g_ids.end()) return it->second;
  }
  long id;
  std::string root = MountedTracefs();
  if (!root.empty()) {
    id = ReadId(root, key);
    if (id < 0) *why = "no " + root + "/events/" + key;
  } else {
    std::thread t(PrivateMountRead, key, &id, why);
    t.join();
  }
  if (id >= 0) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_ids[key] = id;
  }
  return id;
}

int OpenTracepointEvent(long id) {
  struct perf_event_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.type = PERF_TYPE_TRACEPOINT;
  attr.size = sizeof(attr);
  attr.config = static_cast<__u64>(id);
  attr.sample_period = 1;
  attr.wakeup_events = 1;
  int fd = static_cast<int>(syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
  return fd < 0 ? -errno : fd;
}

}  // namespace tcptrace
