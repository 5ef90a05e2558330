// See sym_index.h.
#include "sym_index.h"

#include <gelf.h>

#include <algorithm>
#include <map>

namespace tcptrace::stacks {

namespace {

uint8_t rank_of(unsigned bind) {
  switch (bind) {
    case STB_GLOBAL: return 3;
    case STB_WEAK: return 2;
    case STB_LOCAL: return 1;
    default: return 0;
  }
}

}  // namespace

void SymIndex::build(Dwfl_Module* mod) {
  built_ = true;
  syms_.clear();
  int n = dwfl_module_getsymtab(mod);
  // (elf, section) -> end address of an executable section, 0 otherwise.
  std::map<std::pair<Elf*, GElf_Word>, uint64_t> exec_section;
  for (int i = 1; i < n; i++) {
    GElf_Sym sym;
    GElf_Addr addr = 0;
    GElf_Word shndx = 0;
    Elf* elf = nullptr;
    Dwarf_Addr bias = 0;
    const char* name = dwfl_module_getsym_info(mod, i, &sym, &addr, &shndx, &elf, &bias);
    if (!name || !*name || !elf) continue;
    unsigned type = GELF_ST_TYPE(sym.st_info);
    if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE) continue;
    if (shndx == SHN_UNDEF || shndx >= SHN_LORESERVE) continue;
    auto key = std::make_pair(elf, shndx);
    auto it = exec_section.find(key);
    if (it == exec_section.end()) {
      // Debug files keep section flags even where contents are NOBITS.
      GElf_Shdr sh;
      Elf_Scn* scn = elf_getscn(elf, shndx);
      bool x = scn && gelf_getshdr(scn, &sh) && (sh.sh_flags & SHF_EXECINSTR);
      it = exec_section.emplace(key, x ? sh.sh_addr + sh.sh_size : 0).first;
    }
    if (!it->second) continue;
    // addr is st_value adjusted by the module bias; adjust the section end
    // the same way.
    uint64_t section_end = it->second + (addr - sym.st_value);
    syms_.push_back({addr, sym.st_size, section_end, name,
                     rank_of(GELF_ST_BIND(sym.st_info)), static_cast<uint32_t>(i)});
  }
  // Scanning backwards from an address then meets, among symbols with the
  // same start, the best binding first and, among equals, the earliest.
  std::sort(syms_.begin(), syms_.end(), [](const Sym& a, const Sym& b) {
    if (a.start != b.start) return a.start < b.start;
    if (a.rank != b.rank) return a.rank < b.rank;
    return a.order > b.order;
  });
}

const SymIndex::Sym* SymIndex::lookup(uint64_t addr) const {
  auto it = std::upper_bound(syms_.begin(), syms_.end(), addr,
                             [](uint64_t a, const Sym& s) { return a < s.start; });
  const Sym* label = nullptr;
  bool blocked = false;  // a sized symbol ends between the label and addr
  // Nested sized symbols are rare and shallow; a bounded look-back keeps a
  // lookup O(log n) even for pathological tables.
  for (int window = 0; it != syms_.begin() && window < 64; window++) {
    const Sym& s = *--it;
    if (s.size == 0) {
      // <= rather than <: libdwfl 0.188 also accepts the section's end
      // address, and the cross-check test wants identical answers.
      if (!label && !blocked && addr <= s.section_end) label = &s;
    } else if (addr - s.start < s.size) {
      return &s;
    } else {
      blocked = true;
    }
  }
  return label;
}

}  // namespace tcptrace::stacks
