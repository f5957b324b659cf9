/*
 * cmd_index.c -- `modhost index [--sign KEY] DIR`: write DIR/index.json
 * (and with --sign, DIR/index.json.sig) with mh_index_dir, so a static
 * HTTP server can serve DIR to the HTTP finder.
 */
#include <string.h>

#include "cli.h"

int cli_cmd_index(const cli_ctx *ctx, const cli_command *cmd, int argc,
                  char **argv)
{
    static const struct option longopts[] = {
        { "sign", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *key = NULL;
    int code, c;

    /* Indexing touches no search path: -p and -E have nothing to steer. */
    (void)ctx;
    while ((c = cli_getopt(cmd, argc, argv, ":s:h", longopts, &code)) != -1) {
        if (c == 0)
            return code;
        if (c == 's')
            key = optarg;
    }
    if (optind >= argc)
        return cli_usage_error(cmd, "missing directory");
    if (argc - optind > 1)
        return cli_usage_error(cmd, "too many arguments");
    if (key && !key[0])
        return cli_usage_error(cmd, "empty key file name");
    if (!argv[optind][0])
        return cli_usage_error(cmd, "empty directory name");

    const char *dir = argv[optind];
    size_t count = 0, len = strlen(dir);
    mh_error *err = NULL;

    if (mh_index_dir(dir, key, &count, &err) != MH_OK) {
        /* Status 3 means "module not found" to the other commands. */
        cli_fail(err);
        return CLI_EXIT_FAILURE;
    }
    while (len > 1 && dir[len - 1] == '/')
        len--;
    printf("indexed %zu module%s in %.*s%sindex.json%s\n", count,
           count == 1 ? "" : "s", (int)len, dir,
           dir[len - 1] == '/' ? "" : "/", key ? " (signed)" : "");
    return cli_finish_output(CLI_EXIT_OK);
}
