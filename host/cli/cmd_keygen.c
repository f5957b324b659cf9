/*
 * cmd_keygen.c -- `modhost keygen BASE`: make an Ed25519 key pair,
 * BASE.key (private, for `modhost index --sign`) and BASE.pub (public, for
 * MODHOST_TRUST), with mh_keygen.
 */
#include "cli.h"

#include <string.h>

int cli_cmd_keygen(const cli_ctx *ctx, const cli_command *cmd, int argc,
                   char **argv)
{
    (void)ctx;
    int code = cli_parse_no_opts(cmd, argc, argv);
    if (code >= 0)
        return code;
    if (optind >= argc)
        return cli_usage_error(cmd, "missing BASE file name");
    if (argc - optind > 1)
        return cli_usage_error(cmd, "too many arguments");
    if (!argv[optind][0])
        return cli_usage_error(cmd, "empty BASE file name");

    const char *base = argv[optind];
    /* BASE is a prefix: "DIR/" would make the hidden DIR/.key and
     * DIR/.pub.  mh_keygen refuses it too (MH_EINVAL); here it is a usage
     * error, told apart from a refusal such as a file that exists. */
    const char *slash = strrchr(base, '/');
    const char *last = slash ? slash + 1 : base;
    if (!last[0] || !strcmp(last, ".") || !strcmp(last, ".."))
        return cli_usage_error(cmd, "BASE names a directory; give a file "
                               "name such as DIR/release");
    mh_error *err = NULL;

    if (mh_keygen(base, &err) != MH_OK) {
        cli_fail(err);
        return CLI_EXIT_FAILURE;
    }
    printf("private key: %s.key\npublic key: %s.pub\n", base, base);
    return cli_finish_output(CLI_EXIT_OK);
}
