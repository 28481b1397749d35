/* run: wrap a command so that nothing it starts outlives it (cleanup layers 1 to 4 of DESIGN.md). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "collect.h"
#include "commands.h"
#include "guardian.h"
#include "proxy.h"

#define DEFAULT_GRACE_USEC (10 * 1000000ULL)
#define MAX_WARNINGS 16
#define MAX_NAMED_SURVIVORS 10
/* How long the Docker proxy lets requests in flight finish at the session's end; the tree is dead by then. */
#define PROXY_DRAIN_USEC (2 * 1000000ULL)

extern char **environ;

struct run_opts {
  cg_limits limits;
  uint64_t timeout_usec, grace_usec, ttl_usec;
  const char **labels;
  size_t n_labels;
  bool private_tmp, no_docker_proxy;
  const char *report;
  char **argv;
};

/* Everything the session knows while it runs, for the summary and the report. */
struct run_state {
  char id[AG_SESSION_ID_LEN + 1];
  struct ag_env env;
  const char *docker_host;
  cg_leaf *leaf;
  struct ag_proxy *proxy; /* the Docker labeling proxy, NULL when off */
  char *proxy_host;       /* unix://<its socket> */
  struct ag_guardian guardian;
  int lock_fd;
  pid_t pid;
  int status;    /* wait status of the main process */
  int exit_code; /* what the agent exits with */
  int signal;    /* signal the agent got, 0 if none */
  bool timed_out;
  uint64_t started_usec;
  unsigned survivors;
  cg_stats stats;
  bool have_stats;
  struct ag_collect_stats collected, startup;
  char *warnings[MAX_WARNINGS];
  size_t n_warnings;
};

static void run_warn(struct run_state *s, const char *fmt, ...) _printf_(2, 3);
static void run_warn(struct run_state *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0)
    msg = NULL;
  va_end(ap);
  if (!msg)
    return;
  ca_log_warning("%s", msg);
  if (s->n_warnings < MAX_WARNINGS)
    s->warnings[s->n_warnings++] = msg;
  else
    free(msg);
}

static void run_usage(FILE *f) {
  fprintf(f,
          "Usage: cleanup-agent run [OPTIONS] -- CMD [ARG...]\n"
          "\n"
          "Runs CMD in its own cgroup and Docker session; when it ends, however it ends, kills what is left of its\n"
          "process tree and removes the containers, networks and volumes labeled with the session id\n"
          "(CLEANUP_AGENT_SESSION in its environment). Exits with the command's status.\n"
          "\n"
          "Options (each also from CLEANUP_AGENT_<NAME>, e.g. CLEANUP_AGENT_MEMORY):\n"
          "  --memory SIZE      memory limit of the whole tree, no swap on top (512M, 2G)\n"
          "  --pids N           at most N processes\n"
          "  --cpus F           CPU limit in CPUs (1.5)\n"
          "  --timeout DUR      SIGTERM the tree after DUR, kill it after --grace; exit 124 (30s, 5m, 1h30m)\n"
          "  --grace DUR        time between SIGTERM and SIGKILL (default 10s)\n"
          "  --ttl DUR          label resources to expire after DUR, for gc on shared engines\n"
          "  --label K=V        extra label on the session's resources (io.cleanup-agent.keep=true allowed)\n"
          "  --private-tmp      a private /tmp and /dev/shm that die with the run\n"
          "  --report FILE      write a JSON report of the run\n"
          "  --no-docker-proxy  give CMD the engine's DOCKER_HOST itself; by default it gets a socket of the session\n"
          "                     that adds the session labels to every container, network and volume it creates\n");
}

static int run_usage_error(const char *fmt, ...) _printf_(1, 2);
static int run_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "cleanup-agent: run: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  return AG_EXIT_AGENT_FAILED;
}

/* A --label from the user: K=V with a key outside our namespace, or exactly io.cleanup-agent.keep=true. */
int ag_check_user_label(const char *kv, ca_error **err) {
  const char *eq = strchr(kv, '=');
  if (!eq || eq == kv)
    return ca_error_set(err, EINVAL, "--label '%s': expected KEY=VALUE", kv);
  if (strncmp(kv, AG_LABEL_PREFIX, strlen(AG_LABEL_PREFIX)) == 0 && !streq(kv, AG_LABEL_KEEP "=true"))
    return ca_error_set(err, EINVAL,
                        "--label '%s': labels under " AG_LABEL_PREFIX " are set by the agent (only " AG_LABEL_KEEP
                        "=true may be given)",
                        kv);
  return 0;
}

static int parse_run_opts(int argc, char **argv, struct run_opts *o) {
  enum {
    OPT_MEMORY = 0x100,
    OPT_PIDS,
    OPT_CPUS,
    OPT_TIMEOUT,
    OPT_GRACE,
    OPT_TTL,
    OPT_LABEL,
    OPT_PRIVATE_TMP,
    OPT_REPORT,
    OPT_NO_DOCKER_PROXY
  };
  static const struct option options[] = {
      {"memory", required_argument, NULL, OPT_MEMORY},
      {"pids", required_argument, NULL, OPT_PIDS},
      {"cpus", required_argument, NULL, OPT_CPUS},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"grace", required_argument, NULL, OPT_GRACE},
      {"ttl", required_argument, NULL, OPT_TTL},
      {"label", required_argument, NULL, OPT_LABEL},
      {"private-tmp", no_argument, NULL, OPT_PRIVATE_TMP},
      {"report", required_argument, NULL, OPT_REPORT},
      {"no-docker-proxy", no_argument, NULL, OPT_NO_DOCKER_PROXY},
      {"help", no_argument, NULL, 'h'},
      {},
  };
  /* Environment first, so that flags override it. */
  const char *val[OPT_NO_DOCKER_PROXY - OPT_MEMORY + 1] = {
      getenv("CLEANUP_AGENT_MEMORY"),
      getenv("CLEANUP_AGENT_PIDS"),
      getenv("CLEANUP_AGENT_CPUS"),
      getenv("CLEANUP_AGENT_TIMEOUT"),
      getenv("CLEANUP_AGENT_GRACE"),
      getenv("CLEANUP_AGENT_TTL"),
      NULL,
      getenv("CLEANUP_AGENT_PRIVATE_TMP"),
      getenv("CLEANUP_AGENT_REPORT"),
      getenv("CLEANUP_AGENT_NO_DOCKER_PROXY"),
  };
  for (size_t i = 0; i < ELEMENTSOF(val); i++)
    if (val[i] && !*val[i])
      val[i] = NULL;
  o->labels = calloc((size_t)argc + 1, sizeof(char *));
  if (!o->labels)
    return run_usage_error("out of memory");

  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+:h", options, NULL)) != -1) {
    switch (c) {
      case 'h':
        run_usage(stdout);
        return -1;
      case OPT_LABEL:
        o->labels[o->n_labels++] = optarg;
        break;
      case OPT_PRIVATE_TMP:
      case OPT_NO_DOCKER_PROXY:
        val[c - OPT_MEMORY] = "1";
        break;
      case ':':
        return run_usage_error("option '%s' needs a value; see 'cleanup-agent run --help'", argv[optind - 1]);
      case '?':
        return run_usage_error("unknown option '%s'; see 'cleanup-agent run --help'", argv[optind - 1]);
      default:
        val[c - OPT_MEMORY] = optarg;
        break;
    }
  }
  if (optind >= argc)
    return run_usage_error("no command given: cleanup-agent run [OPTIONS] -- CMD [ARG...]");
  o->argv = argv + optind;

  _cleanup_error_ ca_error *err = NULL;
  uint64_t pids;
  o->grace_usec = DEFAULT_GRACE_USEC;
  if ((val[0] && ca_parse_size(val[0], &o->limits.memory_max, &err) < 0) ||
      (val[1] && ca_parse_uint(val[1], "--pids", 1, UINT32_MAX, &pids, &err) < 0) ||
      (val[2] && ca_parse_positive_double(val[2], "--cpus", 4096, &o->limits.cpus, &err) < 0) ||
      (val[3] && ca_parse_duration(val[3], &o->timeout_usec, &err) < 0) ||
      (val[4] && ca_parse_duration(val[4], &o->grace_usec, &err) < 0) ||
      (val[5] && ca_parse_duration(val[5], &o->ttl_usec, &err) < 0))
    return run_usage_error("%s", err->msg);
  if (val[1])
    o->limits.pids_max = pids;
  if (val[3] && o->timeout_usec == 0)
    return run_usage_error("--timeout '%s': must be longer than zero", val[3]);
  for (size_t i = 0; i < o->n_labels; i++)
    if (ag_check_user_label(o->labels[i], &err) < 0)
      return run_usage_error("%s", err->msg);
  o->private_tmp = val[7] && !streq(val[7], "0") && !streq(val[7], "false");
  o->report = val[8];
  o->no_docker_proxy = val[9] && !streq(val[9], "0") && !streq(val[9], "false");
  return 0;
}

/* environ without our two variables, then CLEANUP_AGENT_SESSION and DOCKER_HOST for the child. */
static char **child_environment(const struct run_state *s) {
  size_t n = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + 3, sizeof(char *));
  if (!env)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "CLEANUP_AGENT_SESSION=", 22) != 0 &&
        !(s->env.dk && strncmp(environ[i], "DOCKER_HOST=", 12) == 0))
      env[k++] = environ[i];
  static char session_var[64], host_var[4096];
  snprintf(session_var, sizeof(session_var), "CLEANUP_AGENT_SESSION=%s", s->id);
  env[k++] = session_var;
  if (s->env.dk) {
    snprintf(host_var, sizeof(host_var), "DOCKER_HOST=%s", s->proxy_host ? s->proxy_host : s->docker_host);
    env[k++] = host_var;
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

/* "3 processes outlived the command: sleep (pid 123), ..." for what is left in the leaf after the main process. */
static void report_survivors(struct run_state *s) {
  cg_proc_info *procs = NULL;
  size_t n = 0;
  _cleanup_error_ ca_error *err = NULL;
  if (cg_leaf_list_processes(s->leaf, &procs, &n, &err) < 0) {
    run_warn(s, "list processes that outlived the command: %s", err->msg);
    return;
  }
  s->survivors = (unsigned)n;
  if (n == 0) {
    free(procs);
    return;
  }
  ca_buf b = CA_BUF_INIT(4096);
  for (size_t i = 0; i < n && i < MAX_NAMED_SURVIVORS; i++)
    (void)ca_buf_appendf(&b, NULL, "%s%s (pid %d)", i ? ", " : "", procs[i].comm, (int)procs[i].pid);
  if (n > MAX_NAMED_SURVIVORS)
    (void)ca_buf_appendf(&b, NULL, " and %zu more", n - MAX_NAMED_SURVIVORS);
  ca_log_notice("%zu process%s outlived the command: %s", n, n == 1 ? "" : "es", ca_buf_str(&b));
  ca_buf_free(&b);
  free(procs);
}

/* Reaps children without blocking; records the main process's status. Returns true once it has exited. */
static bool reap(struct run_state *s, bool *main_exited) {
  int st;
  pid_t p;
  while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
    if (p == s->pid) {
      s->status = st;
      *main_exited = true;
    } else if (p == s->guardian.pid) {
      run_warn(s, "the guardian (pid %d) died; a crash of the agent would now leave this session to the next start",
               (int)p);
      s->guardian.fd = -1;
    }
    /* Anything else is an orphan re-parented to us under process tracking: reaped, nothing more. */
  }
  return *main_exited;
}

/* Waits for the main process while handling signals, --timeout and the grace period. */
static void supervise(struct run_state *s, const struct run_opts *o, int sfd) {
  bool main_exited = false, killed = false;
  uint64_t now = ca_now_monotonic_usec();
  uint64_t deadline = o->timeout_usec ? now + o->timeout_usec : 0, grace_deadline = 0;

  for (;;) {
    if (reap(s, &main_exited) && (!grace_deadline || killed))
      break;
    if (main_exited && grace_deadline && !killed) {
      /* The main process is gone while the tree had its grace period: let the rest finish within it. */
      now = ca_now_monotonic_usec();
      uint64_t left = grace_deadline > now ? grace_deadline - now : 0;
      if (cg_leaf_wait_empty(s->leaf, left, NULL) < 0) {
        (void)cg_leaf_kill_all(s->leaf, 5000000, NULL); /* errors surface in the final kill */
        s->survivors++;
      }
      break;
    }
    now = ca_now_monotonic_usec();
    uint64_t next = 0;
    if (deadline && !grace_deadline)
      next = deadline;
    if (grace_deadline && !killed)
      next = grace_deadline;
    int timeout_ms = -1;
    if (next)
      timeout_ms = next > now ? (int)CA_MIN((next - now + 999) / 1000, 1000) : 0;
    else
      timeout_ms = 1000;
    struct pollfd pfd = {.fd = sfd, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    cg_leaf_sample(s->leaf);
    if (r > 0) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD)
          continue;
        if (!grace_deadline) {
          s->signal = sig;
          char grace[32];
          ca_log_notice("got SIG%s: forwarding it to the command's tree, killing it after %s",
                        sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", ca_format_duration(o->grace_usec, grace));
          (void)cg_leaf_signal_all(s->leaf, sig, NULL); /* the kill below is what guarantees the end */
          grace_deadline = ca_now_monotonic_usec() + o->grace_usec;
        } else if (!killed) {
          /* A second signal: the user wants it over now. */
          (void)cg_leaf_kill_all(s->leaf, 5000000, NULL);
          killed = true;
        }
      }
    }
    now = ca_now_monotonic_usec();
    if (deadline && !grace_deadline && now >= deadline) {
      char buf[32];
      s->timed_out = true;
      ca_log_notice("--timeout %s expired: sending SIGTERM to the command's tree",
                    ca_format_duration(o->timeout_usec, buf));
      (void)cg_leaf_signal_all(s->leaf, SIGTERM, NULL);
      grace_deadline = now + o->grace_usec;
    }
    if (grace_deadline && !killed && now >= grace_deadline) {
      (void)cg_leaf_kill_all(s->leaf, 5000000, NULL);
      killed = true;
    }
  }
}

/* The exit code from DESIGN.md's table, with the OOM message when the cgroup recorded an OOM kill. */
static int exit_code_of(struct run_state *s, const struct run_opts *o) {
  if (s->timed_out)
    return AG_EXIT_TIMEOUT;
  if (s->signal)
    return 128 + s->signal;
  if (WIFEXITED(s->status))
    return WEXITSTATUS(s->status);
  int sig = WTERMSIG(s->status);
  if (sig == SIGKILL && s->have_stats && s->stats.oom_kills > 0) {
    char lim[32], peak[32];
    ca_log_error("the command was killed by the OOM killer (memory limit %s, peak %s)",
                 o->limits.memory_max ? ca_format_size(o->limits.memory_max, lim) : "none",
                 ca_format_size(s->stats.memory_peak, peak));
  }
  return 128 + sig;
}

static void write_report(const struct run_state *s, const struct run_opts *o) {
  cJSON *j = cJSON_CreateObject();
  if (!j)
    return;
  cJSON_AddStringToObject(j, "session", s->id);
  cJSON_AddNumberToObject(j, "status", s->exit_code);
  cJSON_AddBoolToObject(j, "timed_out", s->timed_out);
  if (s->signal)
    cJSON_AddNumberToObject(j, "signal", s->signal);
  cJSON_AddNumberToObject(j, "duration_ms", (double)(ca_now_monotonic_usec() - s->started_usec) / 1000.0);
  if (s->have_stats) {
    if (s->stats.has_memory) {
      cJSON_AddNumberToObject(j, "peak_memory_bytes", (double)s->stats.memory_peak);
      cJSON_AddNumberToObject(j, "oom_kills", (double)s->stats.oom_kills);
    }
    if (s->stats.has_pids)
      cJSON_AddNumberToObject(j, "pids_limit_hits", (double)s->stats.pids_limit_hits);
    if (s->stats.has_cpu)
      cJSON_AddNumberToObject(j, "cpu_usage_usec", (double)s->stats.cpu_usage_usec);
  }
  cJSON *lim = cJSON_AddObjectToObject(j, "limits");
  if (o->limits.memory_max)
    cJSON_AddNumberToObject(lim, "memory_bytes", (double)o->limits.memory_max);
  if (o->limits.pids_max)
    cJSON_AddNumberToObject(lim, "pids", (double)o->limits.pids_max);
  if (o->limits.cpus > 0)
    cJSON_AddNumberToObject(lim, "cpus", o->limits.cpus);
  cJSON_AddNumberToObject(j, "processes_killed", s->survivors);
  cJSON_AddNumberToObject(j, "containers_removed", s->collected.containers);
  cJSON_AddNumberToObject(j, "networks_removed", s->collected.networks);
  cJSON_AddNumberToObject(j, "volumes_removed", s->collected.volumes);
  cJSON_AddNumberToObject(j, "resources_failed", s->collected.failed);
  cJSON *w = cJSON_AddArrayToObject(j, "warnings");
  for (size_t i = 0; i < s->n_warnings; i++)
    cJSON_AddItemToArray(w, cJSON_CreateString(s->warnings[i]));
  char *text = cJSON_Print(j);
  cJSON_Delete(j);
  _cleanup_error_ ca_error *err = NULL;
  if (!text || ca_write_file_atomic(o->report, text, strlen(text), 0644, &err) < 0)
    ca_log_error("--report: %s", err ? err->msg : "out of memory");
  free(text);
}

/* The one-line summary, printed when anything was cleaned or limited. */
static void print_summary(const struct run_state *s, const struct run_opts *o) {
  struct ag_collect_stats st = s->collected;
  st.processes = s->survivors;
  char what[256], mem[96] = "";
  ag_collect_stats_format(&st, what, sizeof(what));
  bool limited = o->limits.memory_max || o->limits.pids_max || o->limits.cpus > 0;
  if (!*what && !limited)
    return;
  if (s->have_stats && s->stats.has_memory && s->stats.memory_peak) {
    char peak[32], lim[32];
    snprintf(mem, sizeof(mem), "peak memory %s%s%s", ca_format_size(s->stats.memory_peak, peak),
             o->limits.memory_max ? " of " : "", o->limits.memory_max ? ca_format_size(o->limits.memory_max, lim) : "");
  }
  ca_log_notice("session %.8s: %s%s%s", s->id, *what ? what : "nothing left behind", *mem ? "; " : "", mem);
}

/* Starts the session's Docker labeling proxy and points the command's DOCKER_HOST at it. Without it the session
 * works as before: a failure is a warning. */
static void start_docker_proxy(struct run_state *s, const struct ag_registry *reg, const struct run_opts *o) {
  _cleanup_error_ ca_error *err = NULL;
  int r = ag_proxy_start_session(s->env.state, reg, s->docker_host, o->labels, &s->proxy, &err);
  if (r == -EPROTONOSUPPORT)
    ca_log_notice("%s", err->msg);
  else if (r == -ECONNREFUSED)
    ca_log_debug("%s: the command gets the engine's address as it is", err->msg); /* the engine is optional */
  else if (r < 0)
    run_warn(s, "%s; the command talks to the engine directly", err->msg);
  else if (asprintf(&s->proxy_host, "unix://%s", ag_proxy_socket_path(s->proxy)) < 0) {
    s->proxy_host = NULL;
    run_warn(s, "docker proxy: out of memory; the command talks to the engine directly");
    ag_proxy_stop(s->proxy, 0);
    s->proxy = NULL;
  }
}

/* Kill what is left, measure, remove the cgroup, the Docker resources and the registry. */
static void finish_session(struct run_state *s) {
  _cleanup_error_ ca_error *err = NULL;
  if (s->leaf) {
    if (cg_leaf_stats(s->leaf, &s->stats, NULL) == 0)
      s->have_stats = true;
    if (cg_leaf_kill_all(s->leaf, 10000000, &err) < 0)
      run_warn(s, "kill the command's tree: %s", err->msg);
    else if (cg_leaf_remove(s->leaf, &err) < 0)
      run_warn(s, "remove the session cgroup: %s", err->msg);
    ca_error_free(TAKE_PTR(err));
    bool main_exited = s->pid == 0;
    (void)reap(s, &main_exited); /* the killed orphans are our zombies now */
  }
  /* The proxy goes before the collection, so that a create racing the end is either collected or never made. */
  ag_proxy_stop(s->proxy, PROXY_DRAIN_USEC);
  s->proxy = NULL;
  bool docker_failed = false;
  if (s->env.dk && dk_client_connect(s->env.dk, &err) < 0) {
    ca_log_notice("no Docker engine (%s): cleaned up processes only", err->msg);
    ca_error_free(TAKE_PTR(err));
    dk_client_free(TAKE_PTR(s->env.dk));
  }
  if (s->env.dk && ag_collect_docker(s->env.dk, s->id, &s->collected, &err) < 0) {
    docker_failed = true;
    run_warn(s, "%s; the session stays registered and the next start or gc collects it", err->msg);
  }
  ca_error_free(TAKE_PTR(err));
  /* The registry goes only when everything else went: it is what tells the next start that this session is dead. */
  if (!docker_failed && s->collected.failed == 0 && ag_registry_remove(s->env.state, s->id, &err) < 0)
    run_warn(s, "%s", err->msg);
}

int ag_cmd_run(const struct ag_globals *g, int argc, char **argv) {
  struct run_opts o = {0};
  int r = parse_run_opts(argc, argv, &o);
  if (r != 0) {
    free(o.labels);
    return r < 0 ? AG_EXIT_OK : r;
  }
  _cleanup_free_ _unused_ const char **labels = o.labels; /* frees the labels on every return */
  struct run_state s = {.lock_fd = -1, .guardian = {.fd = -1}, .started_usec = ca_now_monotonic_usec()};
  _cleanup_error_ ca_error *err = NULL;
  int exit_code = AG_EXIT_AGENT_FAILED;
  /* Declared before the first goto: the exits below jump over the code that sets them. */
  _cleanup_close_ int sfd = -1;
  _cleanup_free_ char **envp = NULL;
  /* First, before the agent opens anything: the fds our caller passed on, the only ones the command inherits. */
  _cleanup_free_ int *keep_fds = NULL;
  size_t n_keep_fds = 0;
  (void)cg_fds_inherited(&keep_fds, &n_keep_fds, NULL); /* without /proc the command gets 0, 1 and 2 only */

  if (ag_state_open(g->state_dir, &s.env.state, &err) < 0) {
    ca_log_error("run: %s", err->msg);
    return AG_EXIT_AGENT_FAILED;
  }

  /* The engine is optional: without one the session cleans processes only, and says so once. The client is lazy:
   * here only the socket is checked; libcurl is initialised and the version negotiated in the background once the
   * guardian is forked (or now, when a dead session needs the engine), so the command does not wait for them. */
  s.docker_host = g->docker_host ? g->docker_host : "unix:///var/run/docker.sock";
  struct dk_client_options dopts = {
      .host = s.docker_host, .timeout_ms = AG_DOCKER_TIMEOUT_MS, .retries = AG_DOCKER_RETRIES, .lazy = true};
  if (dk_client_new(&dopts, &s.env.dk, &err) < 0) {
    ca_log_notice("no Docker engine (%s): cleaning up processes only", err->msg);
    ca_error_free(TAKE_PTR(err));
  }

  cg_root_options copts = {.root = g->cgroup_root, .allow_process = true};
  if (cg_root_open(&copts, &s.env.cg, &err) < 0) {
    ca_log_error("run: %s", err->msg);
    goto out;
  }
  if (cg_root_tracking(s.env.cg) == CG_TRACK_PROCESS) {
    if (o.limits.memory_max || o.limits.pids_max || o.limits.cpus > 0) {
      ca_log_error("run: limits need a writable cgroup (%s)", cg_root_fallback_reason(s.env.cg));
      goto out;
    }
    ca_log_notice("no writable cgroup (%s): tracking the command's processes by process group and /proc instead",
                  cg_root_fallback_reason(s.env.cg));
  }

  /* Layer 4: whatever a dead session of this host left. Costs one directory read when there is nothing. */
  int n = ag_collect_dead_sessions(&s.env, &s.startup, &err);
  if (n > 0) {
    char what[256];
    ag_collect_stats_format(&s.startup, what, sizeof(what));
    ca_log_notice("collected %d dead session%s%s%s", n, n == 1 ? "" : "s", *what ? ": " : "", what);
  } else if (n < 0) {
    run_warn(&s, "collect dead sessions: %s", err->msg);
    ca_error_free(TAKE_PTR(err));
  }

  /* The session exists from here: lock first, registry second, then anything else. */
  struct ag_registry reg = {.created = time(NULL), .cgroup_root = (char *)cg_root_path(s.env.cg), .command = o.argv};
  if (ag_session_id_new(s.id, &err) < 0 || ag_owner_self(&reg.owner, &err) < 0 ||
      ag_session_lock(s.env.state, s.id, true, &s.lock_fd, &err) < 0) {
    ca_log_error("run: %s", err->msg);
    goto out;
  }
  memcpy(reg.id, s.id, sizeof(reg.id));
  strcpy(reg.mode, "run");
  reg.expires = o.ttl_usec ? reg.created + (int64_t)(o.ttl_usec / 1000000) : 0;
  reg.docker_host = s.env.dk ? (char *)s.docker_host : NULL;

  struct ag_guardian_config gcfg = {
      .session_id = s.id,
      .state_dir = s.env.state->dir,
      .cgroup_root = g->cgroup_root,
      .docker_host = reg.docker_host,
      .lock_fd = s.lock_fd,
  };
  if (ag_guardian_start(&gcfg, &s.guardian, &err) < 0) {
    ca_log_error("run: %s", err->msg);
    (void)ag_registry_remove(s.env.state, s.id, NULL); /* nothing was created yet */
    goto out;
  }
  reg.guardian_pid = s.guardian.pid;
  if (s.env.dk && !o.no_docker_proxy)
    start_docker_proxy(&s, &reg, &o);
  /* Only after the fork: the guardian must not inherit libcurl's initialisation half done by another thread. */
  dk_client_connect_start(s.env.dk);
  if (ag_registry_write(s.env.state, &reg, &err) < 0) {
    ca_log_error("run: %s", err->msg);
    goto out_session;
  }

  if (cg_leaf_create(s.env.cg, s.id, &o.limits, &s.leaf, &err) < 0 ||
      cg_leaf_ignore_pid(s.leaf, s.guardian.pid, &err) < 0) {
    ca_log_error("run: %s", err->msg);
    goto out_session;
  }

  /* Orphans of the tree are re-parented to us, not to an init that may reap them late: no zombie outlives the run. */
  (void)prctl(PR_SET_CHILD_SUBREAPER, 1); /* best effort: without it the kernel's init reaps them */

  /* Signals arrive through a signalfd; the child gets an empty mask and default dispositions from cg_spawn. */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    ca_log_error("run: signalfd: %s", strerror(errno));
    goto out_session;
  }

  envp = child_environment(&s);
  cg_spawn_options sopts = {
      .argv = o.argv,
      .envp = envp,
      .pre_exec = o.private_tmp ? private_tmp : NULL,
      .pre_exec_what = "--private-tmp: cannot set up a private /tmp and /dev/shm (it needs root, or CAP_SYS_ADMIN)",
      .keep_fds = keep_fds,
      .n_keep_fds = n_keep_fds,
  };
  cg_process proc;
  if (!envp) {
    ca_log_error("run: out of memory");
    goto out_session;
  }
  if (cg_spawn(s.leaf, &sopts, &proc, &err) < 0) {
    if (err->detail == CG_ERROR_DETAIL_EXEC) {
      exit_code = err->code == ENOENT ? AG_EXIT_NOT_FOUND : AG_EXIT_NOT_EXECUTABLE;
      ca_log_error("run: %s: %s", o.argv[0], err->code == ENOENT ? "command not found" : strerror(err->code));
    } else {
      ca_log_error("run: %s", err->msg);
    }
    goto out_session;
  }
  if (proc.pidfd >= 0)
    close(proc.pidfd); /* SIGCHLD and waitpid tell us about the main process */
  s.pid = proc.pid;

  supervise(&s, &o, sfd);
  if (!s.timed_out && !s.signal)
    report_survivors(&s);
  finish_session(&s);
  exit_code = exit_code_of(&s, &o);
  s.exit_code = exit_code;
  if (s.timed_out)
    ca_log_notice("timed out; the command's tree was killed");
  print_summary(&s, &o);
  if (o.report)
    write_report(&s, &o);
  goto out_release;

out_session:
  finish_session(&s);
out_release:
  ag_guardian_release(&s.guardian);
out:
  ca_close_keep_errno(s.lock_fd);
  cg_leaf_free(s.leaf);
  dk_client_free(s.env.dk);
  cg_root_free(s.env.cg);
  ag_state_free(s.env.state);
  for (size_t i = 0; i < s.n_warnings; i++)
    free(s.warnings[i]);
  free(s.proxy_host);
  return exit_code;
}
