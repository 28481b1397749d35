/* The global options (before the command name), on the shared option table (options.h), parsed apart from main.c so
 * that tests reach them without running a command. */
#pragma once

#include <stdbool.h>

#include "agent.h"

/* What the global options give main besides struct ag_globals. */
struct ag_global_opts {
  const char *docker_host;      /* --docker-host or CLEANUP_AGENT_DOCKER_HOST; NULL: the docker CLI's order */
  const char *docker_host_from; /* which of the two gave it */
  bool version;                 /* -V, --version: nothing else is checked */
};

/* Parses the global options of argv[1..argc), up to the command name (*ret_next), each also from its
 * CLEANUP_AGENT_* variable (the flag wins; an empty variable is unset), into g and o; sets the log level and the
 * default cgroup driver. Returns 0, AG_OPTIONS_HELP, or AG_EXIT_USAGE after one line on stderr. */
int ag_globals_parse(int argc, char **argv, struct ag_globals *g, struct ag_global_opts *o, int *ret_next);
