/* Internal header of the cleanup-agent binary: global options and the command table's handler type. */
#pragma once

#include "common.h"

/* Exit codes from DESIGN.md that the agent chooses itself (run passes the command's own status through). */
enum {
  AG_EXIT_OK = 0,
  AG_EXIT_FAILED = 1,         /* container-seq: a test failed; gc: something was left */
  AG_EXIT_USAGE = 2,          /* usage error of gc, ps, kill, check and the global options */
  AG_EXIT_CHECK_FAILED = 3,   /* check: something run needs with its defaults does not work on this host */
  AG_EXIT_SELF_PROTECT = 42,  /* container-seq stopped to protect the host; resume with --resume */
  AG_EXIT_LEFT_BEHIND = 43,   /* run --on-leak=fail: the command succeeded but left something behind */
  AG_EXIT_TIMEOUT = 124,      /* run: --timeout expired */
  AG_EXIT_AGENT_FAILED = 125, /* run / container-seq: the agent failed or was used wrongly */
  AG_EXIT_NOT_EXECUTABLE = 126,
  AG_EXIT_NOT_FOUND = 127,
};

/* The default of --teardown-timeout. */
#define AG_TEARDOWN_USEC (30 * 1000000ULL)

/* Options that come before the command, each also from a CLEANUP_AGENT_* variable. NULL when not given. */
struct ag_globals {
  const char *docker_host;        /* always set by main: the engine as found (engine.c) */
  const char *docker_host_origin; /* how it was found ("docker context 'x'", ...); NULL for the default */
  const char *docker_host_source; /* how it was found whatever the URL ("DOCKER_HOST", ...); NULL: the default */
  const char *docker_host_error;  /* check only: why no engine could be found (a context that does not exist) */
  const char *state_dir;
  const char *cgroup_root;
  const char *systemd_driver_origin; /* "--cgroup-driver" or its variable when it named systemd; else NULL */
  uint64_t teardown_usec;            /* how long the end of a session and its guardian may take; 0: AG_TEARDOWN_USEC */
};

/* A command handler gets its own argv (argv[0] is the command name) and returns the exit code. */
typedef int (*ag_command_fn)(const struct ag_globals *g, int argc, char **argv);
