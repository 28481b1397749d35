/* check: what run can do on this host for this user, one verdict per promise, each "no" with the one thing that
 * would make it a "yes". Every verdict comes from the code run itself uses to decide (the session's cgroup root, the
 * engine as main found it, the state dir and its lock, the proxy's transport rule): nothing is probed twice. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "commands.h"
#include "config.h"
#include "lifecycle.h"
#include "options.h"

/* How long check waits for the engine to answer (one try, no retry: a check says what is, at once). */
#define CHECK_ENGINE_TIMEOUT_MS 3000

/* The session id of the state dir's write probe: its lock is made without a name and removed at once. */
#define PROBE_ID "00000000000000000000000000c4ec24"

/* A formatted string (caller frees); NULL when out of memory, which leaves a verdict without its fix. */
#define format(...)                                                                                                    \
  ({                                                                                                                   \
    char *_s = NULL;                                                                                                   \
    asprintf(&_s, __VA_ARGS__) < 0 ? NULL : _s;                                                                        \
  })

/* Adds a verdict; detail (formatted, taken over) says what it rests on. */
static void add_verdict(struct check_report *rep, const char *name, const char *title, bool ok, bool required,
                        const char *fix, char *detail) {
  if (rep->n == CHECK_MAX) {
    free(detail);
    return;
  }
  rep->v[rep->n++] = (struct check_verdict){.name = name,
                                            .title = title,
                                            .ok = ok,
                                            .required = required,
                                            .detail = detail,
                                            .fix = !ok && fix ? strdup(fix) : NULL};
  if (!ok && required)
    rep->ok = false;
}
#define add(rep, name, title, ok, required, fix, ...)                                                                  \
  add_verdict((rep), (name), (title), (ok), (required), (fix), format(__VA_ARGS__))

/* What makes a cgroup writable for this user, the fix of every cgroup verdict under process tracking. */
static char *cgroup_fix(const struct check_report *rep) {
  if (rep->uid == 0)
    return strdup("mount cgroup2 read-write (in a container: a private cgroup namespace with a writable "
                  "/sys/fs/cgroup), or pass --cgroup-root a writable cgroup v2 directory");
  return format("run it in a unit with a delegated cgroup: systemd-run --user --scope -p Delegate=yes "
                "cleanup-agent run ... (a user manager that outlives the login: loginctl enable-linger %s), or pass "
                "--cgroup-root a cgroup delegated to %s",
                rep->user, rep->user);
}

/* One limit's verdict; with cgroups, a controller that is missing has its own fix. */
static void check_limit(struct check_report *rep, const cg_root *root, const char *c, const char *name,
                        const char *title, const char *fix) {
  if (!root || cg_root_tracking(root) == CG_TRACK_PROCESS) {
    add(rep, name, title, false, false, fix, "no writable cgroup: run refuses --%s", streq(c, "cpu") ? "cpus" : c);
    return;
  }
  if (cg_root_can_limit(root, c)) {
    add(rep, name, title, true, false, NULL, "the %s controller of %s%s", c, cg_root_path(root),
        cg_root_mode(root) == CG_MODE_HYBRID ? " (or its v1 hierarchy)" : "");
    return;
  }
  _cleanup_free_ char *own =
      cg_root_mode(root) == CG_MODE_HYBRID
          ? format("mount the cgroup v1 %s hierarchy, or enable +%s in the cgroup v2 parent's cgroup.subtree_control",
                   c, c)
          : format("enable +%s in the cgroup.subtree_control of the parent of %s (a unit with Delegate=yes gets it)", c,
                   cg_root_path(root));
  add(rep, name, title, false, false, own, "the %s controller is not available under %s", c, cg_root_path(root));
}

/* The cgroup root run would open (ag_session_cgroup_root_open: created as run creates it), and what it allows. */
static void check_cgroup(const struct ag_globals *g, struct check_report *rep) {
  struct ag_nesting nest = {0};
  ag_nesting_detect(NULL, &nest);
  _cleanup_cg_root_ cg_root *root = NULL;
  _cleanup_error_ ca_error *err = NULL;
  _cleanup_free_ char *fix = cgroup_fix(rep);
  int r = ag_session_cgroup_root_open(g, &nest, &root, &err);
  ag_nesting_done(&nest);
  if (r < 0) {
    add(rep, "tracking", "session tracking", false, true, fix, "no cgroup root and no process tracking: %s", err->msg);
  } else {
    rep->driver = cg_driver_name(cg_root_driver(root));
    rep->mode = cg_mode_name(cg_root_mode(root));
    rep->tracking = cg_tracking_name(cg_root_tracking(root));
    rep->mode_text = cg_root_tracking(root) == CG_TRACK_PROCESS ? "no writable cgroup: process-tracking mode"
                     : cg_root_mode(root) == CG_MODE_HYBRID
                         ? "hybrid: cgroup v2 for tracking, v1 controllers for limits"
                     : cg_root_mode(root) == CG_MODE_UNIFIED ? "cgroup v2, writable root"
                                                             : "cgroup v1 only";
    if (cg_root_tracking(root) == CG_TRACK_CGROUP && (rep->cgroup_root = strdup(cg_root_path(root))))
      add(rep, "tracking", "session tracking", true, true, NULL, "a cgroup leaf per session under %s",
          rep->cgroup_root);
    else
      add(rep, "tracking", "session tracking", true, true, NULL,
          "no writable cgroup (%s): process-tracking mode (process group, subreaper, /proc walk)",
          cg_root_fallback_reason(root));
  }
  bool cgroup = root && cg_root_tracking(root) == CG_TRACK_CGROUP;
  add(rep, "kill", "escape-proof tree kill", cgroup, false, fix,
      cgroup ? "the session's cgroup is killed whole: no process leaves it"
             : "by process group and /proc: a process that leaves the group (setsid) and is re-parented away "
               "escapes");
  check_limit(rep, root, "memory", "limit_memory", "memory limit (--memory)", fix);
  check_limit(rep, root, "pids", "limit_pids", "pids limit (--pids)", fix);
  check_limit(rep, root, "cpu", "limit_cpu", "cpu limit (--cpus)", fix);
  bool oom = cgroup && cg_root_can_limit(root, "memory");
  add(rep, "oom_report", "OOM report", oom, false, cgroup ? "see memory limit" : fix,
      oom ? "the memory controller counts OOM kills: run says so and exits 137"
          : "no memory controller of the session: an OOM kill shows as a plain SIGKILL (137)");
}

/* The engine as main found it (dk_host_find's order) and whether it answers. */
static void check_engine(const struct ag_globals *g, struct check_report *rep) {
  if (g->docker_host_error) { /* no engine to ask: the docker CLI's configuration names none that exists */
    add(rep, "engine", "Docker engine", false, true,
        "fix what the line names (docker context use default, or a readable config.json), or name the engine with "
        "DOCKER_HOST or --docker-host",
        "none found: %s", g->docker_host_error);
    return;
  }
  rep->engine = g->docker_host ? g->docker_host : AG_DEFAULT_DOCKER_HOST;
  rep->engine_source = g->docker_host_source ? g->docker_host_source : "default";
  struct dk_client_options o = {.host = rep->engine, .timeout_ms = CHECK_ENGINE_TIMEOUT_MS, .retries = -1};
  _cleanup_(dk_client_freep) struct dk_client *dk = NULL;
  _cleanup_error_ ca_error *err = NULL;
  _cleanup_free_ char *os = NULL, *fix = NULL;
  if (dk_client_new(&o, &dk, &err) == 0 && dk_engine_version(dk, &rep->engine_version, &os, &err) == 0) {
    rep->engine_answers = true;
    add(rep, "engine", "Docker engine", true, true, NULL, "%s (%s) answers: Docker %s, API %s", rep->engine,
        rep->engine_source, rep->engine_version, dk_client_api_version(dk));
    return;
  }
  int code = err ? err->code : ENOMEM;
  if (dk_error_is_tls(err))
    fix = format("fix the TLS files (ca.pem, cert.pem, key.pem in DOCKER_CERT_PATH) for %s", rep->engine);
  else if ((code == EACCES || code == EPERM) && rep->uid != 0)
    fix = format("add %s to the docker group (usermod -aG docker %s, then log in again), or use a rootless engine "
                 "(dockerd-rootless-setuptool.sh install)",
                 rep->user, rep->user);
  else
    fix = strdup("start the engine (systemctl start docker), or point DOCKER_HOST, the docker context or "
                 "--docker-host at one that runs");
  add(rep, "engine", "Docker engine", false, true, fix, "%s (%s) does not answer: %s", rep->engine, rep->engine_source,
      err ? err->msg : "out of memory");
}

/* What gives this user a state dir: a runtime dir of its login, else one it names. */
static char *state_fix(const struct ag_globals *g, const struct check_report *rep) {
  if (g->state_dir || rep->uid == 0 || getenv("XDG_RUNTIME_DIR"))
    return strdup("pass --state-dir (or CLEANUP_AGENT_STATE_DIR) a directory of this user's that it can write, "
                  "mode 0700");
  return format("log in through a session that sets XDG_RUNTIME_DIR (loginctl enable-linger %s keeps /run/user/%u), "
                "or pass --state-dir DIR (CLEANUP_AGENT_STATE_DIR)",
                rep->user, rep->uid);
}

/* The state dir run opens (ag_state_open: created 0700 as run creates it), and a new session's lock made in it the
 * way run makes one: an unnamed file, removed at once with whatever a file system without O_TMPFILE left. */
static void check_state(const struct ag_globals *g, struct check_report *rep) {
  _cleanup_(ag_state_freep) struct ag_state *state = NULL;
  _cleanup_error_ ca_error *err = NULL;
  _cleanup_close_ int fd = -1;
  int r = ag_state_open(g->state_dir, &state, &err);
  if (r == 0 && (r = ag_session_lock_new(state, PROBE_ID, &fd, NULL)) == 0)
    (void)ag_registry_remove(state, PROBE_ID, NULL); /* only the probe's own temp file, if any */
  else if (state)
    (void)ca_error_set(&err, -r, "%s: a session's lock cannot be created in it: %s", state->dir, strerror(-r));
  if (state)
    rep->state_dir = strdup(state->dir);
  rep->state_ok = r == 0;
  _cleanup_free_ char *fix = r < 0 ? state_fix(g, rep) : NULL;
  if (r == 0)
    add(rep, "state_dir", "state directory", true, true, NULL, "%s: writable", rep->state_dir);
  else
    add(rep, "state_dir", "state directory", false, true, fix, "%s", err ? err->msg : "out of memory");
}

/* The fix of the verdict named name, so that a verdict that rests on it says the same (and the table names it). */
static const char *fix_of(const struct check_report *rep, const char *name) {
  for (size_t i = 0; i < rep->n; i++)
    if (streq(rep->v[i].name, name))
      return rep->v[i].fix;
  return NULL;
}

/* The proxy needs the engine's Unix socket (ag_proxy_engine_socket: the rule run's start_proxy applies) and the
 * state dir its socket lives in; an engine that does not answer yet still gets it. */
static void check_proxy(struct check_report *rep) {
  const char *sock = ag_proxy_engine_socket(rep->engine);
  if (!rep->engine)
    add(rep, "proxy", "labeling Docker proxy", false, true, fix_of(rep, "engine"), "no engine to stand in front of");
  else if (!sock) /* run goes on without it and says so (DESIGN.md): not needed, but the containers go unlabeled */
    add(rep, "proxy", "labeling Docker proxy", false, false,
        "reach the engine through a Unix socket (a local engine, or ssh -L /path/docker.sock:/var/run/docker.sock "
        "HOST), or run with --no-docker-proxy and label what the command creates with "
        "io.cleanup-agent.session=$CLEANUP_AGENT_SESSION",
        "%s is no Unix socket: the command would talk to the engine unlabeled", rep->engine);
  else if (!rep->state_ok)
    add(rep, "proxy", "labeling Docker proxy", false, true, fix_of(rep, "state_dir"),
        "its socket lives in the state dir, which is not writable");
  else
    add(rep, "proxy", "labeling Docker proxy", true, true, NULL, "a socket per session in %s/sessions in front of %s%s",
        rep->state_dir, sock,
        rep->engine_answers ? "" : " (which does not answer yet: the proxy connects per request)");
}

/* The guardian is forked at start and holds the session's lock in the state dir. */
static void check_guardian(struct check_report *rep) {
  if (rep->state_ok)
    add(rep, "guardian", "guardian", true, true, NULL,
        "forked at start outside the session's cgroup and process group; it holds the session's lock and collects "
        "the session when the agent is killed (SIGKILL, OOM)");
  else
    add(rep, "guardian", "guardian", false, true, fix_of(rep, "state_dir"),
        "it holds the session's lock in the state dir, which is not writable");
}

void ag_check_report_done(struct check_report *rep) {
  for (size_t i = 0; i < rep->n; i++) {
    free(rep->v[i].detail);
    free(rep->v[i].fix);
  }
  free(rep->cgroup_root);
  free(rep->engine_version);
  free(rep->state_dir);
  *rep = (struct check_report){0};
}

void ag_check_collect(const struct ag_globals *g, struct check_report *rep) {
  *rep = (struct check_report){.ok = true, .uid = geteuid()};
  struct passwd *pw = getpwuid(rep->uid);
  snprintf(rep->user, sizeof(rep->user), "%s", pw ? pw->pw_name : "?");
  if (!pw)
    snprintf(rep->user, sizeof(rep->user), "uid %u", rep->uid);
  check_state(g, rep);
  check_cgroup(g, rep);
  check_engine(g, rep);
  check_proxy(rep);
  check_guardian(rep);
}

int ag_cmd_check(const struct ag_globals *g, int argc, char **argv) {
  const char *fmt = "table";
  const struct ag_option options[] = {AG_OPT_VALUE("format", "CLEANUP_AGENT_FORMAT", &fmt), {}};
  const struct ag_options spec = {.command = "check", .options = options, .usage_exit = AG_EXIT_USAGE};
  bool json = false;
  int next, r = ag_options_parse(&spec, argc, argv, &next);
  if (r == AG_OPTIONS_HELP) {
    printf("Usage: " AG_PROGRAM " check [--format table|json]\n\n"
           "Says what run can do on this host for this user: the cgroup driver and mode, limits, the tree kill,\n"
           "the OOM report, the engine (and how it was found), the proxy, the guardian and the state directory,\n"
           "and for each \"no\" what would make it a \"yes\". It creates the state directory and the cgroup root\n"
           "as run would.\n\n"
           "  --format FORMAT   table or json [CLEANUP_AGENT_FORMAT; default table]\n\n"
           "Exit status: 0 when everything run needs with its defaults works (limits, the escape-proof kill and\n"
           "the OOM report are not needed by default), 3 when something of that does not, 2 on a usage error.\n");
    return AG_EXIT_OK;
  }
  if (r != 0)
    return r;
  if (next < argc)
    return ag_usage_error("check", AG_EXIT_USAGE, "unexpected argument '%s'", argv[next]);
  if (ag_parse_format("check", fmt, &json) < 0)
    return AG_EXIT_USAGE;
  struct check_report rep;
  ag_check_collect(g, &rep);
  if (json)
    ag_check_print_json(&rep, stdout);
  else
    ag_check_print_table(&rep, stdout);
  int rc = rep.ok ? AG_EXIT_OK : AG_EXIT_CHECK_FAILED;
  ag_check_report_done(&rep);
  return rc;
}
