/*
 * cmd_path.c -- `modhost path [--json]`: the effective search path, with
 * where each entry came from, which finder claimed it, the hooks it
 * shadows and why it is unusable (mh_host_path_entry_info); then the
 * finder chain, link by link (mh_host_finder_info).
 *
 * Text output keeps the entry lines INDEX<TAB>ENTRY<TAB>SOURCE<TAB>FINDER
 * as they always were; what was added is on lines of other shapes, so a
 * script that reads lines beginning with a number still works:
 *
 *   0	/srv/plugins	config	fs
 *     shadows: tar
 *   1	/srv/gone.db	config	-
 *     error: /srv/gone.db: no such file
 *   2	/opt/app/plugins	env	fs
 *     note: the directory does not exist (yet)
 *
 *   finder chain:
 *   meta	path	-	-	DESCRIPTION
 *   hook	http	http	-	DESCRIPTION
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "modhost/finder.h"

/* ", "-separated names as a JSON array of strings (empty for NULL), or
 * NULL when out of memory. */
static cJSON *names_json(const char *list)
{
    cJSON *arr = cJSON_CreateArray();

    while (arr && list && *list) {
        size_t n = strcspn(list, ",");
        char *name = strndup(list, n);
        cJSON *s = name ? cJSON_CreateString(name) : NULL;
        free(name);
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            cJSON_Delete(arr);
            return NULL;
        }
        list += n;
        while (*list == ',' || *list == ' ')
            list++;
    }
    return arr;
}

/* What a user should know about a directory entry that is fine for its
 * finder, or NULL: the filesystem finder takes a directory that does not
 * exist yet (modules appear once it does), and the SQLite finder such a
 * database (`modhost pack` makes it), which is no error, but is seldom
 * meant. */
static const char *entry_note(const mh_path_entry_info *e)
{
    struct stat st;
    if (e->finder && strcmp(e->finder, "sqlite") == 0 && e->entry &&
        strncmp(e->entry, "sqlite:/", 8) == 0 &&
        stat(e->entry + 7, &st) != 0 && errno == ENOENT)
        return "the database does not exist (yet)";
    if (!e->finder || strcmp(e->finder, "fs") != 0 || !e->entry ||
        e->entry[0] != '/')
        return NULL;
    if (stat(e->entry, &st) != 0)
        return errno == ENOENT    ? "the directory does not exist (yet)"
               : errno == ENOTDIR ? "the directory cannot exist: a part of "
                                    "its path is a file"
                                  : "the directory cannot be looked at";
    return S_ISDIR(st.st_mode) ? NULL : "not a directory (any more)";
}

/* A new JSON object {index, entry, source, finder, shadowed, error,
 * note}, or NULL when out of memory. */
static cJSON *entry_json(size_t i, const mh_path_entry_info *e)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON *shadowed = names_json(e->shadowed);

    if (!obj || !shadowed ||
        !cJSON_AddNumberToObject(obj, "index", (double)i) ||
        !cJSON_AddStringToObject(obj, "entry", cli_str(e->entry)) ||
        !cJSON_AddStringToObject(obj, "source",
                                 mh_path_source_name(e->source)) ||
        !cli_add_string(obj, "finder", e->finder) ||
        !cJSON_AddItemToObject(obj, "shadowed", shadowed))
        goto fail;
    shadowed = NULL; /* obj owns it now */
    if (!cli_add_string(obj, "error", e->error) ||
        !cli_add_string(obj, "note", entry_note(e)))
        goto fail;
    return obj;
fail:
    cJSON_Delete(shadowed);
    cJSON_Delete(obj);
    return NULL;
}

/* Print the path as text, or add it to array.  Returns 0, or -1 when out
 * of memory. */
static int show_path(mh_host *host, cJSON *array)
{
    size_t n = mh_host_path_count(host);

    for (size_t i = 0; i < n; i++) {
        mh_path_entry_info e;

        memset(&e, 0, sizeof e);
        e.size = sizeof e;
        /* Only an out-of-range index fails, and i < n. */
        if (mh_host_path_entry_info(host, i, &e) != MH_OK)
            continue;
        if (array) {
            cJSON *obj = entry_json(i, &e);
            if (!obj || !cJSON_AddItemToArray(array, obj)) {
                cJSON_Delete(obj);
                return -1;
            }
            continue;
        }
        printf("%zu\t%s\t%s\t%s\n", i, cli_str(e.entry),
               mh_path_source_name(e.source), cli_str(e.finder));
        if (e.shadowed)
            printf("  shadows: %s\n", e.shadowed);
        if (e.error) {
            fputs("  error: ", stdout);
            cli_put_field(e.error);
            putchar('\n');
        }
        const char *note = entry_note(&e);
        if (note)
            printf("  note: %s\n", note);
    }
    return 0;
}

/* The finder chain as text: the meta chain (with "path", the walk over
 * the entries above), then the path hooks, each in the order asked. */
static void show_chain(mh_host *host)
{
    size_t n = mh_host_finder_count(host);

    fputs("\nfinder chain:\n", stdout);
    for (size_t i = 0; i < n; i++) {
        mh_finder_info fi;

        memset(&fi, 0, sizeof fi);
        fi.size = sizeof fi;
        if (mh_host_finder_info(host, i, &fi) != MH_OK)
            continue;
        printf("%s\t%s\t%s\t%s\t", cli_str(fi.role), cli_str(fi.name),
               cli_str(fi.scheme), cli_str(fi.module));
        cli_put_field(fi.description);
        putchar('\n');
    }
}

int cli_cmd_path(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    int json, code = cli_parse_query_opts(cmd, argc, argv, &json);
    if (code >= 0)
        return code;
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

    mh_host *host = NULL;
    cJSON *array = NULL;

    code = cli_host_new(ctx, &host);
    if (code != CLI_EXIT_OK)
        return code;
    if (json && !(array = cJSON_CreateArray())) {
        cli_errorf("out of memory");
        code = CLI_EXIT_FAILURE;
    } else if (show_path(host, array) != 0) {
        cJSON_Delete(array);
        cli_errorf("out of memory");
        code = CLI_EXIT_FAILURE;
    } else if (json) {
        code = cli_print_json(array);
    } else {
        show_chain(host);
        code = cli_finish_output(CLI_EXIT_OK);
    }
    mh_host_free(host);
    return code;
}
