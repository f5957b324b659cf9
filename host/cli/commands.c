/*
 * commands.c -- the command table of `modhost`, the help texts (global and
 * per command) and the `help` command.
 *
 * The global help is the reference for the exit codes and the text output
 * formats; keep it in step with README.md.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd_probe.h"

static const cli_command commands[] = {
    { "run", cli_cmd_run, "[--plain] NAME [ARGS...]",
      "import NAME and call its main(ARGS)",
      "Import the module NAME, look up its export \"main\", of type\n"
      "int main(int argc, char **argv), and call it with argv[0] = NAME and\n"
      "the remaining ARGS (options after NAME belong to the module).\n"
      "modhost exits with main's return value (0-255).\n"
      "\n"
      "Options:\n"
      "  --plain     accept a shared object without a modhost descriptor\n"
      "              (MH_IMPORT_PLAIN); \"main\" is then looked up with dlsym\n"
      "  -h, --help  show this help\n" },
    { "call", cli_cmd_call, "[--plain] NAME FUNCTION [JSON-ARRAY]",
      "call FUNCTION of module NAME with JSON values",
      "Import the module NAME and call its function FUNCTION with the\n"
      "elements of JSON-ARRAY as arguments (default [], no arguments);\n"
      "print the result as JSON on one line.  A Lua function's first return\n"
      "value is the result (null when it returns none).  Calls work for Lua\n"
      "modules (the functions of the table the module's chunk returned)\n"
      "and for native ones (the functions their descriptor declares with\n"
      "MH_CALL).  Numbers are printed as the shortest text that reads back\n"
      "as exactly them.\n"
      "\n"
      "  modhost call textutil upper '[\"hello\"]'     prints \"HELLO\"\n"
      "\n"
      "Exit status: 2 when JSON-ARRAY is not valid JSON or not an array;\n"
      "3 when NAME is not found or not a valid module name; 1 when the call\n"
      "fails (no such function, a module with no callable functions, a\n"
      "value with no JSON form, or an error raised by the function,\n"
      "reported with its message and Lua traceback).\n"
      "\n"
      "Options:\n"
      "  --plain     as for run (MH_IMPORT_PLAIN)\n"
      "  -h, --help  show this help\n" },
    { "find", cli_cmd_find, "[--json] [--plain] [-v] NAME",
      "where NAME would be imported from",
      "Show where the module NAME would be imported from, without loading\n"
      "it, as lines \"key: value\" for the keys name, kind, loader, finder,\n"
      "origin and entry (\"entry: INDEX TEXT\", the search path entry that\n"
      "has it; \"entry: -\" when a meta-path finder answered for itself).\n"
      "Unknown values are shown as \"-\".\n"
      "\n"
      "With -v, three more lines say how the finder chain found it (see\n"
      "'modhost help path'):\n"
      "  via: meta path > entry INDEX > hook FINDER\n"
      "      the search path walk (the meta chain's link \"path\") reached\n"
      "      entry INDEX, claimed by the path hook FINDER; \"via: meta\n"
      "      FINDER\" when a meta-path finder found it\n"
      "  finder module: MODULE\n"
      "      the plugin module that brought the finder (finders.SCHEME),\n"
      "      \"-\" for a built-in one\n"
      "  finder description: TEXT\n"
      "      the finder's one-line description\n"
      "\n"
      "Options:\n"
      "  --json         print one JSON object with the keys name, kind,\n"
      "                 loader, finder, origin, entry (the index, or null)\n"
      "                 and entry_text; with -v also link, hook,\n"
      "                 finder_module and finder_description\n"
      "  --plain        as for run; finding does not open the file, so the\n"
      "                 search itself is the same with or without it\n"
      "  -v, --verbose  show the finder chain link and entry (above); the\n"
      "                 global -v (before COMMAND) traces the search instead\n"
      "  -h, --help     show this help\n" },
    { "show", cli_cmd_show, "[--json] NAME",
      "the metadata of NAME, without running its code",
      "Show the metadata of the module NAME without loading it or running\n"
      "any of its code: where it is, and its manifest, read from the ELF note\n"
      "a native plugin carries (MH_PLUGIN_MANIFEST) or else from a sidecar\n"
      "NAME.json beside the module.  Lines \"key: value\":\n"
      "  name, kind, finder, origin, entry   as for 'modhost find'\n"
      "  metadata      where the manifest came from: elf-note, sidecar, or\n"
      "                none (the module has no manifest)\n"
      "  version, description\n"
      "  abi           the plugin ABI it was built for (native plugins)\n"
      "  modhost       the modhost versions it accepts\n"
      "  requires      NAME [CONSTRAINT], one line per module it requires,\n"
      "                imported first, in order\n"
      "  provides      GROUP EXPORT, one line per entry point (see\n"
      "                'modhost list --provides GROUP')\n"
      "Unknown values, and empty requires or provides, are shown as \"-\".\n"
      "\n"
      "Exit status: 3 when NAME is not found or not a valid module name; 1\n"
      "when its manifest cannot be read or is malformed (the message names\n"
      "the file and the field).\n"
      "\n"
      "Options:\n"
      "  --json      print the manifest as JSON ({} when there is none); the\n"
      "              output can serve as a sidecar NAME.json\n"
      "  -h, --help  show this help\n" },
    { "list", cli_cmd_list, "[--json] [-l | --provides GROUP]",
      "every module on the search path",
      "List every module visible on the search path, in name order, one\n"
      "line per module: NAME<TAB>KIND<TAB>ORIGIN.  A name present in several\n"
      "entries is listed once, from the entry import would pick.  No module\n"
      "is loaded and none of their code runs.\n"
      "\n"
      "With -l, each line goes on with each module's metadata (as 'modhost\n"
      "show' reads it): NAME<TAB>KIND<TAB>ORIGIN<TAB>VERSION<TAB>DESCRIPTION.\n"
      "A module whose metadata could not be read, or whose load or init\n"
      "failed, has \"skipped: REASON\" for its description: discovery skips\n"
      "it until its file changes (see 'modhost doctor').  Trouble that may\n"
      "pass (the finder could not read it now: I/O, a lock, a database row\n"
      "it cannot decode) is shown the same way but not recorded, so\n"
      "'modhost doctor' does not list it and the next listing tries again.\n"
      "Metadata is kept in an index in the cache directory, so unchanged\n"
      "modules are not read again.\n"
      "\n"
      "With --provides GROUP, the modules whose manifest provides the entry\n"
      "point GROUP, one line each: MODULE<TAB>EXPORT<TAB>VERSION<TAB>ORIGIN,\n"
      "EXPORT being what implements it (\"call:encode\": a JSON call).\n"
      "Modules with a recorded failure are left out.  A GROUP no module\n"
      "provides lists nothing, with status 0.\n"
      "\n"
      "Options:\n"
      "  --json            print a JSON array of objects with the keys name,\n"
      "                    kind, loader, finder, origin, entry (the index) and\n"
      "                    entry_text; with -l also version, description,\n"
      "                    metadata, status and reason (null unless skipped);\n"
      "                    with --provides: group, module, export, version\n"
      "                    and origin\n"
      "  -l, --long        add version and description (above)\n"
      "  --provides GROUP  list the providers of the entry point GROUP\n"
      "  -h, --help        show this help\n" },
    { "path", cli_cmd_path, "[--json]",
      "the search path and the finder chain",
      "Show the effective search path, first entry first, one line per\n"
      "entry: INDEX<TAB>ENTRY<TAB>SOURCE<TAB>FINDER.  SOURCE is config (-p),\n"
      "environment (MODHOST_PATH), default or api; FINDER is the path hook\n"
      "that claimed the entry, or \"-\" when none could.  Under an entry, an\n"
      "indented line \"  shadows: HOOK, ...\" names later hooks that would\n"
      "have claimed it too, \"  error: REASON\" says why the entry is\n"
      "unusable, and \"  note: TEXT\" what else to know (a directory that\n"
      "does not exist yet).\n"
      "\n"
      "Then, after an empty line and \"finder chain:\", the links of the\n"
      "finder chain in the order they are asked, one per line:\n"
      "ROLE<TAB>NAME<TAB>SCHEME<TAB>MODULE<TAB>DESCRIPTION.  ROLE is meta\n"
      "(asked for every module; \"path\" is the walk over the entries above)\n"
      "or hook (claims entries: \"SCHEME:...\", or by their look); MODULE is\n"
      "the plugin module that brought the finder (an entry \"tar:...\" imports\n"
      "finders.tar), \"-\" for a built-in one.\n"
      "\n"
      "Options:\n"
      "  --json      print a JSON array of the entries, objects with the keys\n"
      "              index, entry, source, finder (null when none claimed\n"
      "              it), shadowed (an array of names), error and note\n"
      "              (each a string or null)\n"
      "  -h, --help  show this help\n" },
    { "doctor", cli_cmd_doctor, "[--json] [--clear [NAME]]",
      "modules that failed, and why",
      "Read the metadata of every module on the search path (as 'modhost\n"
      "list -l' does, running none of their code), then list the failures\n"
      "recorded in the discovery index: modules whose metadata could not be\n"
      "read, or whose load or init failed.  Discovery skips such a module\n"
      "until its file changes.  One line per failure:\n"
      "NAME<TAB>ORIGIN<TAB>STATUS<TAB>WHEN<TAB>REASON, STATUS a name such as\n"
      "MH_EFORMAT, WHEN the UTC time it was recorded (YYYY-MM-DDTHH:MM:SSZ).\n"
      "With no failure, prints \"no recorded failures\".  The status is 0\n"
      "either way; 1 when the index cannot be read.\n"
      "\n"
      "With --clear, forget the recorded failures instead (all, or NAME's)\n"
      "and print \"cleared N recorded failures in CACHE_DIR\": the next\n"
      "discovery reads those modules again, and records them again if they\n"
      "still fail.  --clear runs no discovery.\n"
      "\n"
      "Options:\n"
      "  --json      print a JSON array of objects with the keys name,\n"
      "              origin, status, reason and when (Unix time)\n"
      "  --clear     clear all recorded failures, or NAME's only\n"
      "  -h, --help  show this help\n" },
    { "cache", cli_cmd_cache, "[--json] [--prune DAYS]",
      "what the cache directory holds; prune it",
      "Show what the cache directory holds, one line per part:\n"
      "PART<TAB>FILES<TAB>BYTES<TAB>REMOVED_FILES<TAB>REMOVED_BYTES, then\n"
      "the same for \"total\".  The parts: bytecode (compiled Lua), blobs\n"
      "(downloaded modules, copies of database modules), stamps (copies\n"
      "already hashed), probes (modules the probe passed), scratch (files\n"
      "a process that died while loading a module left), http (each site's\n"
      "index, signature and serial floor) and index (the discovery index).\n"
      "\n"
      "With --prune DAYS, first remove every file of the first five parts\n"
      "not read or written for DAYS days (a fraction is allowed; 0 removes\n"
      "all but what was touched in the last ten minutes, which a host may\n"
      "be writing or loading).  Each is made again when a module needs it,\n"
      "and hosts running meanwhile lose nothing.  A download a site's\n"
      "cached index lists stays (what 'modhost fetch' keeps for offline\n"
      "use).  http and index are never pruned: http holds the serial\n"
      "floors that keep older signed indexes out, index the recorded\n"
      "failures ('modhost doctor --clear' forgets those).  A file's last\n"
      "use is its access time, which Linux updates at most once a day\n"
      "(relatime): it counts for a day more, so a DAYS below 1 can remove\n"
      "a file used that recently.  On a filesystem mounted noatime it is\n"
      "when the file was written.\n"
      "\n"
      "Exit status: 1 when the cache directory cannot be used (not\n"
      "private, or there is none) or a file in it cannot be read or\n"
      "removed (the rest is still done and shown).  No cache directory yet\n"
      "shows zeros and makes none.\n"
      "\n"
      "Options:\n"
      "  --json          print one JSON object: cache_dir, and parts, an\n"
      "                  object with one object per part (files, bytes,\n"
      "                  removed_files, removed_bytes)\n"
      "  --prune DAYS    remove what was not used for DAYS days\n"
      "  -h, --help      show this help\n" },
    { "pack", cli_cmd_pack, "[--compress-code] DB FILE_OR_DIR...",
      "write modules into the module database DB",
      "Write each FILE, and every file under each DIR, into the module\n"
      "database DB (created if absent); print \"packed N files into DB\".\n"
      "\n"
      "A module database is a SQLite Archive, the `sqlar` table of\n"
      "`sqlite3 -A`: `sqlite3 DB -At` lists it, `sqlite3 DB -Ax` extracts it,\n"
      "and a database made by `sqlite3 DB -Ac` is a module database too.\n"
      "Give DB as a search path entry (-p DB, or -p sqlite:DB) to import\n"
      "from it.\n"
      "\n"
      "Entry names (module a.b.c is the entry a/b/c.so):\n"
      "  a relative FILE    stored under its path as given, which must not\n"
      "                     contain \"..\" (cd to the top of the tree first)\n"
      "  an absolute FILE   stored under its base name\n"
      "  a DIR              each file under it, by its path relative to DIR,\n"
      "                     so packing a search path directory gives a\n"
      "                     database with the same modules\n"
      "\n"
      "Native code (.so) is stored as is, so that importing it needs no\n"
      "inflating; other files are zlib-compressed where that makes them\n"
      "smaller (--compress-code compresses native code too: a smaller DB,\n"
      "slower imports).  An entry that\n"
      "already exists under the same name is replaced.  Everything is written\n"
      "in one transaction: programs importing from DB meanwhile see all of\n"
      "the new entries or none, and on failure DB is left as it was (a DB\n"
      "created by this command is removed).\n"
      "\n"
      "Options:\n"
      "  --compress-code  zlib-compress native code too\n"
      "  -h, --help       show this help\n"
      "  --               end of options, for a FILE_OR_DIR starting with '-'\n" },
    { "index", cli_cmd_index, "[--sign KEY] DIR",
      "describe DIR for serving over HTTP(S)",
      "Write DIR/index.json, the list of the modules under DIR that the HTTP\n"
      "finder reads, and print \"indexed N modules in DIR/index.json\".  Serve\n"
      "DIR with any static file server (nginx, a CDN, an object store,\n"
      "`python3 -m http.server`) and give its URL as a search path entry\n"
      "(-p https://HOST/DIR/) to import from it.  Index again after any\n"
      "module changes.\n"
      "\n"
      "Modules are found as in a search path directory: the file a/b/c.so is\n"
      "the native module a.b.c, a/b/c.lua the Lua module a.b.c; hidden files\n"
      "and other names are left out; links to directories are followed.\n"
      "\n"
      "index.json (format 1) is one JSON object, modules sorted by name:\n"
      "  {\"format\": 1, \"generator\": \"modhost VERSION\",\n"
      "   \"modules\": [{\"name\": \"a.b.c\", \"kind\": \"native\",\n"
      "                \"path\": \"a/b/c.so\", \"size\": BYTES,\n"
      "                \"sha256\": \"64 HEX DIGITS\"}, ...]}\n"
      "A host loads a downloaded module only if its bytes have that size and\n"
      "SHA-256.\n"
      "\n"
      "Signing: with --sign KEY, a private key made by 'modhost keygen',\n"
      "DIR/index.json.sig holds the Ed25519 signature of the exact bytes of\n"
      "index.json (64 bytes, raw).  A host with trusted keys (MODHOST_TRUST,\n"
      "';'-separated PEM public key files such as BASE.pub) refuses an index\n"
      "that is not signed by one of them.  Without --sign, an old\n"
      "index.json.sig is removed: it could not match the new index.\n"
      "KEY must be readable by its owner only (chmod 600: whoever reads it\n"
      "can sign), and must not lie inside DIR (it would be served with the\n"
      "index); either is refused before anything is written.\n"
      "\n"
      "Each file is written to a temporary file in DIR, flushed to disk and\n"
      "renamed into place: a server never serves half a file, and on failure\n"
      "index.json is left as it was.\n"
      "\n"
      "Options:\n"
      "  -s, --sign KEY  also sign the index with the Ed25519 private key in\n"
      "                  the PEM file KEY\n"
      "  -h, --help      show this help\n"
      "  --              end of options, for a DIR starting with '-'\n" },
    { "keygen", cli_cmd_keygen, "BASE",
      "make an Ed25519 key pair for signing indexes",
      "Make an Ed25519 key pair and print the names of its two files:\n"
      "  BASE.key  the private key (PEM PKCS#8, not encrypted, mode 0600),\n"
      "            for 'modhost index --sign BASE.key DIR'; keep it secret,\n"
      "            on the machine that writes the index, not on the server\n"
      "  BASE.pub  the public key (PEM), for the hosts that import: list it\n"
      "            in MODHOST_TRUST (';'-separated PEM files) and they accept\n"
      "            only indexes signed with BASE.key\n"
      "Existing files are never overwritten, and a BASE that names a\n"
      "directory (ending in '/', '.' or '..') is refused: give a file name\n"
      "such as DIR/release.  Both are standard formats:\n"
      "  openssl pkeyutl -verify -pubin -inkey BASE.pub -rawin \\\n"
      "      -in index.json -sigfile index.json.sig\n"
      "checks a signature without modhost.\n"
      "\n"
      "Options:\n"
      "  -h, --help  show this help\n"
      "  --          end of options, for a BASE starting with '-'\n" },
    { "fetch", cli_cmd_fetch, "[NAME...]",
      "download modules into the cache for offline use",
      "Download modules from the HTTP(S) entries of the search path into the\n"
      "cache ahead of time, so that they import later without the network:\n"
      "run it to prepare a machine for offline use.  With no NAME, every\n"
      "module of every HTTP entry; else each NAME, from the first HTTP entry\n"
      "that has it.  Print \"fetched N modules into CACHE_DIR\".\n"
      "\n"
      "Each module is checked against its entry's index (size and SHA-256,\n"
      "and the index's signature when MODHOST_TRUST names trusted keys)\n"
      "before it is cached.  The cache is $XDG_CACHE_HOME/modhost\n"
      "(~/.cache/modhost by default).  When stderr is a terminal, a progress\n"
      "bar is drawn there.\n"
      "\n"
      "Exit status: 1 when a download, a check or the writing into the\n"
      "cache fails, an HTTP entry cannot be used, or nothing can be cached\n"
      "(the cache directory is not private, or there is none); 3 when a\n"
      "NAME is in no HTTP entry's index (or is not a valid module name).\n"
      "\n"
      "Options:\n"
      "  -h, --help  show this help\n"
      "  --          end of options, for a NAME starting with '-'\n" },
    { "probe", cli_cmd_probe, "[--plain] [--name NAME] FILE",
      "check a native plugin in a child process",
      "Check the native plugin FILE as module NAME (default: FILE's base\n"
      "name without .so) the way a host in probe mode (MH_CONFIG_PROBE) does\n"
      "before loading a new plugin: a child process loads it, runs its init\n"
      "and its fini, and this command reports how that went.  A plugin that\n"
      "crashes, aborts, exits or hangs there cannot harm this process; it\n"
      "fails with the reason, e.g.\n"
      "  modhost: module 'x' (/p/x.so) failed its probe in a child process:\n"
      "  crashed in init: signal 11 (Segmentation fault); not loaded\n"
      "Other reasons: \"aborted (signal 6)\", \"hung: no answer in 10 s\",\n"
      "\"exited in init with status N\", or the plugin's own error.  The time\n"
      "limit is 10 s, or MODHOST_PROBE_TIMEOUT_MS milliseconds.  A plugin that\n"
      "passes is then loaded here too, and \"NAME: ok (FILE)\" printed.  The\n"
      "search path serves what the plugin's init imports.  Nothing is\n"
      "recorded or cached by this command.\n"
      "\n"
      "Exit status: 0 when it passed; 1 when it failed; 3 when FILE does not\n"
      "exist.\n"
      "\n"
      "Options:\n"
      "  --plain        accept a shared object without a modhost descriptor\n"
      "  --name NAME    the module name to load FILE as\n"
      "  --in-process   check it in this process instead: what the child\n"
      "                 runs (a crash then ends this process); with the\n"
      "                 options --status-fd, --origin, --cache-dir,\n"
      "                 --config-flags and --host-version used by libmodhost\n"
      "                 (see docs/probe.md)\n"
      "  -h, --help     show this help\n" },
    { "help", cli_cmd_help, "[COMMAND]",
      "help for modhost or for COMMAND",
      "Show the global help, or the help of COMMAND.\n" },
    { NULL, NULL, NULL, NULL, NULL }
};

const cli_command *cli_command_find(const char *name)
{
    for (const cli_command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

void cli_usage(FILE *out)
{
    fputs("Usage: modhost [-p ENTRY]... [-E] [-v] COMMAND [ARGS...]\n"
          "\n"
          "Find, list, show, run and call modhost modules; pack them into a\n"
          "database, or index them for serving over HTTP and fetch them for\n"
          "offline use; see which finders serve the search path and which\n"
          "modules failed (doctor); check a plugin in a child process\n"
          "(probe); show what the cache holds and prune it (cache).\n"
          "\n"
          "Global options (before COMMAND):\n"
          "  -p, --path ENTRY  search ENTRY first; repeatable, in order (an\n"
          "                    ENTRY may hold several ';'-separated entries)\n"
          "  -E, --isolated    ignore MODHOST_* environment variables\n"
          "  -v, --verbose     trace every search decision on stderr\n"
          "  -h, --help        show this help and exit\n"
          "      --version     show the version and plugin ABI and exit\n"
          "\n"
          "Commands:\n", out);
    for (const cli_command *c = commands; c->name; c++) {
        char head[64];
        snprintf(head, sizeof head, "%s %s", c->name, c->synopsis);
        /* A long synopsis gets a line of its own. */
        if (strlen(head) >= 29)
            fprintf(out, "  %s\n  %-30s%s\n", head, "", c->summary);
        else
            fprintf(out, "  %-30s%s\n", head, c->summary);
    }
    fputs("\n"
          "Search path: the -p entries, then MODHOST_PATH, then the defaults\n"
          "(<libdir>/modhost/modules beside libmodhost, and\n"
          "$XDG_DATA_HOME/modhost/modules).  MODHOST_PATH is ';'-separated;\n"
          "when it is set, the defaults are searched only where it has ';;'.\n"
          "An entry is a directory, a module database (a SQLite file, see\n"
          "'modhost help pack'; also written sqlite:/path/to.db), or the\n"
          "http:// or https:// URL of a directory indexed by 'modhost index'.\n"
          "MODHOST_TRUST lists trusted public keys (';'-separated PEM files):\n"
          "when set, an HTTP entry's index must be signed by one of them (see\n"
          "'modhost help keygen').  MODHOST_VERBOSE=1 traces like -v.\n"
          "\n"
          "Exit status:\n"
          "  0  success\n"
          "  1  the module was found but failed to load or initialise, or\n"
          "     another run-time failure\n"
          "  2  usage error: unknown command or option, missing argument\n"
          "  3  module not found, or invalid module name\n"
          "  `run` otherwise exits with the module's main() result (0-255).\n"
          "\n"
          "Run 'modhost help COMMAND' for the options of a command.\n", out);
}

void cli_command_usage(const cli_command *cmd, FILE *out)
{
    fprintf(out, "Usage: modhost [GLOBAL OPTIONS] %s %s\n\n%s", cmd->name,
            cmd->synopsis, cmd->help);
}

int cli_cmd_help(const cli_ctx *ctx, const cli_command *cmd, int argc,
                 char **argv)
{
    (void)ctx;
    int code = cli_parse_no_opts(cmd, argc, argv);
    if (code >= 0)
        return code;
    if (argc - optind > 1)
        return cli_usage_error(cmd, "too many arguments");
    if (optind == argc) {
        cli_usage(stdout);
        return cli_finish_output(CLI_EXIT_OK);
    }
    const cli_command *topic = cli_command_find(argv[optind]);
    if (!topic)
        return cli_usage_error(cmd, "unknown command '%s'", argv[optind]);
    cli_command_usage(topic, stdout);
    return cli_finish_output(CLI_EXIT_OK);
}
