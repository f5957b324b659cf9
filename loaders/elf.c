/*
 * loaders/elf.c -- bounds-checked look at an ELF header in memory.
 *
 * "This machine" is read from libmodhost's own ELF header, mapped at its
 * load base (dladdr), so no table of architectures is needed.
 */
#include "host/internal.h"
#include "loaders/elf.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>

#if UINTPTR_MAX == 0xffffffffffffffffu
typedef Elf64_Ehdr mh_ehdr;
typedef Elf64_Phdr mh_phdr;
#define MH_ELF_CLASS ELFCLASS64
#else
typedef Elf32_Ehdr mh_ehdr;
typedef Elf32_Phdr mh_phdr;
#define MH_ELF_CLASS ELFCLASS32
#endif

static const mh_ehdr *self_header(void)
{
    Dl_info info;
    if (!dladdr((void *)&mh_elf_check, &info) || !info.dli_fbase)
        return NULL;
    return (const mh_ehdr *)info.dli_fbase;
}

const char *mh_elf_check(const unsigned char *data, size_t len)
{
    mh_ehdr eh;
    if (len < sizeof eh || memcmp(data, ELFMAG, SELFMAG) != 0)
        return "it is not an ELF shared object (no ELF header)";
    memcpy(&eh, data, sizeof eh);
    const mh_ehdr *self = self_header();
    if (eh.e_ident[EI_CLASS] != MH_ELF_CLASS)
        return "it is an ELF object of the other word size (32/64-bit)";
    if (self && eh.e_ident[EI_DATA] != self->e_ident[EI_DATA])
        return "it is an ELF object of the other byte order";
    if (eh.e_type != ET_DYN)
        return "it is an ELF file but not a shared object (ET_DYN)";
    if (self && eh.e_machine != self->e_machine)
        return "it is an ELF shared object for another machine";
    if (eh.e_phentsize != sizeof(mh_phdr) || eh.e_phoff > len ||
        eh.e_phnum == 0 ||
        (size_t)eh.e_phnum * sizeof(mh_phdr) > len - eh.e_phoff)
        return "it is a truncated or damaged ELF shared object (program "
               "headers lie outside the image)";
    /* The dynamic loader maps every loadable segment and touches it: a
     * segment past the end of the image would be a SIGBUS, not an error. */
    for (size_t i = 0; i < eh.e_phnum; i++) {
        mh_phdr ph;
        memcpy(&ph, data + eh.e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_type == PT_LOAD &&
            (ph.p_offset > len || ph.p_filesz > len - ph.p_offset ||
             ph.p_filesz > ph.p_memsz))
            return "it is a truncated or damaged ELF shared object (a "
                   "loadable segment lies outside the image)";
    }
    return NULL;
}
