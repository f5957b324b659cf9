/*
 * cmd_path.c -- `modhost path [--json]`: the effective search path, with
 * where each entry came from and which finder claimed it.
 */
#include "cli.h"

/* A new JSON object {index, entry, source, finder}, or NULL when out of
 * memory. */
static cJSON *entry_json(size_t i, const char *entry, mh_path_source src,
                         const char *finder)
{
    cJSON *obj = cJSON_CreateObject();

    if (!obj)
        return NULL;
    if (!cJSON_AddNumberToObject(obj, "index", (double)i) ||
        !cJSON_AddStringToObject(obj, "entry", entry) ||
        !cJSON_AddStringToObject(obj, "source", mh_path_source_name(src)) ||
        !(finder ? cJSON_AddStringToObject(obj, "finder", finder)
                 : cJSON_AddNullToObject(obj, "finder"))) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

/* Print the path as text, or add it to array.  Returns 0, or -1 when out
 * of memory. */
static int show_path(mh_host *host, cJSON *array)
{
    size_t n = mh_host_path_count(host);

    for (size_t i = 0; i < n; i++) {
        const char *entry = NULL, *finder = NULL;
        mh_path_source src = MH_SOURCE_CONFIG;

        /* Only an out-of-range index fails, and i < n. */
        if (mh_host_path_entry(host, i, &entry, &src, &finder) != MH_OK)
            continue;
        if (!array) {
            printf("%zu\t%s\t%s\t%s\n", i, cli_str(entry),
                   mh_path_source_name(src), cli_str(finder));
            continue;
        }
        cJSON *obj = entry_json(i, cli_str(entry), src, finder);
        if (!obj || !cJSON_AddItemToArray(array, obj)) {
            cJSON_Delete(obj);
            return -1;
        }
    }
    return 0;
}

int cli_cmd_path(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    int json, code = cli_parse_query_opts(cmd, argc, argv, 0, &json);
    if (code >= 0)
        return code;
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

    mh_host *host = NULL;
    cJSON *array = NULL;

    code = cli_host_new(ctx, &host);
    if (code != CLI_EXIT_OK)
        return code;
    if (json && !(array = cJSON_CreateArray())) {
        cli_errorf("out of memory");
        code = CLI_EXIT_FAILURE;
    } else if (show_path(host, array) != 0) {
        cJSON_Delete(array);
        cli_errorf("out of memory");
        code = CLI_EXIT_FAILURE;
    } else if (json) {
        code = cli_print_json(array);
    } else {
        code = cli_finish_output(CLI_EXIT_OK);
    }
    mh_host_free(host);
    return code;
}
