/* container-seq's options: each flag and each CLEANUP_AGENT_* variable reaches the setting it names, the flag wins
 * over the variable, and the defaults hold when neither is given. No engine: parse_seq_opts alone. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seq-internal.h"

/* Parses the words of line (no word has a space), as main gets them. */
static int parse(struct seq_opts *o, const char *line) {
  char *copy = strdup(line), *save = NULL;
  char **argv = calloc(strlen(line) + 1, sizeof(char *));
  int argc = 0;
  for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
    argv[argc++] = w;
  return parse_seq_opts(argc, argv, o); /* argv stays: o points into it, and the test process exits soon */
}

static const char *const vars[] = {
    "CLEANUP_AGENT_IMAGE",   "CLEANUP_AGENT_MEMORY",       "CLEANUP_AGENT_CPUS",         "CLEANUP_AGENT_PIDS",
    "CLEANUP_AGENT_TIMEOUT", "CLEANUP_AGENT_WORKDIR",      "CLEANUP_AGENT_NETWORK",      "CLEANUP_AGENT_CHECKPOINT",
    "CLEANUP_AGENT_RESUME",  "CLEANUP_AGENT_SELF_PROTECT", "CLEANUP_AGENT_CPU_LIMIT",    "CLEANUP_AGENT_MEM_LIMIT",
    "CLEANUP_AGENT_JUNIT",   "CLEANUP_AGENT_LOG_DIR",      "CLEANUP_AGENT_DOCKER_PROXY",
};

static void clear_vars(void) {
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
    unsetenv(vars[i]);
}

/* The settings that come from a flag or a variable, one "name=value" each, so that a test compares them all at once
 * and a failure shows which setting got which value. */
static char *settings(const struct seq_opts *o) {
  char *text = NULL;
  if (asprintf(&text,
               "image=%s memory=%" PRIu64 " cpus=%g pids=%" PRIu64 " timeout_usec=%" PRIu64
               " workdir=%s network=%s checkpoint=%s resume=%d self_protect=%d cpu_limit=%g mem_limit=%g junit=%s"
               " log_dir=%s docker_proxy=%d",
               o->image, o->memory, o->cpus, o->pids, o->timeout_usec, o->workdir ? o->workdir : "-", o->network,
               o->checkpoint ? o->checkpoint : "-", o->resume, o->self_protect, o->cpu_limit, o->mem_limit,
               o->junit ? o->junit : "-", o->log_dir ? o->log_dir : "-", o->docker_proxy) < 0)
    return NULL;
  return text;
}

Test(seq_options, each_flag_sets_its_own_setting) {
  clear_vars();
  setenv("SEQ_OPT_FROM_OURS", "ours", 1);
  struct seq_opts o = {0};
  cr_assert_eq(parse(&o, "container-seq --image img --memory 64M --cpus 1.5 --pids 77 --timeout 3s --workdir /w "
                         "--network host --checkpoint cp.json --resume --cpu-limit 80% --mem-limit 70 --junit j.xml "
                         "--log-dir logs --docker-proxy --mount vol:/data:ro --env A=1 --env SEQ_OPT_FROM_OURS "
                         "--env SEQ_OPT_UNSET t1.sh t2.sh -- sh {}"),
               0);
  /* --cpu-limit and --mem-limit imply --self-protect. */
  cr_expect_str_eq(settings(&o), "image=img memory=67108864 cpus=1.5 pids=77 timeout_usec=3000000 workdir=/w "
                                 "network=host checkpoint=cp.json resume=1 self_protect=1 cpu_limit=80 mem_limit=70 "
                                 "junit=j.xml log_dir=logs docker_proxy=1");
  cr_assert_eq(o.n_mounts, 1);
  cr_expect_eq(o.mounts[0].type, DK_MOUNT_VOLUME);
  cr_expect_str_eq(o.mounts[0].source, "vol");
  cr_expect_str_eq(o.mounts[0].target, "/data");
  cr_expect(o.mounts[0].read_only);
  cr_assert_eq(o.n_env, 2, "an unset K is not passed");
  cr_expect_str_eq(o.env[0], "A=1");
  cr_expect_str_eq(o.env[1], "SEQ_OPT_FROM_OURS=ours");
  cr_assert_eq(o.n_files, 2);
  cr_expect_str_eq(o.files[0], "t1.sh");
  cr_expect_str_eq(o.files[1], "t2.sh");
  cr_expect_str_eq(o.cmd[0], "sh");
  cr_expect_str_eq(o.cmd[1], "{}");
  opts_done(&o);
}

Test(seq_options, each_variable_sets_its_own_setting) {
  clear_vars();
  static const char *const env[][2] = {
      {"CLEANUP_AGENT_IMAGE", "img"},
      {"CLEANUP_AGENT_MEMORY", "32M"},
      {"CLEANUP_AGENT_CPUS", "2"},
      {"CLEANUP_AGENT_PIDS", "9"},
      {"CLEANUP_AGENT_TIMEOUT", "1m"},
      {"CLEANUP_AGENT_WORKDIR", "/wd"},
      {"CLEANUP_AGENT_NETWORK", "bridge"},
      {"CLEANUP_AGENT_CHECKPOINT", "c.json"},
      {"CLEANUP_AGENT_RESUME", "1"},
      {"CLEANUP_AGENT_SELF_PROTECT", "yes"},
      {"CLEANUP_AGENT_JUNIT", "r.xml"},
      {"CLEANUP_AGENT_LOG_DIR", "ld"},
      {"CLEANUP_AGENT_DOCKER_PROXY", "true"},
  };
  for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
    setenv(env[i][0], env[i][1], 1);
  struct seq_opts o = {0};
  cr_assert_eq(parse(&o, "container-seq t.sh -- true"), 0);
  /* The limits are the defaults. */
  cr_expect_str_eq(settings(&o), "image=img memory=33554432 cpus=2 pids=9 timeout_usec=60000000 workdir=/wd "
                                 "network=bridge checkpoint=c.json resume=1 self_protect=1 cpu_limit=90 mem_limit=90 "
                                 "junit=r.xml log_dir=ld docker_proxy=1");
  opts_done(&o);

  /* A limit alone implies --self-protect too. */
  clear_vars();
  setenv("CLEANUP_AGENT_IMAGE", "img", 1);
  setenv("CLEANUP_AGENT_MEM_LIMIT", "60", 1);
  struct seq_opts o2 = {0};
  cr_assert_eq(parse(&o2, "container-seq t.sh -- true"), 0);
  cr_expect(o2.self_protect);
  cr_expect_float_eq(o2.mem_limit, 60, 1e-9);
  cr_expect_float_eq(o2.cpu_limit, 90, 1e-9);
  opts_done(&o2);
}

Test(seq_options, flags_override_variables_and_defaults_hold) {
  clear_vars();
  setenv("CLEANUP_AGENT_IMAGE", "from-env", 1);
  setenv("CLEANUP_AGENT_TIMEOUT", "not-a-duration", 1);
  setenv("CLEANUP_AGENT_RESUME", "0", 1);
  setenv("CLEANUP_AGENT_DOCKER_PROXY", "false", 1);
  setenv("CLEANUP_AGENT_NETWORK", "", 1); /* empty counts as unset */
  struct seq_opts o = {0};
  cr_assert_eq(parse(&o, "container-seq --image from-flag --timeout 5s t.sh -- true"), 0);
  cr_expect_str_eq(o.image, "from-flag");
  cr_expect_eq(o.timeout_usec, 5000000);
  cr_expect_not(o.resume, "CLEANUP_AGENT_RESUME=0 is off");
  cr_expect_not(o.docker_proxy, "CLEANUP_AGENT_DOCKER_PROXY=false is off");
  cr_expect_not(o.self_protect);
  cr_expect_str_eq(o.network, "none", "the default network");
  cr_expect_null(o.workdir);
  cr_expect_null(o.checkpoint);
  cr_expect_eq(o.memory, 0);
  cr_expect_eq(o.n_mounts, 0);
  cr_expect_eq(o.n_env, 0);
  opts_done(&o);

  /* --resume wins over CLEANUP_AGENT_RESUME=0. */
  struct seq_opts o2 = {0};
  cr_assert_eq(parse(&o2, "container-seq --resume --timeout 1s t.sh -- true"), 0);
  cr_expect(o2.resume);
  opts_done(&o2);
}

/* Self-protection leaves the suite's own test out of the host's CPU (issue 20): 2 CPUs for 1 s at 100 ticks a second
 * are 200 ticks; a test that used 1.5 s of them leaves 25% to the rest of the host. */
Test(seq_load, the_suites_own_cpu_time_is_not_the_hosts_load) {
  struct seq_cpu_times delta = {.busy = 200, .total = 200};
  cr_expect_float_eq(seq_load_outside_cpu_pct(&delta, 0, 100), 100.0, 1e-9);
  cr_expect_float_eq(seq_load_outside_cpu_pct(&delta, 1500000, 100), 25.0, 1e-9);
  cr_expect_float_eq(seq_load_outside_cpu_pct(&delta, 3000000, 100), 0.0, 1e-9, "never below 0");
  struct seq_cpu_times idle = {.busy = 0, .total = 0};
  cr_expect_float_eq(seq_load_outside_cpu_pct(&idle, 0, 100), 0.0, 1e-9);
}

Test(seq_load, a_proc_stat_line_whose_sum_overflows_is_refused) {
  struct seq_cpu_times t;
  ca_error *e = NULL;
  cr_expect_eq(seq_parse_proc_stat("cpu 10 0 5 80 5 0 0 0 0 0\n", &t, NULL), 0);
  cr_expect(t.total == 100 && t.busy == 10 + 5, "total %" PRIu64 ", busy %" PRIu64, t.total, t.busy);
  /* Each value fits in 64 bits, their sum does not: a busy time above the total would read as a busy host. */
  int r = seq_parse_proc_stat("cpu 6 0 2 18446744073709551615 0\n", &t, &e);
  cr_expect_eq(r, -EBADMSG, "parsed: total %" PRIu64 ", busy %" PRIu64, t.total, t.busy);
  cr_expect(e && strstr(e->msg, "/proc/stat"), "%s", e ? e->msg : "no error");
  ca_error_free(e);
}
