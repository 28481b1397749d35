/* run's Docker labeling proxy against the real engine, through the real docker CLI and docker-compose: a suite that
 * labels nothing leaves nothing, however the run ends. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_run.h"
#include "scenario.h"
#include "session.h"

static struct scenario sc;

static void setup(void) {
  scenario_setup(&sc);
}
static void teardown(void) {
  scenario_teardown(&sc);
}

TestSuite(run_proxy, .init = setup, .fini = teardown, .timeout = 180);

/* The contents of <dir>/<name> without the trailing newline (static buffer). */
static const char *out_file(const char *name) {
  static char path[256], text[8192];
  snprintf(path, sizeof(path), "%s/%s", sc.dir, name);
  snprintf(text, sizeof(text), "%s", scenario_read_text(path));
  size_t n = strlen(text);
  while (n && text[n - 1] == '\n')
    text[--n] = '\0';
  return text;
}

/* What a plain suite does with the docker CLI, with no session label anywhere ($TEST_LABEL only lets the teardown
 * find what a failed test left). Each step's result goes to a file under $OUT. */
static const char plain_suite[] =
    "T=\"--label $TEST_LABEL\"\n"
    "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
    "echo $DOCKER_HOST > $OUT/docker_host\n"
    "stat -c %a ${DOCKER_HOST#unix://} > $OUT/socket_mode\n"
    "c=$(docker run -d --network none $T cleanup-test/busybox:latest sleep 1000) || exit 90\n"
    "docker exec $c sh -c 'echo exec-ok' > $OUT/exec || exit 91\n"
    "l=$(docker run -d --network none $T cleanup-test/busybox:latest sh -c 'echo one; sleep 0.5; echo two') || exit "
    "92\n"
    "docker logs -f $l > $OUT/logs 2>&1 || exit 93\n"
    "echo through-stdin | docker run -i --rm --network none $T cleanup-test/busybox:latest cat > $OUT/stdin || exit "
    "94\n"
    "docker network create --internal $T net-$CLEANUP_AGENT_SESSION >/dev/null || exit 95\n"
    "docker volume create $T vol-$CLEANUP_AGENT_SESSION >/dev/null || exit 96\n"
    "docker volume create $T --label io.cleanup-agent.keep=true keep-$CLEANUP_AGENT_SESSION >/dev/null || exit 97\n"
    "F='{{index .Config.Labels \"io.cleanup-agent.session\"}}'\n"
    "docker inspect -f \"$F\" $c $l > $OUT/container_labels || exit 98\n"
    "docker network inspect -f '{{index .Labels \"io.cleanup-agent.session\"}}' net-$CLEANUP_AGENT_SESSION "
    "> $OUT/network_label || exit 99\n"
    "docker volume inspect -f '{{index .Labels \"io.cleanup-agent.session\"}}' vol-$CLEANUP_AGENT_SESSION "
    "> $OUT/volume_label || exit 100\n";

Test(run_proxy, plain_docker_cli_suite_is_labeled_and_leaves_nothing) {
  const char *script = scenario_script(&sc, "plain.sh", plain_suite);
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  char want[256];
  snprintf(want, sizeof(want), "unix://%s/sessions/%s.sock", sc.state, id);
  cr_assert_str_eq(out_file("docker_host"), want);
  cr_assert_str_eq(out_file("socket_mode"), "600");
  cr_assert_str_eq(out_file("exec"), "exec-ok");
  cr_assert_str_eq(out_file("logs"), "one\ntwo", "docker logs -f must stream and end with the container");
  cr_assert_str_eq(out_file("stdin"), "through-stdin");
  snprintf(want, sizeof(want), "%s\n%s", id, id);
  cr_assert_str_eq(out_file("container_labels"), want);
  cr_assert_str_eq(out_file("network_label"), id);
  cr_assert_str_eq(out_file("volume_label"), id);
  /* keep=true passed through: the volume outlives the session, as its user asked. */
  char keep[160];
  snprintf(keep, sizeof(keep), "keep-%s", id);
  cr_assert_eq(scenario_count_docker(&sc, DK_VOLUME, id), 1, "the keep=true volume should stay");
  cr_assert_eq(dk_remove(sc.dk, DK_VOLUME, keep, NULL), 0);
  scenario_assert_nothing_left(&sc, id);
  cr_assert_not_null(strstr(scenario_stderr(&sc), "removed 2 containers, 1 network, 1 volume"), "%s",
                     scenario_stderr(&sc));
}

Test(run_proxy, foreign_session_label_is_refused_with_a_reason) {
  const char *script = scenario_script(
      &sc, "foreign.sh",
      "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
      "docker run -d --network none --label $TEST_LABEL "
      "--label io.cleanup-agent.session=fedcba9876543210fedcba9876543210 cleanup-test/busybox:latest sleep 1000 "
      "2> $OUT/refused && exit 90\n"
      "docker network create --label io.cleanup-agent.session=x --label $TEST_LABEL n-$$ 2>> $OUT/refused && exit 91\n"
      "exit 0\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  const char *refused = out_file("refused");
  cr_assert_not_null(strstr(refused, "Error response from daemon: cleanup-agent: label io.cleanup-agent.session="
                                     "fedcba9876543210fedcba9876543210 names another session"),
                     "%s", refused);
  cr_assert_not_null(strstr(refused, "io.cleanup-agent.session=x names another session"), "%s", refused);
  /* Nothing was created under the other session's name either. */
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, "fedcba9876543210fedcba9876543210"), 0);
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  scenario_assert_nothing_left(&sc, id);
}

Test(run_proxy, docker_compose_up_and_down_are_labeled) {
  /* The default network too: --bridge=none only drops docker0, user-defined bridge networks still work. */
  FILE *f;
  char path[256];
  snprintf(path, sizeof(path), "%s/docker-compose.yml", sc.dir);
  cr_assert_not_null(f = fopen(path, "w"));
  fprintf(f,
          "version: \"2.4\"\nservices:\n"
          "  web:\n    image: cleanup-test/busybox:latest\n    command: sleep 1000\n"
          "    volumes: [\"data:/data\"]\n    labels: [\"%s\"]\n"
          "volumes:\n  data:\n    labels: [\"%s\"]\n"
          "networks:\n  default:\n    labels: [\"%s\"]\n",
          sc.test_label, sc.test_label, sc.test_label);
  fclose(f);
  const char *script = scenario_script(
      &sc, "compose.sh",
      "cd $OUT || exit 90\n"
      "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
      "P=p$(echo $CLEANUP_AGENT_SESSION | cut -c1-12)\n"
      "docker-compose -p $P up -d > $OUT/compose 2>&1 || exit 91\n"
      "docker inspect -f '{{index .Config.Labels \"io.cleanup-agent.session\"}}' ${P}_web_1 > $OUT/label || exit 92\n"
      "docker volume inspect -f '{{index .Labels \"io.cleanup-agent.session\"}}' ${P}_data > $OUT/vlabel || exit 93\n"
      "docker network inspect -f '{{index .Labels \"io.cleanup-agent.session\"}}' ${P}_default > $OUT/nlabel || "
      "exit 95\n"
      "test \"$1\" = down || { sleep 1000; exit 0; }\n"
      "docker-compose -p $P down -v >> $OUT/compose 2>&1 || exit 94\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, "down", NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s\n%s", rc, scenario_stderr(&sc), out_file("compose"));
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  cr_assert_str_eq(out_file("label"), id);
  cr_assert_str_eq(out_file("vlabel"), id);
  cr_assert_str_eq(out_file("nlabel"), id);
  scenario_assert_nothing_left(&sc, id);

  /* Without the down, the agent removes what compose left. */
  rc = scenario_run(&sc, (const char *[]){"run", "--timeout", "15s", "--grace", "1s", "--", script, NULL});
  cr_assert_eq(rc, 124, "run exited %d: %s\n%s", rc, scenario_stderr(&sc), out_file("compose"));
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  cr_assert_str_eq(out_file("label"), id);
  scenario_assert_nothing_left(&sc, id);
  cr_assert_not_null(strstr(scenario_stderr(&sc), "removed 1 container, 1 network, 1 volume"), "%s",
                     scenario_stderr(&sc));
}

Test(run_proxy, sigkill_of_the_agent_the_guardian_removes_what_the_proxy_labeled) {
  const char *script = scenario_script(&sc, "forever.sh",
                                       "T=\"--label $TEST_LABEL\"\n"
                                       "docker run -d --network none $T cleanup-test/busybox:latest sleep 1000 "
                                       ">/dev/null || exit 90\n"
                                       "docker network create --internal $T n-$CLEANUP_AGENT_SESSION >/dev/null || "
                                       "exit 91\n"
                                       "docker volume create $T >/dev/null || exit 92\n"
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/session.tmp && mv $OUT/session.tmp "
                                       "$OUT/session\n"
                                       "docker events > /dev/null 2>&1 &\n"
                                       "sleep 1000\n");
  pid_t pid = scenario_start(&sc, (const char *[]){"run", "--", script, NULL});
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 60000, id), "the suite never got going: %s", scenario_stderr(&sc));
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 1);
  cr_assert_eq(scenario_count_docker(&sc, DK_NETWORK, id), 1);
  cr_assert_eq(scenario_count_docker(&sc, DK_VOLUME, id), 1);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  cr_assert_eq(scenario_wait(pid), 128 + SIGKILL);
  cr_assert(scenario_wait_nothing_left(&sc, id, 5000), "the guardian did not clean session %s (socket included)", id);
}

Test(run_proxy, only_the_owner_can_connect) {
  /* The state dir is open to all here, so that only the socket's own mode stands between nobody and the engine. */
  const char *script = scenario_script(&sc, "nobody.sh",
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
                                       "docker version -f '{{.Server.Version}}' > $OUT/root 2>&1 || exit 90\n"
                                       "d=$(dirname ${DOCKER_HOST#unix://})\n"
                                       "chmod 0755 $d $d/.. $d/../.. || exit 91\n"
                                       "HOME=/tmp setpriv --reuid=65534 --regid=65534 --clear-groups "
                                       "docker version -f '{{.Server.Version}}' > $OUT/nobody 2>&1 && exit 92\n"
                                       "exit 0\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s\n%s", rc, scenario_stderr(&sc), out_file("nobody"));
  cr_assert_neq(strlen(out_file("root")), 0);
  cr_assert_not_null(strstr(out_file("nobody"), "permission denied"), "%s", out_file("nobody"));
}

Test(run_proxy, no_docker_proxy_gives_the_engine_itself) {
  const char *script = scenario_script(&sc, "direct.sh",
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
                                       "echo $DOCKER_HOST > $OUT/docker_host\n");
  const char *host = getenv("DOCKER_HOST");
  int rc = scenario_run(&sc, (const char *[]){"run", "--no-docker-proxy", "--", script, NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert_str_eq(out_file("docker_host"), host ? host : "unix:///var/run/docker.sock");
  cr_assert_eq(setenv("CLEANUP_AGENT_NO_DOCKER_PROXY", "1", 1), 0);
  rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  unsetenv("CLEANUP_AGENT_NO_DOCKER_PROXY");
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert_str_eq(out_file("docker_host"), host ? host : "unix:///var/run/docker.sock");
}

/* container-seq --docker-proxy: a test container that starts containers (the docker CLI mounted in) talks to the
 * session's socket as /var/run/docker.sock; what it creates is labeled and removed with the session. */
Test(run_proxy, container_seq_docker_proxy_labels_what_tests_create) {
  char mount_out[160];
  snprintf(mount_out, sizeof(mount_out), "%s:/out", sc.dir);
  scenario_script(&sc, "t1.sh",
                  "docker run -d --network none --label $TEST_LABEL cleanup-test/busybox:latest sleep 1000 "
                  "> /out/cid || exit 90\n"
                  "docker inspect -f '{{index .Config.Labels \"io.cleanup-agent.session\"}}' $(cat /out/cid) "
                  "> /out/label || exit 91\n"
                  "echo $CLEANUP_AGENT_SESSION > /out/session\n");
  char env_label[128];
  snprintf(env_label, sizeof(env_label), "TEST_LABEL=%s", sc.test_label);
  int rc = scenario_run(&sc, (const char *[]){"container-seq",
                                              "--image",
                                              "cleanup-test/busybox:latest",
                                              "--mount",
                                              mount_out,
                                              "--mount",
                                              "/usr/bin/docker:/usr/bin/docker:ro",
                                              "--mount",
                                              "/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro",
                                              "--mount",
                                              "/lib64:/lib64:ro",
                                              "--env",
                                              env_label,
                                              "--env",
                                              "HOME=/tmp",
                                              "--workdir",
                                              "/out",
                                              "--docker-proxy",
                                              "t1.sh",
                                              "--",
                                              "sh",
                                              NULL});
  cr_assert_eq(rc, 0, "container-seq exited %d: %s\n%s", rc, scenario_stderr(&sc), out_file("out"));
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  cr_assert(ca_session_id_valid(id), "%s", id);
  cr_assert_str_eq(out_file("label"), id);
  scenario_assert_nothing_left(&sc, id);
}

Test(run_proxy, many_concurrent_clients_are_served) {
  const char *script = scenario_script(&sc, "many.sh",
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
                                       "i=0; while [ $i -lt 40 ]; do\n"
                                       "  (docker ps -q > /dev/null && echo ok >> $OUT/ok) &\n"
                                       "  i=$((i+1))\n"
                                       "done\n"
                                       "wait\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_eq(cli_count_lines(out_file("ok")) + 1, 40, "not every concurrent docker ps succeeded: %s",
               scenario_stderr(&sc));
}
