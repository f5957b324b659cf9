/*
 * plugins/finders/tar.c -- the module finders.tar: a finder plugin that
 * serves modules from inside a tar or zip archive, read with libarchive.
 *
 * A search path entry "tar:/srv/plugins.tar" (no path hook claims the
 * scheme, so the host imports this module and registers the class it
 * exports) makes the archive one entry of the search path.  Module a.b.c
 * is the member "a/b/c.so", "a/b/c.lua" or "a/b/c.luac" (in that order;
 * "./a/b/c.so" too), and "a/b/c.json" beside it is its sidecar manifest.
 * Members under "a/b/" make a.b a namespace portion.  The bytes are handed
 * to the host in memory (read()), which checks and loads native code from
 * a sealed memfd: nothing is ever extracted to disk.
 *
 * Formats
 * -------
 * tar (v7, ustar, pax, GNU) and zip, told apart by their content, not the
 * file name.  A tar may be compressed with gzip, or with bzip2, xz or zstd
 * when this libarchive was built with those libraries: libarchive would
 * otherwise run an external program, which a library must never do
 * behind its host's back.  Other formats (cpio, 7z, rar, ...) are refused.
 * libarchive's tar reader stops at its end-of-archive blocks, so the
 * check at the end of a compressed stream (a gzip trailer, an xz block
 * check, a zstd frame checksum, a bzip2 CRC) is never read, and its gzip
 * reader checks no CRC at all: an index build decompresses a compressed
 * archive once more, whole -- gzip through zlib, the others through
 * libarchive with no format -- so a damaged one is refused, not served
 * with flipped bytes (stream_check).  The archive itself is opened
 * as the host opens code files (svc->open_code): owned by root or this
 * user and writable by no one else, in directories like that.
 *
 * The index
 * ---------
 * open() reads the member list once -- names, sizes, mtimes, types -- into
 * an index in the host's memory; no member data is kept.  Every later call
 * stats the archive and rebuilds the index when its (dev, inode, size,
 * mtime, ctime) changed, as the sqlite finder reopens a replaced database, so an
 * archive replaced on disk is seen without mh_invalidate_caches.  An index
 * is immutable once built and reference counted: read() and list() use one
 * without holding the lock while they stream or call back, and a rebuild
 * only drops the finder's own reference.  read() checks the index against
 * the file descriptor it streams from, so the member number it seeks is
 * one of those very bytes.
 *
 * Members are trusted to hold code (they are modules), but not to be well
 * formed: names with a ".." component, absolute names and names that are
 * not exactly the relative path of a valid module name are never served;
 * only regular files are modules (no symbolic or hard links, no encrypted
 * zip members); a damaged archive is an error naming it, never a crash.
 * The index is bounded (TAR_MAX_MEMBERS, TAR_MAX_NAMES bytes of names) and
 * a member over the host's max_module_size is refused before any of its
 * bytes are copied.  Index and module bytes go through the host's
 * allocator; libarchive's own working memory does not (it has no hook).
 *
 * Like every finder plugin, this includes only <modhost/finder.h> and
 * <modhost/plugin.h> and never links against libmodhost: all it needs
 * comes through cx->svc.
 */
#include <modhost/finder.h>
#include <modhost/plugin.h>

#include <archive.h>
#include <archive_entry.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define TAR_SCHEME "tar:"
#define TAR_MAX_MEMBERS ((size_t)1 << 20)   /* headers read per archive */
#define TAR_MAX_NAMES ((size_t)64 << 20)    /* bytes of names kept */
#define TAR_NAME_BUF 4096                   /* longest member name read */
#define TAR_SIDECAR_MAX (256u * 1024u)      /* the host's manifest limit */
#define TAR_REL_MAX (MH_NAME_MAX + 8)       /* "a/b/c" + ".luac" + NUL */
#define TAR_BLOCK 65536                     /* read size of libarchive */
#define TAR_WARN_UNSAFE 5                   /* unsafe names warned about */

/* What a member is, as far as serving it goes. */
enum { M_FILE, M_DIR, M_SYMLINK, M_HARDLINK, M_ENCRYPTED, M_OTHER };

static const char *const type_names[] = {
    [M_FILE] = "regular file", [M_DIR] = "directory",
    [M_SYMLINK] = "symbolic link", [M_HARDLINK] = "hard link",
    [M_ENCRYPTED] = "encrypted member", [M_OTHER] = "special file",
};

/* The archive file as stat() sees it: any change means "re-read". */
typedef struct tar_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    int64_t ctime_ns;     /* no one can set it: an archive rewritten in
                             place with its size and mtime put back (cp -p)
                             still moves it */
} tar_stamp;

typedef struct tar_member {
    size_t off;           /* name: offset into the index's names */
    const char *name;     /* ... and the pointer, once names are final */
    int64_t size;         /* -1: not recorded in the archive */
    int64_t mtime;        /* seconds */
    uint32_t ordinal;     /* its header's number in the archive, from 0 */
    uint8_t type;         /* M_* */
} tar_member;

/* A growable array in the host's memory. */
typedef struct tar_vec {
    void *p;
    size_t len, cap;      /* in elements */
} tar_vec;

/* Everything known about one version of the archive.  Immutable once
 * built; freed when the last reference goes. */
typedef struct tar_index {
    unsigned refs;        /* guarded by the finder's lock */
    tar_stamp stamp;
    tar_vec files;        /* tar_member: module files and sidecars, by name */
    tar_vec dirs;         /* tar_member: package directories "a/b", by name */
    tar_vec names;        /* char: NUL-terminated names */
} tar_index;

typedef struct tar_state {
    pthread_mutex_t lock;
    char *path;           /* the archive, absolute */
    size_t path_size;
    tar_index *cur;       /* NULL until (re)read */
    bool bad;             /* the file at bad_stamp is not usable: */
    tar_stamp bad_stamp;
    char bad_why[512];    /* ... for this reason (warned about once) */
    char io_why[512];     /* the read error last warned about: a passing
                             one is not remembered (asked again at the
                             next find), but warned about once while it
                             lasts */
} tar_state;

/* A find's answer, built here and handed over as copies from
 * cx->svc->intern(): the host reads a spec after find returns, when the
 * index the strings come from may have been replaced by another thread.
 * (A host older than intern() gets these buffers themselves, which live
 * until this thread's next find.) */
typedef struct tar_answer {
    char origin[PATH_MAX + TAR_REL_MAX + 4];
    char key[TAR_REL_MAX];
    char meta_key[TAR_REL_MAX];
    char identity[160];
} tar_answer;

static _Thread_local tar_answer answer;

/* The module suffixes, in resolution order. */
static const struct {
    const char *suffix;
    mh_module_kind kind;
    unsigned flags;
} kinds[] = {
    {".so", MH_KIND_NATIVE, 0},
    {".lua", MH_KIND_LUA, 0},
    {".luac", MH_KIND_LUA, MH_SPEC_BYTECODE},
};

#define TAR_SVC_HAS(cx, field)                                            \
    ((cx)->svc->size >= offsetof(mh_finder_services, field) +             \
                            sizeof((cx)->svc->field))

static void trace(mh_finder_ctx *cx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void trace(mh_finder_ctx *cx, const char *fmt, ...)
{
    if (!TAR_SVC_HAS(cx, verbose) || !cx->svc->verbose(cx))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cx->svc->log(cx, MH_LOG_TRACE, "%s", msg);
}

/* ---- names ---------------------------------------------------------- */

/* Is s[0..n) the relative path of a valid module name: '/'-separated
 * identifiers [A-Za-z_][A-Za-z0-9_]*, at most MH_NAME_MAX bytes?  That is
 * exactly what mh_finder_relpath() makes of a name. */
static bool valid_stem(const char *s, size_t n)
{
    if (n == 0 || n > MH_NAME_MAX)
        return false;
    bool start = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     c == '_';
        if (c == '/') {
            if (start)
                return false;
            start = true;
        } else if (alpha || (!start && c >= '0' && c <= '9')) {
            start = false;
        } else {
            return false;
        }
    }
    return !start;
}

/* The suffix kind of a module file name of n bytes ("a/b.so" -> 0), or -1;
 * *stem receives the length before the suffix. */
static int module_suffix(const char *name, size_t n, size_t *stem)
{
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t sl = strlen(kinds[k].suffix);
        if (n > sl && memcmp(name + n - sl, kinds[k].suffix, sl) == 0) {
            *stem = n - sl;
            return (int)k;
        }
    }
    return -1;
}

typedef enum { NAME_OK, NAME_SKIP, NAME_UNSAFE } name_verdict;

/*
 * A member name as the index keeps it: leading "./" dropped, and a
 * directory's trailing '/'.  Names that could escape a directory if
 * extracted (absolute, a ".." component) are NAME_UNSAFE, and so are
 * empty or "." components, which no module path has; "." itself and
 * names too long for any module are NAME_SKIP.
 */
static name_verdict normalise(const char *raw, char *out, size_t size,
                              size_t *len, bool *dir_syntax)
{
    const char *p = raw;
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    if (p[0] == '/')
        return NAME_UNSAFE;
    size_t n = strlen(p);
    *dir_syntax = n > 0 && p[n - 1] == '/';
    if (*dir_syntax)
        n--;
    if (n == 0 || (n == 1 && p[0] == '.'))
        return NAME_SKIP; /* the archive's root: "./" */
    for (size_t i = 0; i < n;) {
        size_t c = 0;
        while (i + c < n && p[i + c] != '/')
            c++;
        if (c == 0 || (c == 1 && p[i] == '.') ||
            (c == 2 && p[i] == '.' && p[i + 1] == '.'))
            return NAME_UNSAFE;
        i += c + 1;
    }
    if (n >= size)
        return NAME_SKIP;
    memcpy(out, p, n);
    out[n] = '\0';
    *len = n;
    return NAME_OK;
}

/* A member name as it may go into a message: the archive's author chose
 * its bytes, and a line break would forge a line of the host's "not
 * found" list or the log ("x\n  /opt/modules: found t.lua"), a control
 * sequence would reach the terminal.  Anything but printable ASCII is
 * written as \n, \t, \r or \xNN, and a backslash as \\; a name too
 * long for out ends in "...".  Returns out. */
#define TAR_SHOWN 256 /* bytes of a member name shown in a message */

static const char *shown(const char *raw, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
        char esc[5];
        if (*p == '\\')
            snprintf(esc, sizeof esc, "\\\\");
        else if (*p == '\n' || *p == '\t' || *p == '\r')
            snprintf(esc, sizeof esc, "\\%c",
                     *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r');
        else if (*p < 0x20 || *p >= 0x7f)
            snprintf(esc, sizeof esc, "\\x%02x", *p);
        else
            esc[0] = (char)*p, esc[1] = '\0';
        size_t n = strlen(esc);
        if (o + n + 4 > size) { /* room for "..." and the NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    out[o] = '\0';
    return out;
}

/* ---- the index -------------------------------------------------------- */

static void vec_free(mh_finder_ctx *cx, tar_vec *v, size_t elem)
{
    cx->svc->free(cx, v->p, v->cap * elem);
    v->p = NULL;
    v->len = v->cap = 0;
}

/* Room for `more` elements, up to max in all.  0, or -1 out of memory,
 * or -2 over max. */
static int vec_reserve(mh_finder_ctx *cx, tar_vec *v, size_t elem,
                       size_t more, size_t max)
{
    if (more > max || v->len > max - more)
        return -2;
    if (v->len + more <= v->cap)
        return 0;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < v->len + more)
        cap = cap > max / 2 ? max : cap * 2;
    void *p = cx->svc->alloc(cx, cap * elem);
    if (!p)
        return -1;
    if (v->len)
        memcpy(p, v->p, v->len * elem);
    cx->svc->free(cx, v->p, v->cap * elem);
    v->p = p;
    v->cap = cap;
    return 0;
}

static void index_free(mh_finder_ctx *cx, tar_index *ix)
{
    if (!ix)
        return;
    vec_free(cx, &ix->files, sizeof(tar_member));
    vec_free(cx, &ix->dirs, sizeof(tar_member));
    vec_free(cx, &ix->names, 1);
    cx->svc->free(cx, ix, sizeof *ix);
}

/* Drop one reference (the finder's lock held). */
static void index_release(mh_finder_ctx *cx, tar_index *ix)
{
    if (ix && --ix->refs == 0)
        index_free(cx, ix);
}

/* Append member m named name[0..n) to v.  0, -1 (memory), -2 (limits). */
static int index_add(mh_finder_ctx *cx, tar_index *ix, tar_vec *v,
                     const char *name, size_t n, tar_member m)
{
    int r;
    if ((r = vec_reserve(cx, v, sizeof m, 1, TAR_MAX_MEMBERS)) != 0 ||
        (r = vec_reserve(cx, &ix->names, 1, n + 1, TAR_MAX_NAMES)) != 0)
        return r;
    m.off = ix->names.len;
    memcpy((char *)ix->names.p + ix->names.len, name, n);
    ((char *)ix->names.p)[ix->names.len + n] = '\0';
    ix->names.len += n + 1;
    ((tar_member *)v->p)[v->len++] = m;
    return 0;
}

/* The package directories of name[0..n): "a/b/c.so" gives "a" and "a/b",
 * a directory member "a/b" gives "a" and "a/b" too.  prev[0..prev_n) is
 * the member before (prev_dir: a directory): the prefixes it gave are
 * not added again, so members grouped by directory, however deep, add
 * each directory once -- not every prefix of every member, which at
 * depth d is d names per member, and filled the index's limits long
 * before its count of members did. */
static int index_add_dirs(mh_finder_ctx *cx, tar_index *ix, const char *name,
                          size_t n, bool is_dir, const char *prev,
                          size_t prev_n, bool prev_dir)
{
    for (size_t i = 0; i <= n; i++) {
        if (i < n && name[i] != '/')
            continue;
        if (i == n && !is_dir)
            break;
        if (!valid_stem(name, i))
            break; /* no deeper prefix can be valid either */
        if (i <= prev_n && memcmp(prev, name, i) == 0 &&
            (i < prev_n ? prev[i] == '/' : prev_dir))
            continue; /* the member before gave it */
        int r = index_add(cx, ix, &ix->dirs, name, i,
                          (tar_member){.size = -1, .type = M_DIR});
        if (r != 0)
            return r;
    }
    return 0;
}

static int member_cmp(const void *a, const void *b)
{
    const tar_member *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

/* Sort v by name and keep one member per name: the last in the archive,
 * as tar itself does when a member is appended again. */
static void sort_unique(tar_vec *v, const char *names)
{
    tar_member *m = v->p;
    for (size_t i = 0; i < v->len; i++)
        m[i].name = names + m[i].off;
    if (v->len < 2)
        return;
    qsort(m, v->len, sizeof *m, member_cmp);
    size_t o = 0;
    for (size_t i = 0; i < v->len; i++) {
        if (o > 0 && strcmp(m[o - 1].name, m[i].name) == 0)
            m[o - 1] = m[i];
        else
            m[o++] = m[i];
    }
    v->len = o;
}

static const tar_member *lookup(const tar_vec *v, const char *name)
{
    const tar_member *m = v->p;
    size_t lo = 0, hi = v->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, m[mid].name);
        if (c == 0)
            return &m[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static uint8_t member_type(struct archive_entry *e)
{
    if (archive_entry_is_encrypted(e))
        return M_ENCRYPTED;
    if (archive_entry_hardlink(e))
        return M_HARDLINK; /* its data is another member's */
    switch (archive_entry_filetype(e)) {
    case AE_IFREG: return M_FILE;
    case AE_IFDIR: return M_DIR;
    case AE_IFLNK: return M_SYMLINK;
    default: return M_OTHER;
    }
}

/* A reader for the formats this finder serves (see the file's header),
 * or with `raw` for the decompressed stream as one entry (filters_check),
 * through the same filters: gzip only where libarchive has zlib, else it
 * would run gzip -d behind the host's back. */
static struct archive *reader_new(bool raw)
{
    struct archive *a = archive_read_new();
    if (!a)
        return NULL;
    if (raw) {
        archive_read_support_format_raw(a);
    } else {
        archive_read_support_format_tar(a);
        archive_read_support_format_zip(a);
    }
    if (archive_zlib_version())
        archive_read_support_filter_gzip(a);
    if (archive_bzlib_version())
        archive_read_support_filter_bzip2(a);
    if (archive_liblzma_version())
        archive_read_support_filter_xz(a);
    if (archive_libzstd_version())
        archive_read_support_filter_zstd(a);
    return a;
}

static const char *ar_msg(struct archive *a)
{
    const char *m = a ? archive_error_string(a) : NULL;
    return m && m[0] ? m : "unknown libarchive error";
}

/* What a libarchive failure says about the archive.  libarchive records
 * ENOMEM when it runs out of memory and the errno of a failed read; its
 * complaints about the bytes carry its own codes (ARCHIVE_ERRNO_*).  Only
 * those are the archive's fault (MH_EFORMAT, remembered against the
 * file); the rest pass by themselves, or may. */
static mh_status ar_status(struct archive *a)
{
    int e = archive_errno(a);
    return e == ENOMEM ? MH_ENOMEM
           : e == EMFILE || e == ENFILE ? MH_EAGAIN
           : e == EIO || e == EINTR || e == EAGAIN ? MH_EIO
                                                   : MH_EFORMAT;
}

static tar_stamp stamp_of(const struct stat *st)
{
    return (tar_stamp){st->st_dev, st->st_ino, st->st_size,
                       (int64_t)st->st_mtim.tv_sec * 1000000000 +
                           st->st_mtim.tv_nsec,
                       (int64_t)st->st_ctim.tv_sec * 1000000000 +
                           st->st_ctim.tv_nsec};
}

static bool stamp_eq(tar_stamp a, tar_stamp b)
{
    return a.dev == b.dev && a.ino == b.ino && a.size == b.size &&
           a.mtime_ns == b.mtime_ns && a.ctime_ns == b.ctime_ns;
}

/* ---- the whole compressed stream --------------------------------------- */

/* zlib's memory comes from the host's allocator too, each block led by
 * its size (free() must be told it). */
#define TAR_ZHEAD _Alignof(max_align_t)

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    mh_finder_ctx *cx = opaque;
    if (size != 0 && items > (SIZE_MAX - TAR_ZHEAD) / size)
        return Z_NULL;
    size_t n = (size_t)items * size + TAR_ZHEAD;
    unsigned char *p = cx->svc->alloc(cx, n);
    if (!p)
        return Z_NULL;
    memcpy(p, &n, sizeof n);
    return p + TAR_ZHEAD;
}

static void z_free(voidpf opaque, voidpf ptr)
{
    mh_finder_ctx *cx = opaque;
    if (!ptr)
        return;
    unsigned char *p = (unsigned char *)ptr - TAR_ZHEAD;
    size_t n;
    memcpy(&n, p, sizeof n);
    cx->svc->free(cx, p, n);
}

/*
 * The gzip stream on fd, whole, through zlib, which checks each member's
 * CRC-32 and length: libarchive reads neither (its tar reader stops at
 * the end-of-archive blocks, and its gzip reader skips the trailer).
 * Every member must end where its trailer says; another member may
 * follow (gzip -c a b > ab.gz), and bytes after the last that start no
 * member are ignored, as libarchive and gunzip ignore them.  Read with
 * pread, so the caller's offset and descriptor count do not matter.
 * MH_OK; MH_EFORMAT (damaged), MH_ENOMEM or MH_EIO with the reason in why.
 */
static mh_status gzip_check(mh_finder_ctx *cx, int fd, char *why,
                            size_t why_size)
{
    enum { CHUNK = 16384 };
    z_stream z = {.zalloc = z_alloc, .zfree = z_free, .opaque = cx};
    unsigned char *in = cx->svc->alloc(cx, 2 * CHUNK);
    if (!in || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        cx->svc->free(cx, in, 2 * CHUNK);
        snprintf(why, why_size, "out of memory checking its gzip stream");
        return MH_ENOMEM;
    }
    unsigned char *out = in + CHUNK;
    mh_status rc = MH_OK;
    bool in_member = true; /* inside a member, its trailer not yet read */
    off_t off = 0;
    for (;;) {
        if (z.avail_in == 0) {
            ssize_t got = pread(fd, in, CHUNK, off);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0) {
                snprintf(why, why_size, "cannot read its gzip stream: %s",
                         strerror(errno));
                rc = MH_EIO;
                break;
            }
            if (got == 0)
                break;
            off += got;
            z.next_in = in;
            z.avail_in = (uInt)got;
        }
        if (!in_member) {
            /* Another member, or the end: look at the next two bytes. */
            unsigned char magic[2];
            if (pread(fd, magic, 2, off - z.avail_in) != 2 ||
                magic[0] != 0x1f || magic[1] != 0x8b)
                break;
            inflateReset(&z);
            in_member = true;
        }
        z.next_out = out;
        z.avail_out = CHUNK;
        int zr = inflate(&z, Z_NO_FLUSH);
        if (zr == Z_STREAM_END) {
            in_member = false;
        } else if (zr == Z_MEM_ERROR) {
            snprintf(why, why_size, "out of memory checking its gzip "
                     "stream");
            rc = MH_ENOMEM;
            break;
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            snprintf(why, why_size, "damaged gzip stream: %s",
                     z.msg ? z.msg : "bad data");
            rc = MH_EFORMAT;
            break;
        }
    }
    if (rc == MH_OK && in_member) {
        /* The file ends inside a member: its trailer (the CRC-32 that
         * would have caught any flipped byte before the cut) is gone. */
        snprintf(why, why_size, "damaged gzip stream: truncated");
        rc = MH_EFORMAT;
    }
    inflateEnd(&z);
    cx->svc->free(cx, in, 2 * CHUNK);
    return rc;
}

/*
 * The bzip2, xz or zstd stream on fd, whole, through libarchive's own
 * decompressors with no archive format ("raw"): they verify each
 * block's or frame's check as it ends, but the tar reader stops at the
 * end-of-archive blocks, and the check of a stream that goes on past
 * them (the tar's record padding, anything appended) was never read --
 * flipped bytes in a member were served.  `name` is the compression, for
 * messages.  MH_OK; MH_EFORMAT, MH_ENOMEM or MH_EIO with the reason.
 */
static mh_status filters_check(int fd, const char *name, char *why,
                               size_t why_size)
{
    struct archive *a = reader_new(true);
    struct archive_entry *e;
    mh_status rc = MH_OK;
    if (!a) {
        snprintf(why, why_size, "out of memory checking its %s stream",
                 name);
        return MH_ENOMEM;
    }
    int r = lseek(fd, 0, SEEK_SET) != 0 ? ARCHIVE_FATAL
            : archive_read_open_fd(a, fd, TAR_BLOCK);
    if (r == ARCHIVE_OK)
        r = archive_read_next_header(a, &e);
    while (r == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const void *buf;
        size_t len;
        la_int64_t at;
        r = archive_read_data_block(a, &buf, &len, &at);
    }
    if (r != ARCHIVE_EOF) {
        rc = ar_status(a);
        snprintf(why, why_size, "%s %s stream: %s", rc == MH_EFORMAT
                 ? "damaged" : "cannot check its", name, ar_msg(a));
    }
    archive_read_free(a);
    return rc;
}

/* For a compressed archive open on fd, whose member list reader a has
 * read: its whole stream checked, by zlib where gzip is the outermost
 * compression and by libarchive for any other; `magic` is the
 * compression the file's first bytes say, or NULL, for a reader that
 * stopped before it knew its filters.  MH_OK when sound (or not
 * compressed); else as gzip_check. */
static mh_status stream_check(mh_finder_ctx *cx, struct archive *a, int fd,
                              const char *magic, char *why, size_t why_size)
{
    /* Filter 0 is the innermost; the last is libarchive's reader of the
     * file itself (none). */
    int n = archive_filter_count(a);
    const char *other = NULL;
    bool gzip = n >= 2 && archive_filter_code(a, n - 2) == ARCHIVE_FILTER_GZIP;
    for (int i = 0; i + 1 < n; i++)
        if (archive_filter_code(a, i) != ARCHIVE_FILTER_GZIP &&
            archive_filter_code(a, i) != ARCHIVE_FILTER_NONE)
            other = archive_filter_name(a, i);
    if (n < 2 && magic) { /* cut before libarchive could tell */
        gzip = strcmp(magic, "gzip") == 0;
        other = gzip ? NULL : magic;
    }
    mh_status rc = MH_OK;
    if (gzip)
        rc = gzip_check(cx, fd, why, why_size);
    if (rc == MH_OK && other)
        rc = filters_check(fd, other, why, why_size);
    return rc;
}

/* The compression the first bytes of the file on fd say, or NULL: for
 * messages about a stream cut before libarchive could tell. */
static const char *compression_of(int fd)
{
    static const struct {
        const char *name;
        unsigned char magic[6];
        size_t n;
    } magics[] = {
        {"gzip", {0x1f, 0x8b}, 2},
        {"bzip2", {'B', 'Z', 'h'}, 3},
        {"xz", {0xfd, '7', 'z', 'X', 'Z', 0}, 6},
        {"zstd", {0x28, 0xb5, 0x2f, 0xfd}, 4},
    };
    unsigned char b[6];
    ssize_t got = pread(fd, b, sizeof b, 0);
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
        if (got >= (ssize_t)magics[i].n &&
            memcmp(b, magics[i].magic, magics[i].n) == 0)
            return magics[i].name;
    return NULL;
}

/* Why the member list could not be read, at header number `ordinal`
 * (the last name read was `last`). */
static void failed(struct archive *a, int fd, uint32_t ordinal,
                   const char *last, char *why, size_t why_size)
{
    const char *z = NULL;
    char name[TAR_SHOWN];
    if (ordinal > 0)
        snprintf(why, why_size, "damaged archive after member %u ('%s'): "
                 "%s", ordinal, shown(last, name, sizeof name), ar_msg(a));
    else if (archive_format(a) != 0)
        snprintf(why, why_size, "damaged archive: %s", ar_msg(a));
    else if (archive_filter_count(a) > 1 || (z = compression_of(fd)))
        snprintf(why, why_size, "%s-compressed, but no tar archive could "
                 "be read from it: %s",
                 z ? z : archive_filter_name(a, 0), ar_msg(a));
    else
        snprintf(why, why_size, "not a tar or zip archive: %s", ar_msg(a));
}

/* The member list could not be read (as failed()): MH_EFORMAT when the
 * bytes are at fault, else the passing code of ar_status, with a reason
 * that says the archive could not be read, not that it is damaged. */
static mh_status unreadable(mh_finder_ctx *cx, struct archive *a, int fd,
                            uint32_t ordinal, const char *last, char *why,
                            size_t why_size)
{
    mh_status rc = ar_status(a);
    if (rc != MH_EFORMAT) {
        snprintf(why, why_size, "cannot read it: %s", ar_msg(a));
        return rc;
    }
    /* A damaged compressed stream fails the tar reader with whatever it
     * was at ("unknown libarchive error" for a gzip trailer cut off,
     * "truncated gzip input"): the stream's own check says what is
     * wrong.  Only a sound stream's tar is blamed. */
    rc = stream_check(cx, a, fd, compression_of(fd), why, why_size);
    if (rc == MH_OK) {
        failed(a, fd, ordinal, last, why, why_size);
        rc = MH_EFORMAT;
    }
    return rc;
}

/*
 * Read the member list of the archive open on fd (stat st) into a new
 * index with one reference.  MH_OK; or, with the reason in why (without
 * the archive's path, which callers add), MH_EFORMAT when the archive's
 * bytes are at fault, or MH_ENOMEM, MH_EAGAIN or MH_EIO when reading them
 * failed.
 */
static mh_status index_build(mh_finder_ctx *cx, const char *path, int fd,
                             const struct stat *st, tar_index **out,
                             char *why, size_t why_size)
{
    *out = NULL;
    tar_index *ix = cx->svc->alloc(cx, sizeof *ix);
    if (!ix) {
        snprintf(why, why_size, "out of memory");
        return MH_ENOMEM;
    }
    memset(ix, 0, sizeof *ix);
    ix->refs = 1;
    ix->stamp = stamp_of(st);

    mh_status rc = MH_OK;
    struct archive *a = reader_new(false);
    char name[TAR_NAME_BUF], last[TAR_NAME_BUF] = "", prev[TAR_NAME_BUF];
    size_t prev_n = 0;
    bool prev_dir = false;
    size_t unsafe = 0;
    uint32_t ordinal = 0;
    if (!a) {
        snprintf(why, why_size, "out of memory (libarchive)");
        rc = MH_ENOMEM;
        goto out;
    }
    if (lseek(fd, 0, SEEK_SET) != 0 ||
        archive_read_open_fd(a, fd, TAR_BLOCK) != ARCHIVE_OK) {
        rc = unreadable(cx, a, fd, 0, "", why, why_size);
        goto out;
    }
    for (;; ordinal++) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r == ARCHIVE_RETRY || r < ARCHIVE_WARN) { /* a damaged header */
            rc = unreadable(cx, a, fd, ordinal, last, why, why_size);
            goto out;
        }
        if (ordinal >= TAR_MAX_MEMBERS) {
            snprintf(why, why_size, "more than %zu members; refusing to "
                     "index it", TAR_MAX_MEMBERS);
            rc = MH_EFORMAT;
            goto out;
        }
        const char *raw = archive_entry_pathname(e);
        if (!raw)
            raw = archive_entry_pathname_utf8(e);
        if (!raw)
            continue; /* a name this locale cannot express: no module */
        snprintf(last, sizeof last, "%s", raw);
        size_t n = 0;
        bool dir_syntax = false;
        name_verdict v = normalise(raw, name, sizeof name, &n, &dir_syntax);
        if (v == NAME_UNSAFE) {
            char shown_name[TAR_SHOWN];
            if (unsafe++ < TAR_WARN_UNSAFE)
                cx->svc->log(cx, MH_LOG_WARN, "%s: member '%s' is never "
                             "served: an absolute name, or an empty, '.' or "
                             "'..' component", path,
                             shown(raw, shown_name, sizeof shown_name));
            continue;
        }
        if (v == NAME_SKIP)
            continue;
        uint8_t type = member_type(e);
        bool is_dir = type == M_DIR || dir_syntax;
        int ar = index_add_dirs(cx, ix, name, n, is_dir, prev, prev_n,
                                prev_dir);
        memcpy(prev, name, n);
        prev_n = n;
        prev_dir = is_dir;
        size_t stem = 0;
        bool wanted = module_suffix(name, n, &stem) >= 0;
        if (!wanted && n > 5 && memcmp(name + n - 5, ".json", 5) == 0) {
            stem = n - 5; /* a sidecar manifest */
            wanted = true;
        }
        if (ar == 0 && !is_dir && wanted && valid_stem(name, stem)) {
            tar_member m = {
                .size = archive_entry_size_is_set(e) ? archive_entry_size(e)
                                                     : -1,
                .mtime = archive_entry_mtime_is_set(e)
                             ? (int64_t)archive_entry_mtime(e) : 0,
                .ordinal = ordinal,
                .type = type,
            };
            ar = index_add(cx, ix, &ix->files, name, n, m);
        }
        if (ar == -1) {
            snprintf(why, why_size, "out of memory indexing it");
            rc = MH_ENOMEM;
            goto out;
        }
        if (ar == -2) {
            snprintf(why, why_size, "its member list is over the limits "
                     "(%zu members, %zu bytes of names); refusing to index "
                     "it", TAR_MAX_MEMBERS, TAR_MAX_NAMES);
            rc = MH_EFORMAT;
            goto out;
        }
    }
    if ((rc = stream_check(cx, a, fd, NULL, why, why_size)) != MH_OK)
        goto out;
    if (unsafe > TAR_WARN_UNSAFE)
        cx->svc->log(cx, MH_LOG_WARN, "%s: %zu more unsafe member names "
                     "never served", path, unsafe - TAR_WARN_UNSAFE);
    sort_unique(&ix->files, ix->names.p);
    sort_unique(&ix->dirs, ix->names.p);
    trace(cx, "%s: indexed %u members: %zu module files, %zu package "
          "directories", path, ordinal, ix->files.len, ix->dirs.len);
out:
    if (a)
        archive_read_free(a); /* never closes fd: the caller owns it */
    if (rc != MH_OK) {
        index_free(cx, ix);
        return rc;
    }
    *out = ix;
    return MH_OK;
}

/* ---- keeping the index current -------------------------------------- */

/* Forget the index (lock held). */
static void state_drop(mh_finder_ctx *cx, tar_state *s)
{
    index_release(cx, s->cur);
    s->cur = NULL;
}

/*
 * Make s->cur the index of the archive open on fd (lock held): kept if
 * its stamp matches, else rebuilt.  MH_OK, or index_build's code with
 * the reason in why.  A file whose bytes are at fault (MH_EFORMAT) is
 * remembered by its stamp, warned about once, and not read again until
 * it changes; a failure of the moment (memory, descriptors, a read
 * error) is not remembered: the next call reads the file again.
 */
static mh_status refresh_fd(mh_finder_ctx *cx, tar_state *s, int fd,
                            const struct stat *st, char *why,
                            size_t why_size)
{
    tar_stamp now = stamp_of(st);
    if (s->cur && stamp_eq(s->cur->stamp, now))
        return MH_OK;
    if (s->bad && stamp_eq(s->bad_stamp, now)) {
        snprintf(why, why_size, "%s", s->bad_why);
        return MH_EFORMAT;
    }
    if (s->cur)
        trace(cx, "%s changed on disk; reading its member list again",
              s->path);
    state_drop(cx, s);
    tar_index *ix;
    mh_status rc = index_build(cx, s->path, fd, st, &ix, why, why_size);
    if (rc == MH_OK) {
        s->cur = ix;
        s->bad = false;
        s->io_why[0] = '\0';
    } else if (rc == MH_EIO && strcmp(s->io_why, why) != 0) {
        snprintf(s->io_why, sizeof s->io_why, "%s", why);
        cx->svc->log(cx, MH_LOG_WARN, "%s: %s (passed over while it lasts)",
                     s->path, why);
    } else if (rc == MH_EFORMAT) {
        s->bad = true;
        s->bad_stamp = now;
        snprintf(s->bad_why, sizeof s->bad_why, "%s", why);
        cx->svc->log(cx, MH_LOG_WARN, "%s: %s", s->path, why);
    }
    return rc;
}

/* Open the archive read-only: fd and its stat, or -1 with why set.  The
 * host's file-safety rules hold for it as for a module file (it holds
 * code): through the host's open_code where the host has it.  Never
 * waits for a FIFO's writer. */
static int open_archive(mh_finder_ctx *cx, tar_state *s, struct stat *st,
                        mh_status *code, char *why, size_t why_size)
{
    int fd = -1;
    if (MH_SVC_HAS(cx->svc, open_code)) {
        /* Always, whatever a stat said a moment ago: the name may lead
         * to another file by the time it is opened. */
        *code = cx->svc->open_code(cx, s->path, &fd, why, why_size);
        if (*code == MH_ENOTFOUND) {
            *code = MH_EPATH;
            snprintf(why, why_size, "no such archive");
        }
        if (*code != MH_OK)
            return -1;
    } else {
        fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    }
    if (fd < 0) {
        int e = errno;
        *code = e == ENOENT || e == ENOTDIR ? MH_EPATH
                : e == EMFILE || e == ENFILE  ? MH_EAGAIN /* passing */
                                              : MH_EIO;
        snprintf(why, why_size, "%s", e == ENOENT ? "no such archive"
                 : strerror(e));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        *code = MH_EPATH;
        snprintf(why, why_size, "not a regular file");
        close(fd);
        return -1;
    }
    return fd;
}

/* For find and list (lock held): one stat when nothing changed.  MH_OK,
 * MH_ENOMEM, or another code with the reason in why. */
static mh_status refresh(mh_finder_ctx *cx, tar_state *s, char *why,
                         size_t why_size)
{
    struct stat st;
    if (stat(s->path, &st) != 0) {
        int e = errno;
        if (s->cur)
            trace(cx, "%s is gone; index dropped", s->path);
        state_drop(cx, s);
        snprintf(why, why_size, "%s", e == ENOENT
                 ? "the archive no longer exists" : strerror(e));
        return MH_EPATH;
    }
    if (s->cur && stamp_eq(s->cur->stamp, stamp_of(&st)))
        return MH_OK;
    mh_status rc;
    int fd = open_archive(cx, s, &st, &rc, why, why_size);
    if (fd < 0) {
        state_drop(cx, s);
        return rc;
    }
    rc = refresh_fd(cx, s, fd, &st, why, why_size);
    close(fd);
    return rc;
}

/* ---- the finder class -------------------------------------------------- */

static mh_status tar_open(mh_finder_ctx *cx, const char *entry, void **state)
{
    *state = NULL;
    size_t sl = strlen(TAR_SCHEME);
    if (!entry || strncmp(entry, TAR_SCHEME, sl) != 0)
        return cx->svc->error(cx, MH_EPATH, "tar: entry '%s' is not a "
                              "'tar:' entry", entry ? entry : "(null)");
    const char *p = entry + sl;
    if (p[0] != '/')
        return cx->svc->error(cx, MH_EPATH, "tar: entry '%s': the archive "
                              "needs an absolute path (tar:/path/to/"
                              "modules.tar)", entry);
    size_t n = strlen(p);
    if (n >= PATH_MAX)
        return cx->svc->error(cx, MH_EPATH, "tar: entry '%.64s...': path "
                              "longer than %d bytes", entry, PATH_MAX - 1);
    tar_state *s = cx->svc->alloc(cx, sizeof *s);
    char *path = cx->svc->alloc(cx, n + 1);
    if (!s || !path) {
        cx->svc->free(cx, s, sizeof *s);
        cx->svc->free(cx, path, n + 1);
        return cx->svc->error(cx, MH_ENOMEM, "tar: %s: out of memory", p);
    }
    memset(s, 0, sizeof *s);
    /* One spelling per archive in origins: "//" collapsed. */
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (!(p[i] == '/' && o > 0 && path[o - 1] == '/'))
            path[o++] = p[i];
    path[o] = '\0';
    s->path = path;
    s->path_size = n + 1;

    char why[600];
    struct stat st;
    mh_status rc;
    int fd = open_archive(cx, s, &st, &rc, why, sizeof why);
    if (fd >= 0) {
        rc = index_build(cx, s->path, fd, &st, &s->cur, why, sizeof why);
        close(fd);
    }
    if (rc != MH_OK) {
        rc = cx->svc->error(cx, rc, "tar: %s: %s", s->path, why);
        cx->svc->free(cx, path, n + 1);
        cx->svc->free(cx, s, sizeof *s);
        return rc;
    }
    pthread_mutex_init(&s->lock, NULL);
    *state = s;
    return MH_OK;
}

static void tar_close(mh_finder_ctx *cx, void *state)
{
    tar_state *s = state;
    if (!s)
        return;
    state_drop(cx, s);
    pthread_mutex_destroy(&s->lock);
    cx->svc->free(cx, s->path, s->path_size);
    cx->svc->free(cx, s, sizeof *s);
}

static void tar_invalidate(mh_finder_ctx *cx, void *state)
{
    tar_state *s = state;
    pthread_mutex_lock(&s->lock);
    state_drop(cx, s);
    s->bad = false;
    pthread_mutex_unlock(&s->lock);
}

/* What changes whenever the member's bytes may have. */
static void identity_of(const tar_index *ix, const tar_member *m, char *buf,
                        size_t size)
{
    snprintf(buf, size, "%lld:%lld:%llu:%lld:%lld:%lld", (long long)m->size,
             (long long)m->mtime, (unsigned long long)ix->stamp.ino,
             (long long)ix->stamp.size, (long long)ix->stamp.mtime_ns,
             (long long)ix->stamp.ctime_ns);
}

/* The regular-file member "stem.json", if any. */
static const tar_member *sidecar(const tar_index *ix, const char *stem)
{
    char rel[TAR_REL_MAX];
    if ((size_t)snprintf(rel, sizeof rel, "%s.json", stem) >= sizeof rel)
        return NULL;
    const tar_member *m = lookup(&ix->files, rel);
    return m && m->type == M_FILE ? m : NULL;
}

/* *out = a copy of str that outlives find (NULL stays NULL); false when
 * out of memory. */
static bool keep(mh_finder_ctx *cx, const char *str, const char **out)
{
    *out = str && TAR_SVC_HAS(cx, intern) ? cx->svc->intern(cx, str) : str;
    return *out || !str;
}

static mh_status tar_find(mh_finder_ctx *cx, void *state, const char *name,
                          mh_finder_spec *spec)
{
    tar_state *s = state;
    tar_answer *ans = &answer;
    char rel[TAR_REL_MAX], stem[TAR_REL_MAX], notes[512] = "", why[600];
    size_t nl = 0;

    memset(spec, 0, sizeof *spec);
    if (mh_finder_relpath(name, "", stem, sizeof stem) == 0) {
        cx->svc->miss(cx, "name too long for %s", s->path);
        return MH_ENOTFOUND;
    }
    pthread_mutex_lock(&s->lock);
    mh_status rc = refresh(cx, s, why, sizeof why);
    if (rc != MH_OK) {
        pthread_mutex_unlock(&s->lock);
        if (rc == MH_ENOMEM)
            return cx->svc->error(cx, rc, "tar: %s: %s", s->path, why);
        /* No descriptor to read it with: whether the archive holds the
         * module is not known, and passing over it would let a later
         * entry's module of that name load in its place. */
        if (rc == MH_EAGAIN)
            return cx->svc->error(cx, rc, "tar: %s: module '%s' cannot be "
                                  "looked up now: %s; later search path "
                                  "entries were not looked at, as the "
                                  "module may be in this archive: try "
                                  "again", s->path, name, why);
        cx->svc->miss(cx, "%s: %s", s->path, why);
        return MH_ENOTFOUND;
    }
    const tar_index *ix = s->cur;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        mh_finder_relpath(name, kinds[k].suffix, rel, sizeof rel);
        const tar_member *m = lookup(&ix->files, rel);
        if (!m)
            continue;
        if (m->type != M_FILE) {
            int w = snprintf(notes + nl, sizeof notes - nl, "%s is a %s, "
                             "not a file; ", rel, type_names[m->type]);
            if (w > 0 && (size_t)w < sizeof notes - nl)
                nl += (size_t)w;
            continue;
        }
        const tar_member *meta = sidecar(ix, stem);
        snprintf(ans->origin, sizeof ans->origin, "%s!/%s", s->path, rel);
        snprintf(ans->key, sizeof ans->key, "%s", rel);
        identity_of(ix, m, ans->identity, sizeof ans->identity);
        if (meta)
            snprintf(ans->meta_key, sizeof ans->meta_key, "%s", meta->name);
        pthread_mutex_unlock(&s->lock);
        spec->kind = kinds[k].kind;
        spec->flags = kinds[k].flags;
        spec->file = NULL;
        if (!keep(cx, ans->origin, &spec->origin) ||
            !keep(cx, ans->key, &spec->key) ||
            !keep(cx, ans->identity, &spec->identity) ||
            !keep(cx, meta ? ans->meta_key : NULL, &spec->meta_key))
            return cx->svc->error(cx, MH_ENOMEM, "tar: %s: out of memory "
                                  "finding '%s'", s->path, name);
        return MH_OK;
    }
    if (lookup(&ix->dirs, stem)) {
        snprintf(ans->origin, sizeof ans->origin, "%s!/%s", s->path, stem);
        pthread_mutex_unlock(&s->lock);
        spec->kind = MH_KIND_NAMESPACE;
        if (!keep(cx, ans->origin, &spec->origin))
            return cx->svc->error(cx, MH_ENOMEM, "tar: %s: out of memory "
                                  "finding '%s'", s->path, name);
        return MH_OK;
    }
    pthread_mutex_unlock(&s->lock);
    cx->svc->miss(cx, "%sno %s.so, %s.lua or %s.luac in %s", notes, stem,
                  stem, stem, s->path);
    return MH_ENOTFOUND;
}

/* Take a reference to the current index, for work done without the lock.
 * MH_OK and *ix, or an error already recorded with cx->svc->error. */
static mh_status index_get(mh_finder_ctx *cx, tar_state *s, int fd,
                           const struct stat *st, tar_index **ix)
{
    char why[600];
    pthread_mutex_lock(&s->lock);
    mh_status rc = fd >= 0 ? refresh_fd(cx, s, fd, st, why, sizeof why)
                           : refresh(cx, s, why, sizeof why);
    *ix = rc == MH_OK ? s->cur : NULL;
    if (*ix)
        (*ix)->refs++;
    pthread_mutex_unlock(&s->lock);
    if (rc != MH_OK)
        return cx->svc->error(cx, rc, "tar: %s: %s", s->path, why);
    return MH_OK;
}

static void index_put(mh_finder_ctx *cx, tar_state *s, tar_index *ix)
{
    pthread_mutex_lock(&s->lock);
    index_release(cx, ix);
    pthread_mutex_unlock(&s->lock);
}

static mh_status tar_list(mh_finder_ctx *cx, void *state, mh_finder_list_fn fn,
                          void *ud)
{
    tar_state *s = state;
    tar_index *ix;
    mh_status rc = index_get(cx, s, -1, NULL, &ix);
    if (rc != MH_OK)
        return rc;
    char mname[MH_NAME_MAX + 1], stem[TAR_REL_MAX], rel[TAR_REL_MAX];
    char origin[sizeof answer.origin], identity[sizeof answer.identity];
    const tar_member *v = ix->files.p;
    for (size_t i = 0; i < ix->files.len; i++) {
        const tar_member *m = &v[i];
        size_t n = strlen(m->name), sl;
        int k = module_suffix(m->name, n, &sl);
        if (m->type != M_FILE || k < 0)
            continue;
        memcpy(stem, m->name, sl);
        stem[sl] = '\0';
        /* Listed once, as find resolves it: skip it if an earlier kind
         * is here too. */
        bool shadowed = false;
        for (int j = 0; j < k && !shadowed; j++) {
            snprintf(rel, sizeof rel, "%s%s", stem, kinds[j].suffix);
            const tar_member *o = lookup(&ix->files, rel);
            shadowed = o && o->type == M_FILE;
        }
        if (shadowed)
            continue;
        for (size_t c = 0; c <= sl; c++)
            mname[c] = stem[c] == '/' ? '.' : stem[c];
        const tar_member *meta = sidecar(ix, stem);
        snprintf(origin, sizeof origin, "%s!/%s", s->path, m->name);
        identity_of(ix, m, identity, sizeof identity);
        mh_finder_spec spec = {
            .kind = kinds[k].kind,
            .flags = kinds[k].flags,
            .origin = origin,
            .key = m->name,
            .meta_key = meta ? meta->name : NULL,
            .identity = identity,
        };
        if (fn(ud, mname, &spec) != 0)
            break;
    }
    index_put(cx, s, ix);
    return MH_OK;
}

/* Copy the data of the member the reader is at into out (m from the
 * index).  MH_OK, or an error recorded with cx->svc->error. */
static mh_status copy_data(mh_finder_ctx *cx, tar_state *s, struct archive *a,
                           const tar_member *m, size_t max,
                           const char *limit, mh_finder_blob *out)
{
    bool known = m->size >= 0;
    size_t cap = known ? (size_t)m->size : max < TAR_BLOCK ? max : TAR_BLOCK;
    if (cap == 0)
        cap = 1; /* an empty member: still a real allocation */
    unsigned char *buf = cx->svc->alloc(cx, cap);
    size_t len = 0;
    if (!buf)
        return cx->svc->error(cx, MH_ENOMEM, "tar: %s: out of memory "
                              "reading member %s (%zu bytes)", s->path,
                              m->name, cap);
    for (;;) {
        if (len == cap) {
            if (known) {
                /* All the header promised is here; the data must end. */
                char extra;
                la_ssize_t r = archive_read_data(a, &extra, 1);
                if (r == 0)
                    break;
                cx->svc->free(cx, buf, cap);
                return r < 0
                    ? cx->svc->error(cx, MH_EFORMAT, "tar: %s: member %s: "
                                     "cannot read its data: %s", s->path,
                                     m->name, ar_msg(a))
                    : cx->svc->error(cx, MH_EFORMAT, "tar: %s: member %s "
                                     "holds more than the %lld bytes its "
                                     "header says", s->path, m->name,
                                     (long long)m->size);
            }
            if (cap >= max) {
                cx->svc->free(cx, buf, cap);
                return cx->svc->error(cx, MH_EFORMAT, "tar: %s: member %s "
                                      "is larger than %s (%zu bytes)",
                                      s->path, m->name, limit, max);
            }
            size_t ncap = cap > max / 2 ? max : cap * 2;
            unsigned char *nb = cx->svc->alloc(cx, ncap);
            if (!nb) {
                cx->svc->free(cx, buf, cap);
                return cx->svc->error(cx, MH_ENOMEM, "tar: %s: out of "
                                      "memory reading member %s", s->path,
                                      m->name);
            }
            memcpy(nb, buf, len);
            cx->svc->free(cx, buf, cap);
            buf = nb;
            cap = ncap;
        }
        la_ssize_t r = archive_read_data(a, buf + len, cap - len);
        if (r < 0) {
            cx->svc->free(cx, buf, cap);
            return cx->svc->error(cx, MH_EFORMAT, "tar: %s: member %s: "
                                  "cannot read its data: %s", s->path,
                                  m->name, ar_msg(a));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (known && len != (size_t)m->size) {
        cx->svc->free(cx, buf, cap);
        return cx->svc->error(cx, MH_EFORMAT, "tar: %s: member %s is "
                              "truncated: %zu of %lld bytes", s->path,
                              m->name, len, (long long)m->size);
    }
    out->data = buf;
    out->len = len;
    out->size = cap;
    return MH_OK;
}

/* Stream the archive on fd to member m and copy it out, at most max
 * bytes (`limit` names that bound in messages). */
static mh_status stream_member(mh_finder_ctx *cx, tar_state *s, int fd,
                               const tar_member *m, size_t max,
                               const char *limit, mh_finder_blob *out)
{
    struct archive *a = reader_new(false);
    mh_status rc;
    if (!a)
        return cx->svc->error(cx, MH_ENOMEM, "tar: %s: out of memory "
                              "(libarchive) reading member %s", s->path,
                              m->name);
    if (lseek(fd, 0, SEEK_SET) != 0 ||
        archive_read_open_fd(a, fd, TAR_BLOCK) != ARCHIVE_OK) {
        rc = cx->svc->error(cx, MH_EFORMAT, "tar: %s: cannot read member "
                            "%s: %s", s->path, m->name, ar_msg(a));
        goto out;
    }
    for (uint32_t i = 0;; i++) {
        struct archive_entry *e;
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_RETRY || r < ARCHIVE_WARN || r == ARCHIVE_EOF) {
            rc = cx->svc->error(cx, MH_EFORMAT, "tar: %s: cannot reach "
                                "member %s (number %u): %s", s->path,
                                m->name, m->ordinal,
                                r == ARCHIVE_EOF ? "the archive ends first"
                                                 : ar_msg(a));
            goto out;
        }
        if (i < m->ordinal)
            continue; /* libarchive skips its data */
        char name[TAR_NAME_BUF];
        size_t n;
        bool dir_syntax;
        const char *raw = archive_entry_pathname(e);
        if (!raw)
            raw = archive_entry_pathname_utf8(e); /* as index_build */
        if (!raw || normalise(raw, name, sizeof name, &n, &dir_syntax) !=
                        NAME_OK || strcmp(name, m->name) != 0) {
            /* Rewritten in place (same inode) between stat and read. */
            rc = cx->svc->error(cx, MH_EIO, "tar: %s: the archive changed "
                                "while member %s was being read; try again",
                                s->path, m->name);
            goto out;
        }
        rc = copy_data(cx, s, a, m, max, limit, out);
        goto out;
    }
out:
    archive_read_free(a);
    return rc;
}

static mh_status tar_read(mh_finder_ctx *cx, void *state, const char *key,
                          mh_finder_blob *out)
{
    tar_state *s = state;
    char why[600];
    struct stat st;
    mh_status rc;

    out->data = NULL;
    out->len = out->size = 0;
    int fd = open_archive(cx, s, &st, &rc, why, sizeof why);
    if (fd < 0)
        return cx->svc->error(cx, rc == MH_EPATH ? MH_ENOTFOUND : rc,
                              "tar: %s: cannot read member %s: %s", s->path,
                              key, why);
    tar_index *ix;
    rc = index_get(cx, s, fd, &st, &ix);
    if (rc != MH_OK) {
        close(fd);
        return rc;
    }
    const tar_member *m = lookup(&ix->files, key);
    size_t max = cx->svc->max_module_size(cx);
    const char *limit = "the host's max_module_size";
    size_t klen = strlen(key);
    if (klen > 5 && strcmp(key + klen - 5, ".json") == 0 &&
        max > TAR_SIDECAR_MAX) {
        /* A sidecar manifest: the host reads no more than this of one,
         * so no more is inflated (a small zip can hold a huge one). */
        max = TAR_SIDECAR_MAX;
        limit = "the limit of a manifest";
    }
    if (!m)
        rc = cx->svc->error(cx, MH_ENOTFOUND, "tar: %s: member %s is no "
                            "longer in the archive", s->path, key);
    else if (m->type != M_FILE)
        rc = cx->svc->error(cx, MH_EFORMAT, "tar: %s: member %s is a %s, "
                            "not a regular file", s->path, key,
                            type_names[m->type]);
    else if (m->size >= 0 && (uint64_t)m->size > max)
        rc = cx->svc->error(cx, MH_EFORMAT, "tar: %s: member %s is %lld "
                            "bytes, over %s (%zu bytes)", s->path, key,
                            (long long)m->size, limit, max);
    else
        rc = stream_member(cx, s, fd, m, max, limit, out);
    index_put(cx, s, ix);
    close(fd);
    return rc;
}

static const mh_finder_class tar_finder = {
    MH_FINDER_CLASS_INIT,
    .name = "tar",
    .scheme = "tar",
    .description = "modules inside a tar or zip archive (libarchive)",
    .open = tar_open,
    .find = tar_find,
    .list = tar_list,
    .read = tar_read,
    .invalidate = tar_invalidate,
    .close = tar_close,
};

MH_PLUGIN_MANIFEST("{\"name\": \"finders.tar\", \"version\": \"1.0.0\","
                   " \"description\": \"modules inside a tar or zip archive"
                   " (libarchive)\","
                   " \"provides\": {\"modhost.finder\": \"mh_finder\"}}")

MH_PLUGIN("finders.tar", "1.0.0", NULL, NULL,
          MH_EXPORT(MH_FINDER_EXPORT, &tar_finder))
