/* Nesting (issue 20): `run` inside `run` and `container-seq` inside `run`, with default options. What the inner
 * session creates goes through both proxies, the inner tree stays inside the outer session's kill scope, and the outer
 * session's end or death leaves nothing of the inner ones. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "scenario.h"

#define IMAGE "cleanup-test/busybox:latest"

static struct scenario sc;
static pid_t outer_agent;

static void setup(void) {
  scenario_setup(&sc);
}
static void teardown(void) {
  if (outer_agent > 0) {
    kill(outer_agent, SIGKILL);
    scenario_wait(outer_agent);
    outer_agent = 0;
  }
  scenario_teardown(&sc);
}

TestSuite(nesting, .init = setup, .fini = teardown, .timeout = 180 * AG_TIMEOUT_SCALE);

/* The outer command: it records its session, runs `cleanup-agent run -- sh -c INNER` with the scenario's state dir
 * and nothing else (the cgroup root and the engine are what nesting makes of them), then records the inner's exit. */
static const char *outer_script(const char *inner) {
  char body[4096];
  snprintf(body, sizeof(body),
           "export OUT TEST_LABEL\n"
           "echo \"$CLEANUP_AGENT_SESSION\" >\"$OUT/outer\"\n"
           "%s --state-dir %s run -- sh -c '%s'\n"
           "echo $? >\"$OUT/inner_rc\"\n",
           AG_BINARY, sc.state, inner);
  return scenario_script(&sc, "outer.sh", body);
}

static const char *marker(const char *name) {
  char path[200];
  snprintf(path, sizeof(path), "%s/%s", sc.dir, name);
  static char text[256];
  snprintf(text, sizeof(text), "%s", scenario_read_text(path));
  text[strcspn(text, "\n")] = '\0';
  return text;
}

Test(nesting, run_inside_run_creates_through_both_proxies_and_leaves_nothing) {
  const char *script =
      outer_script("docker run -d --label \"$TEST_LABEL\" " IMAGE " sleep 600 >\"$OUT/cid\" && "
                   "docker network create --label \"$TEST_LABEL\" \"net-$CLEANUP_AGENT_SESSION\" >/dev/null && "
                   "docker inspect -f \"{{index .Config.Labels \\\"io.cleanup-agent.session\\\"}} "
                   "{{index .Config.Labels \\\"io.cleanup-agent.outer\\\"}}\" $(cat \"$OUT/cid\") >\"$OUT/labels\" && "
                   "echo \"$CLEANUP_AGENT_SESSION\" >\"$OUT/inner\"");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", "sh", script, NULL});
  cr_assert_eq(rc, 0, "the outer run exited %d:\n%s", rc, scenario_stderr(&sc));
  char outer[64], inner[64], want[160];
  snprintf(outer, sizeof(outer), "%s", marker("outer"));
  snprintf(inner, sizeof(inner), "%s", marker("inner"));
  cr_assert_str_eq(marker("inner_rc"), "0", "the inner run failed; its creates were refused?\n%s",
                   scenario_stderr(&sc));
  cr_assert_eq(strlen(inner), 32);
  cr_assert_str_neq(inner, outer);
  snprintf(want, sizeof(want), "%s %s", inner, outer);
  cr_assert_str_eq(marker("labels"), want, "the inner container's session and outer labels");
  scenario_assert_nothing_left(&sc, inner);
  scenario_assert_nothing_left(&sc, outer);
}

/* Whether pid is gone (a zombie counts), waiting at most timeout_ms. */
static bool gone_within(pid_t pid, int timeout_ms) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  const char *st = NULL;
  for (int waited = 0; waited <= timeout_ms; waited += 100, usleep(100 * 1000))
    if (!(st = strrchr(scenario_read_text(path), ')')) || st[2] == 'Z')
      return true;
  return false;
}

Test(nesting, killing_the_outer_session_ends_the_inner_tree_and_its_containers) {
  const char *script = outer_script("docker run -d --label \"$TEST_LABEL\" " IMAGE " sleep 600 >\"$OUT/cid\" && "
                                    "echo \"$CLEANUP_AGENT_SESSION\" >\"$OUT/inner\" && sleep 600");
  outer_agent = scenario_start(&sc, (const char *[]){"run", "--", "sh", script, NULL});
  char inner[128];
  cr_assert(scenario_read_marker(&sc, "inner", 60000, inner), "the inner command did not start:\n%s",
            scenario_stderr(&sc));
  char outer[64];
  snprintf(outer, sizeof(outer), "%s", marker("outer"));
  int running = 0;
  for (int i = 0; i < 100 && running == 0; i++, usleep(50 * 1000))
    running = scenario_count_processes(inner);
  cr_assert_gt(running, 0, "the inner command should be running");
  pid_t outer_guardian = scenario_guardian_of(&sc, outer);
  char bystander[33]; /* dead, not nested: the outer guardian leaves it to the next start */
  scenario_dead_session(&sc, NULL, bystander);
  kill(outer_agent, SIGKILL); /* the outer agent dies; its guardian kills its tree, the inner ones with it */
  scenario_wait(outer_agent);
  outer_agent = 0;
  bool gone = false;
  for (int i = 0; i < 300 && !gone; i++) {
    gone = scenario_count_processes(inner) == 0 && scenario_count_docker(&sc, DK_CONTAINER, inner) == 0;
    usleep(100 * 1000);
  }
  cr_assert(gone, "the inner tree (%d processes) or its containers (%d) outlived the outer session",
            scenario_count_processes(inner), scenario_count_docker(&sc, DK_CONTAINER, inner));
  bool outer_gone = false;
  for (int i = 0; i < 300 && !outer_gone; i++, usleep(100 * 1000))
    outer_gone = scenario_count_processes(outer) == 0 && scenario_count_docker(&sc, DK_CONTAINER, outer) == 0 &&
                 !scenario_cgroup_exists(&sc, outer);
  cr_assert(outer_gone, "the outer session's guardian left its tree, containers or cgroup");
  /* The inner registry (its guardian died in the outer tree) goes with the outer guardian's collection too, with no
   * later start: the outer guardian collects the dead sessions nested in its session, and those alone. */
  cr_assert(gone_within(outer_guardian, 15000), "the outer guardian is still running");
  cr_assert_eq(scenario_count_state_files(&sc), 2, "not the bystander's lock and registry alone in %s/sessions",
               sc.state);
  cr_assert_eq(scenario_run(&sc, (const char *[]){"run", "--", "true", NULL}), 0); /* collects the bystander */
  scenario_assert_nothing_left(&sc, inner);
  scenario_assert_nothing_left(&sc, outer);
}

/* The outer command: an inner run with a container made through its proxy, left running in the background. */
static const char *outer_leaving_an_inner_run(void) {
  char body[4096];
  snprintf(body, sizeof(body),
           "export OUT TEST_LABEL\n"
           "echo \"$CLEANUP_AGENT_SESSION\" >\"$OUT/outer\"\n"
           "%s --state-dir %s run -- sh -c 'docker run -d --label \"$TEST_LABEL\" " IMAGE " sleep 600 >\"$OUT/cid\" && "
           "echo \"$CLEANUP_AGENT_SESSION\" >\"$OUT/inner\" && sleep 600' &\n"
           "while [ ! -s \"$OUT/inner\" ]; do sleep 0.1; done\n",
           AG_BINARY, sc.state);
  return scenario_script(&sc, "outer.sh", body);
}

/* Right after the outer run returned, or kill returned: nothing of the inner session, its registry, lock and socket
 * included (before, a watcher for late creates kept them 10 s more, though every create went through the outer
 * proxy, which had drained). */
static void assert_inner_gone_now(const char *inner) {
  cr_assert_eq(strlen(inner), 32);
  cr_assert_eq(scenario_count_state_files(&sc), 0, "the inner session's files are still in %s/sessions", sc.state);
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, inner), 0, "the inner session's container is left");
  cr_assert_eq(scenario_count_processes(inner), 0, "processes of the inner session are left");
  cr_assert_not(scenario_cgroup_exists(&sc, inner), "the inner cgroup is left");
}

Test(nesting, the_outer_end_collects_an_inner_run_still_going_before_it_returns) {
  int rc = scenario_run(&sc, (const char *[]){"run", "--", "sh", outer_leaving_an_inner_run(), NULL});
  cr_assert_eq(rc, 0, "the outer run exited %d:\n%s", rc, scenario_stderr(&sc));
  char inner[64], outer[64];
  snprintf(inner, sizeof(inner), "%s", marker("inner"));
  snprintf(outer, sizeof(outer), "%s", marker("outer"));
  assert_inner_gone_now(inner);
  scenario_assert_nothing_left(&sc, outer);
}

Test(nesting, kill_of_the_outer_session_collects_the_inner_one_before_it_returns) {
  outer_agent = scenario_start(
      &sc, (const char *[]){"run", "--", "sh", "-c", "sh \"$0\"; sleep 600", outer_leaving_an_inner_run(), NULL});
  char inner[128];
  cr_assert(scenario_read_marker(&sc, "inner", 60000, inner), "the inner command did not start:\n%s",
            scenario_stderr(&sc));
  char outer[64];
  snprintf(outer, sizeof(outer), "%s", marker("outer"));
  int rc = scenario_run(&sc, (const char *[]){"kill", outer, NULL});
  cr_assert_eq(rc, 0, "kill exited %d:\n%s", rc, scenario_stderr(&sc));
  assert_inner_gone_now(inner);
  scenario_wait(outer_agent);
  outer_agent = 0;
  scenario_assert_nothing_left(&sc, outer);
}

Test(nesting, container_seq_inside_run) {
  scenario_script(&sc, "t.sh", "echo nested-test\n");
  char inner[512];
  snprintf(inner, sizeof(inner),
           "%s --state-dir %s container-seq --image " IMAGE " --mount %s:/out --workdir /out t.sh -- sh {} "
           ">\"%s/seq.out\" 2>&1; echo $? >\"%s/inner_rc\"",
           AG_BINARY, sc.state, sc.dir, sc.dir, sc.dir);
  const char *script = scenario_script(&sc, "outer.sh", inner);
  int rc = scenario_run(&sc, (const char *[]){"run", "--", "sh", script, NULL});
  cr_assert_eq(rc, 0, "the outer run exited %d:\n%s", rc, scenario_stderr(&sc));
  char path[200];
  snprintf(path, sizeof(path), "%s/seq.out", sc.dir);
  cr_assert_str_eq(marker("inner_rc"), "0", "container-seq inside run failed:\n%s", scenario_read_text(path));
  cr_assert_not_null(strstr(scenario_read_text(path), "PASS t.sh"), "%s", scenario_read_text(path));
  cr_assert_eq(scenario_count_state_files(&sc), 0, "state files left");
}
