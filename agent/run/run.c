/* run: wrap a command so that nothing it starts outlives it (cleanup layers 1 to 4 of DESIGN.md). The session comes
 * up and goes down through the session core (lifecycle.c); this file puts the command in its cgroup leaf and takes
 * it out again. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "options.h"
#include "receipt.h"
#include "run.h"

extern char **environ;

/* The docker CLI's TLS variables: a command talking to the proxy's plain Unix socket must not try TLS on it (the proxy
 * speaks TLS to a TCP engine itself). */
static bool docker_tls_variable(const char *kv) {
  return strncmp(kv, "DOCKER_TLS_VERIFY=", 18) == 0 || strncmp(kv, "DOCKER_CERT_PATH=", 17) == 0 ||
         strncmp(kv, "DOCKER_TLS=", 11) == 0;
}

/* environ without our variables, then CLEANUP_AGENT_SESSION, CLEANUP_AGENT_OUTER (the outermost session) and, with
 * an engine, DOCKER_HOST and CLEANUP_AGENT_ENGINE (the engine behind the proxy) for the child: what a session nested
 * in this one needs (nesting.h). */
static char **child_environment(const struct run_state *s) {
  size_t n = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + 5, sizeof(char *));
  if (!env)
    return NULL;
  size_t k = 0;
  const struct ag_session *sess = s->session;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], AG_ENV_SESSION "=", sizeof(AG_ENV_SESSION)) != 0 &&
        strncmp(environ[i], AG_ENV_OUTER "=", sizeof(AG_ENV_OUTER)) != 0 &&
        !((sess->env.dk || sess->proxy_host) && strncmp(environ[i], AG_ENV_ENGINE "=", sizeof(AG_ENV_ENGINE)) == 0) &&
        !((sess->env.dk || sess->proxy_host) && strncmp(environ[i], "DOCKER_HOST=", 12) == 0) &&
        !(sess->proxy_host && docker_tls_variable(environ[i])))
      env[k++] = environ[i];
  static char session_var[64], outer_var[64], host_var[4096], engine_var[4096];
  snprintf(session_var, sizeof(session_var), AG_ENV_SESSION "=%s", sess->id);
  snprintf(outer_var, sizeof(outer_var), AG_ENV_OUTER "=%s", ag_nesting_root(&sess->nest, sess->id));
  env[k++] = session_var;
  env[k++] = outer_var;
  if (sess->env.dk || sess->proxy_host) { /* a proxy also in front of an engine that was not up yet */
    snprintf(host_var, sizeof(host_var), "DOCKER_HOST=%s", sess->proxy_host ? sess->proxy_host : sess->docker_host);
    snprintf(engine_var, sizeof(engine_var), AG_ENV_ENGINE "=%s", ag_nesting_engine(&sess->nest, sess->docker_host));
    env[k++] = host_var;
    env[k++] = engine_var;
  }
  return env;
}

/* --private-tmp, in the child before exec: a mount namespace of its own with fresh tmpfs on /tmp and /dev/shm. The
 * namespace, and the files and POSIX shared memory in it, die with the last process of the tree. Async-signal-safe. */
static int private_tmp(void *userdata) {
  (void)userdata;
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
      mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0 ||
      mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
    return -errno;
  return 0;
}

/* Signals arrive through a signalfd; the child gets an empty mask and default dispositions from cg_spawn. */
static int signal_fd(void) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* The file that command names: itself when it has a slash, else the first regular file of that name in PATH. */
static bool find_command(const char *command, char *ret, size_t size) {
  struct stat st;
  if (strchr(command, '/')) {
    snprintf(ret, size, "%s", command);
    return stat(ret, &st) == 0;
  }
  const char *path = getenv("PATH");
  for (const char *p = path ? path : "/usr/local/bin:/usr/bin:/bin";;) {
    const char *colon = strchrnul(p, ':');
    snprintf(ret, size, "%.*s%s%s", (int)(colon - p), p, colon == p ? "" : "/", command);
    if (stat(ret, &st) == 0 && S_ISREG(st.st_mode))
      return true;
    if (!*colon)
      return false;
    p = colon + 1;
  }
}

/* One line for a command that could not be executed. ENOENT for a file that exists is its #! interpreter (or its
 * loader) that is missing, which bash reports as "bad interpreter": not "command not found". */
static void report_exec_failure(const char *command, int code) {
  char file[PATH_MAX], head[256] = "";
  if (code != ENOENT) {
    ca_log_error("run: %s: %s", command, strerror(code));
    return;
  }
  if (!find_command(command, file, sizeof(file))) {
    ca_log_error("run: %s: command not found", command);
    return;
  }
  _cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, head, sizeof(head) - 1);
  if (n > 2 && head[0] == '#' && head[1] == '!') {
    head[n] = '\0';
    const char *interp = head + 2 + strspn(head + 2, " \t");
    ca_log_error("run: %s: bad interpreter %.*s: %s", command, (int)strcspn(interp, " \t\r\n"), interp,
                 strerror(ENOENT));
  } else {
    ca_log_error("run: %s: cannot execute: %s (a missing program loader?)", command, strerror(ENOENT));
  }
}

/* Under process tracking, the registry records the command's process group (its main process leads one of its own),
 * for the guardian, the next start, kill and gc to kill when the agent cannot: no later layer finds the tree else.
 * cg_spawn's started hook: the command execs only after this succeeded, so no agent dies with the command running
 * unrecorded; when the registry cannot be written, the command does not run. */
static int record_group(void *data, const cg_process *proc, ca_error **err) {
  struct run_state *s = data;
  struct ag_registry *reg = &s->session->reg;
  pthread_mutex_lock(&s->session->reg_mu); /* the proxy's thread may record the engine meanwhile */
  reg->main_pid = reg->pgrp = proc->pid;
  reg->main_start = reg->pgrp_start = proc->start_time;
  int r = ag_registry_write(s->session->env.state, reg, err);
  if (r < 0)
    reg->main_pid = reg->pgrp = 0; /* nothing of it runs */
  pthread_mutex_unlock(&s->session->reg_mu);
  if (r < 0) {
    ca_error_wrap(err, "the command did not start: its process group cannot be recorded, and without a cgroup the "
                       "guardian and later cleanups find its tree only by it");
  }
  return r;
}

/* Starts the command in the session's leaf. 0, or the exit code of the failure (message printed). */
static int spawn_command(struct run_state *s, const struct run_opts *o) {
  _cleanup_free_ char **envp = child_environment(s);
  if (!envp) {
    ca_log_error("run: out of memory");
    return AG_EXIT_AGENT_FAILED;
  }
  cg_spawn_options sopts = {
      .argv = o->argv,
      .envp = envp,
      .pre_exec = o->private_tmp ? private_tmp : NULL,
      .pre_exec_what = "--private-tmp: cannot set up a private /tmp and /dev/shm (it needs root, or CAP_SYS_ADMIN)",
      .keep_fds = s->keep_fds,
      .n_keep_fds = s->n_keep_fds,
      .take_terminal = ag_run_terminal_is_ours(),
  };
  if (s->session->env.cg && cg_root_tracking(s->session->env.cg) == CG_TRACK_PROCESS) {
    sopts.started = record_group;
    sopts.started_data = s;
  }
  cg_process proc;
  _cleanup_error_ ca_error *err = NULL;
  s->gave_terminal = sopts.take_terminal;
  if (cg_spawn(s->leaf, &sopts, &proc, &err) < 0) {
    ag_run_terminal_take_back(s); /* the child took it before it failed: ours again before we say why */
    if (err->detail != CG_ERROR_DETAIL_EXEC) {
      ca_log_error("run: %s", err->msg);
      return AG_EXIT_AGENT_FAILED;
    }
    report_exec_failure(o->argv[0], err->code);
    return err->code == ENOENT ? AG_EXIT_NOT_FOUND : AG_EXIT_NOT_EXECUTABLE;
  }
  if (proc.pidfd >= 0)
    close(proc.pidfd); /* SIGCHLD and waitpid tell us about the main process */
  s->pid = proc.pid;
  return 0;
}

/* The command in its leaf, until it and its tree are done. 0 once it ran, else the exit code of the failure. */
static int run_command(struct run_state *s, const struct run_opts *o) {
  _cleanup_error_ ca_error *err = NULL;
  if (cg_leaf_create(s->session->env.cg, s->session->id, &o->limits, &s->leaf, &err) < 0 ||
      cg_leaf_ignore_pid(s->leaf, s->session->guardian.pid, &err) < 0) {
    ca_log_error("run: %s", err->msg);
    return AG_EXIT_AGENT_FAILED;
  }
  int failed = o->contain_containers ? ag_run_contain_start(s, o) : 0;
  if (failed)
    return failed;
  /* Orphans of the tree are re-parented to us, not to an init that may reap them late: no zombie outlives the run. */
  (void)prctl(PR_SET_CHILD_SUBREAPER, 1); /* best effort: without it the kernel's init reaps them */
  _cleanup_close_ int sfd = signal_fd();
  if (sfd < 0) {
    ca_log_error("run: signalfd: %s", strerror(errno));
    return AG_EXIT_AGENT_FAILED;
  }
  int r = spawn_command(s, o);
  if (r != 0)
    return r;
  ag_run_supervise(s, o, sfd);
  ag_run_terminal_take_back(s);
  if (!s->timed_out && !s->signal)
    ag_run_report_survivors(s);
  return 0;
}

/* Kills what is left of the tree after measuring it and removes the leaf (the session core cannot: it has no stats
 * to take, and without a writable cgroup only this leaf knows the tree), then ends the session. */
static void finish_session(struct run_state *s, bool list_images) {
  _cleanup_error_ ca_error *err = NULL;
  if (s->leaf) {
    if (cg_leaf_stats(s->leaf, &s->stats, NULL) == 0)
      s->have_stats = true;
    if (ag_run_kill_tree(s, 10000000, &err) < 0)
      ag_session_left(s->session, "kill the command's tree: %s", err->msg);
    else if (cg_leaf_remove(s->leaf, &err) < 0)
      ag_session_left(s->session, "remove the session cgroup: %s", err->msg);
    bool main_exited = s->pid == 0;
    (void)ag_run_reap(s, &main_exited); /* the killed orphans are our zombies now */
  }
  if (list_images)
    ag_run_receipt_images(s);         /* before the end, which may remove them (--images=remove) */
  int r = ag_session_end(s->session); /* a failure is a warning of the session's, in the report */
  ag_receipt_finish(&s->session->not_removed,
                    r < 0 ? "the session's end did not finish: it stays registered for the next start or gc" : NULL);
}

static void pressure_look(const struct ag_env *env, void *userdata) {
  ag_pressure_look(env, userdata);
}

int ag_cmd_run(const struct ag_globals *g, int argc, char **argv) {
  struct run_opts o = {0};
  int r = ag_run_parse_opts(argc, argv, &o);
  if (r != 0) {
    free(o.labels);
    return r < 0 ? AG_EXIT_OK : r;
  }
  _cleanup_free_ _unused_ const char **labels = o.labels; /* frees the labels on every return */
  if (o.n_labels && o.no_docker_proxy)
    return ag_usage_error("run", AG_EXIT_AGENT_FAILED,
                          "--label %s: only the docker proxy applies it, and --no-docker-proxy (or "
                          "CLEANUP_AGENT_NO_DOCKER_PROXY) turns it off: drop one of them",
                          o.labels[0]);
  if ((r = ag_run_contain_check(g, &o)) != 0)
    return r;
  /* First, before the agent opens anything: the fds our caller passed on, the only ones the command inherits. */
  _cleanup_free_ int *keep_fds = NULL;
  size_t n_keep_fds = 0;
  (void)cg_fds_inherited(&keep_fds, &n_keep_fds, NULL); /* without /proc the command gets 0, 1 and 2 only */
  struct ag_pressure pressure = {.marks = &o.disk};
  const struct ag_session_config cfg = {
      .mode = "run",
      .globals = g,
      .command = o.argv,
      .ttl_usec = o.ttl_usec,
      /* Lazy: only the socket is checked before the command starts; libcurl is initialised and the version
       * negotiated in the background, so the command does not wait for them. */
      .engine = {.timeout_ms = AG_DOCKER_TIMEOUT_MS, .retries = AG_DOCKER_RETRIES, .lazy = true},
      .cgroup_required = true,
      .cgroup_limits = o.limits.memory_max || o.limits.pids_max || o.limits.cpus > 0,
      .cgroup_one_path = o.contain_containers,
      .proxy = o.no_docker_proxy ? AG_SESSION_NO_PROXY : AG_SESSION_PROXY,
      .proxy_labels = o.labels,
      .images_remove = o.images_remove,
      .engine_first = pressure_look,
      .engine_first_userdata = &pressure,
  };
  _cleanup_(ag_session_freep) struct ag_session *session = NULL;
  _cleanup_error_ ca_error *err = NULL;
  ag_receipt_enable(); /* before the proxy starts: it feeds the receipt */
  if ((r = ag_session_open(&cfg, &session, &err)) == 0)
    r = ag_session_begin(session, &err);
  if (r < 0) {
    ca_log_error("run: %s", err->msg);
    return AG_EXIT_AGENT_FAILED; /* the session's free ends what began */
  }
  /* The start line, once the session is up (a run refused says only why): the engine, when not the default. */
  if (g->docker_host_origin)
    ca_log_notice("engine %s (%s)", g->docker_host, g->docker_host_origin);
  ag_pressure_check(&session->env, &pressure); /* disk or address pools near full: collect first (gc/pressure.c) */
  struct run_state s = {
      .session = session, .started_usec = ca_now_monotonic_usec(), .keep_fds = keep_fds, .n_keep_fds = n_keep_fds};
  int failed = run_command(&s, &o);
  finish_session(&s, o.report || o.junit);
  cg_leaf_free(s.leaf);
  if (failed)
    return failed;
  s.exit_code = ag_run_exit_code(&s, &o);
  if (s.timed_out)
    ca_log_notice("timed out; the command's tree was killed");
  s.exit_code = ag_run_leak_exit_code(&s, &o);
  ag_run_print_summary(&s, &o);
  if (o.report)
    ag_run_write_report(&s, &o);
  if (o.junit)
    ag_run_write_junit(&s, &o);
  return s.exit_code;
}
