/*
 * loaders/elf.h -- checks on ELF images held in memory (mh_elf_*).
 *
 * Bytes from a database or the network are checked before they are
 * handed to the dynamic loader: a clear "not an ELF shared object for
 * this machine" beats whatever dlopen would say about /proc/self/fd/7.
 */
#ifndef MH_LOADERS_ELF_H
#define MH_LOADERS_ELF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mh_host;

/* NULL if data looks like a shared object this process can load (ELF
 * magic, this process's class, byte order and machine, type ET_DYN,
 * program headers and loadable segments inside the image), else a static
 * reason. */
const char *mh_elf_check(const unsigned char *data, size_t len);

/* The manifest note MH_PLUGIN_MANIFEST writes (owner "modhost"), found
 * through the PT_NOTE program headers, every offset and size checked. */
typedef struct mh_elf_note {
    bool found;
    uint32_t abi;          /* the ABI the plugin was built for */
    char *json;            /* host memory, NUL-terminated */
    size_t json_len;
    uint64_t vaddr;        /* where the note's data (abi, then the JSON
                              and its NUL) is once loaded, relative to the
                              load base: inside a loadable segment that
                              maps it from the same file bytes; else 0 */
    const char *foreign;   /* NULL, or why this process cannot load the
                              object (another word size, byte order or
                              machine; not ET_DYN): the readers do not
                              fail for it, as `modhost index` reads
                              objects of other machines */
} mh_elf_note;

/* From an image in memory, or from an open file of len bytes (read with
 * pread, only the headers and note segments).  NULL with out->found
 * saying whether there is a note, or a static reason the object or its
 * notes are damaged ("out of memory" included).  h may be NULL: memory
 * then comes from malloc. */
const char *mh_elf_note_mem(struct mh_host *h, const unsigned char *data,
                            size_t len, mh_elf_note *out);
const char *mh_elf_note_fd(struct mh_host *h, int fd, uint64_t len,
                           mh_elf_note *out);
void mh_elf_note_free(struct mh_host *h, mh_elf_note *n);

/* What the symbol table of loaded object `dl` (a dlopen handle) says of
 * its symbol `name` at address `addr` (found by dlsym): 1 with *type
 * (STT_*) and *size when it is the object's own; 0 when the object
 * defines no such symbol (dlsym found it in a dependency: dlsym searches
 * the handle's dependencies too); -1 when nothing can be told.  Through
 * the object's GNU hash table in memory, exactly the way the dynamic
 * loader's own lookup walked it, so O(1), where dladdr1 scans every
 * loaded object; dladdr1 when the object has no GNU hash table. */
int mh_elf_symbol_of(void *dl, const char *name, const void *addr,
                     unsigned *type, size_t *size);

#endif /* MH_LOADERS_ELF_H */
