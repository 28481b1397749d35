/* container-seq: each test file in its own limited, labeled container, one at a time, with a checkpoint, --resume
 * and self-protection of the host (issue 6; CLI and exit codes in DESIGN.md).
 *
 * Pipelining. Several threads talk to the engine, each through its own dk_client (a client is one curl handle and
 * is not thread-safe; dk_client_clone is cheap and does no I/O):
 *   - the main thread runs the tests strictly one after another: arm the wait, start, wait with the timeout, and
 *     inspect only when the exit code says something went wrong;
 *   - the creator creates the container of the next pending file while the current test runs;
 *   - the remover force-removes finished containers while the next test starts;
 *   - a logs thread per test follows that test's output while the main thread blocks in the wait;
 *   - the monitor takes SIGINT/SIGTERM/SIGHUP (sigtimedwait) and samples the host load, and cancels the wait when
 *     the run has to stop.
 * An ordered sequence of calls on one client cannot overlap a container create (~100 ms on vfs) or a removal
 * (~40 ms) with a running test, and for short test files those are most of the cost per file. Two tests never run
 * at once: only the main thread starts containers, and only after the previous test's wait has returned (the
 * container killed first when it timed out or the run is stopping).
 *
 * Every container carries the session labels, so the end of the session, the guardian (agent SIGKILLed) and the
 * next agent start (agent and guardian killed) all find it. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "collect.h"
#include "commands.h"
#include "guardian.h"
#include "proxy.h"
#include "seq.h"

#define DEFAULT_PROTECT_WINDOW_USEC (3 * 1000000ULL)
#define DEFAULT_ENGINE_RETRY_USEC (60 * 1000000ULL)
#define MONITOR_TICK_MS 250
#define LOGS_DRAIN_USEC (2 * 1000000ULL) /* after the wait returned, time for the log stream to end by itself */
#define KILL_WAIT_USEC (30 * 1000000ULL) /* a killed container's wait must return within this */
#define LINE_MAX_BYTES (16 * 1024)       /* a longer line is printed in pieces */
#define TAIL_BYTES (4 * 1024)            /* output kept for the JUnit failure and the checkpoint */
#define OOM_POLLS 10                     /* re-inspections of a SIGKILLed test for the OOM flag ... */
#define OOM_POLL_MS 50                   /* ... this far apart */

extern char **environ;

/* ---- options ----------------------------------------------------------------------------------------------- */

struct seq_opts {
  const char *image;
  uint64_t memory, pids, timeout_usec;
  double cpus;
  struct dk_mount *mounts;
  size_t n_mounts;
  const char **env; /* "K=V", NULL-terminated */
  size_t n_env;
  const char *workdir, *network, *checkpoint, *junit, *log_dir;
  bool resume, self_protect, docker_proxy;
  double cpu_limit, mem_limit;
  const char *const *files;
  size_t n_files;
  char **cmd;
  char **owned; /* strings allocated while parsing, NULL-terminated */
  size_t n_owned;
};

static void opts_done(struct seq_opts *o) {
  for (size_t i = 0; i < o->n_owned; i++)
    free(o->owned[i]);
  free(o->owned);
  free(o->mounts);
  free(o->env);
}

static char *own(struct seq_opts *o, char *s) {
  if (s)
    o->owned[o->n_owned++] = s;
  return s;
}

static void seq_usage(FILE *f) {
  fprintf(f, "Usage: cleanup-agent container-seq --image IMG [OPTIONS] TEST_FILE... -- CMD [ARG...]\n"
             "\n"
             "Runs CMD once per TEST_FILE, each time in a fresh container with the given limits, one at a time, and\n"
             "removes every container it made however it ends. {} in CMD and its arguments is replaced by the test\n"
             "file; without {} the test file is added as the last argument. Output lines are prefixed with the test\n"
             "file; each file gets a PASS or FAIL line, and the run a final 'N passed, N failed, N skipped' line.\n"
             "Exits 0 when all passed, 1 when any failed, 42 when it stopped to protect the host, 125 when the agent\n"
             "itself failed, 128+N on signal N.\n"
             "\n"
             "Options (each also from CLEANUP_AGENT_<NAME>, e.g. CLEANUP_AGENT_MEMORY):\n"
             "  --image IMG        image of the test containers (required)\n"
             "  --memory SIZE      memory limit of each container, no swap on top (512M, 2G)\n"
             "  --cpus F           CPU limit of each container (1.5)\n"
             "  --pids N           process limit of each container\n"
             "  --timeout DUR      kill a test after DUR and count it as failed (30s, 5m)\n"
             "  --mount SRC:DST[:ro]  bind mount (SRC a path) or volume (SRC a name); repeatable\n"
             "  --env K=V          environment of the tests (K alone: from ours); repeatable\n"
             "  --workdir DIR      working directory in the container\n"
             "  --network MODE     network mode (default none)\n"
             "  --log-dir DIR      write each test's output to DIR/<file>.log instead of stdout\n"
             "  --checkpoint FILE  where results are recorded after each test (default: in the state dir, named\n"
             "                     after the working directory and the file list)\n"
             "  --resume           skip the files the checkpoint has results for and continue the totals\n"
             "  --self-protect     stop with 42 (checkpoint saved) when the host stays overloaded\n"
             "  --cpu-limit PCT    host CPU busy percent that counts as overloaded (default 90; implies\n"
             "                     --self-protect)\n"
             "  --mem-limit PCT    host memory in use (from MemAvailable) that counts as overloaded, also when\n"
             "                     PSI says tasks stall on memory more than 100-PCT percent of the time (default\n"
             "                     90; implies --self-protect)\n"
             "  --junit FILE       write a JUnit XML report\n"
             "  --docker-proxy     mount a socket of the session as /var/run/docker.sock in each container: what a\n"
             "                     test creates through it gets the session labels and is removed with the session\n"
             "\n"
             "Environment: CLEANUP_AGENT_PROTECT_WINDOW (how long the host must stay overloaded, default 3s),\n"
             "CLEANUP_AGENT_ENGINE_RETRY (how long to wait for an engine that went away, default 60s),\n"
             "CLEANUP_AGENT_PROC_STAT, CLEANUP_AGENT_MEMINFO, CLEANUP_AGENT_PSI_MEMORY (where load is read).\n");
}

static int seq_usage_error(const char *fmt, ...) _printf_(1, 2);
static int seq_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "cleanup-agent: container-seq: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  return AG_EXIT_AGENT_FAILED;
}

static int parse_percent(const char *s, const char *what, double *ret, ca_error **err) {
  char buf[32];
  size_t len = strlen(s);
  if (len > 0 && len < sizeof(buf) && s[len - 1] == '%') {
    memcpy(buf, s, len - 1);
    buf[len - 1] = '\0';
    s = buf;
  }
  return ca_parse_positive_double(s, what, 100, ret, err);
}

/* SRC:DST[:ro|:rw]. A SRC with a '/' or starting with '.' is a host path (made absolute; it must exist), else a
 * volume name, as docker -v reads them. */
static int parse_mount(struct seq_opts *o, const char *spec, struct dk_mount *ret) {
  _cleanup_free_ char *s = strdup(spec);
  if (!s)
    return seq_usage_error("out of memory");
  size_t len = strlen(s);
  bool ro = false;
  if (len > 3 && (streq(s + len - 3, ":ro") || streq(s + len - 3, ":rw"))) {
    ro = streq(s + len - 3, ":ro");
    s[len - 3] = '\0';
  }
  char *colon = strrchr(s, ':');
  if (!colon || colon == s || colon[1] != '/')
    return seq_usage_error("--mount '%s': expected SRC:DST[:ro] with an absolute DST", spec);
  *colon = '\0';
  ret->read_only = ro;
  ret->target = own(o, strdup(colon + 1));
  if (strchr(s, '/') || s[0] == '.') {
    char *abs = realpath(s, NULL);
    if (!abs)
      return seq_usage_error("--mount '%s': %s: %s", spec, s, strerror(errno));
    ret->type = DK_MOUNT_BIND;
    ret->source = own(o, abs);
  } else {
    ret->type = DK_MOUNT_VOLUME;
    ret->source = own(o, strdup(s));
  }
  if (!ret->target || !ret->source)
    return seq_usage_error("out of memory");
  return 0;
}

static int parse_seq_opts(int argc, char **argv, struct seq_opts *o) {
  enum {
    OPT_IMAGE = 0x100,
    OPT_MEMORY,
    OPT_CPUS,
    OPT_PIDS,
    OPT_TIMEOUT,
    OPT_WORKDIR,
    OPT_NETWORK,
    OPT_CHECKPOINT,
    OPT_RESUME,
    OPT_SELF_PROTECT,
    OPT_CPU_LIMIT,
    OPT_MEM_LIMIT,
    OPT_JUNIT,
    OPT_LOG_DIR,
    OPT_DOCKER_PROXY,
    OPT_MOUNT,
    OPT_ENV,
  };
  static const struct option options[] = {
      {"image", required_argument, NULL, OPT_IMAGE},
      {"memory", required_argument, NULL, OPT_MEMORY},
      {"cpus", required_argument, NULL, OPT_CPUS},
      {"pids", required_argument, NULL, OPT_PIDS},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"workdir", required_argument, NULL, OPT_WORKDIR},
      {"network", required_argument, NULL, OPT_NETWORK},
      {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
      {"resume", no_argument, NULL, OPT_RESUME},
      {"self-protect", no_argument, NULL, OPT_SELF_PROTECT},
      {"cpu-limit", required_argument, NULL, OPT_CPU_LIMIT},
      {"mem-limit", required_argument, NULL, OPT_MEM_LIMIT},
      {"junit", required_argument, NULL, OPT_JUNIT},
      {"log-dir", required_argument, NULL, OPT_LOG_DIR},
      {"docker-proxy", no_argument, NULL, OPT_DOCKER_PROXY},
      {"mount", required_argument, NULL, OPT_MOUNT},
      {"env", required_argument, NULL, OPT_ENV},
      {"help", no_argument, NULL, 'h'},
      {},
  };
  /* Environment first, so that flags override it. */
  static const char *const vars[] = {
      "CLEANUP_AGENT_IMAGE",   "CLEANUP_AGENT_MEMORY",       "CLEANUP_AGENT_CPUS",         "CLEANUP_AGENT_PIDS",
      "CLEANUP_AGENT_TIMEOUT", "CLEANUP_AGENT_WORKDIR",      "CLEANUP_AGENT_NETWORK",      "CLEANUP_AGENT_CHECKPOINT",
      "CLEANUP_AGENT_RESUME",  "CLEANUP_AGENT_SELF_PROTECT", "CLEANUP_AGENT_CPU_LIMIT",    "CLEANUP_AGENT_MEM_LIMIT",
      "CLEANUP_AGENT_JUNIT",   "CLEANUP_AGENT_LOG_DIR",      "CLEANUP_AGENT_DOCKER_PROXY",
  };
  const char *val[OPT_DOCKER_PROXY - OPT_IMAGE + 1];
  for (size_t i = 0; i < ELEMENTSOF(val); i++) {
    val[i] = getenv(vars[i]);
    if (val[i] && !*val[i])
      val[i] = NULL;
  }
  o->owned = calloc((size_t)argc * 2 + 2, sizeof(char *));
  o->mounts = calloc((size_t)argc + 1, sizeof(*o->mounts));
  o->env = calloc((size_t)argc + 2, sizeof(char *));
  if (!o->owned || !o->mounts || !o->env)
    return seq_usage_error("out of memory");

  /* Options and test files end at "--"; getopt would move the "--" in front of the test files when permuting. */
  int dash = 1;
  while (dash < argc && !streq(argv[dash], "--"))
    dash++;
  for (int i = 1; i < dash; i++)
    if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
      seq_usage(stdout);
      return -1;
    }
  if (dash >= argc)
    return seq_usage_error("no command given: container-seq --image IMG [OPTIONS] TEST_FILE... -- CMD [ARG...]");

  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(dash, argv, ":h", options, NULL)) != -1) {
    switch (c) {
      case 'h':
        seq_usage(stdout);
        return -1;
      case OPT_RESUME:
      case OPT_SELF_PROTECT:
      case OPT_DOCKER_PROXY:
        val[c - OPT_IMAGE] = "1";
        break;
      case OPT_MOUNT: {
        int r = parse_mount(o, optarg, &o->mounts[o->n_mounts]);
        if (r != 0)
          return r;
        o->n_mounts++;
        break;
      }
      case OPT_ENV:
        if (!optarg[0] || optarg[0] == '=')
          return seq_usage_error("--env '%s': expected K=V or K", optarg);
        if (strchr(optarg, '=')) {
          o->env[o->n_env++] = optarg;
        } else if (getenv(optarg)) {
          char *kv = NULL;
          if (asprintf(&kv, "%s=%s", optarg, getenv(optarg)) < 0)
            return seq_usage_error("out of memory");
          o->env[o->n_env++] = own(o, kv);
        } /* else: like docker -e K, an unset K is not passed */
        break;
      case ':':
        return seq_usage_error("option '%s' needs a value; see 'cleanup-agent container-seq --help'", argv[optind - 1]);
      case '?':
        return seq_usage_error("unknown option '%s'; see 'cleanup-agent container-seq --help'", argv[optind - 1]);
      default:
        val[c - OPT_IMAGE] = optarg;
        break;
    }
  }
  o->files = (const char *const *)argv + optind;
  o->n_files = (size_t)(dash - optind);
  o->cmd = argv + dash + 1;
  if (!val[0])
    return seq_usage_error("--image is required: container-seq --image IMG [OPTIONS] TEST_FILE... -- CMD [ARG...]");
  if (o->n_files == 0)
    return seq_usage_error("no test files given: container-seq --image IMG [OPTIONS] TEST_FILE... -- CMD [ARG...]");
  if (!o->cmd[0])
    return seq_usage_error("no command after '--': container-seq --image IMG [OPTIONS] TEST_FILE... -- CMD [ARG...]");
  for (size_t i = 0; i < o->n_files; i++)
    if (!o->files[i][0])
      return seq_usage_error("test file %zu is an empty string", i + 1);

  _cleanup_error_ ca_error *err = NULL;
  o->image = val[0];
  o->cpu_limit = o->mem_limit = 90;
  if ((val[1] && ca_parse_size(val[1], &o->memory, &err) < 0) ||
      (val[2] && ca_parse_positive_double(val[2], "--cpus", 4096, &o->cpus, &err) < 0) ||
      (val[3] && ca_parse_uint(val[3], "--pids", 1, INT32_MAX, &o->pids, &err) < 0) ||
      (val[4] && ca_parse_duration(val[4], &o->timeout_usec, &err) < 0) ||
      (val[10] && parse_percent(val[10], "--cpu-limit", &o->cpu_limit, &err) < 0) ||
      (val[11] && parse_percent(val[11], "--mem-limit", &o->mem_limit, &err) < 0))
    return seq_usage_error("%s", err->msg);
  if (val[4] && o->timeout_usec == 0)
    return seq_usage_error("--timeout '%s': must be longer than zero", val[4]);
  if (o->memory > INT64_MAX)
    return seq_usage_error("--memory '%s': too large", val[1]);
  o->workdir = val[5];
  if (o->workdir && o->workdir[0] != '/')
    return seq_usage_error("--workdir '%s': must be an absolute path in the container", o->workdir);
  o->network = val[6] ? val[6] : "none";
  o->checkpoint = val[7];
  o->resume = val[8] && !streq(val[8], "0") && !streq(val[8], "false");
  o->self_protect = (val[9] && !streq(val[9], "0") && !streq(val[9], "false")) || val[10] || val[11];
  o->junit = val[12];
  o->log_dir = val[13];
  o->docker_proxy = val[14] && !streq(val[14], "0") && !streq(val[14], "false");
  return 0;
}

/* ---- the run ----------------------------------------------------------------------------------------------- */

enum stop_reason { STOP_NONE = 0, STOP_SIGNAL, STOP_PROTECT };

/* A container made ahead of its test by the creator. */
struct slot {
  char *cid;
  ca_error *err;
  bool ready;
};

struct seq {
  const struct seq_opts *o;
  char id[AG_SESSION_ID_LEN + 1];
  const char *docker_host;
  struct ag_env env;
  struct dk_client *dk_create, *dk_remove, *dk_logs, *dk_events;
  int lock_fd;
  struct ag_guardian guardian;
  char **labels;          /* the session labels of every container */
  struct ag_proxy *proxy; /* --docker-proxy */
  char session_env[64];

  struct seq_result *results; /* one per file */
  size_t *order;              /* indices of the files still to run, in order */
  size_t n_order;
  char *checkpoint;
  bool checkpoint_default;

  /* Shared with the creator and remover: guarded by mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct slot *slots; /* by position in order */
  size_t create_next, create_limit;
  char **rm_queue;
  size_t rm_n, rm_cap;
  bool quit;

  /* Shared with the monitor. */
  atomic_int stop;        /* enum stop_reason, set once */
  atomic_int stop_signal; /* the signal that stopped the run */
  char protect_msg[256];  /* written before stop is set to STOP_PROTECT */
  atomic_bool over_now;   /* the host is over a threshold right now (not yet for the whole window) */
  struct dk_cancel cancel;
  pthread_t monitor;
  bool monitor_started;
  struct seq_load load;
  uint64_t window_usec;

  pthread_mutex_t out_mu; /* one line at a time on stdout */

  /* Containers the engine reported an "oom" event for (guarded by mu): the event can come after the exit, when
   * 20.10 no longer sets State.OOMKilled. */
  char **oom_ids;
  size_t oom_n, oom_cap;
  struct dk_cancel events_cancel;
  pthread_t events;
  bool events_started;
  uint64_t engine_retry_usec;
};

static const char *sig_name(int sig) {
  const char *n = sigabbrev_np(sig);
  return n ? n : "?";
}

/* Creates the container of a file, named "ca-seq-<first 12 of the session>-<file index>[-<attempt>]": readable in
 * docker ps, and unique, so that a name conflict after a re-sent request can only be our own container. */
static int container_spec_create(struct seq *s, struct dk_client *dk, size_t file, int attempt, char **ret_cid,
                                 ca_error **err) {
  const struct seq_opts *o = s->o;
  const char *test = o->files[file];
  size_t n = 0;
  bool substituted = false;
  while (o->cmd[n])
    n++;
  _cleanup_strv_free_ char **cmd = calloc(n + 2, sizeof(char *));
  if (!cmd)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    ca_buf b = CA_BUF_INIT(1024 * 1024);
    const char *p = o->cmd[i], *q;
    while ((q = strstr(p, "{}"))) {
      (void)ca_buf_append(&b, p, (size_t)(q - p), NULL);
      (void)ca_buf_append(&b, test, strlen(test), NULL);
      p = q + 2;
      substituted = true;
    }
    if (ca_buf_append(&b, p, strlen(p), err) < 0) {
      ca_buf_free(&b);
      return -ENOMEM;
    }
    cmd[i] = ca_buf_steal(&b, NULL);
    if (!cmd[i])
      return ca_error_set(err, ENOMEM, "out of memory");
  }
  if (!substituted && !(cmd[n] = strdup(test)))
    return ca_error_set(err, ENOMEM, "out of memory");

  const char **env = calloc(o->n_env + 2, sizeof(char *));
  if (!env)
    return ca_error_set(err, ENOMEM, "out of memory");
  env[0] = s->session_env;
  memcpy(env + 1, o->env, o->n_env * sizeof(char *));
  char name[64];
  if (attempt == 0)
    snprintf(name, sizeof(name), "ca-seq-%.12s-%zu", s->id, file);
  else
    snprintf(name, sizeof(name), "ca-seq-%.12s-%zu-%d", s->id, file, attempt);
  struct dk_container_spec spec = {
      .image = o->image,
      .name = name,
      .cmd = (const char *const *)cmd,
      .env = env,
      .labels = (const char *const *)s->labels,
      .working_dir = o->workdir,
      .mounts = o->mounts,
      .n_mounts = o->n_mounts,
      .network_mode = o->network,
      .memory_bytes = (int64_t)o->memory,
      .cpus = o->cpus,
      .pids_limit = (int64_t)o->pids,
  };
  int r = dk_container_create(dk, &spec, ret_cid, err);
  free(env);
  return r < 0 ? ca_error_wrap(err, "%s", test) : 0;
}

static void *creator_main(void *arg) {
  struct seq *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->quit && s->create_next >= CA_MIN(s->create_limit, s->n_order))
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->quit)
      break;
    size_t k = s->create_next++;
    pthread_mutex_unlock(&s->mu);
    char *cid = NULL;
    ca_error *e = NULL;
    (void)container_spec_create(s, s->dk_create, s->order[k], 0, &cid, &e); /* e says why */
    pthread_mutex_lock(&s->mu);
    s->slots[k].cid = cid;
    s->slots[k].err = e;
    s->slots[k].ready = true;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static void *remover_main(void *arg) {
  struct seq *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->quit && s->rm_n == 0)
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->rm_n == 0)
      break; /* quit, and the queue is drained */
    char *cid = s->rm_queue[0];
    memmove(s->rm_queue, s->rm_queue + 1, --s->rm_n * sizeof(char *));
    pthread_mutex_unlock(&s->mu);
    _cleanup_error_ ca_error *e = NULL;
    if (dk_remove(s->dk_remove, DK_CONTAINER, cid, &e) < 0)
      ca_log_warning("remove container %.12s: %s (the end of the session tries again)", cid, e->msg);
    free(cid);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static int on_event(void *userdata, const struct dk_event *ev) {
  struct seq *s = userdata;
  if (!ev->id || !streq(ev->action, "oom"))
    return 0;
  pthread_mutex_lock(&s->mu);
  if (s->oom_n == s->oom_cap) {
    size_t cap = s->oom_cap ? s->oom_cap * 2 : 8;
    char **v = realloc(s->oom_ids, cap * sizeof(char *));
    if (v) {
      s->oom_ids = v;
      s->oom_cap = cap;
    }
  }
  char *id = s->oom_n < s->oom_cap ? strdup(ev->id) : NULL;
  if (id)
    s->oom_ids[s->oom_n++] = id; /* out of memory: the inspect still tells most OOM kills */
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* Follows the engine's "oom" events for the session's containers until cancelled. */
static void *events_main(void *arg) {
  struct seq *s = arg;
  char label[AG_SESSION_ID_LEN + 64];
  snprintf(label, sizeof(label), AG_LABEL_SESSION "=%s", s->id);
  const struct dk_filter filters[] = {{"type", "container"}, {"event", "oom"}, {"label", label}, {NULL, NULL}};
  struct dk_events_options eo = {.filters = filters, .on_event = on_event, .userdata = s};
  _cleanup_error_ ca_error *e = NULL;
  if (dk_events(s->dk_events, &eo, &s->events_cancel, &e) < 0 && e->code != ECANCELED)
    ca_log_info("engine events: %s (OOM kills are told from the containers' state alone)", e->msg);
  return NULL;
}

static bool saw_oom_event(struct seq *s, const char *cid) {
  bool seen = false;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->oom_n && !seen; i++)
    seen = streq(s->oom_ids[i], cid);
  pthread_mutex_unlock(&s->mu);
  return seen;
}

/* Hands a finished container to the remover (takes cid). */
static void queue_removal(struct seq *s, char *cid) {
  if (!cid)
    return;
  pthread_mutex_lock(&s->mu);
  if (s->rm_n == s->rm_cap) {
    size_t cap = s->rm_cap ? s->rm_cap * 2 : 8;
    char **q = realloc(s->rm_queue, cap * sizeof(char *));
    if (!q) {
      pthread_mutex_unlock(&s->mu);
      free(cid); /* out of memory: the collection at the end removes it by label */
      return;
    }
    s->rm_queue = q;
    s->rm_cap = cap;
  }
  s->rm_queue[s->rm_n++] = cid;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void request_stop(struct seq *s, enum stop_reason why, int sig) {
  int expected = STOP_NONE;
  if (sig)
    atomic_store(&s->stop_signal, sig);
  if (atomic_compare_exchange_strong(&s->stop, &expected, (int)why) || why == STOP_SIGNAL)
    dk_cancel_request(&s->cancel);
  pthread_mutex_lock(&s->mu);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* Signals and host load. A threshold counts only when it holds for the whole window, so a compile burst next door
 * does not stop the suite; a host that stays overloaded does. */
static void *monitor_main(void *arg) {
  struct seq *s = arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1); /* from the main thread: quit */
  uint64_t over_since = 0;
  bool warned = false;
  for (;;) {
    struct timespec ts = {0, MONITOR_TICK_MS * 1000000L};
    int sig = sigtimedwait(&set, NULL, &ts);
    if (sig == SIGUSR1)
      break;
    if (sig > 0) {
      if (atomic_load(&s->stop_signal) == 0)
        ca_log_notice("got SIG%s: stopping the current test, saving the checkpoint, removing the containers",
                      sig_name(sig));
      request_stop(s, STOP_SIGNAL, sig);
      continue;
    }
    if (!s->o->self_protect || atomic_load(&s->stop) != STOP_NONE)
      continue;
    _cleanup_error_ ca_error *e = NULL;
    if (seq_load_sample(&s->load, &e) < 0) {
      if (!warned)
        ca_log_warning("self-protect: cannot sample the host load: %s", e->msg);
      warned = true;
      continue;
    }
    char what[160] = "";
    const struct seq_load *l = &s->load;
    if (l->cpu_pct >= s->o->cpu_limit)
      snprintf(what, sizeof(what), "CPU %.0f%% busy (limit %.0f%%)", l->cpu_pct, s->o->cpu_limit);
    else if (l->mem_pct >= s->o->mem_limit)
      snprintf(what, sizeof(what), "memory %.0f%% in use (limit %.0f%%)", l->mem_pct, s->o->mem_limit);
    else if (l->have_psi && l->mem_stall_pct >= 100.0 - s->o->mem_limit)
      snprintf(what, sizeof(what), "tasks stalled on memory %.0f%% of the time (PSI full avg10, limit %.0f%%)",
               l->mem_stall_pct, 100.0 - s->o->mem_limit);
    uint64_t now = ca_now_monotonic_usec();
    if (!*what) {
      over_since = 0;
      atomic_store(&s->over_now, false);
      continue;
    }
    atomic_store(&s->over_now, true);
    if (!over_since)
      over_since = now;
    if (now - over_since >= s->window_usec) {
      char win[32];
      snprintf(s->protect_msg, sizeof(s->protect_msg), "%s for %s", what, ca_format_duration(now - over_since, win));
      request_stop(s, STOP_PROTECT, 0);
    }
  }
  return NULL;
}

/* ---- output of one test ------------------------------------------------------------------------------------ */

struct line_buf {
  char data[LINE_MAX_BYTES];
  size_t len;
};

struct test_output {
  struct seq *s;
  const char *file;
  const char *cid;
  FILE *log; /* --log-dir, else NULL: stdout with prefixes */
  struct line_buf lines[2];
  ca_buf tail;
  struct dk_cancel cancel;
  ca_error *err;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
};

static void emit_line(struct test_output *t, const char *data, size_t len) {
  pthread_mutex_lock(&t->s->out_mu);
  fprintf(stdout, "%s | %.*s\n", t->file, (int)len, data);
  pthread_mutex_unlock(&t->s->out_mu);
}

static void flush_partial(struct test_output *t) {
  for (size_t i = 0; i < 2; i++)
    if (t->lines[i].len) {
      emit_line(t, t->lines[i].data, t->lines[i].len);
      t->lines[i].len = 0;
    }
}

static void keep_tail(struct test_output *t, const char *data, size_t len) {
  if (len >= TAIL_BYTES) {
    ca_buf_reset(&t->tail);
    (void)ca_buf_append(&t->tail, data + len - TAIL_BYTES, TAIL_BYTES, NULL); /* within the cap */
    return;
  }
  if (t->tail.len + len > 2 * TAIL_BYTES) {
    size_t keep = TAIL_BYTES - len;
    memmove(t->tail.data, t->tail.data + t->tail.len - keep, keep);
    t->tail.len = keep;
    t->tail.data[keep] = '\0';
  }
  (void)ca_buf_append(&t->tail, data, len, NULL); /* within the cap */
}

static int on_output(void *userdata, enum dk_stream stream, const char *data, size_t len) {
  struct test_output *t = userdata;
  keep_tail(t, data, len);
  if (t->log) {
    if (fwrite(data, 1, len, t->log) != len)
      return 0; /* a full disk loses log text, not the test run */
    return 0;
  }
  /* stdout and stderr lines are assembled apart so that one never cuts into the other. */
  struct line_buf *lb = &t->lines[stream == DK_STDERR];
  for (size_t i = 0; i < len; i++) {
    if (data[i] == '\n') {
      emit_line(t, lb->data, lb->len);
      lb->len = 0;
      continue;
    }
    if (lb->len == sizeof(lb->data)) {
      emit_line(t, lb->data, lb->len);
      lb->len = 0;
    }
    lb->data[lb->len++] = data[i];
  }
  return 0;
}

static void *logs_main(void *arg) {
  struct test_output *t = arg;
  struct dk_logs_options lo = {.follow = true, .on_output = on_output, .userdata = t};
  (void)dk_container_logs(t->s->dk_logs, t->cid, &lo, &t->cancel, &t->err); /* t->err says why */
  if (!t->log)
    flush_partial(t);
  pthread_mutex_lock(&t->mu);
  t->done = true;
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

/* The last TAIL_BYTES of output from a line start, or NULL when there was none. */
static char *tail_text(struct test_output *t) {
  if (t->tail.len == 0)
    return NULL;
  const char *p = t->tail.data;
  size_t len = t->tail.len;
  if (len > TAIL_BYTES) {
    p += len - TAIL_BYTES;
    len = TAIL_BYTES;
    const char *nl = memchr(p, '\n', len);
    if (nl && (size_t)(nl - p) + 1 < len) {
      len -= (size_t)(nl - p) + 1;
      p = nl + 1;
    }
  }
  return strndup(p, len);
}

/* ---- one test ---------------------------------------------------------------------------------------------- */

enum test_status {
  TEST_DONE,    /* a result was recorded */
  TEST_STOPPED, /* the run is stopping: no result */
  TEST_ENGINE,  /* the engine went away: no result, err says how */
  TEST_FAILED,  /* the agent failed: err says why */
};

static FILE *open_log(const struct seq_opts *o, const char *file, ca_error **err) {
  _cleanup_free_ char *name = strdup(file), *path = NULL;
  if (!name) {
    ca_error_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  for (char *p = name; *p; p++)
    if (*p == '/')
      *p = '_';
  if (asprintf(&path, "%s/%s.log", o->log_dir, name) < 0) {
    ca_error_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    ca_error_set_errno(err, errno, "--log-dir: %s", path);
    return NULL;
  }
  FILE *f = fdopen(fd, "w");
  if (!f) {
    ca_error_set_errno(err, errno, "--log-dir: %s", path);
    close(fd);
  }
  return f;
}

static enum test_status run_test(struct seq *s, size_t file, const char *cid, struct seq_result *ret, ca_error **err) {
  const struct seq_opts *o = s->o;
  const char *name = o->files[file];
  _cleanup_(dk_wait_freep) struct dk_wait *w = NULL;
  if (dk_wait_begin(s->env.dk, cid, DK_WAIT_NEXT_EXIT, &w, err) < 0)
    return dk_error_kind(*err) == DK_ERR_TRANSIENT ? TEST_ENGINE : TEST_FAILED;

  struct test_output t = {.s = s, .file = name, .cid = cid, .tail = CA_BUF_INIT(4 * TAIL_BYTES)};
  if (o->log_dir && !(t.log = open_log(o, name, err)))
    return TEST_FAILED;
  pthread_mutex_init(&t.mu, NULL);
  pthread_cond_init(&t.cv, NULL);

  enum test_status status = TEST_DONE;
  bool logs_started = false, timed_out = false;
  int code = -1;
  uint64_t t0 = ca_now_monotonic_usec();
  pthread_t logs;

  /* The cancel is re-armed before the stop flag is read: a stop requested after the read cancels this wait. */
  atomic_store(&s->cancel.requested, false);
  s->cancel.deadline_usec = 0;
  if (atomic_load(&s->stop) != STOP_NONE) {
    status = TEST_STOPPED;
    goto out;
  }
  ca_log_debug("%s: wait armed", name);
  if (dk_container_start(s->env.dk, cid, err) < 0) {
    /* A container that cannot start (no such command in the image, a bad mount) fails its test, unless the engine
     * itself is gone. A dropped connection says nothing about the container: the engine may even have started it
     * before the answer was lost, so the file runs again in a new one once the engine is back. */
    char *v = NULL, *os = NULL;
    if ((dk_error_kind(*err) == DK_ERR_TRANSIENT && (*err)->detail == 0) ||
        dk_engine_version(s->env.dk, &v, &os, NULL) < 0) {
      status = TEST_ENGINE;
      goto out;
    }
    free(v);
    free(os);
    ret->outcome = SEQ_FAIL;
    ret->reason = SEQ_REASON_EXIT;
    ret->exit_code = -1;
    ret->duration_usec = 0;
    if (asprintf(&ret->message, "cannot start: %s", (*err)->msg) < 0)
      ret->message = NULL;
    ca_error_free(*err);
    *err = NULL;
    goto out;
  }
  t0 = ca_now_monotonic_usec();
  ca_log_debug("%s: started", name);
  if (pthread_create(&logs, NULL, logs_main, &t) == 0)
    logs_started = true;
  else
    ca_log_warning("%s: cannot start a thread for its output", name);

  s->cancel.deadline_usec = o->timeout_usec ? t0 + o->timeout_usec : 0;
  int r = dk_wait_end(w, &s->cancel, &code, err);
  if (r < 0 && (*err)->code == ETIMEDOUT && atomic_load(&s->stop) == STOP_NONE) {
    timed_out = true;
    ca_error_free(TAKE_PTR(*err));
  } else if (r < 0 && (*err)->code == ECANCELED) {
    status = TEST_STOPPED;
    ca_error_free(TAKE_PTR(*err));
  } else if (r < 0) {
    status = dk_error_kind(*err) == DK_ERR_TRANSIENT ? TEST_ENGINE : TEST_FAILED;
  }
  uint64_t duration = ca_now_monotonic_usec() - t0;
  ca_log_debug("%s: wait returned", name);
  if (timed_out || status == TEST_STOPPED) {
    _cleanup_error_ ca_error *e = NULL;
    if (dk_container_kill(s->env.dk, cid, NULL, &e) < 0)
      ca_log_warning("%s: kill container %.12s: %s", name, cid, e->msg);
    struct dk_cancel bounded = {.deadline_usec = ca_now_monotonic_usec() + KILL_WAIT_USEC};
    ca_error_free(TAKE_PTR(e));
    if (dk_wait_end(w, &bounded, &code, &e) < 0)
      ca_log_warning("%s: wait for the killed container %.12s: %s", name, cid, e->msg);
  }

  if (logs_started) {
    /* The stream ends with the container; give it a moment to deliver the last frames, then cut it. */
    uint64_t until = ca_now_realtime_usec() + LOGS_DRAIN_USEC;
    struct timespec ts = {(time_t)(until / 1000000), (long)(until % 1000000) * 1000};
    pthread_mutex_lock(&t.mu);
    while (!t.done)
      if (pthread_cond_timedwait(&t.cv, &t.mu, &ts) != 0)
        break;
    pthread_mutex_unlock(&t.mu);
    dk_cancel_request(&t.cancel);
    pthread_join(logs, NULL);
    if (t.err && t.err->code != ECANCELED && status == TEST_DONE)
      ca_log_warning("%s: output: %s", name, t.err->msg);
    ca_log_debug("%s: output %s", name, t.done ? "complete" : "cut after the drain time");
  }
  if (status != TEST_DONE)
    goto out;

  ret->duration_usec = duration;
  ret->exit_code = code;
  char buf[32];
  if (timed_out) {
    ret->outcome = SEQ_FAIL;
    ret->reason = SEQ_REASON_TIMEOUT;
    if (asprintf(&ret->message, "timeout after %s", ca_format_duration(o->timeout_usec, buf)) < 0)
      ret->message = NULL;
  } else if (code == 0) {
    ret->outcome = SEQ_PASS;
  } else {
    ret->outcome = SEQ_FAIL;
    ret->reason = SEQ_REASON_EXIT;
    /* Only a failure is worth an inspect: did the kernel's OOM killer end it? */
    _cleanup_(dk_container_info_freep) struct dk_container_info *info = NULL;
    _cleanup_error_ ca_error *e = NULL;
    for (int poll = 0;; poll++) {
      if (dk_container_inspect(s->env.dk, cid, &info, &e) < 0) {
        ca_log_warning("%s: inspect container %.12s: %s", name, cid, e->msg);
        break;
      }
      if (info->oom_killed || saw_oom_event(s, cid)) {
        ret->reason = SEQ_REASON_OOM;
        break;
      }
      /* The engine learns of the OOM kill from a separate event that can land just after the exit: for a SIGKILLed
       * test (137) the event stream and the state are asked again for a short while before it counts as a plain
       * exit. */
      if (code != 128 + SIGKILL || poll >= OOM_POLLS)
        break;
      dk_container_info_free(TAKE_PTR(info));
      struct timespec ts = {0, OOM_POLL_MS * 1000000L};
      nanosleep(&ts, NULL);
    }
    int k;
    if (ret->reason == SEQ_REASON_OOM)
      k = o->memory ? asprintf(&ret->message, "OOM-killed at %s", ca_format_size(o->memory, buf))
                    : asprintf(&ret->message, "OOM-killed");
    else
      k = asprintf(&ret->message, "exit %d", code);
    if (k < 0)
      ret->message = NULL;
  }
  if (ret->outcome == SEQ_FAIL)
    ret->tail = tail_text(&t);

out:
  if (t.log)
    (void)fclose(t.log); /* log text is best effort */
  ca_error_free(t.err);
  ca_buf_free(&t.tail);
  pthread_mutex_destroy(&t.mu);
  pthread_cond_destroy(&t.cv);
  return status;
}

/* ---- checkpoint, engine recovery, the loop ----------------------------------------------------------------- */

static int save_checkpoint(struct seq *s, ca_error **err) {
  _cleanup_free_ char *text = seq_checkpoint_format(s->o->files, s->o->n_files, s->results, s->id);
  if (!text)
    return ca_error_set(err, ENOMEM, "checkpoint: out of memory");
  return ca_write_file_atomic(s->checkpoint, text, strlen(text), 0600, err);
}

/* Sleeps usec, in steps short enough to notice a stop of the run. */
static void pause_unless_stopped(struct seq *s, uint64_t usec) {
  uint64_t end = ca_now_monotonic_usec() + usec;
  while (atomic_load(&s->stop) == STOP_NONE) {
    uint64_t now = ca_now_monotonic_usec();
    if (now >= end)
      break;
    uint64_t step = CA_MIN(end - now, 100000);
    struct timespec ts = {(time_t)(step / 1000000), (long)(step % 1000000) * 1000L};
    nanosleep(&ts, NULL);
  }
}

/* After a transient failure while running one file: waits until the engine answers again. The budget
 * (engine_retry_usec) counts from the file's first failure, not per attempt: an engine that answers /version again
 * but still fails the next create or start (its containerd is not back yet) gets the same minute, with growing
 * pauses between attempts, rather than three quick tries. False when the budget is spent or the run was stopped. */
static bool engine_recover(struct seq *s, const char *why, int *attempt, uint64_t *give_up) {
  char budget[32];
  uint64_t now = ca_now_monotonic_usec();
  if (!*give_up) {
    *give_up = now + s->engine_retry_usec;
    ca_log_warning("the Docker engine went away (%s); retrying for up to %s", why,
                   ca_format_duration(s->engine_retry_usec, budget));
  } else {
    ca_log_warning("the Docker engine failed again (%s); retrying", why);
    uint64_t pause = CA_MIN(250000ULL << CA_MIN(*attempt, 5), 5000000ULL);
    pause_unless_stopped(s, CA_MIN(pause, *give_up > now ? *give_up - now : 0));
  }
  (*attempt)++;
  uint64_t delay_usec = 250000;
  for (;;) {
    if (atomic_load(&s->stop) != STOP_NONE || ca_now_monotonic_usec() >= *give_up)
      return false;
    char *v = NULL, *os = NULL;
    if (dk_engine_version(s->env.dk, &v, &os, NULL) == 0) {
      free(v);
      free(os);
      ca_log_notice("the Docker engine answers again");
      return true;
    }
    pause_unless_stopped(s, delay_usec);
    delay_usec = CA_MIN(delay_usec * 2, 5000000);
  }
}

/* Takes the container the creator made for position k (waiting for it), and lets it make the one after. */
static int take_container(struct seq *s, size_t k, char **ret_cid, ca_error **err) {
  pthread_mutex_lock(&s->mu);
  s->create_limit = k + 2;
  pthread_cond_broadcast(&s->cv);
  while (!s->slots[k].ready)
    pthread_cond_wait(&s->cv, &s->mu);
  *ret_cid = TAKE_PTR(s->slots[k].cid);
  ca_error *e = TAKE_PTR(s->slots[k].err);
  pthread_mutex_unlock(&s->mu);
  if (e) {
    ca_error_free(*err);
    *err = e;
    return -e->code;
  }
  return 0;
}

enum loop_end { LOOP_COMPLETE, LOOP_STOPPED, LOOP_ENGINE_GONE, LOOP_FAILED };

static void print_result(struct seq *s, size_t file) {
  const struct seq_result *r = &s->results[file];
  pthread_mutex_lock(&s->out_mu);
  if (r->outcome == SEQ_PASS)
    printf("PASS %s (%.1fs)\n", s->o->files[file], (double)r->duration_usec / 1e6);
  else
    printf("FAIL %s: %s\n", s->o->files[file], r->message ? r->message : "failed");
  fflush(stdout);
  pthread_mutex_unlock(&s->out_mu);
}

static enum loop_end run_all(struct seq *s, ca_error **err) {
  for (size_t k = 0; k < s->n_order; k++) {
    size_t file = s->order[k];
    /* Before each test: do not start one on a host that is over a threshold right now. Either it recovers or the
     * monitor stops the run once the window has passed. */
    while (s->o->self_protect && atomic_load(&s->over_now) && atomic_load(&s->stop) == STOP_NONE) {
      struct timespec ts = {0, 100 * 1000000L};
      nanosleep(&ts, NULL);
    }
    if (atomic_load(&s->stop) != STOP_NONE)
      return LOOP_STOPPED;

    _cleanup_free_ char *cid = NULL;
    int attempt = 0;
    uint64_t give_up = 0; /* set at the file's first transient failure */
    ca_log_debug("%s: taking its container", s->o->files[file]);
    int r = take_container(s, k, &cid, err);
    ca_log_debug("%s: got its container", s->o->files[file]);
    for (;;) {
      if (r < 0) {
        if (dk_error_kind(*err) != DK_ERR_TRANSIENT)
          return LOOP_FAILED;
        if (!engine_recover(s, (*err)->msg, &attempt, &give_up))
          return atomic_load(&s->stop) != STOP_NONE ? LOOP_STOPPED : LOOP_ENGINE_GONE;
        ca_error_free(TAKE_PTR(*err));
        r = container_spec_create(s, s->env.dk, file, attempt, &cid, err);
        continue;
      }
      enum test_status st = run_test(s, file, cid, &s->results[file], err);
      if (st == TEST_DONE)
        break;
      queue_removal(s, TAKE_PTR(cid));
      if (st == TEST_STOPPED)
        return LOOP_STOPPED;
      if (st == TEST_FAILED)
        return LOOP_FAILED;
      /* TEST_ENGINE: no result; once the engine is back the file runs again in a new container. */
      if (!engine_recover(s, (*err)->msg, &attempt, &give_up))
        return atomic_load(&s->stop) != STOP_NONE ? LOOP_STOPPED : LOOP_ENGINE_GONE;
      ca_error_free(TAKE_PTR(*err));
      r = container_spec_create(s, s->env.dk, file, attempt, &cid, err);
    }
    queue_removal(s, TAKE_PTR(cid));
    print_result(s, file);
    _cleanup_error_ ca_error *e = NULL;
    if (save_checkpoint(s, &e) < 0)
      ca_log_warning("%s", e->msg);
    ca_log_debug("%s: checkpoint saved", s->o->files[file]);
  }
  return LOOP_COMPLETE;
}

/* ---- session ----------------------------------------------------------------------------------------------- */

static int make_labels(struct seq *s, const struct ag_registry *reg) {
  s->labels = ag_session_labels(reg, NULL);
  return s->labels ? 0 : -ENOMEM;
}

/* Resolves the checkpoint path and, with --resume, loads the results it holds. */
static int setup_checkpoint(struct seq *s, ca_error **err) {
  const struct seq_opts *o = s->o;
  if (o->checkpoint) {
    if (!(s->checkpoint = strdup(o->checkpoint)))
      return ca_error_set(err, ENOMEM, "out of memory");
  } else {
    char hash[17], cwd[PATH_MAX];
    seq_files_hash(getcwd(cwd, sizeof(cwd)) ? cwd : "", o->files, o->n_files, hash);
    if (asprintf(&s->checkpoint, "%s/container-seq-%s.json", s->env.state->dir, hash) < 0)
      return ca_error_set(err, ENOMEM, "out of memory");
    s->checkpoint_default = true;
  }
  _cleanup_free_ char *text = NULL;
  size_t len;
  int r = ca_read_file(s->checkpoint, 256 * 1024 * 1024, &text, &len, err);
  if (r == -ENOENT) {
    ca_error_free(TAKE_PTR(*err));
    if (o->resume)
      ca_log_notice("--resume: no checkpoint at %s: running all %zu files", s->checkpoint, o->n_files);
    return 0;
  }
  if (r < 0)
    return ca_error_wrap(err, "checkpoint");
  _cleanup_error_ ca_error *e = NULL;
  r = seq_checkpoint_parse(text, len, o->files, o->n_files, s->results, &e);
  if (r == -ESTALE && o->resume)
    return ca_error_set(err, ESTALE, "--resume: refusing checkpoint %s: %s; remove it or pass the same files",
                        s->checkpoint, e->msg);
  if (r == -EINVAL || (r < 0 && r != -ESTALE))
    return ca_error_set(err, -r, "refusing to use or overwrite %s: %s", s->checkpoint, e->msg);
  if (!o->resume) {
    /* A fresh run replaces an earlier checkpoint of these or other files. */
    for (size_t i = 0; r == 0 && i < o->n_files; i++)
      seq_result_done(&s->results[i]);
    memset(s->results, 0, o->n_files * sizeof(*s->results));
    return 0;
  }
  size_t done = 0, passed = 0, failed = 0;
  for (size_t i = 0; i < o->n_files; i++) {
    done += s->results[i].outcome != SEQ_PENDING;
    passed += s->results[i].outcome == SEQ_PASS;
    failed += s->results[i].outcome == SEQ_FAIL;
  }
  ca_log_notice("resuming from %s: %zu of %zu files already done (%zu passed, %zu failed)", s->checkpoint, done,
                o->n_files, passed, failed);
  return 0;
}

static void stop_workers(struct seq *s, pthread_t creator, pthread_t remover) {
  pthread_mutex_lock(&s->mu);
  s->quit = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(creator, NULL);
  pthread_join(remover, NULL);
}

static void seq_free(struct seq *s) {
  if (s->results)
    for (size_t i = 0; i < s->o->n_files; i++)
      seq_result_done(&s->results[i]);
  free(s->results);
  if (s->slots)
    for (size_t i = 0; i < s->n_order; i++) {
      free(s->slots[i].cid);
      ca_error_free(s->slots[i].err);
    }
  free(s->slots);
  free(s->order);
  for (size_t i = 0; i < s->rm_n; i++)
    free(s->rm_queue[i]);
  free(s->rm_queue);
  ca_strv_free(s->labels);
  free(s->checkpoint);
  dk_client_free(s->dk_create);
  dk_client_free(s->dk_remove);
  dk_client_free(s->dk_logs);
  dk_client_free(s->dk_events);
  for (size_t i = 0; i < s->oom_n; i++)
    free(s->oom_ids[i]);
  free(s->oom_ids);
  dk_client_free(s->env.dk);
  cg_root_free(s->env.cg);
  ag_state_free(s->env.state);
  ca_close_keep_errno(s->lock_fd);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->out_mu);
}

static uint64_t env_duration(const char *var, uint64_t dflt) {
  const char *v = getenv(var);
  uint64_t usec;
  if (!v || !*v)
    return dflt;
  _cleanup_error_ ca_error *err = NULL;
  if (ca_parse_duration(v, &usec, &err) < 0) {
    ca_log_warning("%s: %s; using the default", var, err->msg);
    return dflt;
  }
  return usec;
}

static const char *env_path(const char *var, const char *dflt) {
  const char *v = getenv(var);
  return v && *v ? v : dflt;
}

int ag_cmd_container_seq(const struct ag_globals *g, int argc, char **argv) {
  struct seq_opts o = {0};
  int r = parse_seq_opts(argc, argv, &o);
  if (r != 0) {
    opts_done(&o);
    return r < 0 ? AG_EXIT_OK : r;
  }
  /* A CI log should show each line as it comes, not in 4 KiB blocks. */
  setvbuf(stdout, NULL, _IOLBF, 0);

  struct seq s = {
      .o = &o,
      .lock_fd = -1,
      .guardian = {.fd = -1},
      .window_usec = env_duration("CLEANUP_AGENT_PROTECT_WINDOW", DEFAULT_PROTECT_WINDOW_USEC),
      .engine_retry_usec = env_duration("CLEANUP_AGENT_ENGINE_RETRY", DEFAULT_ENGINE_RETRY_USEC),
      .load = {.paths = {.proc_stat = env_path("CLEANUP_AGENT_PROC_STAT", "/proc/stat"),
                         .meminfo = env_path("CLEANUP_AGENT_MEMINFO", "/proc/meminfo"),
                         .psi_memory = env_path("CLEANUP_AGENT_PSI_MEMORY", "/proc/pressure/memory")}},
  };
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  pthread_mutex_init(&s.out_mu, NULL);
  _cleanup_error_ ca_error *err = NULL;
  _cleanup_error_ ca_error *cerr = NULL; /* here, before the first goto: clang refuses a jump over a cleanup variable */
  int exit_code = AG_EXIT_AGENT_FAILED;
  bool session = false, threads = false;
  pthread_t creator, remover;
  enum loop_end end = LOOP_FAILED;
  struct ag_collect_stats collected = {0};

  if (!(s.results = calloc(o.n_files, sizeof(*s.results))) || !(s.order = calloc(o.n_files, sizeof(size_t))) ||
      !(s.slots = calloc(o.n_files, sizeof(*s.slots)))) {
    ca_log_error("container-seq: out of memory");
    goto out;
  }
  if (ag_state_open(g->state_dir, &s.env.state, &err) < 0 || setup_checkpoint(&s, &err) < 0) {
    ca_log_error("container-seq: %s", err->msg);
    goto out;
  }
  if (o.log_dir && mkdir(o.log_dir, 0755) < 0 && errno != EEXIST) {
    ca_log_error("container-seq: --log-dir %s: %s", o.log_dir, strerror(errno));
    goto out;
  }
  for (size_t i = 0; i < o.n_files; i++)
    if (s.results[i].outcome == SEQ_PENDING)
      s.order[s.n_order++] = i;

  s.docker_host = g->docker_host ? g->docker_host : "unix:///var/run/docker.sock";
  struct dk_client_options dopts = {.host = s.docker_host};
  if (dk_client_new(&dopts, &s.env.dk, &err) < 0 || dk_client_clone(s.env.dk, &s.dk_create, &err) < 0 ||
      dk_client_clone(s.env.dk, &s.dk_remove, &err) < 0 || dk_client_clone(s.env.dk, &s.dk_logs, &err) < 0 ||
      dk_client_clone(s.env.dk, &s.dk_events, &err) < 0) {
    ca_log_error("container-seq: %s", err->msg);
    goto out;
  }

  /* Layer 4: what dead sessions of this host left. Their cgroups too, so the cgroup root is opened for this. */
  cg_root_options copts = {.root = g->cgroup_root, .allow_process = true};
  AG_CGROUP_NAMES(copts);
  if (cg_root_open(&copts, &s.env.cg, &err) < 0) {
    ca_log_warning("not collecting dead sessions: %s", err->msg);
    ca_error_free(TAKE_PTR(err));
  } else {
    struct ag_collect_stats startup = {0};
    int n = ag_collect_dead_sessions(&s.env, &startup, &err);
    if (n > 0) {
      char what[256];
      ag_collect_stats_format(&startup, what, sizeof(what));
      ca_log_notice("collected %d dead session%s%s%s", n, n == 1 ? "" : "s", *what ? ": " : "", what);
    } else if (n < 0) {
      ca_log_warning("collect dead sessions: %s", err->msg);
      ca_error_free(TAKE_PTR(err));
    }
  }

  /* The session: lock, guardian, registry, then containers. */
  struct ag_registry reg = {.created = time(NULL), .command = o.cmd, .docker_host = (char *)s.docker_host};
  if (ag_session_id_new(s.id, &err) < 0 || ag_owner_self(&reg.owner, &err) < 0 ||
      ag_session_lock(s.env.state, s.id, true, &s.lock_fd, &err) < 0) {
    ca_log_error("container-seq: %s", err->msg);
    goto out;
  }
  memcpy(reg.id, s.id, sizeof(reg.id));
  strcpy(reg.mode, "container-seq");
  snprintf(s.session_env, sizeof(s.session_env), "CLEANUP_AGENT_SESSION=%s", s.id);
  struct ag_guardian_config gcfg = {
      .session_id = s.id,
      .state_dir = s.env.state->dir,
      .cgroup_root = g->cgroup_root,
      .docker_host = s.docker_host,
      .lock_fd = s.lock_fd,
  };
  if (make_labels(&s, &reg) < 0 || ag_guardian_start(&gcfg, &s.guardian, &err) < 0) {
    ca_log_error("container-seq: %s", err ? err->msg : "out of memory");
    (void)ag_registry_remove(s.env.state, s.id, NULL); /* nothing was created yet */
    goto out;
  }
  session = true;
  reg.guardian_pid = s.guardian.pid;
  if (ag_registry_write(s.env.state, &reg, &err) < 0) {
    ca_log_error("container-seq: %s", err->msg);
    goto out_session;
  }
  if (o.docker_proxy) {
    /* Before any container exists: each one gets the socket as the engine's. */
    if (ag_proxy_start_session(s.env.state, &reg, s.docker_host, NULL, &s.proxy, &err) < 0) {
      ca_log_error("container-seq: --docker-proxy: %s", err->msg);
      goto out_session;
    }
    o.mounts[o.n_mounts++] = (struct dk_mount){
        .type = DK_MOUNT_BIND, .source = ag_proxy_socket_path(s.proxy), .target = "/var/run/docker.sock"};
  }

  /* Signals go to the monitor thread only: blocked here, before any thread exists, so every thread inherits it. */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &mask, NULL);
  if (o.self_protect) {
    _cleanup_error_ ca_error *e = NULL;
    if (seq_load_sample(&s.load, &e) < 0) {
      ca_log_error("container-seq: --self-protect: %s", e->msg);
      goto out_session;
    }
  }
  if (pthread_create(&s.events, NULL, events_main, &s) == 0)
    s.events_started = true;
  else
    ca_log_warning("cannot start a thread for engine events: OOM kills are told from the containers' state alone");
  if (pthread_create(&s.monitor, NULL, monitor_main, &s) != 0) {
    ca_log_error("container-seq: cannot start the monitor thread");
    goto out_session;
  }
  s.monitor_started = true;
  if (pthread_create(&creator, NULL, creator_main, &s) != 0) {
    ca_log_error("container-seq: cannot start the creator thread");
    goto out_session;
  }
  if (pthread_create(&remover, NULL, remover_main, &s) != 0) {
    ca_log_error("container-seq: cannot start the remover thread");
    pthread_mutex_lock(&s.mu);
    s.quit = true;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(creator, NULL);
    goto out_session;
  }
  threads = true;

  end = run_all(&s, &err);
  stop_workers(&s, creator, remover);
  threads = false;

out_session:
  if (threads)
    stop_workers(&s, creator, remover);
  if (s.monitor_started) {
    pthread_kill(s.monitor, SIGUSR1);
    pthread_join(s.monitor, NULL);
  }
  if (s.events_started) {
    dk_cancel_request(&s.events_cancel);
    pthread_join(s.events, NULL);
  }
  /* The proxy goes first, so that a create racing the end is either collected below or never made. */
  ag_proxy_stop(s.proxy, 2000000);
  s.proxy = NULL;
  /* Everything labeled with the session: the container made ahead, one whose removal failed, ... */
  bool collected_all = true;
  if (session && ag_collect_docker(s.env.dk, s.id, &collected, &cerr) < 0) {
    ca_log_warning("remove the session's containers: %s; the next cleanup-agent start or gc collects them", cerr->msg);
    collected_all = false;
  }
  if (collected.failed)
    collected_all = false;
  if (!session)
    goto out;

  size_t passed = 0, failed = 0, pending = 0;
  for (size_t i = 0; i < o.n_files; i++) {
    passed += s.results[i].outcome == SEQ_PASS;
    failed += s.results[i].outcome == SEQ_FAIL;
    pending += s.results[i].outcome == SEQ_PENDING;
  }
  if (end == LOOP_COMPLETE && s.checkpoint_default) {
    /* Nothing left to resume: a default checkpoint would only pile up in the state dir. */
    if (unlink(s.checkpoint) < 0 && errno != ENOENT)
      ca_log_warning("remove checkpoint %s: %s", s.checkpoint, strerror(errno));
  } else {
    _cleanup_error_ ca_error *e = NULL;
    if (save_checkpoint(&s, &e) < 0)
      ca_log_error("%s", e->msg);
  }
  if (o.junit) {
    _cleanup_error_ ca_error *e = NULL;
    if (seq_junit_write(o.junit, "container-seq", o.files, o.n_files, s.results, (uint64_t)reg.created, &e) < 0)
      ca_log_error("%s", e->msg);
  }
  /* The summary is the last line of stdout; what follows on stderr says why a run stopped early. */
  printf("%zu passed, %zu failed, %zu skipped\n", passed, failed, pending);
  fflush(stdout);

  size_t done = o.n_files - pending;
  int stop = atomic_load(&s.stop);
  if (end == LOOP_COMPLETE) {
    exit_code = failed ? AG_EXIT_FAILED : AG_EXIT_OK;
  } else if (stop == STOP_SIGNAL) {
    int sig = atomic_load(&s.stop_signal);
    ca_log_notice("stopped by SIG%s after %zu of %zu files; checkpoint saved in %s; resume with --resume",
                  sig_name(sig), done, o.n_files, s.checkpoint);
    exit_code = 128 + sig;
  } else if (stop == STOP_PROTECT) {
    ca_log_error("stopped to protect the host: %s; %zu of %zu files done; checkpoint saved in %s; resume with "
                 "--resume",
                 s.protect_msg, done, o.n_files, s.checkpoint);
    exit_code = AG_EXIT_SELF_PROTECT;
  } else if (end == LOOP_ENGINE_GONE) {
    char budget[32];
    ca_log_error("container-seq: the Docker engine at %s did not come back within %s (%s); %zu of %zu files done; "
                 "checkpoint saved in %s; resume with --resume",
                 s.docker_host, ca_format_duration(s.engine_retry_usec, budget), err ? err->msg : "unreachable", done,
                 o.n_files, s.checkpoint);
  } else {
    ca_log_error("container-seq: %s; %zu of %zu files done; checkpoint saved in %s", err ? err->msg : "failed", done,
                 o.n_files, s.checkpoint);
  }
  if (collected_all) {
    _cleanup_error_ ca_error *e = NULL;
    if (ag_registry_remove(s.env.state, s.id, &e) < 0)
      ca_log_warning("%s", e->msg);
  }
  ag_guardian_release(&s.guardian);
  goto out_free;

out:
  if (session)
    ag_guardian_release(&s.guardian);
out_free:
  seq_free(&s);
  opts_done(&o);
  return exit_code;
}
