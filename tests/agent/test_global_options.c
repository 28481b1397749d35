/* The global options (before the command name): each flag and each CLEANUP_AGENT_* variable reaches the setting it
 * names, the flag wins, an empty variable counts as unset, parsing stops at the command, and each bad value is one
 * line naming the flag or the variable, exit 2. No command runs: ag_globals_parse alone (each test is a process of
 * its own, so the log level and the driver it sets do not leak into the next). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cgroup.h"
#include "globals.h"
#include "options.h"
#include "said.h"

static const char *const vars[] = {
    "CLEANUP_AGENT_DOCKER_HOST", "CLEANUP_AGENT_STATE_DIR",        "CLEANUP_AGENT_CGROUP_ROOT",
    "CLEANUP_AGENT_LOG_LEVEL",   "CLEANUP_AGENT_TEARDOWN_TIMEOUT", "CLEANUP_AGENT_CGROUP_DRIVER",
};

static char out[4096], err[4096];
static struct ag_globals g;
static struct ag_global_opts o;
static int next;

/* ag_globals_parse of "cleanup-agent" and the NULL-terminated args, with only the variables of env ("K=V" each,
 * NULL-terminated) set; into g, o and next, what it says into out and err. */
static int parse(const char *const *env, const char *const *args) {
  said_env(vars, sizeof(vars) / sizeof(vars[0]), env);
  int argc;
  char **argv = said_argv("cleanup-agent", args, &argc);
  g = (struct ag_globals){0};
  o = (struct ag_global_opts){0};
  next = -1;
  struct said s;
  said_begin(&s);
  int r = ag_globals_parse(argc, argv, &g, &o, &next);
  said_end(&s, out, err, sizeof(out));
  return r;
}
#define NO_ENV ((const char *const[]){NULL})
#define ENV(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The driver every cgroup root opened with AUTO gets: auto, cgroupfs or systemd. */
static const char *default_driver(void) {
  enum cg_driver off = cg_driver_resolve(CG_DRIVER_AUTO, false, true, false, false);
  enum cg_driver on = cg_driver_resolve(CG_DRIVER_AUTO, true, true, false, false);
  return off != on ? "auto" : cg_driver_name(on);
}

/* Every setting the global options give, "name=value" each, so that a failure shows which got what. */
static char *settings(void) {
  char *text = NULL;
  if (asprintf(&text,
               "docker_host=%s from=%s state_dir=%s cgroup_root=%s driver=%s systemd_origin=%s teardown_usec=%" PRIu64
               " log_level=%d version=%d",
               o.docker_host ? o.docker_host : "-", o.docker_host_from ? o.docker_host_from : "-",
               g.state_dir ? g.state_dir : "-", g.cgroup_root ? g.cgroup_root : "-", default_driver(),
               g.systemd_driver_origin ? g.systemd_driver_origin : "-", g.teardown_usec, (int)ca_log_get_level(),
               o.version) < 0)
    return NULL;
  return text;
}

#define DEFAULTS                                                                                                       \
  "docker_host=- from=- state_dir=- cgroup_root=- driver=auto systemd_origin=- teardown_usec=0 log_level=2 version=0"

Test(global_options, defaults_hold_without_flags_or_variables) {
  cr_assert_eq(parse(NO_ENV, ARGS("ps")), 0, "%s", err);
  cr_expect_eq(next, 1);
  cr_expect_str_eq(settings(), DEFAULTS);
  cr_expect_str_empty(out);
  cr_expect_str_empty(err);
}

Test(global_options, each_flag_sets_its_own_setting) {
  cr_assert_eq(parse(NO_ENV, ARGS("--docker-host", "unix:///d.sock", "--state-dir", "/s", "--cgroup-root", "/c",
                                  "--cgroup-driver", "systemd", "--log-level", "debug", "--teardown-timeout", "5s",
                                  "gc", "--dry-run")),
               0, "%s", err);
  cr_expect_eq(next, 13);
  cr_expect_str_eq(settings(), "docker_host=unix:///d.sock from=--docker-host state_dir=/s cgroup_root=/c"
                               " driver=systemd systemd_origin=--cgroup-driver teardown_usec=5000000 log_level=4"
                               " version=0");
  cr_expect_str_empty(err);
}

Test(global_options, each_variable_sets_its_own_setting) {
  cr_assert_eq(parse(ENV("CLEANUP_AGENT_DOCKER_HOST=tcp://h:2375", "CLEANUP_AGENT_STATE_DIR=/vs",
                         "CLEANUP_AGENT_CGROUP_ROOT=/vc", "CLEANUP_AGENT_CGROUP_DRIVER=systemd",
                         "CLEANUP_AGENT_LOG_LEVEL=error", "CLEANUP_AGENT_TEARDOWN_TIMEOUT=2m"),
                     ARGS("ps")),
               0, "%s", err);
  cr_expect_str_eq(settings(), "docker_host=tcp://h:2375 from=CLEANUP_AGENT_DOCKER_HOST state_dir=/vs cgroup_root=/vc"
                               " driver=systemd systemd_origin=CLEANUP_AGENT_CGROUP_DRIVER teardown_usec=120000000"
                               " log_level=0 version=0");
  cr_expect_str_empty(err);
}

/* The flag wins, and a bad variable under a good flag is never read. */
Test(global_options, flags_override_variables) {
  cr_assert_eq(parse(ENV("CLEANUP_AGENT_DOCKER_HOST=bogus://x", "CLEANUP_AGENT_STATE_DIR=/vs",
                         "CLEANUP_AGENT_CGROUP_ROOT=/vc", "CLEANUP_AGENT_CGROUP_DRIVER=bogus",
                         "CLEANUP_AGENT_LOG_LEVEL=shouty", "CLEANUP_AGENT_TEARDOWN_TIMEOUT=0s"),
                     ARGS("--docker-host=unix:///f.sock", "--state-dir", "/fs", "--cgroup-root", "/fc",
                          "--cgroup-driver", "cgroupfs", "--log-level", "info", "--teardown-timeout", "1h", "run")),
               0, "%s", err);
  cr_expect_str_eq(settings(), "docker_host=unix:///f.sock from=--docker-host state_dir=/fs cgroup_root=/fc"
                               " driver=cgroupfs systemd_origin=- teardown_usec=3600000000 log_level=3 version=0");
  cr_expect_str_empty(err);
}

/* An empty variable counts as unset, as for every command (DESIGN.md, Options). */
Test(global_options, empty_variables_count_as_unset) {
  cr_assert_eq(parse(ENV("CLEANUP_AGENT_DOCKER_HOST=", "CLEANUP_AGENT_STATE_DIR=", "CLEANUP_AGENT_CGROUP_ROOT=",
                         "CLEANUP_AGENT_CGROUP_DRIVER=", "CLEANUP_AGENT_LOG_LEVEL=", "CLEANUP_AGENT_TEARDOWN_TIMEOUT="),
                     ARGS("ps")),
               0, "%s", err);
  cr_expect_str_eq(settings(), DEFAULTS);
  cr_expect_str_empty(err);
}

/* The command's own options are its own: parsing stops at the command name, or after "--". */
Test(global_options, parsing_stops_at_the_command) {
  cr_assert_eq(parse(NO_ENV, ARGS("--state-dir", "/s", "ps", "--state-dir", "/t", "--bogus")), 0, "%s", err);
  cr_expect_eq(next, 3);
  cr_expect_str_eq(g.state_dir, "/s");
  cr_assert_eq(parse(NO_ENV, ARGS("--state-dir=/s", "--", "run", "--", "true")), 0, "%s", err);
  cr_expect_eq(next, 3);
  cr_assert_eq(parse(NO_ENV, ARGS("--log", "debug")), 0, "%s", err); /* no command: main says so */
  cr_expect_eq(next, 3);
  cr_expect_eq(ca_log_get_level(), CA_LOG_DEBUG);
}

/* --version wins over every value, good or bad; --help returns at once, for main to print the usage. */
Test(global_options, version_and_help) {
  static const char *const versions[][4] = {
      {"--version"}, {"-V"}, {"-V", "ps"}, {"--version", "--log-level", "loud"}, {"--teardown-timeout", "0s", "-V"}};
  for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
    cr_expect_eq(parse(ENV("CLEANUP_AGENT_LOG_LEVEL=shouty"), versions[i]), 0, "case %zu: %s", i, err);
    cr_expect(o.version, "case %zu", i);
    cr_expect_str_empty(err, "case %zu", i);
  }
  static const char *const helps[][4] = {{"--help"}, {"-h"}, {"--log-level", "loud", "--help"}, {"-h", "--bogus"}};
  for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
    cr_expect_eq(parse(NO_ENV, helps[i]), AG_OPTIONS_HELP, "case %zu", i);
    cr_expect_str_empty(out, "case %zu", i);
    cr_expect_str_empty(err, "case %zu", i);
  }
}

#define DURATION_HINT "use a number with a unit: ms, s, m, h or d, such as 250ms, 30s or 1h30m"
#define LEVEL_HINT "use error, warning, notice, info or debug"
#define DRIVER_HINT "use auto, systemd or cgroupfs"
#define HELP_HINT "; see 'cleanup-agent --help'"

/* Each bad value, from a flag or a variable: exactly this one line on stderr, naming where it came from, exit 2. */
Test(global_options, each_bad_value_is_one_line_and_exit_2) {
  static const struct said_bad bad[] = {
      {{0}, {"--log-level", "loud", "ps"}, "--log-level: invalid log level 'loud': " LEVEL_HINT},
      {{"CLEANUP_AGENT_LOG_LEVEL=shouty"}, {"ps"}, "CLEANUP_AGENT_LOG_LEVEL: invalid log level 'shouty': " LEVEL_HINT},
      {{0}, {"--teardown-timeout", "bad", "ps"}, "--teardown-timeout: invalid duration 'bad': " DURATION_HINT},
      {{0}, {"--teardown-timeout", "0s", "ps"}, "--teardown-timeout: '0s' must be above 0"},
      {{0}, {"--teardown-timeout", "-5s", "ps"}, "--teardown-timeout: invalid duration '-5s': must not be negative"},
      {{"CLEANUP_AGENT_TEARDOWN_TIMEOUT=bad"},
       {"ps"},
       "CLEANUP_AGENT_TEARDOWN_TIMEOUT: invalid duration 'bad': " DURATION_HINT},
      {{"CLEANUP_AGENT_TEARDOWN_TIMEOUT=0s"}, {"ps"}, "CLEANUP_AGENT_TEARDOWN_TIMEOUT: '0s' must be above 0"},
      {{0}, {"--cgroup-driver", "bogus", "ps"}, "--cgroup-driver: unknown cgroup driver 'bogus': " DRIVER_HINT},
      {{"CLEANUP_AGENT_CGROUP_DRIVER=bogus"},
       {"ps"},
       "CLEANUP_AGENT_CGROUP_DRIVER: unknown cgroup driver 'bogus': " DRIVER_HINT},
      {{0}, {"--state-dir"}, "option '--state-dir' needs a value" HELP_HINT},
      {{0}, {"--docker-host"}, "option '--docker-host' needs a value" HELP_HINT},
      {{0}, {"--cgroup-root"}, "option '--cgroup-root' needs a value" HELP_HINT},
      {{0}, {"--cgroup-driver"}, "option '--cgroup-driver' needs a value" HELP_HINT},
      {{0}, {"--log-level"}, "option '--log-level' needs a value" HELP_HINT},
      {{0}, {"--teardown-timeout"}, "option '--teardown-timeout' needs a value" HELP_HINT},
      {{0}, {"--frob", "gc"}, "unknown option '--frob'" HELP_HINT},
      {{0}, {"-x", "gc"}, "unknown option '-x'" HELP_HINT},
      {{0}, {"--version=x"}, "unknown option '--version=x'" HELP_HINT},
      {{0}, {"--version", "--frob"}, "unknown option '--frob'" HELP_HINT},
      {{0}, {"--format", "json", "ps"}, "unknown option '--format'" HELP_HINT}, /* ps's: after ps */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int r = parse(bad[i].env, bad[i].args);
    char want[512];
    snprintf(want, sizeof(want), "cleanup-agent: %s\n", bad[i].line);
    cr_expect_eq(r, 2, "case %zu (%s %s): exit %d", i, bad[i].env[0] ? bad[i].env[0] : "", bad[i].args[0], r);
    cr_expect_str_eq(err, want, "case %zu (%s %s)", i, bad[i].env[0] ? bad[i].env[0] : "", bad[i].args[0]);
    cr_expect_str_empty(out, "case %zu", i);
  }
}
