/*
 * main.c -- entry point of `modhost`: global option parsing, --help and
 * --version, and dispatch to a command.
 *
 * Option parsing stops at the first operand (the COMMAND), so everything
 * after it belongs to the command, and after `run NAME` to the module.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Append entry to ctx->path, ';'-separated.  Returns 0, or -1 when out of
 * memory. */
static int add_path(cli_ctx *ctx, const char *entry)
{
    size_t old = ctx->path ? strlen(ctx->path) : 0;
    size_t add = strlen(entry);

    if (add > SIZE_MAX - old - 2)
        return -1;
    char *p = realloc(ctx->path, old + add + 2);
    if (!p)
        return -1;
    if (old)
        p[old++] = ';';
    memcpy(p + old, entry, add + 1);
    ctx->path = p;
    return 0;
}

static void print_version(void)
{
    printf("modhost %s\nplugin ABI %d\n", mh_version_string(),
           MH_PLUGIN_ABI_VERSION);
}

/* Parse the global options into ctx.  Returns -1 to go on with the command
 * at argv[optind], or the exit code when done (--help, --version, error). */
static int parse_global(cli_ctx *ctx, int argc, char **argv)
{
    enum { OPT_VERSION = 0x100 };
    static const struct option longopts[] = {
        { "path", required_argument, NULL, 'p' },
        { "isolated", no_argument, NULL, 'E' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { NULL, 0, NULL, 0 }
    };
    int code, c;

    while ((c = cli_getopt(NULL, argc, argv, "+:p:Evh", longopts, &code))
           != -1) {
        switch (c) {
        case 0:
            return code;
        case 'p':
            /* An empty entry is refused by the library as a warning; on
             * the command line it is a mistake in the command. */
            if (strstr(optarg, ";;"))
                return cli_usage_error(NULL, "-p: ';;' (the default "
                                       "entries) has no place in -p: the "
                                       "defaults follow the -p entries "
                                       "unless MODHOST_PATH leaves them "
                                       "out");
            if (!optarg[0] || optarg[0] == ';' ||
                optarg[strlen(optarg) - 1] == ';')
                return cli_usage_error(NULL, "-p: an empty entry (an empty "
                                       "value, or ';' at either end)");
            if (add_path(ctx, optarg) != 0) {
                cli_errorf("out of memory");
                return CLI_EXIT_FAILURE;
            }
            break;
        case 'E':
            ctx->flags |= MH_CONFIG_ISOLATED;
            break;
        case 'v':
            ctx->flags |= MH_CONFIG_VERBOSE;
            break;
        case OPT_VERSION:
            print_version();
            return cli_finish_output(CLI_EXIT_OK);
        default:
            return cli_usage_error(NULL, "unexpected option");
        }
    }
    if (optind >= argc)
        return cli_usage_error(NULL, "missing command");
    return -1;
}

int main(int argc, char **argv)
{
    cli_ctx ctx = { NULL, 0 };
    mh_error *err = NULL;
    int code;

    opterr = 0;    /* cli_getopt reports errors in our own format */
    code = parse_global(&ctx, argc, argv);
    if (code >= 0)
        goto done;

    const cli_command *cmd = cli_command_find(argv[optind]);
    if (!cmd) {
        code = cli_usage_error(NULL, "unknown command '%s'", argv[optind]);
        goto done;
    }
    /* A header/library mismatch would make every struct we pass suspect:
     * refuse before creating a host. */
    if (MH_CHECK_VERSION(&err) != MH_OK) {
        code = cli_fail(err);
        goto done;
    }
    int cmd_argc = argc - optind;
    char **cmd_argv = argv + optind;
    optind = 0;    /* glibc: 0 restarts getopt from scratch */
    code = cmd->run(&ctx, cmd, cmd_argc, cmd_argv);

done:
    free(ctx.path);
    return code;
}
