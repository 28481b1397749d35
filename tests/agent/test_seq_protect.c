/* container-seq's self-protection judges the load that is not the suite's own (issue 20): a CPU-bound test file must
 * not stop the run, a CPU hog outside the session must. Run alone (RUN_SERIAL): the verdicts are about the whole
 * host's CPU, which another suite running beside would change. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scenario.h"

#define IMAGE "cleanup-test/busybox:latest"
#define HOGS 2 /* the machines have 2 CPUs or more; a hog per CPU of the smallest */

static struct scenario sc;
static char mount_arg[160];
static pid_t hogs[HOGS];

static void setup(void) {
  scenario_setup(&sc);
  snprintf(mount_arg, sizeof(mount_arg), "%s:/out", sc.dir);
  setenv("CLEANUP_AGENT_PROTECT_WINDOW", "2s", 1);
}

static void stop_hogs(void) {
  for (size_t i = 0; i < HOGS; i++)
    if (hogs[i] > 0) {
      kill(hogs[i], SIGKILL);
      waitpid(hogs[i], NULL, 0);
      hogs[i] = 0;
    }
}

static void teardown(void) {
  stop_hogs();
  unsetenv("CLEANUP_AGENT_PROTECT_WINDOW");
  scenario_teardown(&sc);
}

TestSuite(seq_protect, .init = setup, .fini = teardown, .timeout = 120 * AG_TIMEOUT_SCALE);

/* container-seq of the one test file body (run as `sh /out/t.sh`), with --cpu-limit 80; its exit code. */
static int run_seq(const char *body) {
  scenario_script(&sc, "t.sh", body);
  const char *args[] = {
      "container-seq", "--image", IMAGE,  "--mount", mount_arg, "--workdir", "/out", "--cpu-limit", "80",
      "--mem-limit",   "99",      "t.sh", "--",      "sh",      "{}",        NULL};
  return scenario_run(&sc, args);
}

Test(seq_protect, a_cpu_bound_test_file_does_not_stop_the_run) {
  /* Two busy loops for 5 s: the host's CPUs are busy with the suite's own test, for longer than the window. */
  int rc = run_seq("for i in 1 2; do timeout 5 sh -c 'while :; do :; done' & done\nwait\nexit 0\n");
  const char *err = scenario_stderr(&sc);
  cr_assert_eq(rc, 0, "a CPU-bound test stopped the run (exit %d):\n%s", rc, err);
  cr_assert_null(strstr(err, "protect"), "%s", err);
}

Test(seq_protect, a_hog_outside_the_session_stops_the_run) {
  for (size_t i = 0; i < HOGS; i++) {
    hogs[i] = fork();
    cr_assert_geq(hogs[i], 0);
    if (hogs[i] == 0)
      for (volatile unsigned long n = 0;; n++)
        ;
  }
  int rc = run_seq("sleep 20\n");
  stop_hogs();
  const char *err = scenario_stderr(&sc);
  cr_assert_eq(rc, 42, "an outside hog did not stop the run (exit %d):\n%s", rc, err);
  cr_assert_not_null(strstr(err, "besides this suite's test"), "%s", err);
}
