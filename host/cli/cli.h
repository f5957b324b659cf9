/*
 * cli.h -- shared declarations of the `modhost` command-line tool.
 *
 * main.c parses the global options into a cli_ctx and dispatches to one
 * cli_cmd_* function per command (cmd_*.c); commands.c has the command
 * table and the help texts.  util.c holds what several
 * commands share: making the host, turning errors into exit codes, and
 * describing a module spec as text or JSON.
 */
#ifndef MODHOST_CLI_H
#define MODHOST_CLI_H

#include <getopt.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "modhost.h"

/* Exit codes (documented in `modhost --help`).  `run` otherwise exits with
 * the module's own main() result. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,   /* found but failed to load/init, or other */
    CLI_EXIT_USAGE = 2,     /* unknown command/option, missing argument */
    CLI_EXIT_NOTFOUND = 3   /* MH_ENOTFOUND or MH_EBADNAME */
};

/* What the global options asked for; commands turn it into a host. */
typedef struct cli_ctx {
    char *path;         /* the -p entries joined with ';', or NULL */
    unsigned flags;     /* MH_CONFIG_* */
} cli_ctx;

typedef struct cli_command cli_command;

/* A command: cmd is its own table entry, argv[0] its name, argv[argc] is
 * NULL.  Returns the process exit code. */
typedef int (*cli_cmd_fn)(const cli_ctx *ctx, const cli_command *cmd,
                          int argc, char **argv);

struct cli_command {
    const char *name;
    cli_cmd_fn run;
    const char *synopsis;   /* arguments after the name, for usage lines */
    const char *summary;    /* one line for the global help */
    const char *help;       /* the rest of the command's own help */
};

int cli_cmd_run(const cli_ctx *ctx, const cli_command *cmd, int argc,
                char **argv);
int cli_cmd_call(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv);
int cli_cmd_find(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv);
int cli_cmd_list(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv);
int cli_cmd_show(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv);
int cli_cmd_path(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv);
int cli_cmd_cache(const cli_ctx *ctx, const cli_command *cmd, int argc,
                  char **argv);
int cli_cmd_doctor(const cli_ctx *ctx, const cli_command *cmd, int argc,
                   char **argv);
int cli_cmd_pack(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv);
int cli_cmd_index(const cli_ctx *ctx, const cli_command *cmd, int argc,
                  char **argv);
int cli_cmd_keygen(const cli_ctx *ctx, const cli_command *cmd, int argc,
                   char **argv);
int cli_cmd_fetch(const cli_ctx *ctx, const cli_command *cmd, int argc,
                  char **argv);
int cli_cmd_help(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv);

/* ------------------------------------------------------ commands.c */

/* Lookup in the command table by name; NULL if unknown. */
const cli_command *cli_command_find(const char *name);

/* Print the global usage (`modhost --help`) to out. */
void cli_usage(FILE *out);

/* Print a command's usage and help text to out. */
void cli_command_usage(const cli_command *cmd, FILE *out);

/* ------------------------------------------------------------ util.c */

/* printf-style "modhost: <message>\n" to stderr. */
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Parse a command's own options with getopt_long.  Options understood by
 * every command (-h/--help) are handled here: the usage is printed and
 * *exit_code set.  For the command's options, the option character is
 * returned as getopt_long would return it; -1 ends the options (optind is
 * then the first operand).  On a usage error the message is printed,
 * *exit_code is CLI_EXIT_USAGE and 0 is returned, as after --help; callers
 * return *exit_code whenever 0 comes back.
 */
int cli_getopt(const cli_command *cmd, int argc, char **argv,
               const char *shortopts, const struct option *longopts,
               int *exit_code);

/* Report a usage error for cmd ("modhost: CMD: message" and a hint). */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Create the host from ctx.  On failure the error is reported and the
 * exit code returned; 0 on success. */
int cli_host_new(const cli_ctx *ctx, mh_host **out);

/* Report err on stderr, free it, and return the exit code it maps to. */
int cli_fail(mh_error *err);
/* The same for command cmd's failure to find or import name; when name
 * looks like a file (a '/', or a module file's suffix), a hint on how to
 * name it. */
int cli_fail_name(mh_error *err, const char *cmd, const char *name);

/* Commands whose only option is --help.  Returns -1 to go on, else the
 * exit code to return. */
int cli_parse_no_opts(const cli_command *cmd, int argc, char **argv);

/* Options of the query commands that have only --json and --help.
 * Returns -1 when the command should go on, else the exit code to return
 * (after --help or a usage error). */
int cli_parse_query_opts(const cli_command *cmd, int argc, char **argv,
                         int *json);

/* Options of the commands that import a module (run, call): --plain
 * (MH_IMPORT_PLAIN into *flags) and --help; parsing stops at NAME.
 * Returns -1 to go on, else the exit code to return. */
int cli_parse_import_opts(const cli_command *cmd, int argc, char **argv,
                          unsigned *flags);

/* Map a status to an exit code (never CLI_EXIT_OK for a failure). */
int cli_exit_code(mh_status st);

/* The text of a search path entry, or NULL if out of range. */
const char *cli_entry_text(mh_host *host, size_t index);

/* Add key: s to obj (null when s is NULL).  Returns 0 when out of
 * memory. */
int cli_add_string(cJSON *obj, const char *key, const char *s);

/* Add "entry" (the index) and "entry_text" for search path entry index
 * to obj; both null for SIZE_MAX (found by a meta-path finder, not in an
 * entry).  Returns 0 when out of memory. */
int cli_add_entry_json(mh_host *host, cJSON *obj, size_t index);

/* Print the line "entry: INDEX TEXT" ("entry: -" for SIZE_MAX). */
void cli_print_entry(mh_host *host, size_t index);

/* A new JSON object {name, kind, loader, finder, origin, entry,
 * entry_text} for info, or NULL when out of memory. */
cJSON *cli_spec_json(mh_host *host, const mh_spec_info *info);

/* Print json (pretty) followed by a newline on stdout and delete it.
 * Returns 0, or the exit code after reporting out of memory (json may be
 * NULL, meaning an earlier allocation failed). */
int cli_print_json(cJSON *json);

/* json (taken) with every finite number as raw text that reads back as
 * exactly it (cJSON alone prints 15 digits where they read back within
 * its epsilon); NULL when memory runs out. */
cJSON *cli_exact_json(cJSON *json);

/* s, or "-" when s is NULL: for text output. */
const char *cli_str(const char *s);

/* Print s to stdout as one field of a line: tabs and line breaks become
 * spaces; NULL or "" prints "-". */
void cli_put_field(const char *s);

/* Flush stdout and report a write error (e.g. a full disk) as a failure.
 * Returns code unchanged when the flush succeeds. */
int cli_finish_output(int code);

#endif /* MODHOST_CLI_H */
