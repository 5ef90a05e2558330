#include "libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace tcptrace {

namespace {
std::mutex g_mu;
std::string g_pending;           // for DrainLibbpfLog
std::string* g_capture = nullptr;  // active LogCapture buffer
constexpr size_t kMaxPending = 64 * 1024;
constexpr size_t kMaxCapture = 1024 * 1024;  // verifier logs can be long; keep the tail

int PrintFn(enum libbpf_print_level level, const char* fmt, va_list args) {
  // One call can carry a whole verifier log (megabytes): measure, then format.
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n < 0) return n;
  std::string buf(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(buf.data(), buf.size(), fmt, args);
  buf.resize(static_cast<size_t>(n));
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_capture != nullptr) {
    g_capture->append(buf);
    if (g_capture->size() > kMaxCapture) g_capture->erase(0, g_capture->size() - kMaxCapture);
  }
  if (level != LIBBPF_DEBUG && g_pending.size() < kMaxPending) g_pending.append(buf);
  return n;
}
}  // namespace

void InstallLibbpfLogger() { libbpf_set_print(PrintFn); }

std::string DrainLibbpfLog() {
  std::lock_guard<std::mutex> lock(g_mu);
  std::string out;
  out.swap(g_pending);
  return out;
}

LogCapture::LogCapture() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_capture = new std::string();
}

LogCapture::~LogCapture() {
  std::lock_guard<std::mutex> lock(g_mu);
  delete g_capture;
  g_capture = nullptr;
}

std::string LogCapture::Text() const {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_capture ? *g_capture : std::string();
}

}  // namespace tcptrace
