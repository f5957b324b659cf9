/*
 * loaders/elf.h -- checks on ELF images held in memory (mh_elf_*).
 *
 * Bytes from a database or the network are checked before they are
 * handed to the dynamic loader: a clear "not an ELF shared object for
 * this machine" beats whatever dlopen would say about /proc/self/fd/7.
 */
#ifndef MH_LOADERS_ELF_H
#define MH_LOADERS_ELF_H

#include <stddef.h>

/* NULL if data looks like a shared object this process can load (ELF
 * magic, this process's class, byte order and machine, type ET_DYN,
 * program headers and loadable segments inside the image), else a static
 * reason. */
const char *mh_elf_check(const unsigned char *data, size_t len);

#endif /* MH_LOADERS_ELF_H */
