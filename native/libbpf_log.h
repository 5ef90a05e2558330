// libbpf's print callback, captured instead of written to stderr.
//
// libbpf reports verifier logs and attach diagnostics through one global print
// function. tcptrace keeps them: a LogCapture scope collects everything printed
// while it lives (so a failed load can return its verifier log inside the error),
// and everything else is buffered for JS to log at debug level (stderr belongs
// to pino). Thread affinity: any thread; guarded by a mutex.
#pragma once

#include <string>

namespace tcptrace {

void InstallLibbpfLogger();

// Lines printed since the last call (bounded), for the JS logger.
std::string DrainLibbpfLog();

class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::string Text() const;
};

}  // namespace tcptrace
