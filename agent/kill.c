/* kill: end sessions of this host and collect what they leave. A live session's agent is asked to stop (SIGTERM,
 * verified by start time) so that it cleans up itself; what is left once its lock is free is collected here. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collect.h"
#include "commands.h"

/* The owner gets its own grace period (10 s by default) plus time to clean. */
#define KILL_WAIT_USEC (30 * 1000000ULL)

static int kill_one(const struct ag_env *env, const char *host, const char *id) {
  _cleanup_error_ ca_error *err = NULL;
  struct ag_registry reg;
  int r = ag_registry_load(env->state, id, &reg, &err);
  if (r == -ENOENT) {
    ca_log_error("kill: no session %s on this host (%s)", id, env->state->sessions);
    return -ENOENT;
  }
  if (r < 0 && r != -EINVAL) { /* unreadable, or a newer agent's: not ours to end blind */
    ca_log_error("kill: %s", err->msg);
    return r;
  }
  if (r < 0)
    ca_log_warning("kill: %s; collecting the session from its labels and cgroup", err->msg);
  bool have_reg = r == 0;
  ca_error_free(TAKE_PTR(err));
  if (have_reg && !streq(reg.owner.host, host)) {
    ca_log_error("kill: session %s belongs to host %s, not to %s: run kill there", id, reg.owner.host, host);
    ag_registry_done(&reg);
    return -EREMOTE;
  }

  _cleanup_close_ int lock = -1;
  r = ag_session_lock(env->state, id, true, &lock, &err);
  if (r == -EWOULDBLOCK && have_reg) {
    /* Alive: ask its agent to stop, but only the process that really is that agent. */
    if (cg_signal_verified("/proc", reg.owner.pid, reg.owner.start, SIGTERM, &err) < 0) {
      ca_log_notice("kill: session %s: its agent (pid %d) is gone; waiting for its guardian", id, (int)reg.owner.pid);
      ca_error_free(TAKE_PTR(err));
    }
    uint64_t deadline = ca_now_monotonic_usec() + KILL_WAIT_USEC;
    while ((r = ag_session_lock(env->state, id, false, &lock, NULL)) == -EWOULDBLOCK &&
           ca_now_monotonic_usec() < deadline)
      usleep(50 * 1000);
    if (r == -ENOENT)
      r = 0; /* the agent cleaned up and removed its files: nothing left for us */
  }
  if (r == -EWOULDBLOCK)
    ca_log_error("kill: session %s is still alive after %llus", id, KILL_WAIT_USEC / 1000000ULL);
  else if (r < 0 && err)
    ca_log_error("kill: %s", err->msg);
  struct ag_collect_stats st = {0};
  /* Against what the session recorded (its engine, its cgroup root), not this invocation's. */
  if (r == 0 && (r = ag_collect_session(env, have_reg ? &reg : NULL, id, NULL, &st, &err)) < 0)
    ca_log_error("kill: session %s stays registered for the next start or gc: %s", id, err->msg);
  if (have_reg)
    ag_registry_done(&reg);
  if (r < 0)
    return r;
  char what[256];
  ag_collect_stats_format(&st, what, sizeof(what));
  ca_log_notice("killed session %s%s%s", id, *what ? ": " : "", what);
  return 0;
}

int ag_cmd_kill(const struct ag_globals *g, int argc, char **argv) {
  if (argc == 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
    printf("Usage: cleanup-agent kill SESSION...\n\nKills and cleans up sessions of this host.\n");
    return AG_EXIT_OK;
  }
  if (argc < 2) {
    fprintf(stderr, "cleanup-agent: kill: no session given: cleanup-agent kill SESSION...\n");
    return AG_EXIT_USAGE;
  }
  for (int i = 1; i < argc; i++)
    if (!ca_session_id_valid(argv[i])) {
      fprintf(stderr, "cleanup-agent: kill: '%s' is not a session id (32 lowercase hex characters, see 'ps')\n",
              argv[i]);
      return AG_EXIT_USAGE;
    }
  _cleanup_error_ ca_error *err = NULL;
  struct ag_env env = {0};
  struct ag_owner self;
  if (ag_state_open_flags(g->state_dir, AG_STATE_NO_CREATE, &env.state, &err) < 0 || ag_owner_self(&self, &err) < 0) {
    ca_log_error("kill: %s", err->msg);
    ag_state_free(env.state);
    return AG_EXIT_FAILED;
  }
  cg_root_options copts = {.root = g->cgroup_root, .allow_process = true, .open_existing = true};
  AG_CGROUP_NAMES(copts);
  if (cg_root_open(&copts, &env.cg, NULL) < 0)
    env.cg = NULL;
  env.docker_host = g->docker_host ? g->docker_host : AG_DEFAULT_DOCKER_HOST;
  struct dk_client_options dopts = {.host = env.docker_host};
  if (dk_client_new(&dopts, &env.dk, &err) < 0) {
    ca_log_notice("kill: no Docker engine (%s): cleaning up processes only", err->msg);
    ca_error_free(TAKE_PTR(err));
  }
  int failed = 0;
  struct ag_engines_down down = {0};
  env.down = &down;
  for (int i = 1; i < argc; i++)
    if (kill_one(&env, self.host, argv[i]) < 0)
      failed++;
  ag_engines_down_done(&down);
  dk_client_free(env.dk);
  cg_root_free(env.cg);
  ag_state_free(env.state);
  return failed ? AG_EXIT_FAILED : AG_EXIT_OK;
}
