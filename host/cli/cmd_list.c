/*
 * cmd_list.c -- `modhost list [--json]`: every module visible on the
 * search path (mh_list), as NAME<TAB>KIND<TAB>ORIGIN lines or a JSON array.
 */
#include "cli.h"

typedef struct list_state {
    mh_host *host;
    cJSON *array;   /* --json: the array being built; NULL for text */
    int oom;        /* an allocation failed: the listing stopped early */
} list_state;

static int list_one(void *ud, const mh_spec_info *info)
{
    list_state *st = ud;

    if (!st->array) {
        printf("%s\t%s\t%s\n", cli_str(info->name),
               mh_module_kind_name(info->kind), cli_str(info->origin));
        return 0;
    }
    cJSON *obj = cli_spec_json(st->host, info);
    if (!obj || !cJSON_AddItemToArray(st->array, obj)) {
        cJSON_Delete(obj);
        st->oom = 1;
        return 1;
    }
    return 0;
}

int cli_cmd_list(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    int json, code = cli_parse_query_opts(cmd, argc, argv, 0, &json);
    if (code >= 0)
        return code;
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

    list_state st = { NULL, NULL, 0 };
    mh_error *err = NULL;

    code = cli_host_new(ctx, &st.host);
    if (code != CLI_EXIT_OK)
        return code;
    if (json && !(st.array = cJSON_CreateArray())) {
        cli_errorf("out of memory");
        code = CLI_EXIT_FAILURE;
    } else if (mh_list(st.host, list_one, &st, &err) != MH_OK) {
        cJSON_Delete(st.array);
        code = cli_fail(err);
    } else if (st.oom) {
        cJSON_Delete(st.array);
        cli_errorf("out of memory");
        code = CLI_EXIT_FAILURE;
    } else if (json) {
        code = cli_print_json(st.array);
    } else {
        code = cli_finish_output(CLI_EXIT_OK);
    }
    mh_host_free(st.host);
    return code;
}
