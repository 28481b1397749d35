/* The global options (globals.h): bound by name on the shared table, then converted and checked here. A bad value
 * is one line naming the flag or the variable it came from. */
#include <stdio.h>

#include "cgroup.h"
#include "globals.h"
#include "options.h"

/* The options that need a conversion, as given, and where each came from (its variable's name; NULL: the flag). */
struct globals_raw {
  const char *driver, *driver_from;
  const char *teardown, *teardown_from;
  const char *log_level, *log_level_from;
};

#define from_or(from, flag) ((from) ? (from) : (flag))

/* --cgroup-driver: every cgroup root the agent opens uses it (cg_driver_set_default). */
static int take_cgroup_driver(struct ag_globals *g, const char *value, const char *origin, ca_error **err) {
  enum cg_driver driver;
  if (cg_driver_parse(value, &driver, err) < 0)
    return -EINVAL;
  cg_driver_set_default(driver);
  g->systemd_driver_origin = driver == CG_DRIVER_SYSTEMD ? origin : NULL;
  return 0;
}

/* --teardown-timeout: a duration above 0. */
static int take_teardown(struct ag_globals *g, const char *value, ca_error **err) {
  if (ca_parse_duration(value, &g->teardown_usec, err) < 0)
    return -EINVAL;
  if (g->teardown_usec == 0)
    return ca_error_set(err, EINVAL, "'%s' must be above 0", value);
  return 0;
}

/* Converts what the table left as text; one line naming the flag or variable of the first bad value. */
static int check_values(struct ag_globals *g, const struct globals_raw *v) {
  _cleanup_error_ ca_error *err = NULL;
  const char *origin = NULL;
  enum ca_log_level level = CA_LOG_NOTICE;
  if (v->driver && take_cgroup_driver(g, v->driver, from_or(v->driver_from, "--cgroup-driver"), &err) < 0)
    origin = from_or(v->driver_from, "--cgroup-driver");
  else if (v->teardown && take_teardown(g, v->teardown, &err) < 0)
    origin = from_or(v->teardown_from, "--teardown-timeout");
  else if (v->log_level && ca_log_parse_level(v->log_level, &level, &err) < 0)
    origin = from_or(v->log_level_from, "--log-level");
  if (origin)
    return ag_usage_error(NULL, AG_EXIT_USAGE, "%s: %s", origin, err ? err->msg : "out of memory");
  if (v->log_level)
    ca_log_set_level(level);
  return 0;
}

int ag_globals_parse(int argc, char **argv, struct ag_globals *g, struct ag_global_opts *o, int *ret_next) {
  struct globals_raw v = {0};
  const struct ag_option table[] = {
      AG_OPT_VALUE_FROM("docker-host", "CLEANUP_AGENT_DOCKER_HOST", &o->docker_host, &o->docker_host_from),
      AG_OPT_VALUE("state-dir", "CLEANUP_AGENT_STATE_DIR", &g->state_dir),
      AG_OPT_VALUE("cgroup-root", "CLEANUP_AGENT_CGROUP_ROOT", &g->cgroup_root),
      AG_OPT_VALUE_FROM("cgroup-driver", "CLEANUP_AGENT_CGROUP_DRIVER", &v.driver, &v.driver_from),
      AG_OPT_VALUE_FROM("log-level", "CLEANUP_AGENT_LOG_LEVEL", &v.log_level, &v.log_level_from),
      AG_OPT_VALUE_FROM("teardown-timeout", "CLEANUP_AGENT_TEARDOWN_TIMEOUT", &v.teardown, &v.teardown_from),
      {.name = "version", .letter = 'V', .kind = AG_OPTION_FLAG, .flag = &o->version},
      {},
  };
  /* Stop at the command name: what follows is the command's. */
  const struct ag_options spec = {.options = table, .stop_at_operand = true, .usage_exit = AG_EXIT_USAGE};
  int r = ag_options_parse(&spec, argc, argv, ret_next);
  if (r != 0)
    return r;
  if (o->docker_host)
    o->docker_host_from = from_or(o->docker_host_from, "--docker-host");
  if (o->version)
    return 0; /* --version prints the version whatever else is set */
  return check_values(g, &v);
}
