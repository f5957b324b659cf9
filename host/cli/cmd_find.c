/*
 * cmd_find.c -- `modhost find [--json] [--plain] NAME`: where a module
 * would be imported from (mh_find), without loading it.
 */
#include <string.h>

#include "cli.h"

static void print_text(mh_host *host, const mh_spec_info *info)
{
    printf("name: %s\n", cli_str(info->name));
    printf("kind: %s\n", mh_module_kind_name(info->kind));
    printf("loader: %s\n", cli_str(info->loader));
    printf("finder: %s\n", cli_str(info->finder));
    printf("origin: %s\n", cli_str(info->origin));
    printf("entry: %zu %s\n", info->entry_index,
           cli_str(cli_entry_text(host, info->entry_index)));
}

int cli_cmd_find(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    int json, code = cli_parse_query_opts(cmd, argc, argv, 1, &json);
    if (code >= 0)
        return code;
    if (optind >= argc)
        return cli_usage_error(cmd, "missing module name");
    if (argc - optind > 1)
        return cli_usage_error(cmd, "too many arguments");

    mh_host *host = NULL;
    mh_error *err = NULL;
    mh_spec_info info;

    code = cli_host_new(ctx, &host);
    if (code != CLI_EXIT_OK)
        return code;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (mh_find(host, argv[optind], &info, &err) != MH_OK) {
        code = cli_fail(err);
    } else if (json) {
        code = cli_print_json(cli_spec_json(host, &info));
    } else {
        print_text(host, &info);
        code = cli_finish_output(CLI_EXIT_OK);
    }
    mh_host_free(host);
    return code;
}
