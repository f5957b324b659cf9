/*
 * util.c -- what the `modhost` commands share: error reporting and exit
 * codes, per-command option parsing, host creation, and the JSON form of a
 * module spec.
 */
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "../control.h"

/* s to f with control characters (mh_control_len: C0, DEL, and C1 in
 * UTF-8) as \xNN: a message or a field may quote what a plugin, a
 * manifest, a server or an environment variable chose, which must not
 * drive the terminal.  one_line: newlines, tabs and carriage returns
 * become spaces (one field of one line); else newlines and tabs stay. */
static void put_text(FILE *f, const char *s, bool one_line)
{
    while (*s) {
        unsigned char c = (unsigned char)*s;
        size_t n = mh_control_len(s);
        if (c == '\n' || c == '\t' || (c == '\r' && one_line)) {
            fputc(one_line ? ' ' : c, f);
            s++;
        } else if (!n) {
            fputc(c, f);
            s++;
        } else {
            for (; n; n--)
                fprintf(f, "\\x%02x", (unsigned char)*s++);
        }
    }
}

/* "modhost: [CMD: ]TEXT\n" to stderr, TEXT formatted and put through
 * put_text, in one write: stderr is unbuffered, and a character at a
 * time would interleave with other processes' lines (and cost a system
 * call each). */
static void put_formatted(const cli_command *cmd, const char *fmt,
                          va_list ap)
{
    char *text = NULL, *out = NULL;
    size_t len = 0;
    if (vasprintf(&text, fmt, ap) < 0)
        text = NULL;
    FILE *mem = text ? open_memstream(&out, &len) : NULL;
    if (mem) {
        fputs("modhost: ", mem);
        if (cmd)
            fprintf(mem, "%s: ", cmd->name);
        put_text(mem, text, false);
        fputc('\n', mem);
    }
    if (mem && fclose(mem) == 0)
        fwrite(out, 1, len, stderr);
    else
        fputs("modhost: out of memory\n", stderr);
    free(out);
    free(text);
}

void cli_errorf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    put_formatted(NULL, fmt, ap);
    va_end(ap);
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    put_formatted(cmd, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "Try 'modhost help %s'.\n", cmd->name);
    else
        fputs("Try 'modhost --help'.\n", stderr);
    return CLI_EXIT_USAGE;
}

int cli_getopt(const cli_command *cmd, int argc, char **argv,
               const char *shortopts, const struct option *longopts,
               int *exit_code)
{
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    /* The offending word: glibc has moved optind past it, except inside a
     * cluster of short options, where optopt names the letter. */
    const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    int is_long = strncmp(word, "--", 2) == 0;

    switch (c) {
    case 'h':
        if (cmd)
            cli_command_usage(cmd, stdout);
        else
            cli_usage(stdout);
        *exit_code = cli_finish_output(CLI_EXIT_OK);
        return 0;
    case ':':
        if (is_long || !optopt)
            *exit_code = cli_usage_error(cmd, "option '%s' needs an argument",
                                         word);
        else
            *exit_code = cli_usage_error(cmd, "option '-%c' needs an argument",
                                         optopt);
        return 0;
    case '?':
        if (is_long || !optopt)
            *exit_code = cli_usage_error(cmd, "unknown or misused option '%s'",
                                         word);
        else
            *exit_code = cli_usage_error(cmd, "unknown option '-%c'", optopt);
        return 0;
    default:
        return c;
    }
}

int cli_exit_code(mh_status st)
{
    switch (st) {
    case MH_OK:
        return CLI_EXIT_OK;
    case MH_ENOTFOUND:
    case MH_EBADNAME:
        return CLI_EXIT_NOTFOUND;
    default:
        return CLI_EXIT_FAILURE;
    }
}

int cli_fail(mh_error *err)
{
    mh_status st = err ? mh_error_code(err) : MH_ENOMEM;

    /* The library promises an error object; without one (it could not
     * allocate it) the code's description is all there is to say. */
    if (err)
        cli_errorf("%s", mh_error_message(err));
    else
        cli_errorf("%s", mh_strerror(st));
    mh_error_free(err);
    return cli_exit_code(st);
}

/* NAME ends in one of a module file's suffixes? */
static bool file_suffix(const char *name, size_t *stem)
{
    static const char *const suffixes[] = {".so", ".lua", ".luac"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && strcmp(name + n - k, suffixes[i]) == 0) {
            *stem = n - k;
            return true;
        }
    }
    return false;
}

/* s as one shell word in buf: as it is when it holds only characters a
 * shell takes literally, else in single quotes ('\'' for a quote); cut
 * to fit. */
static const char *shell_word(const char *s, char *buf, size_t size)
{
    if (s[0] && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789/._-+,:@%") == strlen(s))
        return s;
    size_t o = 0;
    buf[o++] = '\'';
    for (; *s && o + 6 < size; s++) {
        if (*s == '\'') {
            memcpy(buf + o, "'\\''", 4);
            o += 4;
        } else {
            buf[o++] = *s;
        }
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

int cli_fail_name(mh_error *err, const char *cmd, const char *name)
{
    mh_status st = err ? mh_error_code(err) : MH_ENOMEM;
    int code = cli_fail(err);
    if ((st != MH_EBADNAME && st != MH_ENOTFOUND) || !name)
        return code;
    size_t stem = 0;
    const char *slash = strrchr(name, '/');
    const char *leaf = slash ? slash + 1 : name;
    bool suffixed = file_suffix(leaf, &stem);
    if (!slash && !suffixed)
        return code;
    /* A file given where a module name goes: say how it is named. */
    if (!suffixed || stem == 0)
        stem = strlen(leaf);
    if (stem == 0) /* "dir/": no name to suggest */
        return code;
    /* Search path entries are absolute (a relative one is refused): the
     * directory as given when it is, else made absolute -- through
     * realpath when it exists, else below the working directory. */
    char given[PATH_MAX], abs[PATH_MAX], abs_q[2 * PATH_MAX];
    int dlen = slash ? (int)(slash - name) + (slash == name) : 1;
    snprintf(given, sizeof given, "%.*s", dlen, slash ? name : ".");
    const char *dir = given;
    if (given[0] != '/') {
        char cwd[PATH_MAX];
        if (realpath(given, abs))
            dir = abs;
        else if (getcwd(cwd, sizeof cwd) &&
                 snprintf(abs, sizeof abs, "%s/%s", cwd, given) <
                     (int)sizeof abs)
            dir = abs;
    }
    cli_errorf("hint: '%s' looks like a file, and modules are named: put "
               "its directory on the search path and give its name, as in "
               "`modhost -p %s %s %.*s`", name, shell_word(dir, abs_q,
                                                           sizeof abs_q),
               cmd, (int)stem, leaf);
    return code;
}

int cli_host_new(const cli_ctx *ctx, mh_host **out)
{
    mh_config cfg;
    mh_error *err = NULL;

    mh_config_init(&cfg);
    cfg.flags = ctx->flags;
    cfg.path = ctx->path;
    if (mh_host_new(&cfg, out, &err) != MH_OK)
        return cli_fail(err);
    return CLI_EXIT_OK;
}

const char *cli_entry_text(mh_host *host, size_t index)
{
    const char *entry = NULL;

    if (mh_host_path_entry(host, index, &entry, NULL, NULL) != MH_OK)
        return NULL;
    return entry;
}

const char *cli_str(const char *s)
{
    return s ? s : "-";
}

void cli_put_field(const char *s)
{
    if (!s || !*s) {
        fputs("-", stdout);
        return;
    }
    /* One field of one line: a multi-line message (a "not found" list,
     * a Lua traceback) must not start lines of its own. */
    put_text(stdout, s, true);
}

void cli_print_entry(mh_host *host, size_t index)
{
    if (index == SIZE_MAX)
        fputs("entry: -\n", stdout);
    else
        printf("entry: %zu %s\n", index,
               cli_str(cli_entry_text(host, index)));
}

int cli_add_string(cJSON *obj, const char *key, const char *s)
{
    return s ? cJSON_AddStringToObject(obj, key, s) != NULL
             : cJSON_AddNullToObject(obj, key) != NULL;
}

int cli_add_entry_json(mh_host *host, cJSON *obj, size_t index)
{
    /* A meta-path finder's module comes from no entry: null, null. */
    if (index == SIZE_MAX)
        return cJSON_AddNullToObject(obj, "entry") != NULL &&
               cJSON_AddNullToObject(obj, "entry_text") != NULL;
    return cJSON_AddNumberToObject(obj, "entry", (double)index) != NULL &&
           cli_add_string(obj, "entry_text", cli_entry_text(host, index));
}

cJSON *cli_spec_json(mh_host *host, const mh_spec_info *info)
{
    cJSON *obj = cJSON_CreateObject();

    if (!obj)
        return NULL;
    if (!cli_add_string(obj, "name", info->name) ||
        !cli_add_string(obj, "kind", mh_module_kind_name(info->kind)) ||
        !cli_add_string(obj, "loader", info->loader) ||
        !cli_add_string(obj, "finder", info->finder) ||
        !cli_add_string(obj, "origin", info->origin) ||
        !cli_add_entry_json(host, obj, info->entry_index)) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

/* A number as the shortest text that reads back as exactly it: cJSON
 * prints 15 significant digits whenever they read back within its
 * epsilon, so 2^53 - 1 came out as 9.00719925474099e+15.  Written in the
 * C locale whatever the process's is: a Lua module may have called
 * os.setlocale, and "1,5" is no JSON.  Without the memory for a locale
 * object, cJSON's own print (locale-proof, 15 digits) stands in. */
static cJSON *exact_number(double d)
{
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!c)
        return cJSON_CreateNumber(d);
    locale_t was = uselocale(c);
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    uselocale(was);
    freelocale(c);
    return cJSON_CreateRaw(buf);
}

/* Every finite number below json's own node made raw text (json itself
 * is left); false when memory ran out (the tree stays whole). */
static bool exact_children(cJSON *json)
{
    for (cJSON *c = json->child, *next; c; c = next) {
        next = c->next;
        if (cJSON_IsNumber(c) && c->valuedouble - c->valuedouble == 0) {
            cJSON *raw = exact_number(c->valuedouble);
            if (raw && c->string) { /* a member: its key goes along */
                size_t n = strlen(c->string) + 1;
                if ((raw->string = cJSON_malloc(n)))
                    memcpy(raw->string, c->string, n);
            }
            if (!raw || (c->string && !raw->string) ||
                !cJSON_ReplaceItemViaPointer(json, c, raw)) {
                cJSON_Delete(raw);
                return false;
            }
        } else if (c->child && !exact_children(c)) {
            return false;
        }
    }
    return true;
}

cJSON *cli_exact_json(cJSON *json)
{
    if (!json)
        return NULL;
    if (cJSON_IsNumber(json)) {
        if (json->valuedouble - json->valuedouble != 0)
            return json; /* NaN, inf: cJSON prints null */
        cJSON *raw = exact_number(json->valuedouble);
        cJSON_Delete(json);
        return raw;
    }
    if (!exact_children(json)) {
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}

int cli_print_json(cJSON *json)
{
    json = cli_exact_json(json);
    char *text = json ? cJSON_Print(json) : NULL;

    cJSON_Delete(json);
    if (!text) {
        cli_errorf("out of memory");
        return CLI_EXIT_FAILURE;
    }
    puts(text);
    cJSON_free(text);
    return cli_finish_output(CLI_EXIT_OK);
}

int cli_finish_output(int code)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_errorf("cannot write output: %s", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    return code;
}

int cli_parse_query_opts(const cli_command *cmd, int argc, char **argv,
                         int *json)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int code, c;

    *json = 0;
    while ((c = cli_getopt(cmd, argc, argv, ":h", longopts, &code)) != -1) {
        if (c == 0)
            return code;
        if (c == 'j')
            *json = 1;
    }
    return -1;
}

int cli_parse_import_opts(const cli_command *cmd, int argc, char **argv,
                          unsigned *flags)
{
    static const struct option longopts[] = {
        { "plain", no_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int code, c;

    *flags = 0;
    /* "+": stop at NAME, so what follows it (options for the module, a
     * JSON argument such as "-1") is left as operands. */
    while ((c = cli_getopt(cmd, argc, argv, "+:h", longopts, &code)) != -1) {
        if (c == 0)
            return code;
        if (c == 'P')
            *flags |= MH_IMPORT_PLAIN;
    }
    return -1;
}

int cli_parse_no_opts(const cli_command *cmd, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int code, c;

    while ((c = cli_getopt(cmd, argc, argv, ":h", longopts, &code)) != -1)
        if (c == 0)
            return code;
    return -1;
}
