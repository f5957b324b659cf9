/*
 * cmd_cache.c -- `modhost cache [--json] [--prune DAYS]`: what the cache
 * directory holds, by part, and with --prune, removing what has not been
 * used for DAYS days (mh_host_prune_cache).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_DAYS 36500.0   /* a hundred years */

static void print_count(const char *name, const mh_cache_count *c)
{
    printf("%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\n", name,
           c->files, c->bytes, c->removed_files, c->removed_bytes);
}

static int print_text(const mh_cache_usage *u)
{
    mh_cache_count total = { 0, 0, 0, 0 };
    for (int i = 0; i < MH_CACHE_NPARTS; i++) {
        const mh_cache_count *c = &u->part[i];
        print_count(mh_cache_part_name((mh_cache_part)i), c);
        total.files += c->files;
        total.bytes += c->bytes;
        total.removed_files += c->removed_files;
        total.removed_bytes += c->removed_bytes;
    }
    print_count("total", &total);
    return cli_finish_output(CLI_EXIT_OK);
}

static cJSON *count_json(const mh_cache_count *c)
{
    cJSON *o = cJSON_CreateObject();
    if (!o ||
        !cJSON_AddNumberToObject(o, "files", (double)c->files) ||
        !cJSON_AddNumberToObject(o, "bytes", (double)c->bytes) ||
        !cJSON_AddNumberToObject(o, "removed_files",
                                 (double)c->removed_files) ||
        !cJSON_AddNumberToObject(o, "removed_bytes",
                                 (double)c->removed_bytes)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int print_json(mh_host *host, const mh_cache_usage *u)
{
    cJSON *root = cJSON_CreateObject(), *parts = cJSON_CreateObject();
    int ok = root && parts &&
             cli_add_string(root, "cache_dir", mh_host_cache_dir(host)) &&
             cJSON_AddItemToObject(root, "parts", parts);
    if (!ok)
        cJSON_Delete(parts);
    for (int i = 0; ok && i < MH_CACHE_NPARTS; i++) {
        cJSON *c = count_json(&u->part[i]);
        ok = c && cJSON_AddItemToObject(parts,
                                        mh_cache_part_name((mh_cache_part)i),
                                        c);
        if (!ok)
            cJSON_Delete(c);
    }
    if (!ok) {
        cJSON_Delete(root);
        cli_errorf("out of memory");
        return CLI_EXIT_FAILURE;
    }
    return cli_print_json(root);
}

int cli_cmd_cache(const cli_ctx *ctx, const cli_command *cmd, int argc,
                  char **argv)
{
    enum { OPT_PRUNE = 0x100 };
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "prune", required_argument, NULL, OPT_PRUNE },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int json = 0, code, c;
    int64_t unused_s = -1;

    while ((c = cli_getopt(cmd, argc, argv, ":h", longopts, &code)) != -1) {
        if (c == 0)
            return code;
        if (c == 'j') {
            json = 1;
        } else if (c == OPT_PRUNE) {
            /* Digits and a point only: strtod alone takes "-0", " 5" and
             * hex. */
            char *end;
            errno = 0;
            double days = strtod(optarg, &end);
            if (!optarg[0] || strspn(optarg, "0123456789.") != strlen(optarg) ||
                errno || end == optarg || *end || !isfinite(days) ||
                days > MAX_DAYS)
                return cli_usage_error(cmd, "--prune takes a number of days "
                                       "from 0 to %.0f, not '%s'", MAX_DAYS,
                                       optarg);
            unused_s = (int64_t)(days * 86400.0 + 0.5);
        }
    }
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

    mh_host *host = NULL;
    code = cli_host_new(ctx, &host);
    if (code != CLI_EXIT_OK)
        return code;
    mh_cache_usage usage = { .size = sizeof usage };
    mh_error *err = NULL;
    mh_status rc = mh_host_prune_cache(host, unused_s, &usage, &err);
    /* A file that could not be read or removed (MH_EIO): the rest was
     * done, and is shown, then the failure. */
    code = rc == MH_OK || rc == MH_EIO
               ? (json ? print_json(host, &usage) : print_text(&usage))
               : CLI_EXIT_FAILURE;
    if (rc != MH_OK) {
        cli_fail(err); /* not its "not found" (3), a missing module's */
        code = CLI_EXIT_FAILURE;
    }
    mh_host_free(host);
    return code;
}
