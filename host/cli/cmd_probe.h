/*
 * cmd_probe.h -- `modhost probe` (cmd_probe.c), declared apart from cli.h
 * only while that file has other editors; its place is beside the other
 * cli_cmd_* declarations there.
 */
#ifndef MODHOST_CLI_CMD_PROBE_H
#define MODHOST_CLI_CMD_PROBE_H

#include "cli.h"

int cli_cmd_probe(const cli_ctx *ctx, const cli_command *cmd, int argc,
                  char **argv);

#endif /* MODHOST_CLI_CMD_PROBE_H */
