/*
 * cmd_doctor.c -- `modhost doctor [--json] [--clear [NAME]]`: the modules
 * discovery skips, and why (mh_host_failures), after a discovery of the
 * current search path (mh_discover) so the list is up to date; with
 * --clear, forget them (mh_host_clear_failures).
 */
#include <time.h>

#include "cli.h"

typedef struct doctor_state {
    cJSON *array;   /* --json: the array being built; NULL for text */
    size_t count;
    int oom;
} doctor_state;

static int ignore_meta(void *ud, const mh_module_meta *meta)
{
    (void)ud;
    (void)meta;
    return 0;
}

/* t as "YYYY-MM-DDTHH:MM:SSZ" (UTC), or "-" when out of range. */
static void format_when(int64_t t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if ((int64_t)tt != t || !gmtime_r(&tt, &tm) ||
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "-");
}

static int failure_one(void *ud, const mh_failure *f)
{
    doctor_state *st = ud;

    st->count++;
    if (!st->array) {
        char when[32];
        format_when(f->when, when, sizeof when);
        printf("%s\t%s\t%s\t%s\t", cli_str(f->name), cli_str(f->origin),
               mh_status_name(f->status), when);
        cli_put_field(f->reason);
        putchar('\n');
        return 0;
    }
    cJSON *obj = cJSON_CreateObject();
    if (!obj ||
        !cli_add_string(obj, "name", f->name) ||
        !cli_add_string(obj, "origin", f->origin) ||
        !cli_add_string(obj, "status", mh_status_name(f->status)) ||
        !cli_add_string(obj, "reason", f->reason) ||
        !cJSON_AddNumberToObject(obj, "when", (double)f->when) ||
        /* Judged by this host (ABI, version) at each listing: not in the
         * index, so --clear cannot clear it. */
        !cJSON_AddBoolToObject(obj, "recorded",
                               f->status != MH_EABI &&
                                   f->status != MH_EVERSION) ||
        !cJSON_AddItemToArray(st->array, obj)) {
        cJSON_Delete(obj);
        st->oom = 1;
        return 1;
    }
    return 0;
}

/* doctor: discover, then list what is recorded. */
static int show_failures(mh_host *host, int json)
{
    doctor_state st = { NULL, 0, 0 };
    mh_error *err = NULL;

    if (json && !(st.array = cJSON_CreateArray())) {
        cli_errorf("out of memory");
        return CLI_EXIT_FAILURE;
    }
    if (mh_discover(host, ignore_meta, NULL, &err) != MH_OK ||
        mh_host_failures(host, failure_one, &st, &err) != MH_OK) {
        cJSON_Delete(st.array);
        /* "Not found" would be exit status 3, which means a missing
         * module to the other commands. */
        cli_fail(err);
        return CLI_EXIT_FAILURE;
    }
    if (st.oom) {
        cJSON_Delete(st.array);
        cli_errorf("out of memory");
        return CLI_EXIT_FAILURE;
    }
    if (json)
        return cli_print_json(st.array);
    if (st.count == 0)
        puts("no recorded failures");
    return cli_finish_output(CLI_EXIT_OK);
}

/* doctor --clear [NAME] */
static int clear_failures(mh_host *host, const char *name)
{
    mh_error *err = NULL;
    size_t n = 0;

    if (name && mh_name_check(name, &err) != MH_OK)
        return cli_fail(err);
    if (mh_host_clear_failures(host, name, &n, &err) != MH_OK) {
        cli_fail(err);
        return CLI_EXIT_FAILURE;
    }
    printf("cleared %zu recorded failure%s", n, n == 1 ? "" : "s");
    if (name)
        printf(" of '%s'", name);
    printf(" in %s\n", cli_str(mh_host_cache_dir(host)));
    if (name && n == 0)
        cli_errorf("note: no failure of '%s' is recorded (a module this "
                   "modhost's ABI or version rules out is judged at each "
                   "listing, not recorded, and is listed until it is "
                   "rebuilt)", name);
    return cli_finish_output(CLI_EXIT_OK);
}

int cli_cmd_doctor(const cli_ctx *ctx, const cli_command *cmd, int argc,
                   char **argv)
{
    enum { OPT_CLEAR = 0x100 };
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "clear", no_argument, NULL, OPT_CLEAR },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int json = 0, clear = 0, code, c;

    while ((c = cli_getopt(cmd, argc, argv, ":h", longopts, &code)) != -1) {
        if (c == 0)
            return code;
        if (c == 'j')
            json = 1;
        else if (c == OPT_CLEAR)
            clear = 1;
    }
    if (!clear && optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s' (a module "
                               "name goes after --clear)", argv[optind]);
    if (argc - optind > 1)
        return cli_usage_error(cmd, "too many arguments");
    if (clear && json)
        return cli_usage_error(cmd, "--json and --clear cannot be combined");

    mh_host *host = NULL;

    code = cli_host_new(ctx, &host);
    if (code != CLI_EXIT_OK)
        return code;
    code = clear ? clear_failures(host, optind < argc ? argv[optind] : NULL)
                 : show_failures(host, json);
    mh_host_free(host);
    return code;
}
