/* The command handlers of the table in main.c, one file each. */
#pragma once

#include <stdbool.h>

#include "agent.h"
#include "session.h"

int ag_cmd_run(const struct ag_globals *g, int argc, char **argv);
int ag_cmd_ps(const struct ag_globals *g, int argc, char **argv);
int ag_cmd_kill(const struct ag_globals *g, int argc, char **argv);
int ag_cmd_container_seq(const struct ag_globals *g, int argc, char **argv);
int ag_cmd_gc(const struct ag_globals *g, int argc, char **argv);
int ag_cmd_check(const struct ag_globals *g, int argc, char **argv);

/* Checks a user's --label K=V: keys under io.cleanup-agent. are ours, except io.cleanup-agent.keep=true. */
int ag_check_user_label(const char *kv, ca_error **err);

/* Parses --format: table or json; prints the one-line usage error itself. */
int ag_parse_format(const char *cmd, const char *s, bool *ret_json);

/* ps's options: 0 with *ret_json; AG_OPTIONS_HELP after the usage on stdout; or AG_EXIT_USAGE after one line. */
int ag_ps_parse_opts(int argc, char **argv, bool *ret_json);

/* How much of a session's command ps's table shows. */
#define AG_PS_COMMAND_WIDTH 160
/* argv as a shell would take it back, one line (a script's newlines as $'...\n'), cut to width characters with "..."
 * at the end when longer; into ret (size > width). */
void ag_ps_command_line(const char *const *argv, size_t width, char *ret, size_t size);

/* True when a live agent or guardian holds the session's lease lock. */
bool ag_session_alive(struct ag_state *state, const char *id);
