/*
 * host/name.c -- the module name grammar and the name -> path rule.
 *
 * A name is dot-separated identifiers, [A-Za-z_][A-Za-z0-9_]*, 1 to 255
 * bytes.  Checking happens before any file, SQL or network use, and the
 * grammar alone guarantees a name can never escape a search path entry:
 * no '/', no "..", no NUL, nothing outside ASCII.
 */
#include "host/internal.h"
#include "finders/finder.h"

#include <stdio.h>
#include <string.h>

static bool is_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_rest(unsigned char c)
{
    return is_start(c) || (c >= '0' && c <= '9');
}

/* Printable rendering of a bad name for messages: bounded, escaped. */
static void show(char *out, size_t size, const char *name)
{
    size_t o = 0;
    for (size_t i = 0; name[i] && o + 5 < size; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", c);
        if (i == 60 && name[i + 1]) {
            snprintf(out + o, size - o, "...");
            return;
        }
    }
    out[o] = '\0';
}

/* Check; on failure return a static reason and the byte offset. */
static const char *name_problem(const char *name, size_t *at)
{
    size_t i = 0;
    *at = 0;
    if (!name[0])
        return "it is empty";
    for (;;) {
        *at = i;
        if (name[i] == '.')
            return i == 0 ? "it starts with a dot"
                          : "it has an empty component (two dots in a row)";
        if (!is_start((unsigned char)name[i]))
            return name[i] == '\0' ? "it ends with a dot"
                 : (unsigned char)name[i] >= 0x80
                     ? "it has a non-ASCII byte"
                 : (name[i] >= '0' && name[i] <= '9')
                     ? "a component starts with a digit"
                     : "it has a character outside [A-Za-z0-9_.]";
        i++;
        while (is_rest((unsigned char)name[i]))
            i++;
        if (i > MH_NAME_MAX) {
            *at = MH_NAME_MAX;
            return "it is longer than 255 bytes";
        }
        if (name[i] == '\0')
            return NULL;
        if (name[i] != '.') {
            *at = i;
            return (unsigned char)name[i] >= 0x80
                       ? "it has a non-ASCII byte"
                       : "it has a character outside [A-Za-z0-9_.]";
        }
        i++;
    }
}

bool mh_name_ident(const char *s, size_t n)
{
    if (n == 0 || !is_start((unsigned char)s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_rest((unsigned char)s[i]))
            return false;
    return true;
}

mh_status mh_name_check(const char *name, mh_error **err)
{
    if (!name)
        return mh_err(NULL, err, MH_EINVAL, "module name is NULL");
    size_t at;
    const char *why = name_problem(name, &at);
    if (!why)
        return MH_OK;
    if (!err)
        return MH_EBADNAME;
    char shown[300];
    show(shown, sizeof shown, name);
    return mh_err(NULL, err, MH_EBADNAME,
                  "invalid module name '%s': %s (at byte %zu); names are "
                  "dot-separated identifiers [A-Za-z_][A-Za-z0-9_]*, at most "
                  "%d bytes", shown, why, at, MH_NAME_MAX);
}
