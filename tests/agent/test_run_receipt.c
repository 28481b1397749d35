/* run's leak receipt against the real engine, through the real docker CLI and curl: who created what, how each
 * resource and process ended, --report, --junit and --on-leak, as a user reads them. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

static struct scenario sc;

static void setup(void) {
  scenario_setup(&sc);
}
static void teardown(void) {
  scenario_teardown(&sc);
}

TestSuite(run_receipt, .init = setup, .fini = teardown, .timeout = 180 * AG_TIMEOUT_SCALE);

/* The docker CLI creates a container and removes it, creates another and leaves it; a sleep stays in the background.
 * Each docker process writes its pid first (exec keeps it). */
static const char leaky_suite[] =
    "export OUT\n"
    "T=\"--label $TEST_LABEL\"\n"
    "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
    "a=$(sh -c 'echo $$ > $OUT/pid_a; exec docker create '\"$T\"' cleanup-test/busybox:latest true') || exit 90\n"
    "docker rm $a > /dev/null || exit 91\n"
    "b=$(sh -c 'echo $$ > $OUT/pid_b; exec docker create '\"$T\"' cleanup-test/busybox:latest true') || exit 92\n"
    "echo $a > $OUT/a; echo $b > $OUT/b\n"
    "sleep 1000 &\n"
    "echo $! > $OUT/sleep\n"
    "# the command ends once its child is sleep, not the shell between its fork and its exec\n"
    "for i in $(seq 200); do [ \"$(readlink /proc/$!/exe)\" = /usr/bin/sleep ] && break; sleep 0.01; done\n";

static const char tidy_suite[] = "a=$(docker create --label $TEST_LABEL cleanup-test/busybox:latest true) || exit 90\n"
                                 "docker rm $a > /dev/null || exit 91\n";

/* A Testcontainers-style create with curl: the x-tc-sid header and a compose project label. */
static const char tc_suite[] =
    "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
    "curl -sf --unix-socket ${DOCKER_HOST#unix://} -H 'x-tc-sid: tc-42' -H 'Content-Type: application/json' "
    "-d \"{\\\"Image\\\":\\\"cleanup-test/busybox:latest\\\",\\\"Labels\\\":{\\\"com.docker.compose.project\\\":"
    "\\\"e2e\\\",\\\"${TEST_LABEL%%=*}\\\":\\\"${TEST_LABEL#*=}\\\"}}\" "
    "'http://docker/v1.41/containers/create?name=db-'$CLEANUP_AGENT_SESSION > $OUT/created || exit 90\n";

static const char *path_in(const char *name) {
  static char path[256];
  snprintf(path, sizeof(path), "%s/%s", sc.dir, name);
  return path;
}

static const char *marker(const char *name) {
  static char text[256];
  cr_assert(scenario_read_marker(&sc, name, 0, text), "no marker %s", name);
  return text;
}

static cJSON *read_report(const char *path) {
  cJSON *j = cJSON_Parse(scenario_read_text(path));
  cr_assert_not_null(j, "the report does not parse: %s", scenario_read_text(path));
  cr_assert_eq(cJSON_GetObjectItem(j, "schema")->valueint, 1);
  return j;
}

/* The resource of the report whose id is id. */
static const cJSON *resource(const cJSON *report, const char *id) {
  const cJSON *r;
  cJSON_ArrayForEach(r, cJSON_GetObjectItem(report, "resources")) {
    if (streq(cJSON_GetObjectItem(r, "id")->valuestring, id))
      return r;
  }
  cr_assert_fail("resource %s not in the report", id);
  return NULL;
}

static const char *str(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItem(o, key);
  cr_assert(cJSON_IsString(v), "%s is not a string", key);
  return v->valuestring;
}

/* Runs the suite body with --report and --junit, which must exit 0; the parsed report. */
static cJSON *run_with_receipt(const char *name, const char *body, char report[static 256], char junit[static 256]) {
  const char *script = scenario_script(&sc, name, body);
  snprintf(report, 256, "%s", path_in("report.json"));
  snprintf(junit, 256, "%s", path_in("junit.xml"));
  int rc = scenario_run(&sc, (const char *[]){"run", "--report", report, "--junit", junit, "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  return read_report(report);
}

/* The docker CLI that made it: its pid, its executable, its argv and its User-Agent. */
static void assert_docker_cli(const cJSON *res, const char *pid_marker) {
  const cJSON *c = cJSON_GetObjectItem(res, "creator");
  cr_assert_eq(cJSON_GetObjectItem(c, "pid")->valueint, atoi(marker(pid_marker)));
  const char *exe = str(c, "exe");
  cr_assert_str_eq(strrchr(exe, '/'), "/docker", "%s", exe);
  const cJSON *argv = cJSON_GetObjectItem(c, "argv");
  cr_assert_str_eq(cJSON_GetArrayItem(argv, 0)->valuestring, "docker");
  cr_assert_str_eq(cJSON_GetArrayItem(argv, 1)->valuestring, "create");
  cr_assert_eq(strncmp(str(c, "user_agent"), "Docker-Client/", 14), 0, "%s", str(c, "user_agent"));
  cr_assert_str_eq(str(res, "image"), "cleanup-test/busybox:latest");
}

Test(run_receipt, names_each_creator_and_how_each_resource_and_process_ended) {
  char report[256], junit[256];
  cJSON *j = run_with_receipt("leaky.sh", leaky_suite, report, junit);
  char a[80], b[80];
  snprintf(a, sizeof(a), "%s", marker("a"));
  snprintf(b, sizeof(b), "%s", marker("b"));
  const cJSON *ra = resource(j, a), *rb = resource(j, b);
  cr_assert_str_eq(str(ra, "outcome"), "removed_by_creator");
  cr_assert_str_eq(str(rb, "outcome"), "removed_at_end");
  assert_docker_cli(ra, "pid_a");
  assert_docker_cli(rb, "pid_b");
  const cJSON *procs = cJSON_GetObjectItem(j, "processes");
  cr_assert_eq(cJSON_GetArraySize(procs), 1, "%s", scenario_read_text(report));
  const cJSON *p = cJSON_GetArrayItem(procs, 0);
  cr_assert_eq(cJSON_GetObjectItem(p, "pid")->valueint, atoi(marker("sleep")));
  cr_assert_str_eq(str(p, "exe"), "/usr/bin/sleep");
  cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(p, "argv"), 1)->valuestring, "1000");
  const char *how = str(p, "killed_by");
  cr_assert(streq(how, "cgroup.kill") || streq(how, "SIGKILL"), "%s", how);
  cr_assert_eq(cJSON_GetObjectItem(j, "containers_removed")->valueint, 1, "the existing fields stay");
  cJSON_Delete(j);
  /* The JUnit file parses and has a testcase per leak: the container left and the sleep. */
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "python3 -c 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); "
           "sys.exit(0 if len(d.getElementsByTagName(\"testcase\")) == 2 and "
           "len(d.getElementsByTagName(\"failure\")) == 2 else 1)' %s",
           junit);
  cr_assert_eq(system(cmd), 0, "%s", scenario_read_text(junit));
  cr_assert(strstr(scenario_read_text(junit), "(sleep 1000): process"), "%s", scenario_read_text(junit));
  cr_assert(strstr(scenario_stderr(&sc), "left a container"), "the summary names the worst offender: %s",
            scenario_stderr(&sc));
}

Test(run_receipt, on_leak_fail_exits_43_when_something_was_left) {
  const char *script = scenario_script(&sc, "leaky.sh", leaky_suite);
  int rc = scenario_run(&sc, (const char *[]){"run", "--on-leak=fail", "--", script, NULL});
  cr_assert_eq(rc, 43, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert(strstr(scenario_stderr(&sc), "--on-leak=fail"), "%s", scenario_stderr(&sc));
  scenario_assert_nothing_left(&sc, marker("session"));
}

Test(run_receipt, on_leak_fail_exits_0_when_nothing_was_left) {
  const char *script = scenario_script(&sc, "tidy.sh", tidy_suite);
  char junit[256];
  snprintf(junit, sizeof(junit), "%s", path_in("junit.xml"));
  int rc = scenario_run(&sc, (const char *[]){"run", "--on-leak", "fail", "--junit", junit, "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  const char *xml = scenario_read_text(junit);
  cr_assert(strstr(xml, "tests=\"0\" failures=\"0\""), "%s", xml);
  cr_assert_null(strstr(xml, "<testcase"), "%s", xml);
}

Test(run_receipt, a_testcontainers_session_and_a_compose_project_are_named) {
  char report[256], junit[256];
  cJSON *j = run_with_receipt("tc.sh", tc_suite, report, junit);
  const cJSON *res = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "resources"), 0);
  cr_assert_not_null(res, "%s", scenario_read_text(report));
  const cJSON *c = cJSON_GetObjectItem(res, "creator");
  cr_assert_str_eq(str(c, "testcontainers_session"), "tc-42");
  cr_assert_str_eq(str(c, "compose_project"), "e2e");
  cr_assert_eq(strncmp(str(c, "user_agent"), "curl/", 5), 0);
  cr_assert_str_eq(strrchr(str(c, "exe"), '/'), "/curl");
  char name[80];
  snprintf(name, sizeof(name), "db-%s", marker("session"));
  cr_assert_str_eq(str(res, "name"), name);
  cr_assert_str_eq(str(res, "outcome"), "removed_at_end");
  cJSON_Delete(j);
  char want[160];
  snprintf(want, sizeof(want), "name=\"compose project e2e: container %s\"", name);
  cr_assert(strstr(scenario_read_text(junit), want), "%s", scenario_read_text(junit));
  cr_assert(strstr(scenario_stderr(&sc), "compose project e2e left a container"), "%s", scenario_stderr(&sc));
}
