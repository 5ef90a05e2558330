// The few ELF facts both halves need without building a Dwfl: file type,
// PT_LOAD segments (to turn a mapping into a load bias, and a file offset
// into a link-time address) and the GNU build-id (cache key).
//
// Threading: plain functions with no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tcptrace::stacks {

struct Mapping;

struct ElfInfo {
  struct Load {
    uint64_t vaddr, offset, filesz, memsz, align;
    bool exec;
  };
  uint16_t type = 0;  // ET_EXEC, ET_DYN, ...
  std::vector<Load> loads;
  std::string build_id;  // lowercase hex, empty when the file has none
};

// Reads the ELF headers from fd (not consumed; the file offset is unused).
bool read_elf_info(int fd, ElfInfo* out, std::string* err);

// Link-time address of a file offset, via the PT_LOAD that contains it.
bool file_offset_to_vaddr(const ElfInfo& info, uint64_t off, uint64_t* vaddr);

// Load bias (runtime address - link-time address) implied by mapping m of
// this file: m.lo maps file offset m.pgoff, and the PT_LOAD holding that
// offset tells its link-time address. Always 0 for ET_EXEC.
bool load_bias_for(const ElfInfo& info, const Mapping& m, uint64_t* bias);

std::string hex_string(const void* data, size_t len);

}  // namespace tcptrace::stacks
