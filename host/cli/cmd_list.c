/*
 * cmd_list.c -- `modhost list [--json] [-l | --provides GROUP]`: every
 * module visible on the search path, without loading any:
 *   plain        mh_list:   NAME<TAB>KIND<TAB>ORIGIN
 *   -l           mh_discover, the same columns then VERSION<TAB>
 *                DESCRIPTION, or "skipped: REASON" for a module with a
 *                recorded failure
 *   --provides   mh_host_entry_points: MODULE<TAB>EXPORT<TAB>VERSION<TAB>
 *                ORIGIN for each provider of GROUP
 * or, with --json, a JSON array of objects.
 */
#include "cli.h"

typedef struct list_state {
    mh_host *host;
    cJSON *array;   /* --json: the array being built; NULL for text */
    int oom;        /* an allocation failed: the listing stopped early */
} list_state;

/* Add obj to st->array; on failure note it and ask the walk to stop. */
static int add_item(list_state *st, cJSON *obj)
{
    if (obj && cJSON_AddItemToArray(st->array, obj))
        return 0;
    cJSON_Delete(obj);
    st->oom = 1;
    return 1;
}

static int list_one(void *ud, const mh_spec_info *info)
{
    list_state *st = ud;

    if (!st->array) {
        printf("%s\t%s\t%s\n", cli_str(info->name),
               mh_module_kind_name(info->kind), cli_str(info->origin));
        return 0;
    }
    return add_item(st, cli_spec_json(st->host, info));
}

/* -l: one module with its metadata. */
static int long_one(void *ud, const mh_module_meta *meta)
{
    list_state *st = ud;
    const mh_manifest *m = meta->status == MH_OK ? meta->manifest : NULL;
    const char *version = m ? mh_manifest_version(m) : NULL;
    const char *description = m ? mh_manifest_description(m) : NULL;
    const char *reason = meta->status == MH_OK ? NULL
                         : meta->reason ? meta->reason
                                        : mh_strerror(meta->status);

    if (!st->array) {
        printf("%s\t%s\t%s\t", cli_str(meta->name),
               mh_module_kind_name(meta->kind), cli_str(meta->origin));
        cli_put_field(version);
        putchar('\t');
        if (reason)
            fputs("skipped: ", stdout);
        cli_put_field(reason ? reason : description);
        putchar('\n');
        return 0;
    }

    /* The keys of `list --json`, then the metadata.  Discovery names no
     * loader: for the kinds finders report (native, lua, namespace) the
     * loader has the kind's name, as mh_find says. */
    mh_spec_info info = {
        .size = sizeof info, .name = meta->name, .origin = meta->origin,
        .finder = meta->finder, .kind = meta->kind,
        .loader = mh_module_kind_name(meta->kind),
        .entry_index = meta->entry_index,
    };
    cJSON *obj = cli_spec_json(st->host, &info);
    if (obj &&
        (!cli_add_string(obj, "version", version) ||
         !cli_add_string(obj, "description", description) ||
         !cli_add_string(obj, "metadata", m ? mh_manifest_source(m) : NULL) ||
         !cli_add_string(obj, "status",
                         reason ? mh_status_name(meta->status) : NULL) ||
         !cli_add_string(obj, "reason", reason))) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    return add_item(st, obj);
}

/* --provides: one entry point. */
static int provider_one(void *ud, const mh_entry_point *ep)
{
    list_state *st = ud;
    const char *version = ep->manifest ? mh_manifest_version(ep->manifest)
                                       : NULL;

    if (!st->array) {
        const char *fields[] = {ep->module, ep->export_name, version,
                                ep->origin};
        for (size_t i = 0; i < 4; i++) {
            cli_put_field(fields[i]);
            putchar(i < 3 ? '\t' : '\n');
        }
        return 0;
    }
    cJSON *obj = cJSON_CreateObject();
    if (obj &&
        (!cli_add_string(obj, "group", ep->group) ||
         !cli_add_string(obj, "module", ep->module) ||
         !cli_add_string(obj, "export", ep->export_name) ||
         !cli_add_string(obj, "version", version) ||
         !cli_add_string(obj, "origin", ep->origin))) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    return add_item(st, obj);
}

int cli_cmd_list(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    enum { OPT_PROVIDES = 0x100 };
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "long", no_argument, NULL, 'l' },
        { "provides", required_argument, NULL, OPT_PROVIDES },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *group = NULL;
    int json = 0, long_fmt = 0, code, c;

    while ((c = cli_getopt(cmd, argc, argv, ":hl", longopts, &code)) != -1) {
        if (c == 0)
            return code;
        if (c == 'j')
            json = 1;
        else if (c == 'l')
            long_fmt = 1;
        else if (c == OPT_PROVIDES)
            group = optarg;
    }
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (long_fmt && group)
        return cli_usage_error(cmd, "--long and --provides cannot be "
                               "combined");
    if (group && !group[0])
        return cli_usage_error(cmd, "empty entry point group");

    list_state st = { NULL, NULL, 0 };
    mh_error *err = NULL;
    mh_status rc;

    code = cli_host_new(ctx, &st.host);
    if (code != CLI_EXIT_OK)
        return code;
    if (json && !(st.array = cJSON_CreateArray())) {
        cli_errorf("out of memory");
        mh_host_free(st.host);
        return CLI_EXIT_FAILURE;
    }
    if (group)
        rc = mh_host_entry_points(st.host, group, provider_one, &st, &err);
    else if (long_fmt)
        rc = mh_discover(st.host, long_one, &st, &err);
    else
        rc = mh_list(st.host, list_one, &st, &err);

    if (rc != MH_OK) {
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
