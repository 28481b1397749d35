/* run's options (each also from a CLEANUP_AGENT_* variable, bound by name through options.h) and its usage. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "options.h"
#include "run.h"

#define DEFAULT_GRACE_USEC (10 * 1000000ULL)

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
          "  --label K=V        extra label the docker proxy puts on what CMD creates (io.cleanup-agent.keep=true\n"
          "                     allowed); not with --no-docker-proxy\n"
          "  --private-tmp      a private /tmp and /dev/shm that die with the run\n"
          "  --report FILE      write a JSON report of the run with its leak receipt (docs/RECEIPT.md)\n"
          "  --junit FILE       write the leaks as JUnit XML: one failing testcase per resource or process left\n"
          "                     behind, named by its creator\n"
          "  --on-leak MODE     ignore, warn (default: the summary names the worst offender) or fail (exit 43\n"
          "                     when the command succeeded but left anything behind)\n"
          "  --no-docker-proxy  give CMD the engine's DOCKER_HOST itself; by default it gets a socket of the session\n"
          "                     that adds the session labels to every container, network and volume it creates\n"
          "  --contain-containers\n"
          "                     start the containers CMD creates in the session's cgroup, so that --memory, --pids\n"
          "                     and --cpus bound CMD and its containers together and the session's kill stops them\n"
          "                     (the engine's cgroup driver must be the agent's)\n"
          "  --images keep|remove  images CMD builds (labeled by the proxy): kept as build cache (default), or\n"
          "                     removed at the end unless a container uses them\n"
          "  --disk-high PCT    before CMD, when the engine's disk is above PCT (default 85%%) or its networks hold\n"
          "                     all but 3 of the 31 default address pools, collect dead sessions first, as gc does\n"
          "  --disk-low PCT     ... and remove session images down to PCT (default 80%%)\n");
}

#define run_usage_error(...) ag_usage_error("run", AG_EXIT_AGENT_FAILED, __VA_ARGS__)

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

/* --label: checked and kept in the order given. */
static int add_label(void *userdata, const char *kv, ca_error **err) {
  struct run_opts *o = userdata;
  if (ag_check_user_label(kv, err) < 0)
    return -EINVAL;
  o->labels[o->n_labels++] = kv;
  return 0;
}

static int parse_on_leak(const char *s, enum ag_on_leak *ret) {
  static const char *const names[] = {
      [AG_ON_LEAK_WARN] = "warn", [AG_ON_LEAK_IGNORE] = "ignore", [AG_ON_LEAK_FAIL] = "fail"};
  for (size_t i = 0; i < ELEMENTSOF(names); i++)
    if (streq(s, names[i])) {
      *ret = (enum ag_on_leak)i;
      return 0;
    }
  return -EINVAL;
}

int ag_run_parse_opts(int argc, char **argv, struct run_opts *o) {
  struct {
    const char *memory, *pids, *cpus, *timeout, *grace, *ttl, *on_leak, *images, *high, *low;
  } v = {0};
  const struct ag_option table[] = {
      AG_OPT_VALUE("memory", "CLEANUP_AGENT_MEMORY", &v.memory),
      AG_OPT_VALUE("pids", "CLEANUP_AGENT_PIDS", &v.pids),
      AG_OPT_VALUE("cpus", "CLEANUP_AGENT_CPUS", &v.cpus),
      AG_OPT_VALUE("timeout", "CLEANUP_AGENT_TIMEOUT", &v.timeout),
      AG_OPT_VALUE("grace", "CLEANUP_AGENT_GRACE", &v.grace),
      AG_OPT_VALUE("ttl", "CLEANUP_AGENT_TTL", &v.ttl),
      AG_OPT_EACH("label", NULL, add_label),
      AG_OPT_FLAG("private-tmp", "CLEANUP_AGENT_PRIVATE_TMP", &o->private_tmp),
      AG_OPT_VALUE("report", "CLEANUP_AGENT_REPORT", &o->report),
      AG_OPT_VALUE("junit", "CLEANUP_AGENT_JUNIT", &o->junit),
      AG_OPT_VALUE("on-leak", "CLEANUP_AGENT_ON_LEAK", &v.on_leak),
      AG_OPT_FLAG("no-docker-proxy", "CLEANUP_AGENT_NO_DOCKER_PROXY", &o->no_docker_proxy),
      AG_OPT_FLAG("contain-containers", "CLEANUP_AGENT_CONTAIN_CONTAINERS", &o->contain_containers),
      AG_OPT_VALUE("images", "CLEANUP_AGENT_IMAGES", &v.images),
      AG_OPT_VALUE("disk-high", "CLEANUP_AGENT_DISK_HIGH", &v.high),
      AG_OPT_VALUE("disk-low", "CLEANUP_AGENT_DISK_LOW", &v.low),
      {},
  };
  const struct ag_options spec = {
      .command = "run", .options = table, .userdata = o, .stop_at_operand = true, .usage_exit = AG_EXIT_AGENT_FAILED};
  o->labels = calloc((size_t)argc + 1, sizeof(char *));
  if (!o->labels)
    return run_usage_error("out of memory");
  int next;
  int r = ag_options_parse(&spec, argc, argv, &next);
  if (r == AG_OPTIONS_HELP)
    run_usage(stdout);
  if (r != 0)
    return r;
  if (next >= argc)
    return run_usage_error("no command given: cleanup-agent run [OPTIONS] -- CMD [ARG...]");
  o->argv = argv + next;

  _cleanup_error_ ca_error *err = NULL;
  uint64_t pids;
  o->grace_usec = DEFAULT_GRACE_USEC;
  if ((v.memory && ca_parse_size(v.memory, &o->limits.memory_max, &err) < 0) ||
      (v.pids && ca_parse_uint(v.pids, "--pids", 1, UINT32_MAX, &pids, &err) < 0) ||
      (v.cpus && ca_parse_positive_double(v.cpus, "--cpus", 4096, &o->limits.cpus, &err) < 0) ||
      (v.timeout && ca_parse_duration(v.timeout, &o->timeout_usec, &err) < 0) ||
      (v.grace && ca_parse_duration(v.grace, &o->grace_usec, &err) < 0) ||
      (v.ttl && ca_parse_duration(v.ttl, &o->ttl_usec, &err) < 0) ||
      ag_disk_marks_parse(v.high, v.low, &o->disk, &err) < 0)
    return run_usage_error("%s", err->msg);
  if (v.images && !streq(v.images, "keep") && !streq(v.images, "remove"))
    return run_usage_error("--images '%s': expected keep or remove", v.images);
  o->images_remove = v.images && streq(v.images, "remove");
  if (v.pids)
    o->limits.pids_max = pids;
  if (v.on_leak && parse_on_leak(v.on_leak, &o->on_leak) < 0)
    return run_usage_error("--on-leak '%s': expected ignore, warn or fail", v.on_leak);
  if (v.timeout && o->timeout_usec == 0)
    return run_usage_error("--timeout '%s': must be longer than zero", v.timeout);
  return 0;
}
