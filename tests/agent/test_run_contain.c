/* run --contain-containers with the cgroupfs drivers (the agent's, by --cgroup-root, and the engine's): the containers
 * the command starts are inside the session's limits, OOM report and kill; the same suite without it shows they are
 * not. The engine is this host's when its driver is cgroupfs (a host without systemd, such as this hybrid one), else
 * a private one with native.cgroupdriver=cgroupfs: a stock Debian 12's engine uses systemd's driver, whose sessions
 * tests/systemd/suite_contain.sh tests. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "scenario.h"
#include "scenario_engine.h"

static struct scenario sc;

static void setup(void) {
  scenario_setup(&sc);
  _cleanup_free_ char *driver = NULL, *version = NULL;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(dk_engine_cgroup(sc.dk, &driver, &version, &err), 0, "%s", err ? err->msg : "");
  if (strcmp(driver, "cgroupfs") != 0)
    scenario_private_engine_start_with(&sc, (const char *const[]){"--exec-opt", "native.cgroupdriver=cgroupfs", NULL});
}

/* The engine made the session root's path in the v1 hierarchies the agent sets no limit in (blkio, devices, ...). */
static void teardown(void) {
  scenario_private_engine_stop(&sc);
  scenario_teardown(&sc);
  const char *base = strrchr(sc.cgroup_root, '/');
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "for d in /sys/fs/cgroup/*%s; do [ -d \"$d\" ] && find \"$d\" -depth -type d "
           "-exec rmdir {} + ; done 2>/dev/null; true",
           base);
  (void)!system(cmd);
}

TestSuite(run_contain, .init = setup, .fini = teardown, .timeout = 240 * AG_TIMEOUT_SCALE);

static const char *out_file(const char *name) {
  return scenario_out(&sc, name);
}

#define IMAGE "cleanup-test/busybox:latest"

/* A 200 MiB hog in a container: tmpfs pages are charged to the container's memory cgroup. */
static const char hog[] = "docker run --rm --label \"$TEST_LABEL\" --network none --shm-size 300m " IMAGE
                          " sh -c 'dd if=/dev/zero of=/dev/shm/x bs=1M count=200 2>/dev/null && echo wrote'\n"
                          "echo $? > $OUT/status\n";

Test(run_contain, a_hog_container_is_oom_killed_inside_the_sessions_memory_and_reported) {
  const char *script = scenario_script(&sc, "hog.sh", hog);
  char report[256];
  snprintf(report, sizeof(report), "%s/report.json", sc.dir);
  int rc = scenario_run(
      &sc, (const char *[]){"run", "--memory", "128M", "--contain-containers", "--report", report, "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_str_eq(out_file("status"), "137", "the container was not OOM-killed: %s", scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "the OOM killer killed"), "no OOM line: %s", scenario_stderr(&sc));
  /* At least one: the hog's tmpfs pages stay charged after dd is killed, so the shell may be the second. */
  const char *kills = strstr(scenario_read_text(report), "\"oom_kills\":\t");
  cr_assert(kills && atoi(kills + strlen("\"oom_kills\":\t")) >= 1, "%s", scenario_read_text(report));

  /* The contrast: without it the container is outside the session's memory limit and writes its 200 MiB. */
  rc = scenario_run(&sc, (const char *[]){"run", "--memory", "128M", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_str_eq(out_file("status"), "0", "%s", scenario_stderr(&sc));
  cr_assert_null(strstr(scenario_stderr(&sc), "OOM"), "%s", scenario_stderr(&sc));
}

/* The command holds 20 sleeps; its container tries 40 more and counts the processes it has. */
static const char forks[] = "for i in $(seq 20); do sleep 100 & done\n"
                            "docker run --rm --label \"$TEST_LABEL\" --network none " IMAGE
                            " sh -c 'for i in $(seq 40); do sleep 100 & done; ls /proc | grep -c \"^[0-9]\"' > "
                            "$OUT/count 2> $OUT/container_err\n"
                            "echo $? > $OUT/status\n";

Test(run_contain, the_command_and_its_container_share_the_pids_limit) {
  const char *script = scenario_script(&sc, "forks.sh", forks);
  int rc = scenario_run(&sc, (const char *[]){"run", "--pids", "50", "--contain-containers", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_not_null(strstr(out_file("container_err"), "can't fork"),
                     "the container forked 40 under --pids 50 beside 20: "
                     "count %s, status %s",
                     out_file("count"), out_file("status"));
  int count = atoi(out_file("count"));
  cr_assert_lt(count, 41, "the container held %d processes", count);

  rc = scenario_run(&sc, (const char *[]){"run", "--pids", "50", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_geq(atoi(out_file("count")), 41, "without --contain-containers the container is not limited: %s",
                out_file("container_err"));
}

/* A container that ignores SIGTERM (the engine would wait its stop timeout, 10 s, before SIGKILL). */
static const char stubborn[] = "docker run -d --label \"$TEST_LABEL\" --network none " IMAGE
                               " sh -c 'trap \"\" TERM; sleep 1000' > $OUT/cid.tmp && mv $OUT/cid.tmp $OUT/cid\n"
                               "sleep 1000\n";

static pid_t container_pid(const char *cid) {
  char cmd[512]; /* on the scenario's engine: the host's, or the private one */
  snprintf(cmd, sizeof(cmd), "docker %s%s inspect -f '{{.State.Pid}}' %s", sc.docker_host[0] ? "-H " : "",
           sc.docker_host, cid);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  int pid = 0;
  cr_assert_eq(fscanf(p, "%d", &pid), 1);
  pclose(p);
  return pid;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(run_contain, killing_the_session_stops_the_container_at_once) {
  const char *script = scenario_script(&sc, "stubborn.sh", stubborn);
  pid_t agent =
      scenario_start(&sc, (const char *[]){"run", "--grace", "1s", "--contain-containers", "--", script, NULL});
  char cid[128];
  cr_assert(scenario_read_marker(&sc, "cid", 60000, cid), "no container: %s", scenario_stderr(&sc));
  pid_t pid = container_pid(cid);
  cr_assert_gt(pid, 0);
  double t0 = now_s();
  cr_assert_eq(kill(agent, SIGTERM), 0);
  int rc = scenario_wait_bounded(agent, 30000);
  cr_assert_eq(rc, 143, "run exited %d: %s", rc, scenario_stderr(&sc));
  double took = now_s() - t0;
  cr_assert_neq(kill(pid, 0), 0, "the container's process %d outlived the session", (int)pid);
  cr_assert_lt(took, 8.0, "the session's end took %.1f s: the container waited for the engine's stop timeout", took);
}

Test(run_contain, a_create_with_its_own_cgroup_parent_gets_400_and_why) {
  const char *script =
      scenario_script(&sc, "parent.sh",
                      "docker run --rm --label \"$TEST_LABEL\" --network none --cgroup-parent /mine " IMAGE
                      " true 2> $OUT/container_err\n"
                      "echo $? > $OUT/status\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--contain-containers", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_str_eq(out_file("status"), "125", "%s", out_file("container_err"));
  cr_assert_not_null(strstr(out_file("container_err"), "--contain-containers"), "%s", out_file("container_err"));
  cr_assert_not_null(strstr(out_file("container_err"), "drop --cgroup-parent"), "%s", out_file("container_err"));
}

Test(run_contain, refused_in_one_line_where_it_cannot_work) {
  const char *const *const cases[] = {
      (const char *[]){"run", "--contain-containers", "--no-docker-proxy", "--", "true", NULL},
      (const char *[]){"--docker-host", "tcp://192.0.2.1:2375", "run", "--contain-containers", "--", "true", NULL},
  };
  static const char *const why[] = {"--no-docker-proxy", "over the network"};
  for (size_t i = 0; i < 2; i++) {
    struct cli_result r;
    cli_run(&r, cases[i], NULL);
    cr_assert_eq(r.status, 125, "%s", r.err);
    cr_assert_eq(cli_count_lines(r.err), 1, "%s", r.err);
    cr_assert_not_null(strstr(r.err, why[i]), "%s", r.err);
  }
}
