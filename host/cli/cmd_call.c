/*
 * cmd_call.c -- `modhost call [--plain] NAME FUNCTION [JSON-ARRAY]`:
 * import a module and call one of its functions with JSON values
 * (mh_module_call), printing the JSON result on one line.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "../jsonnum.h"

/* Does the JSON text hold the escape \u0000 (in a string: nowhere else
 * can a backslash stand)?  cJSON's strings end at NUL, so the value would
 * reach the function cut there. */
static bool holds_nul_escape(const char *t)
{
    for (; *t; t++)
        if (*t == '\\') {
            if (t[1] == 'u' && strncmp(t + 2, "0000", 4) == 0)
                return true;
            if (t[1])
                t++; /* an escaped character, a backslash among them */
        }
    return false;
}

int cli_cmd_call(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    unsigned flags;
    int code = cli_parse_import_opts(cmd, argc, argv, &flags);
    if (code >= 0)
        return code;
    if (optind >= argc)
        return cli_usage_error(cmd, "missing module name");
    if (optind + 1 >= argc)
        return cli_usage_error(cmd, "missing function name");
    if (argc - optind > 3)
        return cli_usage_error(cmd, "too many arguments (give the function's "
                               "arguments as one JSON array)");

    const char *name = argv[optind];
    const char *fn = argv[optind + 1];
    const char *text = optind + 2 < argc ? argv[optind + 2] : "[]";

    /* The whole text: '["a"] trailing' is not JSON. */
    cJSON *args = cJSON_ParseWithOpts(text, NULL, 1);
    if (!args) {
        const char *at = cJSON_GetErrorPtr();
        if (at && *at)
            return cli_usage_error(cmd, "invalid JSON in the arguments, "
                                   "near '%.20s'", at);
        return cli_usage_error(cmd, "invalid JSON in the arguments");
    }
    if (holds_nul_escape(text)) {
        cJSON_Delete(args);
        return cli_usage_error(cmd, "a string in the arguments holds "
                               "\\u0000 (NUL), which cannot be passed: it "
                               "would be cut there");
    }
    if (!cJSON_IsArray(args)) {
        cJSON_Delete(args);
        return cli_usage_error(cmd, "the arguments must be a JSON array, "
                               "such as '[1, \"two\"]'");
    }
    if (mh_json_has_nonfinite(args)) {
        cJSON_Delete(args);
        return cli_usage_error(cmd, "a number in the arguments is past the "
                               "range of a double (such as 1e400): JSON "
                               "numbers are finite");
    }

    mh_host *host = NULL;
    mh_module *mod = NULL;
    mh_error *err = NULL;
    cJSON *result = NULL;

    code = cli_host_new(ctx, &host);
    if (code != CLI_EXIT_OK) {
        cJSON_Delete(args);
        return code;
    }
    if (mh_import_ex(host, name, flags, &mod, &err) != MH_OK ||
        mh_module_call(mod, fn, args, &result, &err) != MH_OK) {
        code = cli_fail_name(err, "call", name);
    } else {
        result = cli_exact_json(result);
        char *out = result ? cJSON_PrintUnformatted(result) : NULL;
        if (!out) {
            cli_errorf("%s", mh_strerror(MH_ENOMEM));
            code = CLI_EXIT_FAILURE;
        } else {
            puts(out);
            cJSON_free(out);
            code = CLI_EXIT_OK;
        }
    }
    cJSON_Delete(result);
    cJSON_Delete(args);
    mh_host_free(host);
    return cli_finish_output(code);
}
