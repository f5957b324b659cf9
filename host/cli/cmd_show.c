/*
 * cmd_show.c -- `modhost show [--json] NAME`: a module's metadata, read
 * without loading it or running any of its code (mh_find for where it
 * is, mh_metadata for its manifest: an ELF note or a sidecar NAME.json).
 *
 * Text output is "key: value" lines, as `find` prints; requires and
 * provides take one line per item, or one line "-" when there is none.
 * --json prints the manifest itself, so it can serve as a sidecar.
 */
#include <string.h>

#include "cli.h"

static void print_text(mh_host *host, const mh_spec_info *info,
                       const mh_manifest *m)
{
    size_t nreq = mh_manifest_requires_count(m);
    size_t nprov = mh_manifest_provides_count(m);
    int abi = mh_manifest_abi(m);

    /* "modhost" (the host versions it accepts) has no accessor of its
     * own: it is read back from the manifest's JSON. */
    cJSON *json = cJSON_Parse(mh_manifest_json(m));
    const cJSON *host_req = cJSON_GetObjectItemCaseSensitive(json,
                                                             "modhost");

    printf("name: %s\n", cli_str(info->name));
    printf("kind: %s\n", mh_module_kind_name(info->kind));
    printf("finder: %s\n", cli_str(info->finder));
    printf("origin: %s\n", cli_str(info->origin));
    cli_print_entry(host, info->entry_index);
    printf("metadata: %s\n", cli_str(mh_manifest_source(m)));
    fputs("version: ", stdout);
    cli_put_field(mh_manifest_version(m));
    fputs("\ndescription: ", stdout);
    cli_put_field(mh_manifest_description(m));
    if (abi)
        printf("\nabi: %d\n", abi);
    else
        fputs("\nabi: -\n", stdout);
    fputs("modhost: ", stdout);
    cli_put_field(cJSON_IsString(host_req) ? host_req->valuestring : NULL);
    putchar('\n');
    cJSON_Delete(json);

    if (nreq == 0)
        fputs("requires: -\n", stdout);
    for (size_t i = 0; i < nreq; i++) {
        const char *name = NULL, *constraint = NULL;
        if (mh_manifest_require(m, i, &name, &constraint) != MH_OK)
            continue;
        fputs("requires: ", stdout);
        cli_put_field(name);
        if (constraint && *constraint) {
            putchar(' ');
            cli_put_field(constraint);
        }
        putchar('\n');
    }
    if (nprov == 0)
        fputs("provides: -\n", stdout);
    for (size_t i = 0; i < nprov; i++) {
        const char *group = NULL, *export_name = NULL;
        if (mh_manifest_provide(m, i, &group, &export_name) != MH_OK)
            continue;
        fputs("provides: ", stdout);
        cli_put_field(group);
        putchar(' ');
        cli_put_field(export_name);
        putchar('\n');
    }
}

int cli_cmd_show(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    int json, code = cli_parse_query_opts(cmd, argc, argv, &json);
    if (code >= 0)
        return code;
    if (optind >= argc)
        return cli_usage_error(cmd, "missing module name");
    if (argc - optind > 1)
        return cli_usage_error(cmd, "too many arguments");

    const char *name = argv[optind];
    mh_host *host = NULL;
    mh_manifest *m = NULL;
    mh_error *err = NULL;
    mh_spec_info info;

    code = cli_host_new(ctx, &host);
    if (code != CLI_EXIT_OK)
        return code;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    if (mh_find(host, name, &info, &err) != MH_OK ||
        mh_metadata(host, name, &m, &err) != MH_OK) {
        code = cli_fail_name(err, "show", name);
    } else if (json) {
        cJSON *manifest = cJSON_Parse(mh_manifest_json(m));
        if (!manifest)
            cli_errorf("module '%s': cannot print its manifest (%s)", name,
                       mh_strerror(MH_ENOMEM));
        code = manifest ? cli_print_json(manifest) : CLI_EXIT_FAILURE;
    } else {
        print_text(host, &info, m);
        code = cli_finish_output(CLI_EXIT_OK);
    }
    mh_manifest_free(m);
    mh_host_free(host);
    return code;
}
