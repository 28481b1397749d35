/* The end of a session removes what the proxy recorded several at a time, as `docker rm -f` and `docker compose down`
 * do (issue 19): seen in the real engine's events, not in timings. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scenario.h"

static struct scenario sc;

static void setup(void) {
  scenario_setup(&sc);
}
static void teardown(void) {
  scenario_teardown(&sc);
}

TestSuite(end_parallel, .init = setup, .fini = teardown, .timeout = 300 * AG_TIMEOUT_SCALE);

#define RUNNING 12

/* The most containers of the test's label that the engine was removing at once between since and until: a forced
 * DELETE of a running container is a `kill` event, then its `destroy`; removals one after the other never overlap. */
static int most_removals_at_once(long since, long until) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "docker events --since %ld --until %ld --filter type=container --filter label=%s "
           "--format '{{.Action}} {{.Actor.ID}}'",
           since, until, sc.test_label);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p, "%s", cmd);
  char line[256], ids[RUNNING * 4][65];
  int n_ids = 0, now = 0, most = 0;
  while (fgets(line, sizeof(line), p)) {
    char action[32], id[65];
    if (sscanf(line, "%31s %64s", action, id) != 2)
      continue;
    if (strcmp(action, "kill") == 0 && n_ids < (int)(sizeof(ids) / sizeof(ids[0]))) {
      snprintf(ids[n_ids++], sizeof(ids[0]), "%s", id);
      most = now + 1 > most ? now + 1 : most;
      now++;
    } else if (strcmp(action, "destroy") == 0) {
      for (int i = 0; i < n_ids; i++)
        if (strcmp(ids[i], id) == 0) {
          ids[i][0] = '\0'; /* a container killed once is counted once */
          now--;
        }
    }
  }
  cr_assert_eq(pclose(p), 0, "%s", cmd);
  return most;
}

Test(end_parallel, the_end_removes_the_recorded_containers_several_at_a_time) {
  char body[512];
  snprintf(body, sizeof(body),
           "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
           "for i in $(seq %d); do\n"
           "  docker run -d --network none --label $TEST_LABEL cleanup-test/busybox:latest sleep 1000 >/dev/null "
           "|| exit 90\n"
           "done\n",
           RUNNING);
  const char *script = scenario_script(&sc, "many.sh", body);
  long since = (long)time(NULL) - 1;
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  scenario_assert_nothing_left(&sc, id);
  int most = most_removals_at_once(since, (long)time(NULL) + 1);
  cr_expect_geq(most, 4, "the end removed at most %d of the session's %d running containers at once", most, RUNNING);
}
