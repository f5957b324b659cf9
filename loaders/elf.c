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
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if UINTPTR_MAX == 0xffffffffffffffffu
typedef Elf64_Ehdr mh_ehdr;
typedef Elf64_Phdr mh_phdr;
#define MH_ST_TYPE(i) ELF64_ST_TYPE(i)
#define MH_ELF_CLASS ELFCLASS64
#else
typedef Elf32_Ehdr mh_ehdr;
typedef Elf32_Phdr mh_phdr;
#define MH_ST_TYPE(i) ELF32_ST_TYPE(i)
#define MH_ELF_CLASS ELFCLASS32
#endif

/* This library's own ELF header, looked up once: dladdr walks every
 * loaded object, and a module loaded from memory is checked each time. */
static const mh_ehdr *self_header(void)
{
    static _Atomic(const mh_ehdr *) self;
    const mh_ehdr *e = atomic_load_explicit(&self, memory_order_acquire);
    if (e)
        return e;
    Dl_info info;
    if (!dladdr((void *)&mh_elf_check, &info) || !info.dli_fbase)
        return NULL;
    e = (const mh_ehdr *)info.dli_fbase;
    atomic_store_explicit(&self, e, memory_order_release); /* the same
                                                             for all */
    return e;
}

/* Why this process cannot load an object with ELF header eh, or NULL.
 * e_ident, e_type and e_machine lie at the same offsets in both word
 * sizes, so an object of the other one is told apart too. */
static const char *foreign(const mh_ehdr *eh)
{
    const mh_ehdr *self = self_header();
    if (eh->e_ident[EI_CLASS] != MH_ELF_CLASS)
        return "it is an ELF object of the other word size (32/64-bit)";
    if (self && eh->e_ident[EI_DATA] != self->e_ident[EI_DATA])
        return "it is an ELF object of the other byte order";
    if (eh->e_type != ET_DYN)
        return "it is an ELF file but not a shared object (ET_DYN)";
    if (self && eh->e_machine != self->e_machine)
        return "it is an ELF shared object for another machine";
    return NULL;
}

const char *mh_elf_check(const unsigned char *data, size_t len)
{
    mh_ehdr eh;
    if (len < sizeof eh || memcmp(data, ELFMAG, SELFMAG) != 0)
        return "it is not an ELF shared object (no ELF header)";
    memcpy(&eh, data, sizeof eh);
    const char *why = foreign(&eh);
    if (why)
        return why;
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

/* ---- the manifest note -------------------------------------------------- */

/* Bytes of an object, in memory or in a file: reads are bounds-checked
 * against its length. */
typedef struct elf_src {
    const unsigned char *data;  /* or NULL: read fd */
    int fd;
    uint64_t len;
    /* A file's first bytes, read at once: the ELF header, the program
     * headers and, as linkers lay them out, the note segments are there,
     * so the whole look costs one system call. */
    size_t head_len;
    unsigned char head[4096];
} elf_src;

/* The fields but head: a designated initialiser would zero its 4 KiB on
 * every load, before the read that fills it. */
static void src_init(elf_src *s, const unsigned char *data, int fd,
                     uint64_t len)
{
    s->data = data;
    s->fd = fd;
    s->len = len;
    s->head_len = 0;
}

static bool src_read(const elf_src *s, uint64_t off, void *buf, size_t n)
{
    if (off > s->len || n > s->len - off)
        return false;
    if (s->data) {
        memcpy(buf, s->data + off, n);
        return true;
    }
    if (off + n <= s->head_len) {
        memcpy(buf, s->head + off, n);
        return true;
    }
    return mh_io_pread_all(s->fd, buf, n, (off_t)off) == n;
}

#define NOTE_SEGMENT_MAX (1024u * 1024u)  /* all note segments together */
#define NOTE_SEGMENTS_MAX 16             /* a linker makes one or two */

/* Memory through the host's allocator, or the C library's without one
 * (the index writer reads notes with no host). */
static void *note_alloc(mh_host *h, size_t n)
{
    return h ? mh_mem_alloc(h, n) : malloc(n);
}

static void note_free(mh_host *h, void *p, size_t n)
{
    if (h)
        mh_mem_free(h, p, n);
    else
        free(p);
}

/* Look through one PT_NOTE segment (its bytes in seg). */
static const char *scan_notes(mh_host *h, const unsigned char *seg,
                              size_t len, const mh_phdr *ph, mh_elf_note *out,
                              uint64_t *desc_file_off)
{
    uint64_t align = ph->p_align;
    size_t a = align == 8 ? 8 : 4, off = 0;
    while (len - off >= 12) {
        uint32_t nsz, dsz, type;
        memcpy(&nsz, seg + off, 4);
        memcpy(&dsz, seg + off + 4, 4);
        memcpy(&type, seg + off + 8, 4);
        /* The data starts at the note's start + ALIGN(12 + namesz), as
         * glibc's ELF_NOTE_DESC_OFFSET: in a segment aligned to 8 (GNU
         * property notes) that is not 12 + ALIGN(namesz). */
        size_t name_off = off + 12;
        size_t desc_rel = (12 + (size_t)nsz + a - 1) & ~(a - 1);
        if (nsz > len - name_off || desc_rel > len - off)
            return "an ELF note's name runs past its segment";
        size_t desc_off = off + desc_rel;
        if (dsz > len - desc_off)
            return "an ELF note's data runs past its segment";
        size_t next = (desc_off + (size_t)dsz + a - 1) & ~(a - 1);
        bool ours = nsz == sizeof MH_NOTE_OWNER &&
                    memcmp(seg + name_off, MH_NOTE_OWNER,
                           sizeof MH_NOTE_OWNER) == 0;
        if (ours && type == MH_NOTE_TYPE_MANIFEST) {
            if (out->found)
                return "it has two modhost manifest notes";
            if (dsz < 5)
                return "its modhost manifest note is too short";
            const unsigned char *d = seg + desc_off;
            memcpy(&out->abi, d, 4);
            size_t jlen = strnlen((const char *)d + 4, dsz - 4);
            if (jlen == dsz - 4)
                return "its modhost manifest note is not NUL-terminated";
            out->json = note_alloc(h, jlen + 1);
            if (!out->json)
                return "out of memory";
            memcpy(out->json, d + 4, jlen + 1);
            out->json_len = jlen;
            out->found = true;
            out->vaddr = ph->p_vaddr + desc_off; /* if loaded: below */
            *desc_file_off = ph->p_offset + desc_off;
        }
        if (next > len)
            break; /* the last note, unpadded */
        off = next;
    }
    return NULL;
}

/* Does a read-only PT_LOAD segment map the note's data (4 + json_len + 1
 * bytes at file offset off) from the file, at out->vaddr? */
static bool note_loaded(const elf_src *s, const mh_ehdr *eh, uint64_t off,
                        const mh_elf_note *out)
{
    uint64_t n = 4 + (uint64_t)out->json_len + 1;
    for (size_t i = 0; i < eh->e_phnum; i++) {
        mh_phdr ph;
        if (!src_read(s, eh->e_phoff + i * sizeof ph, &ph, sizeof ph))
            return false;
        if (ph.p_type == PT_LOAD && (ph.p_flags & PF_R) &&
            !(ph.p_flags & PF_W) && off >= ph.p_offset &&
            off - ph.p_offset <= ph.p_filesz &&
            n <= ph.p_filesz - (off - ph.p_offset))
            return ph.p_vaddr + (off - ph.p_offset) == out->vaddr;
    }
    return false;
}

static const char *find_note(mh_host *h, const elf_src *s, mh_elf_note *out)
{
    mh_ehdr eh;
    if (!src_read(s, 0, &eh, sizeof eh) || memcmp(&eh, ELFMAG, SELFMAG) != 0)
        return "it is not an ELF object (no ELF header)";
    out->foreign = foreign(&eh);
    if (eh.e_ident[EI_CLASS] != MH_ELF_CLASS)
        return NULL; /* the other word size: no note read */
    if (eh.e_phentsize != sizeof(mh_phdr) || eh.e_phnum == 0)
        return "its program headers are damaged";
    /* Bounded work whatever the headers say: a crafted object with
     * thousands of note headers over one large region must not make a
     * listing read gigabytes. */
    size_t segments = 0;
    uint64_t total = 0, desc_off = 0;
    for (size_t i = 0; i < eh.e_phnum; i++) {
        mh_phdr ph;
        if (!src_read(s, eh.e_phoff + i * sizeof ph, &ph, sizeof ph))
            return "its program headers lie outside the file";
        /* The dynamic loader maps every loadable segment and touches it:
         * one past the end of a truncated file is a SIGBUS in dlopen, not
         * an error (mh_elf_check says the same of an image in memory). */
        if (ph.p_type == PT_LOAD &&
            (ph.p_offset > s->len || ph.p_filesz > s->len - ph.p_offset ||
             ph.p_filesz > ph.p_memsz))
            return "it is a truncated or damaged ELF object (a loadable "
                   "segment lies outside the file)";
        if (ph.p_type != PT_NOTE)
            continue;
        if (++segments > NOTE_SEGMENTS_MAX)
            return "it has more than 16 note segments";
        if (ph.p_filesz > NOTE_SEGMENT_MAX - total)
            return "its note segments hold more than 1 MiB";
        total += ph.p_filesz;
        unsigned char *seg = note_alloc(h, ph.p_filesz ? ph.p_filesz : 1);
        if (!seg)
            return "out of memory";
        const char *why = src_read(s, ph.p_offset, seg, ph.p_filesz)
                              ? scan_notes(h, seg, ph.p_filesz, &ph, out,
                                           &desc_off)
                              : "a note segment lies outside the file";
        note_free(h, seg, ph.p_filesz ? ph.p_filesz : 1);
        if (why)
            return why;
    }
    if (out->found && !note_loaded(s, &eh, desc_off, out))
        out->vaddr = 0;
    return NULL;
}

const char *mh_elf_note_mem(mh_host *h, const unsigned char *data, size_t len,
                            mh_elf_note *out)
{
    memset(out, 0, sizeof *out);
    elf_src s;
    src_init(&s, data, -1, len);
    const char *why = find_note(h, &s, out);
    if (why)
        mh_elf_note_free(h, out);
    return why;
}

const char *mh_elf_note_fd(mh_host *h, int fd, uint64_t len, mh_elf_note *out)
{
    memset(out, 0, sizeof *out);
    elf_src s;
    src_init(&s, NULL, fd, len);
    size_t want = len < sizeof s.head ? (size_t)len : sizeof s.head;
    size_t got = mh_io_pread_all(fd, s.head, want, 0);
    s.head_len = got == want ? got : 0; /* else: read piece by piece */
    const char *why = find_note(h, &s, out);
    if (why)
        mh_elf_note_free(h, out);
    return why;
}

void mh_elf_note_free(mh_host *h, mh_elf_note *n)
{
    if (n->json)
        note_free(h, n->json, n->json_len + 1);
    memset(n, 0, sizeof *n);
}

/* ---- a loaded object's own symbol ---------------------------------------- */

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

/* A pointer of the dynamic section: the dynamic loader relocates most of
 * them in place, but not where the section is read-only (MIPS, RISC-V):
 * an offset is below the load base, an address is not. */
static uintptr_t dyn_ptr(const struct link_map *lm, ElfW(Addr) p)
{
    return p < lm->l_addr ? lm->l_addr + p : p;
}

int mh_elf_symbol_of(void *dl, const char *name, const void *addr,
                     unsigned *type, size_t *size)
{
    struct link_map *lm = NULL;
    const uint32_t *ht = NULL;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    if (dlinfo(dl, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_ld)
        for (const ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++) {
            if (d->d_tag == DT_GNU_HASH)
                ht = (const uint32_t *)dyn_ptr(lm, d->d_un.d_ptr);
            else if (d->d_tag == DT_SYMTAB)
                symtab = (const ElfW(Sym) *)dyn_ptr(lm, d->d_un.d_ptr);
            else if (d->d_tag == DT_STRTAB)
                strtab = (const char *)dyn_ptr(lm, d->d_un.d_ptr);
        }
    if (!ht || !symtab || !strtab || ht[0] == 0 || ht[2] == 0) {
        Dl_info di; /* no GNU hash table: the slow way */
        const ElfW(Sym) *sym = NULL;
        struct link_map *in = NULL;
        if (lm && dladdr1(addr, &di, (void **)&in, RTLD_DL_LINKMAP) && in &&
            in != lm)
            return 0; /* another object's */
        if (!dladdr1(addr, &di, (void **)&sym, RTLD_DL_SYMENT) || !sym ||
            di.dli_saddr != addr)
            return -1;
        *type = MH_ST_TYPE(sym->st_info);
        *size = sym->st_size;
        return 1;
    }
    /* The lookup of glibc's do_lookup_x: bloom filter, bucket, chain.
     * dlsym has just walked the same words for the same name, so nothing
     * is read that the dynamic loader did not read. */
    uint32_t nbuckets = ht[0], symoffset = ht[1], bloom_size = ht[2];
    uint32_t shift = ht[3];
    const ElfW(Addr) *bloom = (const ElfW(Addr) *)(ht + 4);
    const uint32_t *buckets = (const uint32_t *)(bloom + bloom_size);
    const uint32_t *chain = buckets + nbuckets;
    const unsigned bits = sizeof(ElfW(Addr)) * 8;
    uint32_t h = gnu_hash(name);
    ElfW(Addr) word = bloom[(h / bits) & (bloom_size - 1)];
    if (!((word >> (h % bits)) & (word >> ((h >> shift) % bits)) & 1))
        return 0;
    uint32_t i = buckets[h % nbuckets];
    if (i < symoffset)
        return 0;
    for (;; i++) {
        uint32_t ch = chain[i - symoffset];
        const ElfW(Sym) *sym = &symtab[i];
        if ((ch | 1) == (h | 1) && sym->st_shndx != SHN_UNDEF &&
            strcmp(strtab + sym->st_name, name) == 0) {
            /* The first definition is where the loader stopped too; one
             * elsewhere (another version of the name?) says nothing
             * certain. */
            if ((const void *)(lm->l_addr + sym->st_value) != addr)
                return -1;
            *type = MH_ST_TYPE(sym->st_info);
            *size = sym->st_size;
            return 1;
        }
        if (ch & 1)
            return 0;
    }
}
