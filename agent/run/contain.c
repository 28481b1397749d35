/* run --contain-containers: the containers the command creates through the session's proxy start in the session's
 * cgroup (HostConfig.CgroupParent, proxy_body.c), so that the session's limits, OOM report and kill cover them. The
 * cgroup module names the parent for the engine's cgroup driver (the leaf's path for cgroupfs, the session's own
 * slice for systemd); this file refuses, in one line, what cannot work. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "commands.h"
#include "options.h"
#include "run.h"

#define contain_error(...) ag_usage_error("run", AG_EXIT_AGENT_FAILED, __VA_ARGS__)

int ag_run_contain_check(const struct ag_globals *g, const struct run_opts *o) {
  if (!o->contain_containers)
    return 0;
  if (o->no_docker_proxy)
    return contain_error("--contain-containers: only the docker proxy can put the containers in the session's "
                         "cgroup, and --no-docker-proxy (or CLEANUP_AGENT_NO_DOCKER_PROXY) turns it off: drop one "
                         "of them");
  const char *host = g->docker_host ? g->docker_host : "";
  if (strncmp(host, "unix://", 7) != 0 && host[0] != '/')
    return contain_error("--contain-containers: the engine %s is reached over the network and may run on another "
                         "machine, whose cgroups are not this session's: only an engine on a Unix socket of this "
                         "host is supported",
                         host);
  return 0;
}

/* The engine's cgroup parent for the session's leaf. 0, or the exit code (message printed). */
static int engine_parent(struct run_state *s, char **ret_parent) {
  struct ag_session *sess = s->session;
  _cleanup_error_ ca_error *err = NULL;
  _cleanup_free_ char *driver = NULL, *version = NULL;
  if (!sess->env.dk || dk_engine_cgroup(sess->env.dk, &driver, &version, &err) < 0) {
    ca_log_error("run: --contain-containers: cannot ask the engine for its cgroup driver: %s",
                 err ? err->msg : "no engine");
    return AG_EXIT_AGENT_FAILED;
  }
  if (cg_leaf_engine_parent(s->leaf, driver, ret_parent, &err) < 0) {
    ca_log_error("run: --contain-containers: %s", err->msg);
    return AG_EXIT_AGENT_FAILED;
  }
  return 0;
}

int ag_run_contain_start(struct run_state *s, const struct run_opts *o) {
  (void)o;
  if (!s->session->proxy) {
    ca_log_error("run: --contain-containers: the session has no docker proxy (the engine did not answer at the "
                 "start): nothing could put the containers in the session's cgroup");
    return AG_EXIT_AGENT_FAILED;
  }
  _cleanup_free_ char *parent = NULL;
  int r = engine_parent(s, &parent);
  if (r != 0)
    return r;
  _cleanup_error_ ca_error *err = NULL;
  if (ag_proxy_set_cgroup_parent(s->session->proxy, parent, &err) < 0) {
    ca_log_error("run: --contain-containers: %s", err->msg);
    return AG_EXIT_AGENT_FAILED;
  }
  ca_log_info("containers start in the session's cgroup %s", parent);
  return 0;
}

void ag_run_report_oom_inside(const struct run_state *s, const struct run_opts *o) {
  bool main_oom = !s->timed_out && !s->signal && WIFSIGNALED(s->status) && WTERMSIG(s->status) == SIGKILL;
  uint64_t n = s->have_stats ? s->stats.oom_kills : 0;
  if (n == 0 || main_oom)
    return;
  char lim[32], peak[32];
  ca_log_warning("the OOM killer killed %" PRIu64 " %s inside the session (%s; memory limit %s, peak %s)", n,
                 n == 1 ? "process" : "processes",
                 o->contain_containers ? "the command's tree or its containers" : "the command's tree",
                 o->limits.memory_max ? ca_format_size(o->limits.memory_max, lim) : "none",
                 ca_format_size(s->stats.memory_peak, peak));
}
