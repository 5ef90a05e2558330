// See elf_info.h.
#include "elf_info.h"

#include <elfutils/libdwelf.h>
#include <gelf.h>
#include <libelf.h>

#include "proc_maps.h"

namespace tcptrace::stacks {

std::string hex_string(const void* data, size_t len) {
  static const char kDigits[] = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string s;
  s.reserve(len * 2);
  for (size_t i = 0; i < len; i++) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 15]);
  }
  return s;
}

bool read_elf_info(int fd, ElfInfo* out, std::string* err) {
  // elf_version must be called once before any libelf use; it is idempotent.
  elf_version(EV_CURRENT);
  Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
  if (!elf) {
    *err = std::string("elf_begin: ") + elf_errmsg(-1);
    return false;
  }
  bool ok = false;
  GElf_Ehdr ehdr;
  size_t phnum = 0;
  if (elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &ehdr)) {
    *err = "not an ELF file";
  } else if (elf_getphdrnum(elf, &phnum) != 0) {
    *err = std::string("elf_getphdrnum: ") + elf_errmsg(-1);
  } else {
    out->type = ehdr.e_type;
    out->loads.clear();
    for (size_t i = 0; i < phnum; i++) {
      GElf_Phdr ph;
      if (!gelf_getphdr(elf, static_cast<int>(i), &ph) || ph.p_type != PT_LOAD) continue;
      out->loads.push_back({ph.p_vaddr, ph.p_offset, ph.p_filesz, ph.p_memsz,
                            ph.p_align ? ph.p_align : 1, (ph.p_flags & PF_X) != 0});
    }
    const void* id = nullptr;
    ssize_t n = dwelf_elf_gnu_build_id(elf, &id);
    out->build_id = n > 0 ? hex_string(id, static_cast<size_t>(n)) : std::string();
    ok = !out->loads.empty();
    if (!ok) *err = "ELF file has no PT_LOAD segments";
  }
  elf_end(elf);
  return ok;
}

bool file_offset_to_vaddr(const ElfInfo& info, uint64_t off, uint64_t* vaddr) {
  for (const auto& l : info.loads) {
    if (off >= l.offset && off < l.offset + l.filesz) {
      *vaddr = off - l.offset + l.vaddr;
      return true;
    }
  }
  return false;
}

bool load_bias_for(const ElfInfo& info, const Mapping& m, uint64_t* bias) {
  if (info.type == ET_EXEC) {
    *bias = 0;
    return true;
  }
  // The kernel maps each PT_LOAD from its page-aligned offset, so a mapping
  // that starts a segment has pgoff == offset rounded down to a page. Prefer
  // that exact match: with unaligned layouts two segments can share a file
  // page. Fall back to containment for mappings split later by mprotect
  // (RELRO).
  const uint64_t page = 4096;
  const ElfInfo::Load* hit = nullptr;
  for (const auto& l : info.loads)
    if ((l.offset & ~(page - 1)) == m.pgoff && l.exec == m.x) hit = hit ? hit : &l;
  for (const auto& l : info.loads)
    if (!hit && m.pgoff >= (l.offset & ~(page - 1)) && m.pgoff < l.offset + l.filesz) hit = &l;
  if (!hit) return false;
  // runtime(m.lo) holds file offset m.pgoff, whose link-time address is
  // vaddr - offset + pgoff (segments keep vaddr == offset mod page).
  *bias = m.lo - (hit->vaddr - hit->offset + m.pgoff);
  return true;
}

}  // namespace tcptrace::stacks
