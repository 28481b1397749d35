/* container-seq's command line: the flags, each also from a CLEANUP_AGENT_* variable, the mounts and environment of
 * the test containers, and --help. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
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
             "  --self-protect     stop with 42 (checkpoint saved) when the host stays overloaded by something\n"
             "                     else than the running test (its container's CPU and memory are left out)\n"
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

/* One line on stderr, "cleanup-agent: container-seq: <what>", and the exit code of an agent failure (125), which
 * cannot be mistaken for a test's status. */
#define seq_usage_error(...) ag_usage_error("container-seq", AG_EXIT_AGENT_FAILED, __VA_ARGS__)

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
static int parse_mount(struct seq_opts *o, const char *spec, struct dk_mount *ret, ca_error **err) {
  _cleanup_free_ char *s = strdup(spec);
  if (!s)
    return ca_error_set(err, ENOMEM, "out of memory");
  size_t len = strlen(s);
  bool ro = false;
  if (len > 3 && (streq(s + len - 3, ":ro") || streq(s + len - 3, ":rw"))) {
    ro = streq(s + len - 3, ":ro");
    s[len - 3] = '\0';
  }
  char *colon = strrchr(s, ':');
  if (!colon || colon == s || colon[1] != '/')
    return ca_error_set(err, EINVAL, "--mount '%s': expected SRC:DST[:ro] with an absolute DST", spec);
  *colon = '\0';
  ret->read_only = ro;
  ret->target = own(o, strdup(colon + 1));
  if (strchr(s, '/') || s[0] == '.') {
    char *abs = realpath(s, NULL);
    if (!abs)
      return ca_error_set_errno(err, errno, "--mount '%s': %s", spec, s);
    ret->type = DK_MOUNT_BIND;
    ret->source = own(o, abs);
  } else {
    ret->type = DK_MOUNT_VOLUME;
    ret->source = own(o, strdup(s));
  }
  if (!ret->target || !ret->source)
    return ca_error_set(err, ENOMEM, "out of memory");
  return 0;
}

/* --mount, repeatable. */
static int add_mount(void *userdata, const char *spec, ca_error **err) {
  struct seq_opts *o = userdata;
  int r = parse_mount(o, spec, &o->mounts[o->n_mounts], err);
  if (r < 0)
    return r;
  o->n_mounts++;
  return 0;
}

/* --env K=V, or K alone for our own value of K; repeatable. */
static int add_env(void *userdata, const char *kv, ca_error **err) {
  struct seq_opts *o = userdata;
  if (!kv[0] || kv[0] == '=')
    return ca_error_set(err, EINVAL, "--env '%s': expected K=V or K", kv);
  if (strchr(kv, '=')) {
    o->env[o->n_env++] = kv;
    return 0;
  }
  const char *ours = getenv(kv);
  if (!ours)
    return 0; /* like docker -e K, an unset K is not passed */
  char *s = NULL;
  if (asprintf(&s, "%s=%s", kv, ours) < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  o->env[o->n_env++] = own(o, s);
  return 0;
}

/* The options that need a conversion or a check, as given; the others go straight into struct seq_opts. */
struct seq_raw {
  const char *memory, *cpus, *pids, *timeout, *cpu_limit, *mem_limit;
  bool self_protect;
};

/* The variables, then the flags of argv[1..argc), bound by name. */
static int scan_options(int argc, char **argv, struct seq_opts *o, struct seq_raw *raw, int *ret_next) {
  const struct ag_option options[] = {
      AG_OPT_VALUE("image", "CLEANUP_AGENT_IMAGE", &o->image),
      AG_OPT_VALUE("memory", "CLEANUP_AGENT_MEMORY", &raw->memory),
      AG_OPT_VALUE("cpus", "CLEANUP_AGENT_CPUS", &raw->cpus),
      AG_OPT_VALUE("pids", "CLEANUP_AGENT_PIDS", &raw->pids),
      AG_OPT_VALUE("timeout", "CLEANUP_AGENT_TIMEOUT", &raw->timeout),
      AG_OPT_VALUE("workdir", "CLEANUP_AGENT_WORKDIR", &o->workdir),
      AG_OPT_VALUE("network", "CLEANUP_AGENT_NETWORK", &o->network),
      AG_OPT_VALUE("checkpoint", "CLEANUP_AGENT_CHECKPOINT", &o->checkpoint),
      AG_OPT_FLAG("resume", "CLEANUP_AGENT_RESUME", &o->resume),
      AG_OPT_FLAG("self-protect", "CLEANUP_AGENT_SELF_PROTECT", &raw->self_protect),
      AG_OPT_VALUE("cpu-limit", "CLEANUP_AGENT_CPU_LIMIT", &raw->cpu_limit),
      AG_OPT_VALUE("mem-limit", "CLEANUP_AGENT_MEM_LIMIT", &raw->mem_limit),
      AG_OPT_VALUE("junit", "CLEANUP_AGENT_JUNIT", &o->junit),
      AG_OPT_VALUE("log-dir", "CLEANUP_AGENT_LOG_DIR", &o->log_dir),
      AG_OPT_FLAG("docker-proxy", "CLEANUP_AGENT_DOCKER_PROXY", &o->docker_proxy),
      AG_OPT_EACH("mount", NULL, add_mount),
      AG_OPT_EACH("env", NULL, add_env),
      {}, /* the end */
  };
  const struct ag_options spec = {
      .command = "container-seq",
      .options = options,
      .userdata = o,
      .usage_exit = AG_EXIT_AGENT_FAILED,
  };
  return ag_options_parse(&spec, argc, argv, ret_next);
}

/* Converts and checks what scan_options left as text. */
static int check_values(struct seq_opts *o, const struct seq_raw *raw) {
  _cleanup_error_ ca_error *err = NULL;
  o->cpu_limit = o->mem_limit = 90;
  if ((raw->memory && ca_parse_size(raw->memory, &o->memory, &err) < 0) ||
      (raw->cpus && ca_parse_positive_double(raw->cpus, "--cpus", 4096, &o->cpus, &err) < 0) ||
      (raw->pids && ca_parse_uint(raw->pids, "--pids", 1, INT32_MAX, &o->pids, &err) < 0) ||
      (raw->timeout && ca_parse_duration(raw->timeout, &o->timeout_usec, &err) < 0) ||
      (raw->cpu_limit && parse_percent(raw->cpu_limit, "--cpu-limit", &o->cpu_limit, &err) < 0) ||
      (raw->mem_limit && parse_percent(raw->mem_limit, "--mem-limit", &o->mem_limit, &err) < 0))
    return seq_usage_error("%s", err->msg);
  if (raw->timeout && o->timeout_usec == 0)
    return seq_usage_error("--timeout '%s': must be longer than zero", raw->timeout);
  if (o->memory > INT64_MAX)
    return seq_usage_error("--memory '%s': too large", raw->memory);
  if (o->workdir && o->workdir[0] != '/')
    return seq_usage_error("--workdir '%s': must be an absolute path in the container", o->workdir);
  if (!o->network)
    o->network = "none";
  /* A limit implies --self-protect. */
  o->self_protect = raw->self_protect || raw->cpu_limit || raw->mem_limit;
  return 0;
}

int parse_seq_opts(int argc, char **argv, struct seq_opts *o) {
  o->owned = calloc((size_t)argc * 2 + 2, sizeof(char *));
  o->mounts = calloc((size_t)argc + 1, sizeof(*o->mounts)); /* + 1: the socket of --docker-proxy */
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

  struct seq_raw raw = {0};
  int next;
  int r = scan_options(dash, argv, o, &raw, &next);
  if (r == AG_OPTIONS_HELP) {
    seq_usage(stdout);
    return -1;
  }
  if (r != 0)
    return r;
  o->files = (const char *const *)argv + next;
  o->n_files = (size_t)(dash - next);
  o->cmd = argv + dash + 1;
  if (!o->image)
    return seq_usage_error("--image is required: container-seq --image IMG [OPTIONS] TEST_FILE... -- CMD [ARG...]");
  if (o->n_files == 0)
    return seq_usage_error("no test files given: container-seq --image IMG [OPTIONS] TEST_FILE... -- CMD [ARG...]");
  if (!o->cmd[0])
    return seq_usage_error("no command after '--': container-seq --image IMG [OPTIONS] TEST_FILE... -- CMD [ARG...]");
  for (size_t i = 0; i < o->n_files; i++)
    if (!o->files[i][0])
      return seq_usage_error("test file %zu is an empty string", i + 1);
  return check_values(o, &raw);
}
