/*
 * cmd_run.c -- `modhost run [--plain] NAME [ARGS...]`: import a module and
 * hand the rest of the command line to its exported main().
 */
#include "cli.h"

/* The type a module's "main" export must have. */
typedef int (*cli_main_fn)(int argc, char **argv);

int cli_cmd_run(const cli_ctx *ctx, const cli_command *cmd, int argc,
                char **argv)
{
    unsigned flags;
    int code = cli_parse_import_opts(cmd, argc, argv, &flags);
    if (code >= 0)
        return code;
    if (optind >= argc)
        return cli_usage_error(cmd, "missing module name");

    const char *name = argv[optind];
    mh_host *host = NULL;
    mh_module *mod = NULL;
    mh_error *err = NULL;
    void *sym = NULL;

    code = cli_host_new(ctx, &host);
    if (code != CLI_EXIT_OK)
        return code;
    if (mh_import_ex(host, name, flags, &mod, &err) != MH_OK ||
        mh_module_symbol_ex(mod, "main", &sym, &err) != MH_OK) {
        code = cli_fail_name(err, "run", name);
    } else {
        /* POSIX guarantees data and function pointers convert (dlsym). */
        cli_main_fn module_main = (cli_main_fn)sym;
        code = module_main(argc - optind, argv + optind) & 0xff;
    }
    /* Runs the fini functions, which may still write output. */
    mh_host_free(host);
    /* Output lost (a full disk, a closed pipe) is a failure, unless main
     * already reported one of its own. */
    if (cli_finish_output(CLI_EXIT_OK) != CLI_EXIT_OK && code == CLI_EXIT_OK)
        code = CLI_EXIT_FAILURE;
    return code;
}
