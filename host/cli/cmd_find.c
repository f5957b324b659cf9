/*
 * cmd_find.c -- `modhost find [--json] [--plain] [-v] NAME`: where a
 * module would be imported from (mh_find), without loading it; with -v,
 * also the finder chain link that found it (mh_host_finder_info).
 */
#include <stdint.h>
#include <string.h>

#include "cli.h"
#include "modhost/finder.h"

/* How the module was found: the meta chain link that answered and, when
 * that was the search path walk, the path hook that claimed the entry. */
typedef struct found_via {
    const char *link;        /* meta link: "path" or a meta finder's name */
    const char *hook;        /* the entry's path hook, or NULL */
    mh_finder_info finder;   /* chain link of info->finder (zeroed: none) */
} found_via;

static void describe_via(mh_host *host, const mh_spec_info *info,
                         found_via *via)
{
    /* entry_index SIZE_MAX: a meta-path finder answered for itself. */
    int meta = info->entry_index == SIZE_MAX;
    size_t n = mh_host_finder_count(host);

    memset(via, 0, sizeof *via);
    via->link = meta ? info->finder : "path";
    via->hook = meta ? NULL : info->finder;
    for (size_t i = 0; info->finder && i < n; i++) {
        mh_finder_info fi;
        memset(&fi, 0, sizeof fi);
        fi.size = sizeof fi;
        if (mh_host_finder_info(host, i, &fi) != MH_OK || !fi.name ||
            strcmp(fi.name, info->finder) != 0 || !fi.role ||
            strcmp(fi.role, meta ? "meta" : "hook") != 0)
            continue;
        via->finder = fi;
        break;
    }
}

static void print_text(mh_host *host, const mh_spec_info *info, int verbose)
{
    printf("name: %s\n", cli_str(info->name));
    printf("kind: %s\n", mh_module_kind_name(info->kind));
    printf("loader: %s\n", cli_str(info->loader));
    printf("finder: %s\n", cli_str(info->finder));
    printf("origin: %s\n", cli_str(info->origin));
    cli_print_entry(host, info->entry_index);
    if (!verbose)
        return;

    found_via via;
    describe_via(host, info, &via);
    if (via.hook)
        printf("via: meta %s > entry %zu > hook %s\n", cli_str(via.link),
               info->entry_index, via.hook);
    else
        printf("via: meta %s\n", cli_str(via.link));
    printf("finder module: %s\n", cli_str(via.finder.module));
    fputs("finder description: ", stdout);
    cli_put_field(via.finder.description);
    putchar('\n');
}

/* The JSON form: cli_spec_json, plus with verbose the keys link, hook,
 * finder_module and finder_description. */
static cJSON *find_json(mh_host *host, const mh_spec_info *info,
                        int verbose)
{
    cJSON *obj = cli_spec_json(host, info);
    if (!obj || !verbose)
        return obj;

    found_via via;
    describe_via(host, info, &via);
    if (!cli_add_string(obj, "link", via.link) ||
        !cli_add_string(obj, "hook", via.hook) ||
        !cli_add_string(obj, "finder_module", via.finder.module) ||
        !cli_add_string(obj, "finder_description", via.finder.description)) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

int cli_cmd_find(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "plain", no_argument, NULL, 'P' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int json = 0, verbose = 0, code, c;

    /* --plain: finding never opens the file, so it changes nothing here;
     * accepted so a `run` command line becomes a `find` one by changing
     * the verb. */
    while ((c = cli_getopt(cmd, argc, argv, ":hv", longopts, &code)) != -1) {
        if (c == 0)
            return code;
        if (c == 'j')
            json = 1;
        else if (c == 'v')
            verbose = 1;
    }
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
        code = cli_fail_name(err, "find", argv[optind]);
    } else if (json) {
        code = cli_print_json(find_json(host, &info, verbose));
    } else {
        print_text(host, &info, verbose);
        code = cli_finish_output(CLI_EXIT_OK);
    }
    mh_host_free(host);
    return code;
}
