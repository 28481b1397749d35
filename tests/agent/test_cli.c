/* The CLI contract of DESIGN.md for the global options and the command table. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_run.h"
#include "config.h"

static struct cli_result r;

Test(cli, help_lists_every_command_on_stdout) {
  cli_run(&r, (const char *[]){"--help", NULL}, NULL);
  cr_assert_eq(r.status, 0);
  cr_assert_str_empty(r.err);
  const char *cmds[] = {"run", "container-seq", "gc", "ps", "kill"};
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    char line[64];
    snprintf(line, sizeof(line), "\n  %s ", cmds[i]);
    cr_assert_not_null(strstr(r.out, line), "--help lacks a line for %s:\n%s", cmds[i], r.out);
  }
  cr_assert_not_null(strstr(r.out, "--state-dir"));
}

Test(cli, version_prints_the_cmake_version) {
  cli_run(&r, (const char *[]){"--version", NULL}, NULL);
  cr_assert_eq(r.status, 0);
  /* The version, then the libcurl it runs with and the build's features (tests/package/check_version.sh checks the
   * libcurl against the system's). */
  const char *first = "cleanup-agent " AG_VERSION "\n";
  cr_assert_eq(strncmp(r.out, first, strlen(first)), 0, "%s", r.out);
  cr_assert_not_null(strstr(r.out, "\nlibcurl "), "%s", r.out);
  cr_assert_not_null(strstr(r.out, "\nfeatures: +proxy"), "%s", r.out);
}

Test(cli, unknown_command_is_one_line_exit_2) {
  cli_run(&r, (const char *[]){"frobnicate", NULL}, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_eq(cli_count_lines(r.err), 1, "%s", r.err);
  cr_assert_not_null(strstr(r.err, "unknown command 'frobnicate'"), "%s", r.err);
  cr_assert_str_empty(r.out);
}

Test(cli, unknown_option_is_one_line_exit_2) {
  cli_run(&r, (const char *[]){"--frob", "gc", NULL}, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_eq(cli_count_lines(r.err), 1, "%s", r.err);
  cr_assert_not_null(strstr(r.err, "unknown option '--frob'"), "%s", r.err);
  cli_run(&r, (const char *[]){"-x", "gc", NULL}, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_not_null(strstr(r.err, "unknown option '-x'"), "%s", r.err);
}

Test(cli, option_without_value_is_one_line_exit_2) {
  cli_run(&r, (const char *[]){"--state-dir", NULL}, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_eq(cli_count_lines(r.err), 1, "%s", r.err);
  cr_assert_not_null(strstr(r.err, "--state-dir"), "%s", r.err);
}

Test(cli, no_command_is_usage_error) {
  cli_run(&r, (const char *[]){NULL}, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_eq(cli_count_lines(r.err), 1, "%s", r.err);
}

Test(cli, bad_log_level_from_flag_or_environment) {
  cli_run(&r, (const char *[]){"--log-level", "loud", "gc", NULL}, NULL);
  cr_assert_eq(r.status, 2);
  cr_assert_not_null(strstr(r.err, "'loud'"), "%s", r.err);
  cli_run(&r, (const char *[]){"gc", NULL}, (const char *[]){"CLEANUP_AGENT_LOG_LEVEL=shouty", NULL});
  cr_assert_eq(r.status, 2);
  cr_assert_not_null(strstr(r.err, "'shouty'"), "%s", r.err);
}

/* A boolean variable that is neither true nor false is one line naming it and the accepted values, before anything
 * starts; 125 for run and container-seq. */
Test(cli, bad_boolean_variable_is_one_line) {
  const char *vars[][2] = {{"run", "CLEANUP_AGENT_PRIVATE_TMP=maybe"},
                           {"run", "CLEANUP_AGENT_NO_DOCKER_PROXY=nope"},
                           {"container-seq", "CLEANUP_AGENT_DOCKER_PROXY=2"}};
  for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
    cli_run(&r, (const char *[]){"--state-dir", "/nonexistent/state", vars[i][0], "--", "true", NULL},
            (const char *[]){vars[i][1], NULL});
    cr_assert_eq(r.status, 125, "%s %s exited %d: %s", vars[i][1], vars[i][0], r.status, r.err);
    cr_assert_eq(cli_count_lines(r.err), 1, "%s", r.err);
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(vars[i][1], "="), vars[i][1]);
    cr_assert_not_null(strstr(r.err, name), "%s", r.err);
    cr_assert_not_null(strstr(r.err, "1, true, yes, on"), "%s", r.err);
  }
}

/* --help says where the engine comes from, in the order it is looked for. */
Test(cli, help_states_how_the_engine_is_found) {
  cli_run(&r, (const char *[]){"--help", NULL}, NULL);
  cr_assert_eq(r.status, 0);
  const char *order[] = {"--docker-host",  "CLEANUP_AGENT_DOCKER_HOST",    "DOCKER_HOST",         "DOCKER_CONTEXT",
                         "currentContext", "$XDG_RUNTIME_DIR/docker.sock", "/var/run/docker.sock"};
  const char *at = r.out;
  for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
    const char *p = strstr(at, order[i]);
    cr_assert_not_null(p, "--help does not name %s after %s:\n%s", order[i], i ? order[i - 1] : "the start", r.out);
    at = p + strlen(order[i]);
  }
}

/* --cgroup-driver systemd, or its variable, where systemd is not PID 1: run refuses with one line and 125 before it
 * starts anything, instead of quietly using another driver (auto does: tests/cgroup/test_cgroup_driver.c). Where
 * systemd is PID 1 (a stock Debian 12), the same run works. */
Test(cli, systemd_driver_is_one_line_125_without_systemd_and_runs_with_it) {
  bool booted = access("/run/systemd/system", F_OK) == 0;
  char dir[] = "/tmp/cli-driver-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  cli_run(&r, (const char *[]){"--cgroup-driver", "systemd", "--state-dir", dir, "run", "--", "true", NULL}, NULL);
  if (booted) {
    cr_expect_eq(r.status, 0, "exited %d where systemd is PID 1: %s", r.status, r.err);
  } else {
    cr_expect_eq(r.status, 125, "exited %d: %s", r.status, r.err);
    cr_expect_eq(cli_count_lines(r.err), 1, "%s", r.err);
    cr_expect_not_null(strstr(r.err, "systemd is not PID 1"), "%s", r.err);
  }
  cli_run(&r, (const char *[]){"--state-dir", dir, "run", "--", "true", NULL},
          (const char *[]){"CLEANUP_AGENT_CGROUP_DRIVER=systemd", NULL});
  if (booted) {
    cr_expect_eq(r.status, 0, "exited %d where systemd is PID 1: %s", r.status, r.err);
  } else {
    cr_expect_eq(r.status, 125, "exited %d: %s", r.status, r.err);
    cr_expect_not_null(strstr(r.err, "CLEANUP_AGENT_CGROUP_DRIVER"), "%s", r.err);
  }
  char cmd[64];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

/* ps's usage errors say what was wrong and where to look, as every command's do (issue 18: ps on the shared table). */
Test(cli, ps_usage_errors_say_what_to_do) {
  static const char *const cases[][3] = {
      {"--format", NULL, "cleanup-agent: ps: option '--format' needs a value; see 'cleanup-agent ps --help'\n"},
      {"extra", NULL, "cleanup-agent: ps: unexpected argument 'extra'; see 'cleanup-agent ps --help'\n"},
      {"--bogus", NULL, "cleanup-agent: ps: unknown option '--bogus'; see 'cleanup-agent ps --help'\n"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cli_run(&r, (const char *[]){"ps", cases[i][0], NULL}, NULL);
    cr_expect_eq(r.status, 2, "ps %s exited %d", cases[i][0], r.status);
    cr_expect_str_eq(r.err, cases[i][2], "ps %s", cases[i][0]);
    cr_expect_str_empty(r.out);
  }
}

/* A bad global value names the variable it came from when no flag gave it. */
Test(cli, bad_global_variable_names_the_variable) {
  cli_run(&r, (const char *[]){"ps", NULL}, (const char *[]){"CLEANUP_AGENT_TEARDOWN_TIMEOUT=bad", NULL});
  cr_expect_eq(r.status, 2, "exited %d", r.status);
  cr_expect_eq(cli_count_lines(r.err), 1, "%s", r.err);
  cr_expect_eq(strncmp(r.err, "cleanup-agent: CLEANUP_AGENT_TEARDOWN_TIMEOUT: ", 47), 0, "%s", r.err);
}
