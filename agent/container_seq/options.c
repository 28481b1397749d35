/* container-seq's command line: the flags, each also from a CLEANUP_AGENT_* variable, the mounts and environment of
 * the test containers, and --help. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seq-internal.h"

void opts_done(struct seq_opts *o) {
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

int parse_seq_opts(int argc, char **argv, struct seq_opts *o) {
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
