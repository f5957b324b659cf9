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

#include "cli.h"

#define MAX_DAYS 36500.0   /* a hundred years */

static int print_text(const mh_cache_usage *u)
{
    mh_cache_count kept = { 0, 0 }, removed = { 0, 0 };
    for (int i = 0; i < MH_CACHE_NPARTS; i++) {
        printf("%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\n",
               mh_cache_part_name((mh_cache_part)i), u->kept[i].files,
               u->kept[i].bytes, u->removed[i].files, u->removed[i].bytes);
        kept.files += u->kept[i].files;
        kept.bytes += u->kept[i].bytes;
        removed.files += u->removed[i].files;
        removed.bytes += u->removed[i].bytes;
    }
    printf("total\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64 "\n",
           kept.files, kept.bytes, removed.files, removed.bytes);
    return cli_finish_output(CLI_EXIT_OK);
}

static cJSON *count_json(const mh_cache_count *kept,
                         const mh_cache_count *removed)
{
    cJSON *o = cJSON_CreateObject();
    if (!o ||
        !cJSON_AddNumberToObject(o, "files", (double)kept->files) ||
        !cJSON_AddNumberToObject(o, "bytes", (double)kept->bytes) ||
        !cJSON_AddNumberToObject(o, "removed_files", (double)removed->files) ||
        !cJSON_AddNumberToObject(o, "removed_bytes",
                                 (double)removed->bytes)) {
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
        cJSON *c = count_json(&u->kept[i], &u->removed[i]);
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

    while ((c = cli_getopt(cmd, argc, argv, "h", longopts, &code)) != -1) {
        if (c == 0)
            return code;
        if (c == 'j') {
            json = 1;
        } else if (c == OPT_PRUNE) {
            char *end;
            errno = 0;
            double days = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(days) ||
                days < 0 || days > MAX_DAYS)
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
    mh_cache_usage usage;
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
