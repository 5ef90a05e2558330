// Reader for JIT perf maps (/tmp/perf-<pid>.map): lines "START SIZE name",
// START and SIZE in hex (HotSpot writes a 0x prefix). Written by V8/Node
// (--perf-basic-prof[-only-functions]), CPython 3.12+ (-X perf), HotSpot
// (jcmd Compiler.perfmap) and others.
//
// The file only grows (about 1 MB/hour for Node), so it is read
// incrementally: each update() parses just the bytes appended since the
// previous one. Code can be freed and the range reused, so a later entry
// replaces any earlier entries it overlaps.
//
// Threading: not thread-safe; owned by one Symbolizer.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

namespace tcptrace::stacks {

class PerfMap {
 public:
  struct Entry {
    uint64_t start = 0, size = 0;
    std::string name;
  };

  explicit PerfMap(std::string path) : path_(std::move(path)) {}

  // Parses what was appended since the last call. Starts over when the file
  // was replaced or truncated. Returns false when the file does not exist.
  bool update();
  const Entry* lookup(uint64_t addr) const;

  bool exists() const { return exists_; }
  const std::string& path() const { return path_; }
  size_t size() const { return entries_.size(); }

 private:
  void add_line(const std::string& line);

  std::string path_;
  bool exists_ = false;
  uint64_t dev_ = 0, ino_ = 0;
  off_t offset_ = 0;      // bytes consumed so far
  std::string partial_;   // an unterminated last line, completed next time
  std::map<uint64_t, Entry> entries_;  // by start; never overlapping
};

}  // namespace tcptrace::stacks
