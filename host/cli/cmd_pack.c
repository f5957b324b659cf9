/*
 * cmd_pack.c -- `modhost pack [--compress-code] DB FILE_OR_DIR...`: write
 * modules into a module database (a SQLite Archive) with mh_pack_ex, in
 * one transaction.
 */
#include "cli.h"

int cli_cmd_pack(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    static const struct option longopts[] = {
        { "compress-code", no_argument, NULL, 'z' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    unsigned flags = 0;
    int code, c;

    /* Packing touches no search path: -p and -E have nothing to steer. */
    (void)ctx;
    while ((c = cli_getopt(cmd, argc, argv, ":h", longopts, &code)) != -1) {
        if (c == 0)
            return code;
        if (c == 'z')
            flags |= MH_PACK_COMPRESS_CODE;
    }
    if (optind >= argc)
        return cli_usage_error(cmd, "missing database");
    if (argc - optind < 2)
        return cli_usage_error(cmd, "missing FILE_OR_DIR to pack");
    if (!argv[optind][0])
        return cli_usage_error(cmd, "empty database name");
    for (int i = optind + 1; i < argc; i++)
        if (!argv[i][0])
            return cli_usage_error(cmd, "empty FILE_OR_DIR (argument %d)",
                                   i - optind + 1);

    const char *db = argv[optind];
    const char *const *inputs = (const char *const *)(argv + optind + 1);
    size_t n_inputs = (size_t)(argc - optind - 1);
    size_t count = 0;
    mh_error *err = NULL;

    if (mh_pack_ex(db, inputs, n_inputs, flags, &count, &err) != MH_OK) {
        /* Status 3 means "module not found" to the other commands; a
         * missing input here is an ordinary failure. */
        cli_fail(err);
        return CLI_EXIT_FAILURE;
    }
    printf("packed %zu file%s into %s\n", count, count == 1 ? "" : "s", db);
    return cli_finish_output(CLI_EXIT_OK);
}
