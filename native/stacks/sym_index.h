// Sorted function-symbol index for one Dwfl_Module.
//
// Why: dwfl_module_addrinfo scans the whole symbol table on every call,
// measured at 150-750 us per lookup in Debian's libc with its debug symtab
// (and proportionally worse for libnode's ~100k symbols). Sorting once
// makes a lookup a binary search. Semantics follow libdwfl's: the sized
// symbol with the closest start that contains the address wins, GLOBAL
// over WEAK over LOCAL for aliases; a sizeless (assembly) label is used
// only when no sized symbol contains or separates it from the address.
//
// Threading: not thread-safe; owned by one Symbolizer file entry.
#pragma once

#include <elfutils/libdwfl.h>

#include <cstdint>
#include <vector>

namespace tcptrace::stacks {

class SymIndex {
 public:
  struct Sym {
    uint64_t start, size;
    uint64_t section_end;  // a sizeless label never reaches past its section
    const char* name;  // owned by the module's ELF string table
    uint8_t rank;      // GLOBAL 3, WEAK 2, LOCAL 1, other 0
    uint32_t order;    // position in the symbol table (earlier wins ties)
  };

  // Reads the module's symbol table (main file, debug file or
  // MiniDebugInfo, whichever libdwfl picked). Only symbols in executable
  // sections are kept: data labels never name code.
  void build(Dwfl_Module* mod);
  bool built() const { return built_; }
  bool empty() const { return syms_.empty(); }
  // nullptr when no symbol names addr (module-relative, i.e. link-time).
  const Sym* lookup(uint64_t addr) const;

 private:
  std::vector<Sym> syms_;  // by start asc, then rank asc, then order desc
  bool built_ = false;
};

}  // namespace tcptrace::stacks
