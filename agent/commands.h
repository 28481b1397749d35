/* The command handlers of the table in main.c, one file each. */
#pragma once

#include "agent.h"

int ag_cmd_run(const struct ag_globals *g, int argc, char **argv);

/* Checks a user's --label K=V: keys under io.cleanup-agent. are ours, except io.cleanup-agent.keep=true. */
int ag_check_user_label(const char *kv, ca_error **err);
