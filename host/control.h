/*
 * host/control.h -- what counts as a control character in text others
 * chose (a server, a plugin, a manifest, an environment variable), shown
 * as \xNN wherever the library or the command line quotes it.  On its
 * own, with no other header of the library's, so that the command line
 * (which uses the public API only) shares it.
 */
#ifndef MH_HOST_CONTROL_H
#define MH_HOST_CONTROL_H

#include <stddef.h>

/* The bytes of a control character at t, or 0: C0 and DEL are one byte;
 * a C1 control (U+0080 to U+009F, CSI among them, which terminals obey)
 * is two in UTF-8, C2 80 to C2 9F.  Other bytes from 0x80 up are left
 * alone: they are UTF-8's, or a legacy encoding's letters. */
static inline size_t mh_control_len(const char *t)
{
    unsigned char c = (unsigned char)t[0];
    if (c < 0x20 || c == 0x7f)
        return 1;
    unsigned char d = (unsigned char)t[c == 0xc2];
    return c == 0xc2 && d >= 0x80 && d <= 0x9f ? 2 : 0;
}

#endif /* MH_HOST_CONTROL_H */
