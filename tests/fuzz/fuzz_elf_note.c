/*
 * tests/fuzz/fuzz_elf_note.c -- the ELF checks and the manifest note
 * reader (loaders/elf.c): the bytes of a module from a database, a
 * download or a file, read before anything maps them.
 *
 * The input is an ELF image.  mh_elf_check must say yes or give a reason;
 * mh_elf_note_mem is run with the host's allocator and with none (malloc,
 * as the index writer runs it), and mh_elf_note_fd on the same bytes in a
 * file must find the same note.  A note's JSON goes on to
 * mh_manifest_parse, as the metadata reader does.
 */
#include "fuzz.h"
#include "host/meta.h"
#include "loaders/elf.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = mh_elf_check(data, size);
    if (why)
        (void)strlen(why);

    fz_alloc a;
    mh_host *h = fz_host_new(NULL, 0, NULL, &a);
    FZ_CHECK(h != NULL, "host");

    mh_elf_note n1, n2, n3;
    const char *w1 = mh_elf_note_mem(h, data, size, &n1);
    const char *w2 = mh_elf_note_mem(NULL, data, size, &n2);
    FZ_CHECK((w1 == NULL) == (w2 == NULL), "with and without a host: '%s' "
             "vs '%s'", w1 ? w1 : "ok", w2 ? w2 : "ok");
    FZ_CHECK(n1.found == n2.found && n1.abi == n2.abi &&
                 n1.json_len == n2.json_len,
             "with and without a host: different notes");
    if (w1)
        FZ_CHECK(!n1.found && !n1.json && !n2.json, "a note and a reason");
    if (n1.found) {
        FZ_CHECK(n1.json && strlen(n1.json) == n1.json_len &&
                     memcmp(n1.json, n2.json, n1.json_len + 1) == 0,
                 "note text");
        mh_manifest *m = NULL;
        mh_error *err = NULL;
        unsigned abi = n1.abi <= 1000000 ? n1.abi : 0;
        mh_status st = mh_manifest_parse(h, "fuzz.mod", "elf-note", "fuzz.so",
                                         n1.json, n1.json_len, abi, &m, &err);
        FZ_CHECK(st == MH_OK || st == MH_EFORMAT, "manifest status %d",
                 (int)st);
        if (st == MH_OK && abi > 0)
            FZ_CHECK(mh_manifest_abi(m) == (int)abi, "abi");
        mh_manifest_free(m);
        mh_error_free(err);
    }

    /* The same bytes in a file, read with pread. */
    const char *path = fz_path("image.so");
    fz_write_file(path, data, size);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    FZ_CHECK(fd >= 0, "open %s", path);
    const char *w3 = mh_elf_note_fd(h, fd, size, &n3);
    close(fd);
    FZ_CHECK((w3 == NULL) == (w1 == NULL) && n3.found == n1.found &&
                 n3.abi == n1.abi && n3.json_len == n1.json_len &&
                 (!n1.found || memcmp(n3.json, n1.json, n1.json_len) == 0),
             "file and memory disagree: '%s' vs '%s'", w3 ? w3 : "ok",
             w1 ? w1 : "ok");

    mh_elf_note_free(h, &n1);
    mh_elf_note_free(NULL, &n2);
    mh_elf_note_free(h, &n3);
    fz_host_free(h, &a);
    return 0;
}
