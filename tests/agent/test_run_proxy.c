/* run's Docker labeling proxy against the real engine, through the real docker CLI and docker-compose: a suite that
 * labels nothing leaves nothing, however the run ends. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

TestSuite(run_proxy, .init = setup, .fini = teardown, .timeout = 180 * AG_TIMEOUT_SCALE);

static const char *out_file(const char *name) {
  return scenario_out(&sc, name);
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
  /* An engine socket that others may use (root:docker 0660) gives the session's the same mode, in a dir they can
   * reach; else it is the agent's user's alone, in the state dir. */
  const char *h = getenv("DOCKER_HOST");
  struct stat es;
  cr_assert_eq(stat(h && strncmp(h, "unix://", 7) == 0 ? h + 7 : "/var/run/docker.sock", &es), 0);
  char mode[16] = "600";
  if (es.st_uid != geteuid() || (es.st_mode & 0066)) {
    snprintf(want, sizeof(want), "unix:///run/cleanup-agent.sockets/%s.sock", id);
    snprintf(mode, sizeof(mode), "%o", (unsigned)(es.st_mode & 0777));
  } else {
    snprintf(want, sizeof(want), "unix://%s/sessions/%s.sock", sc.state, id);
  }
  cr_assert_str_eq(out_file("docker_host"), want);
  cr_assert_str_eq(out_file("socket_mode"), mode);
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
      /* a classic build (BuildKit's labels go over /grpc) refused by its head while the CLI streams its context */
      "mkdir $OUT/ctx && head -c 20000000 /dev/zero > $OUT/ctx/big && echo 'FROM scratch' > $OUT/ctx/Dockerfile\n"
      "for i in 1 2 3; do\n"
      "  DOCKER_BUILDKIT=0 docker build --label io.cleanup-agent.mode=x $OUT/ctx 2>> $OUT/build && exit 92\n"
      "done\n"
      "exit 0\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  const char *refused = out_file("refused");
  cr_assert_not_null(strstr(refused, "Error response from daemon: cleanup-agent: label io.cleanup-agent.session="
                                     "fedcba9876543210fedcba9876543210 names another session"),
                     "%s", refused);
  cr_assert_not_null(strstr(refused, "io.cleanup-agent.session=x names another session"), "%s", refused);
  const char *build = out_file("build");
  size_t told = 0;
  for (const char *b = build; (b = strstr(b, "label io.cleanup-agent.mode=x is in the io.cleanup-agent. namespace"));
       b++)
    told++;
  cr_assert_eq(told, 3, "each of the 3 builds says why it was refused: %s", build);
  /* Nothing was created under the other session's name either. */
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, "fedcba9876543210fedcba9876543210"), 0);
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  scenario_assert_nothing_left(&sc, id);
}

/* A swarm service or secret would outlive the session, which cannot remove it: the client is told so and how else. */
Test(run_proxy, a_swarm_service_is_refused_with_the_way_out) {
  const char *script = scenario_script(
      &sc, "swarm.sh",
      "docker service create --no-resolve-image --detach --name svc-$$ cleanup-test/busybox:latest sleep 1000 "
      "2> $OUT/refused && { docker service rm svc-$$; exit 90; }\n"
      "echo s | docker secret create sec-$$ - 2>> $OUT/refused && { docker secret rm sec-$$; exit 91; }\n"
      "exit 0\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  const char *refused = out_file("refused");
  static const char *const whats[] = {"a swarm service", "a swarm secret"};
  for (size_t i = 0; i < ELEMENTSOF(whats); i++) {
    char line[256];
    snprintf(line, sizeof(line),
             "Error response from daemon: cleanup-agent: the session's Docker proxy refuses to make %s: it would "
             "outlive the run",
             whats[i]);
    cr_assert_not_null(strstr(refused, line), "no \"%s\" in: %s", line, refused);
  }
  cr_assert_not_null(strstr(refused, "--no-docker-proxy"), "%s", refused);
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
      "export COMPOSE_HTTP_TIMEOUT=$((60 * ${AG_TIMEOUT_SCALE:-1}))\n" /* compose's own limit, on a slow host */
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

  /* Without the down, the agent removes what compose left. The timeout must outlast compose's up: scaled on a
   * slow host (under TCG the up alone took longer than 15 s). */
  char timeout[32];
  snprintf(timeout, sizeof(timeout), "%ds", 15 * AG_TIMEOUT_SCALE);
  rc = scenario_run(&sc, (const char *[]){"run", "--timeout", timeout, "--grace", "1s", "--", script, NULL});
  cr_assert_eq(rc, 124, "run exited %d: %s\n%s", rc, scenario_stderr(&sc), out_file("compose"));
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  cr_assert_str_eq(out_file("label"), id, "%s", out_file("compose"));
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

/* Whoever may use the engine's socket may use the session's, and nobody else: a root run whose command drops to a
 * user of the engine socket's group (as su, runuser or a test container's user do) reaches the engine through the
 * proxy; a user outside it does not. */
Test(run_proxy, the_engine_sockets_users_and_only_they_can_connect) {
  /* A state dir is opened to all here, so that only the socket's own mode stands between nobody and the engine. */
  const char *script = scenario_script(&sc, "nobody.sh",
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
                                       "docker version -f '{{.Server.Version}}' > $OUT/root 2>&1 || exit 90\n"
                                       "S=${DOCKER_HOST#unix://}\n"
                                       "d=$(dirname $S)\n"
                                       "case $d in $OUT/*) chmod 0755 $d $d/.. $d/../.. || exit 91;; esac\n"
                                       "stat -L -c '%u %g %a' /var/run/docker.sock > $OUT/engine_mode\n"
                                       "stat -c '%u %g %a' $S > $OUT/session_mode\n"
                                       "G=$(stat -L -c %g /var/run/docker.sock)\n"
                                       "HOME=/tmp setpriv --reuid=65534 --regid=65534 --groups=$G "
                                       "docker version -f '{{.Server.Version}}' > $OUT/member 2>&1 || exit 93\n"
                                       "HOME=/tmp setpriv --reuid=65534 --regid=65534 --clear-groups "
                                       "docker version -f '{{.Server.Version}}' > $OUT/nobody 2>&1 && exit 92\n"
                                       "exit 0\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s\n%s", rc, scenario_stderr(&sc), out_file("member"));
  cr_assert_neq(strlen(out_file("root")), 0);
  cr_assert_neq(strlen(out_file("member")), 0);
  char engine[64];
  snprintf(engine, sizeof(engine), "%s", out_file("engine_mode"));
  cr_assert_str_eq(out_file("session_mode"), engine);
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

/* ---- the proxy in-process in front of the real engine, spoken to in plain HTTP on one connection, as docker-py's
 * pooled connections do ---- */

#include <http_parser.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "proxy.h"

struct answer {
  int status;
  bool done;
  ca_buf body;
};

static int on_answer_body(http_parser *p, const char *at, size_t len) {
  return ca_buf_append(&((struct answer *)p->data)->body, at, len, NULL) < 0;
}

static int on_answer_done(http_parser *p) {
  struct answer *a = p->data;
  a->done = true;
  a->status = p->status_code;
  return 0;
}

static int unix_connect(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s", path, strerror(errno));
  return fd;
}

/* Sends one request on fd and reads its whole answer: the status, the body in ret_body (static buffer, valid until the
 * next call). -1 when the connection closed first. */
static int call(int fd, const char *method, const char *target, const char *body, const char **ret_body) {
  static ca_buf text = CA_BUF_INIT(16 * 1024 * 1024);
  ca_buf_reset(&text);
  cr_assert_eq(ca_buf_appendf(&text, NULL,
                              "%s %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                              "Content-Length: %zu\r\n\r\n%s",
                              method, target, body ? strlen(body) : 0, body ? body : ""),
               0);
  if (ca_write_all(fd, text.data, text.len) < 0)
    return -1;
  static struct answer a = {.body = CA_BUF_INIT(16 * 1024 * 1024)};
  ca_buf_reset(&a.body);
  a.done = false;
  http_parser p;
  http_parser_init(&p, HTTP_RESPONSE);
  p.data = &a;
  http_parser_settings s = {.on_body = on_answer_body, .on_message_complete = on_answer_done};
  char buf[65536];
  while (!a.done) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0)
      return -1;
    http_parser_execute(&p, &s, buf, (size_t)n);
    cr_assert_eq(HTTP_PARSER_ERRNO(&p), HPE_OK, "answer to %s %s is not HTTP", method, target);
  }
  *ret_body = ca_buf_str(&a.body);
  return a.status;
}

/* The value of field name in a JSON object's text, as it is written there (static buffer). */
static const char *json_field(const char *json, const char *name, char *ret, size_t size) {
  char key[128];
  snprintf(key, sizeof(key), "\"%s\":", name);
  const char *v = strstr(json, key);
  cr_assert_not_null(v, "no %s in %s", name, json);
  v += strlen(key);
  size_t n = strcspn(v, ",}");
  cr_assert_lt(n, size);
  memcpy(ret, v, n);
  ret[n] = '\0';
  return ret;
}

struct live_proxy {
  struct ag_proxy *px;
  char socket[128], session[33];
  const char *engine;
};

static void live_proxy_start(struct live_proxy *lp) {
  const char *labels_v[3];
  char session_label[128];
  snprintf(lp->session, sizeof(lp->session), "%016llx%016llx", (unsigned long long)time(NULL) ^ 0x5eed,
           (unsigned long long)getpid() * 2654435761ULL);
  snprintf(session_label, sizeof(session_label), "%s=%s", AG_LABEL_SESSION, lp->session);
  labels_v[0] = session_label;
  labels_v[1] = AG_LABEL_MANAGED "=true";
  labels_v[2] = NULL;
  snprintf(lp->socket, sizeof(lp->socket), "%s/p.sock", sc.dir);
  lp->engine = ag_proxy_engine_socket(getenv("DOCKER_HOST"));
  cr_assert_not_null(lp->engine);
  struct ag_proxy_config cfg = {
      .socket_path = lp->socket, .engine_socket = lp->engine, .session_id = lp->session, .labels = labels_v};
  ca_error *err = NULL;
  cr_assert_eq(ag_proxy_start(&cfg, &lp->px, &err), 0, "%s", err ? err->msg : "");
}

/* A create body for busybox with the test label and extra members (text after a comma, or ""). */
static const char *create_body(const char *extra) {
  static char body[1024];
  const char *eq = strchr(sc.test_label, '=');
  snprintf(body, sizeof(body),
           "{\"Image\":\"cleanup-test/busybox:latest\",\"Cmd\":[\"sleep\",\"1000\"],\"Labels\":{\"%.*s\":\"%s\"}%s%s}",
           (int)(eq - sc.test_label), sc.test_label, eq + 1, *extra ? "," : "", extra);
  return body;
}

static void remove_container(int fd, const char *id) {
  char target[256];
  const char *body;
  snprintf(target, sizeof(target), "/v1.41/containers/%s?force=1", id);
  cr_assert_eq(call(fd, "DELETE", target, NULL, &body), 204, "%s", body);
}

/* POSTs body to target, expects 201 and holds the answer's Id in ret_id (size 80). */
static void create_for_id(int fd, const char *target, const char *body, char *ret_id) {
  const char *answer;
  char value[128];
  cr_assert_eq(call(fd, "POST", target, body, &answer), 201, "%s: %s", target, answer);
  snprintf(ret_id, 80, "%s", json_field(answer, "Id", value, sizeof(value)) + 1);
  ret_id[strlen(ret_id) - 1] = '\0';
}

/* docker-py's exec_start(detach=True) on a pooled connection, then a create on the same connection: labeled. */
Test(run_proxy, exec_start_detached_then_create_on_one_connection_is_labeled) {
  struct live_proxy lp;
  live_proxy_start(&lp);
  int fd = unix_connect(lp.socket);
  const char *body;
  char id[80], id2[80], exec_id[80], target[256], value[128];
  const char *create = create_body("\"HostConfig\":{\"NetworkMode\":\"none\"}");
  create_for_id(fd, "/v1.41/containers/create", create, id);
  snprintf(target, sizeof(target), "/v1.41/containers/%s/start", id);
  cr_assert_eq(call(fd, "POST", target, NULL, &body), 204, "%s", body);
  snprintf(target, sizeof(target), "/v1.41/containers/%s/exec", id);
  create_for_id(fd, target, "{\"Cmd\":[\"true\"]}", exec_id);
  snprintf(target, sizeof(target), "/v1.41/exec/%s/start", exec_id);
  cr_assert_eq(call(fd, "POST", target, "{\"Detach\":true,\"Tty\":false}", &body), 200, "%s", body);

  create_for_id(fd, "/v1.41/containers/create", create, id2);
  snprintf(target, sizeof(target), "/v1.41/containers/%s/json", id2);
  cr_assert_eq(call(fd, "GET", target, NULL, &body), 200, "%s", body);
  char want[128];
  snprintf(want, sizeof(want), "\"%s\"", lp.session);
  cr_assert_str_eq(json_field(body, AG_LABEL_SESSION, value, sizeof(value)), want,
                   "the create after a detached exec start on the same connection must carry the session label");
  remove_container(fd, id2);
  remove_container(fd, id);
  close(fd);
  ag_proxy_stop(lp.px, 100000);
}

/* Change nothing else: numbers cJSON cannot hold reach the engine as written; where the engine refuses one, its own
 * answer comes back, the same as without the proxy. Labels of the agent's namespace are refused with a reason. */
Test(run_proxy, numbers_reach_the_engine_as_written) {
  struct live_proxy lp;
  live_proxy_start(&lp);
  static const char *const values[] = {"9007199254740993", "9223372036854775807", "1e400"};
  for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    char extra[256], direct_answer[4096], direct_value[128], value[128], target[256], id[80];
    snprintf(extra, sizeof(extra), "\"HostConfig\":{\"NetworkMode\":\"none\",\"PidsLimit\":%s}", values[i]);
    int fds[2] = {unix_connect(lp.engine), unix_connect(lp.socket)};
    int status[2];
    for (int via = 0; via < 2; via++) {
      const char *body;
      status[via] = call(fds[via], "POST", "/v1.41/containers/create", create_body(extra), &body);
      if (status[via] != 201) {
        if (via == 0)
          snprintf(direct_answer, sizeof(direct_answer), "%s", body);
        else {
          cr_assert_neq(status[0], 201, "%s: the engine took it directly, through the proxy it answered %d: %s",
                        values[i], status[1], body);
          cr_assert_str_eq(body, direct_answer, "%s: the engine's refusal must come back unchanged", values[i]);
        }
        continue;
      }
      snprintf(id, sizeof(id), "%s", json_field(body, "Id", value, sizeof(value)) + 1);
      id[strlen(id) - 1] = '\0';
      snprintf(target, sizeof(target), "/v1.41/containers/%s/json", id);
      cr_assert_eq(call(fds[via], "GET", target, NULL, &body), 200);
      json_field(body, "PidsLimit", via == 0 ? direct_value : value, sizeof(value));
      if (via == 1) {
        cr_assert_str_eq(value, direct_value, "PidsLimit %s changed on the way through the proxy", values[i]);
        cr_assert_not_null(strstr(body, lp.session), "not labeled");
      }
      remove_container(fds[via], id);
    }
    cr_assert_eq(status[1], status[0], "%s: the engine answered %d directly, %d through the proxy", values[i],
                 status[0], status[1]);
    close(fds[0]);
    close(fds[1]);
  }
  /* A label of the agent's namespace: a 400 that says why, and the connection closes. */
  signal(SIGPIPE, SIG_IGN); /* the next write may find the connection closed */
  int fd = unix_connect(lp.socket);
  const char *body;
  cr_assert_eq(call(fd, "POST", "/v1.41/volumes/create", "{\"Labels\":{\"" AG_LABEL_EXPIRES "\":\"1\"}}", &body), 400);
  cr_assert_not_null(strstr(body, "namespace"), "%s", body);
  cr_assert_eq(call(fd, "GET", "/_ping", NULL, &body), -1, "the connection must close after the proxy's answer");
  close(fd);
  ag_proxy_stop(lp.px, 100000);
}

/* Pipelined requests through the real engine: the proxy's own 400 comes after the engine's answer to the request
 * sent before it, whole, and then the connection closes. */
Test(run_proxy, own_answer_to_a_pipelined_request_comes_after_the_engines) {
  struct live_proxy lp;
  live_proxy_start(&lp);
  int fd = unix_connect(lp.socket);
  const char *two = "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
                    "POST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 9\r\n\r\n{not json";
  cr_assert_eq(ca_write_all(fd, two, strlen(two)), 0);
  char all[8192];
  size_t got = 0;
  for (ssize_t n = 1; n > 0 && got < sizeof(all) - 1; got += (size_t)n)
    n = read(fd, all + got, sizeof(all) - 1 - got);
  all[got] = '\0';
  cr_assert(strncmp(all, "HTTP/1.1 200 OK\r\n", 17) == 0, "the engine's answer to the ping first: %s", all);
  const char *own = strstr(all, "HTTP/1.1 400 ");
  cr_assert_not_null(own, "%s", all);
  cr_assert(own > all && strncmp(own - 2, "OK", 2) == 0, "the 400 right after the ping's whole answer: %s", all);
  cr_assert_not_null(strstr(own, "{\"message\":\"cleanup-agent: the create request's body is not a JSON object"), "%s",
                     own);
  close(fd);
  ag_proxy_stop(lp.px, 100000);
}

/* Reads what comes on fd until it closes (at most size - 1 bytes, NUL-terminated); false when it was cut by a reset
 * or nothing came for 10 s. */
static bool read_to_end(int fd, char *all, size_t size) {
  size_t got = 0;
  ssize_t n = 1;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  while (n > 0 && got < size - 1 && poll(&p, 1, 10000) == 1) {
    n = read(fd, all + got, size - 1 - got);
    got += n > 0 ? (size_t)n : 0;
  }
  all[got] = '\0';
  return n == 0;
}

/* A request the proxy refuses by its head while the client still sends its body (docker build streaming its context,
 * a create too large to read): the client sends the body whole and then reads the proxy's reason, as it would the
 * engine's, never a broken pipe. Also when the refusal waits for the engine's answer to a request before it. */
Test(run_proxy, a_request_refused_by_its_head_is_answered_after_its_whole_body) {
  static const struct {
    const char *before, *head, *says;
  } cases[] = {
      {"", "POST /v1.41/build?t=refused&labels=%7B%22io.cleanup-agent.mode%22%3A%22x%22%7D HTTP/1.1\r\n",
       "HTTP/1.1 400 Bad Request\r\n"},
      {"", "POST /v1.41/containers/create HTTP/1.1\r\n", "HTTP/1.1 413 Request Entity Too Large\r\n"},
      {"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n",
       "POST /v1.41/build?labels=%7B%22io.cleanup-agent.mode%22%3A%22x%22%7D HTTP/1.1\r\n",
       "HTTP/1.1 400 Bad Request\r\n"},
  };
  const size_t body_len = 16 * 1024 * 1024;
  _cleanup_free_ char *body = calloc(1, body_len);
  cr_assert_not_null(body);
  signal(SIGPIPE, SIG_IGN);
  struct live_proxy lp;
  live_proxy_start(&lp);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char head[1024], all[8192];
    snprintf(head, sizeof(head), "%s%sHost: d\r\nContent-Type: application/x-tar\r\nContent-Length: %zu\r\n\r\n",
             cases[i].before, cases[i].head, body_len);
    int fd = unix_connect(lp.socket);
    cr_assert_eq(ca_write_all(fd, head, strlen(head)), 0);
    int k = ca_write_all(fd, body, body_len);
    cr_assert_eq(k, 0, "case %zu: the client could not send its body after the proxy refused the request: %s", i,
                 strerror(-k));
    cr_assert(read_to_end(fd, all, sizeof(all)), "case %zu: the connection was reset or stayed open: %s", i, all);
    const char *own = strstr(all, cases[i].says);
    cr_assert_not_null(own, "case %zu: %s", i, all);
    cr_assert_not_null(strstr(own, "{\"message\":\"cleanup-agent: "), "case %zu: %s", i, all);
    cr_assert(*cases[i].before == '\0' || strncmp(all, "HTTP/1.1 200 OK\r\n", 17) == 0,
              "case %zu: the engine's answer to the ping comes first: %s", i, all);
    close(fd);
  }
  ag_proxy_stop(lp.px, 100000);
}

/* Named volumes a container create implies (issue 21): `docker run -v name:/x` and `--mount type=volume` create them
 * with the session's labels, so the session's end removes them; a volume that existed already is not the session's
 * and stays as it was. */
Test(run_proxy, volumes_that_a_run_implies_are_labeled_and_removed) {
  char pre[96];
  snprintf(pre, sizeof(pre), "pre-%d-%ld", (int)getpid(), (long)time(NULL));
  char *made = NULL;
  cr_assert_eq(dk_volume_create(sc.dk, pre, (const char *[]){sc.test_label, NULL}, &made, NULL), 0);
  free(made);
  const char *script =
      scenario_script(&sc, "volumes.sh",
                      "T=\"--label $TEST_LABEL\"\n"
                      "S=$CLEANUP_AGENT_SESSION\n"
                      "echo $S > $OUT/session\n"
                      "R=\"docker run --rm --network none $T\"\n"
                      "$R -v b-$S:/x cleanup-test/busybox:latest true || exit 90\n"
                      "$R --mount type=volume,src=m-$S,dst=/x cleanup-test/busybox:latest true || exit 91\n"
                      "$R -v \"$1\":/x cleanup-test/busybox:latest true || exit 92\n"
                      "F='{{index .Labels \"io.cleanup-agent.session\"}}'\n"
                      "docker volume inspect -f \"$F\" b-$S m-$S \"$1\" > $OUT/vlabels || exit 93\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, pre, NULL});
  char id[128] = "", name[160];
  bool started = scenario_read_marker(&sc, "session", 0, id);
  /* Whatever the outcome, nothing may stay on the shared engine: remove by name what a failure left unlabeled. */
  int left_b = -1, left_m = -1;
  if (started) {
    snprintf(name, sizeof(name), "b-%s", id);
    left_b = dk_remove(sc.dk, DK_VOLUME, name, NULL);
    snprintf(name, sizeof(name), "m-%s", id);
    left_m = dk_remove(sc.dk, DK_VOLUME, name, NULL);
  }
  int pre_there = dk_remove(sc.dk, DK_VOLUME, pre, NULL);
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert(started);
  char want[300];
  snprintf(want, sizeof(want), "%s\n%s", id, id);
  cr_assert_str_eq(out_file("vlabels"), want, "-v and --mount volumes carry the session label, the existing one none");
  cr_assert_neq(left_b, 0, "the -v volume outlived the session");
  cr_assert_neq(left_m, 0, "the --mount volume outlived the session");
  cr_assert_eq(pre_there, 0, "the volume that existed before the session must stay");
  scenario_assert_nothing_left(&sc, id);
}

/* The session's end (issue 21): a client still connected gets a 503 that says the session is ending for a create,
 * instead of a container made while the end lists what to remove. */
Test(run_proxy, a_create_while_the_session_ends_gets_503) {
  const char *script = scenario_script(&sc, "ending.sh",
                                       "echo ${DOCKER_HOST#unix://} > $OUT/socket\n"
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/session.tmp && mv $OUT/session.tmp "
                                       "$OUT/session\n"
                                       "sleep 1\n");
  pid_t pid = scenario_start(&sc, (const char *[]){"run", "--", script, NULL});
  char id[128], socket_path[256];
  cr_assert(scenario_read_marker(&sc, "session", 60000, id), "the suite never got going: %s", scenario_stderr(&sc));
  snprintf(socket_path, sizeof(socket_path), "%s", out_file("socket"));
  int fd = unix_connect(socket_path);
  const char *body;
  cr_assert_eq(call(fd, "GET", "/_ping", NULL, &body), 200);
  /* The socket goes when the end begins; the connection held open keeps the proxy draining. */
  struct stat st;
  for (int i = 0; i < 1000 && stat(socket_path, &st) == 0; i++)
    usleep(10000);
  cr_assert_neq(stat(socket_path, &st), 0, "the session did not end");
  int status = call(fd, "POST", "/v1.41/containers/create", create_body(""), &body);
  close(fd);
  cr_assert_eq(scenario_wait(pid), 0, "%s", scenario_stderr(&sc));
  cr_assert_eq(status, 503, "a create during the end was answered %d: %s", status, body);
  cr_assert_not_null(strstr(body, "the session is ending"), "%s", body);
  scenario_assert_nothing_left(&sc, id);
}

/* Images the session builds (issue 21) carry built-by=<session>, and a classic build through the proxy gets forcerm:
 * a failed RUN leaves no step container (the engine creates those without any label). */
/* Runs a classic-build suite (steps after the session id went to $OUT/session and DOCKER_BUILDKIT=0) under run, then
 * removes what the run left of step containers whose command holds <marker>-<id>, or that carry built-by=<id> (a LABEL
 * step's: listed in $OUT/left first) and the images of the session (the end keeps images). The run's exit code; the
 * session id in id. */
static int run_build_suite(const char *name, const char *steps, const char *marker, char id[static 128]) {
  char text[4096], cmd[1536];
  snprintf(text, sizeof(text), "S=$CLEANUP_AGENT_SESSION\necho $S > $OUT/session\nexport DOCKER_BUILDKIT=0\n%s", steps);
  int rc = scenario_run(&sc, (const char *[]){"run", "--", scenario_script(&sc, name, text), NULL});
  id[0] = '\0';
  if (!scenario_read_marker(&sc, "session", 0, id))
    return rc;
  snprintf(
      cmd, sizeof(cmd),
      "{ docker ps -a --no-trunc --format '{{.ID}} {{.Command}}' | grep '%s-%s'; "
      "docker ps -a --no-trunc --filter label=io.cleanup-agent.built-by=%s --format '{{.ID}} {{.Command}}'; } > "
      "%s/left; "
      "cut -d' ' -f1 %s/left | xargs -r docker rm -f >/dev/null 2>&1; "
      "docker images -q --filter label=io.cleanup-agent.built-by=%s | xargs -r docker rmi -f >/dev/null 2>&1; true",
      marker, id, id, sc.dir, sc.dir, id);
  cr_assert_eq(system(cmd), 0);
  return rc;
}

Test(run_proxy, builds_are_labeled_and_a_failed_step_leaves_no_container) {
  char id[128];
  int rc = run_build_suite(
      "build.sh",
      "printf 'FROM cleanup-test/busybox:latest\\nRUN echo ok\\n' | "
      "docker build -q -t cleanup-test/built-$S --label $TEST_LABEL - > $OUT/build 2>&1 || exit 90\n"
      "docker image inspect -f '{{index .Config.Labels \"io.cleanup-agent.built-by\"}}"
      "{{index .Config.Labels \"io.cleanup-agent.session\"}}' cleanup-test/built-$S > $OUT/ilabel || exit 91\n"
      "printf 'FROM cleanup-test/busybox:latest\\nRUN echo step-x-%s && false\\n' $S | "
      "docker build --label $TEST_LABEL - > $OUT/failed 2>&1 && exit 92\n"
      "docker ps -a --no-trunc --format '{{.Command}}' | grep -c \"step-x-$S\" > $OUT/steps\n"
      "exit 0\n",
      "step-x", id);
  cr_assert_eq(rc, 0, "run exited %d: %s\n%s", rc, scenario_stderr(&sc), out_file("build"));
  cr_assert_str_eq(out_file("steps"), "0", "the failed step's container was left: %s", out_file("failed"));
  cr_assert_str_eq(out_file("ilabel"), id, "the built image carries built-by=<session>, and no session label");
  scenario_assert_nothing_left(&sc, id);
}

/* A client that goes away right after sending a create (issue 21): the engine makes the container anyway, and the
 * proxy still reads the answer for its id, which the session's end removes. */
Test(run_proxy, a_create_whose_client_went_away_is_recorded) {
  struct live_proxy lp;
  live_proxy_start(&lp);
  int fd = unix_connect(lp.socket);
  const char *body = create_body("");
  char req[2048];
  snprintf(req, sizeof(req),
           "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           strlen(body), body);
  cr_assert_eq(ca_write_all(fd, req, strlen(req)), 0);
  close(fd);
  /* The proxy took the connection and sent the create on (the ending refuses new ones); the engine's answer may
   * still be on its way. */
  usleep(200 * 1000);
  char **made = NULL;
  ag_proxy_stop_recorded(lp.px, 20 * 1000000ULL, &made);
  cr_assert_not_null(made, "nothing recorded");
  cr_assert(made[0] && strncmp(made[0], "c:", 2) == 0 && !made[1], "%s", made[0] ? made[0] : "(none)");
  cr_assert_eq(dk_remove(sc.dk, DK_CONTAINER, made[0] + 2, NULL), 0, "the recorded container %s", made[0] + 2);
  ca_strv_free(made);
}

/* What a suite creates, labeled by nothing but the proxy: its session label goes to $OUT/label. */
static const char labeled_suite[] =
    "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
    "echo $DOCKER_HOST > $OUT/docker_host\n"
    "c=$(docker run -d --network none --label $TEST_LABEL cleanup-test/busybox:latest sleep 1000) || exit 90\n"
    "docker inspect -f '{{index .Config.Labels \"io.cleanup-agent.session\"}}' $c > $OUT/label || exit 91\n";

/* True when dir has no entry but . and .. */
static bool dir_is_empty(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "%s", dir);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d)))
    n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
  closedir(d);
  return n == 0;
}

/* A CI workspace's state dir is deeper than a Unix socket path allows (108 bytes): the command still gets a socket of
 * the session, never the engine itself. */
Test(run_proxy, a_state_dir_of_150_characters_still_gets_the_proxy) {
  char state[256];
  snprintf(state, sizeof(state), "%s/%s", sc.dir,
           "ci-workspace-builds-0123456789abcdef-project-group-subgroup-repository-pipeline-4242-job-8484-"
           "xxxxxxxxxxxxxxxxxxxxxx");
  cr_assert_eq(mkdir(state, 0700), 0);
  strcat(state, "/state");
  cr_assert_geq(strlen(state), 150, "%zu", strlen(state));
  const char *script = scenario_script(&sc, "long.sh", labeled_suite);
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "%s --state-dir %s --cgroup-root %s run -- %s 2> %s/long.err", AG_BINARY, state,
           sc.cgroup_root, script, sc.dir);
  int rc = system(cmd);
  const char *err = out_file("long.err");
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, err);
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  char host[512];
  snprintf(host, sizeof(host), "%s", out_file("docker_host"));
  cr_assert_not_null(strstr(host, id), "the command got DOCKER_HOST=%s, not a socket of session %s: %s", host, id,
                     out_file("long.err"));
  cr_assert_str_eq(out_file("label"), id);
  cr_assert_null(strstr(out_file("long.err"), "warning"), "%s", out_file("long.err"));
  struct stat st;
  cr_assert_neq(stat(host + strlen("unix://"), &st), 0, "the session's socket %s outlived it", host);
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 0);
  strcat(state, "/sessions");
  cr_assert(dir_is_empty(state), "state files are left in %s", state);
}

/* A dind service still booting: nothing answers at the engine's socket when the run starts. The scenario's engine
 * becomes <dir>/late.sock, $LATE to the script, which links it to the shared engine's socket $ENGINE to bring the
 * engine up ("ln -s $ENGINE $LATE") and may remove it again ("rm $LATE"). */
static const char *shared_engine_socket(void) {
  const char *h = getenv("DOCKER_HOST");
  return h && strncmp(h, "unix://", 7) == 0 ? h + 7 : "/var/run/docker.sock";
}
static const char *late_engine_script(const char *name, const char *script_text) {
  snprintf(sc.docker_host, sizeof(sc.docker_host), "unix://%s/late.sock", sc.dir);
  char text[4096];
  snprintf(text, sizeof(text), "ENGINE=%s\nLATE=%s\n%s", shared_engine_socket(), sc.docker_host + strlen("unix://"),
           script_text);
  return scenario_script(&sc, name, text);
}

/* The proxy starts anyway and reaches the engine per request, so what the command creates once it is up is the
 * session's. */
Test(run_proxy, an_engine_that_appears_after_the_start_is_still_proxied) {
  char script_text[2048];
  snprintf(script_text, sizeof(script_text), "sleep 2\nln -s $ENGINE $LATE || exit 89\n%s", labeled_suite);
  const char *script = late_engine_script("late.sh", script_text);
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  cr_assert_str_neq(out_file("docker_host"), sc.docker_host, "the command got the engine itself: %s",
                    scenario_stderr(&sc));
  cr_assert_str_eq(out_file("label"), id);
  scenario_assert_nothing_left(&sc, id);
}

/* A container made through the proxy once the engine came up is the session's, whatever happens next: the session
 * records the engine the first time its proxy reaches it. Here the agent is killed: its guardian removes the container
 * (before, the registry named no engine, so the guardian forgot the session and left the container). */
Test(run_proxy, an_engine_that_appears_after_the_start_is_collected_by_the_guardian) {
  const char *script =
      late_engine_script("late_kill.sh", "ln -s $ENGINE $LATE || exit 89\n"
                                         "docker run -d --network none --label $TEST_LABEL "
                                         "cleanup-test/busybox:latest sleep 1000 >/dev/null || exit 90\n"
                                         "echo $CLEANUP_AGENT_SESSION > $OUT/session.tmp && mv $OUT/session.tmp "
                                         "$OUT/session\n"
                                         "sleep 1000\n");
  pid_t pid = scenario_start(&sc, (const char *[]){"run", "--", script, NULL});
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 60000, id), "the suite never got going: %s", scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "no Docker engine yet"), "the engine was up at the start: %s",
                     scenario_stderr(&sc));
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 1);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  cr_assert_eq(scenario_wait(pid), 128 + SIGKILL);
  cr_assert(scenario_wait_nothing_left(&sc, id, 15000), "the guardian did not clean session %s: %d container(s) left",
            id, scenario_count_docker(&sc, DK_CONTAINER, id));
}

/* The engine came up, the command made a container through the proxy, and the engine is gone again at the end: the
 * session stays registered (before, its registry went, and with it the only trace of the container), and the next
 * start collects it once the engine is back. */
Test(run_proxy, an_engine_that_came_and_went_keeps_the_session_until_it_is_back) {
  const char *script =
      late_engine_script("late_gone.sh", "ln -s $ENGINE $LATE || exit 89\n"
                                         "docker run -d --network none --label $TEST_LABEL "
                                         "cleanup-test/busybox:latest sleep 1000 >/dev/null || exit 90\n"
                                         "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
                                         "rm $LATE\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 1, "%s", scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "stays registered"), "the session was forgotten: %s",
                     scenario_stderr(&sc));
  cr_assert_eq(symlink(shared_engine_socket(), sc.docker_host + strlen("unix://")), 0, "%m");
  rc = scenario_run(&sc, (const char *[]){"run", "--", "true", NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  /* the next start's watcher for late creates forgets the session after its 10 s */
  cr_assert(scenario_wait_nothing_left(&sc, id, 30000), "the next start did not collect session %s: %s", id,
            scenario_stderr(&sc));
}

/* The proxy asked for (the default) that cannot be started is a refusal (issue 21): one line, 125, and the command
 * never runs, so it never talks to the engine unlabeled. Here the short socket dir, where a deep state dir's socket
 * goes, is a read-only mount in a mount namespace of the agent's own. */
Test(run_proxy, a_proxy_that_cannot_start_refuses_the_run) {
  char state[256];
  snprintf(state, sizeof(state), "%s/%s", sc.dir,
           "ci-workspace-builds-0123456789abcdef-project-group-subgroup-repository-pipeline-4242-job-8484-"
           "xxxxxxxxxxxxxxxxxxxxxx/state");
  char *slash = strrchr(state, '/');
  *slash = '\0';
  cr_assert_eq(mkdir(state, 0700), 0);
  *slash = '/';
  const char *script = scenario_script(&sc, "ran.sh", "touch $OUT/ran\n");
  char dir[128], cmd[2048];
  snprintf(dir, sizeof(dir), "/run/cleanup-agent.sockets"); /* root's (session.h) */
  (void)mkdir(dir, 0711);
  snprintf(cmd, sizeof(cmd),
           "unshare -m sh -c 'mount -t tmpfs -o ro,mode=0711 none %s && exec %s --state-dir %s --cgroup-root %s run "
           "-- %s' 2> %s/refused.err",
           dir, AG_BINARY, state, sc.cgroup_root, script, sc.dir);
  int rc = system(cmd);
  const char *err = out_file("refused.err");
  cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 125, "run exited %d: %s", rc, err);
  cr_assert(err[0] && !strchr(err, '\n'), "not one line: %s", err);
  cr_assert_not_null(strstr(err, "does not start"), "%s", err);
  char ran[256];
  snprintf(ran, sizeof(ran), "%s/ran", sc.dir);
  cr_assert_neq(access(ran, F_OK), 0, "the command ran without its proxy");
  strcat(state, "/sessions");
  cr_assert(dir_is_empty(state), "state files are left in %s", state);
}

/* A classic build that keeps its step containers (issue 21): the docker CLI's --rm=false (rm=0), and rm=0&forcerm=0 as
 * docker-py sends it. The engine makes step containers without any label; the proxy records them from the build's
 * "Running in <id>" lines, so they stay while the command runs, as it asked, and the session's end removes them. A
 * quiet build (-q, q=1) that succeeds names no step container: the engine removes them as it goes (forcerm=1), as they
 * would otherwise outlive the run. */
Test(run_proxy, step_containers_of_builds_that_keep_them_are_removed) {
  char id[128];
  int rc = run_build_suite(
      "keep_steps.sh",
      "printf 'FROM cleanup-test/busybox:latest\\nRUN echo step-k-%s-cli\\n' $S | "
      "docker build --rm=false --label $TEST_LABEL - > $OUT/cli 2>&1 || exit 90\n"
      "printf 'FROM cleanup-test/busybox:latest\\nRUN echo step-k-%s-quiet\\n' $S | "
      "docker build --rm=false -q --label $TEST_LABEL - > $OUT/quiet 2>&1 || exit 91\n"
      "mkdir $OUT/ctx && printf 'FROM cleanup-test/busybox:latest\\nRUN echo step-k-%s-api && false\\n' $S "
      "> $OUT/ctx/Dockerfile\n"
      "tar -C $OUT/ctx -c Dockerfile | curl -s --unix-socket ${DOCKER_HOST#unix://} -X POST "
      "-H 'Content-Type: application/x-tar' --data-binary @- 'http://d/v1.41/build?rm=0&forcerm=0' > $OUT/api "
      "|| exit 92\n"
      "printf 'FROM cleanup-test/busybox:latest\\nRUN echo step-k-%s-qapi\\n' $S > $OUT/ctx/Dockerfile\n"
      "tar -C $OUT/ctx -c Dockerfile | curl -sf --unix-socket ${DOCKER_HOST#unix://} -X POST "
      "-H 'Content-Type: application/x-tar' --data-binary @- 'http://d/v1.41/build?q=1&rm=0&forcerm=0' > $OUT/apiq "
      "|| exit 93\n"
      "for k in cli quiet api qapi; do\n"
      "  docker ps -a --no-trunc --format '{{.Command}}' | grep -c \"step-k-$S-$k\" > $OUT/during-$k\n"
      "done\n"
      "exit 0\n",
      "step-k", id);
  cr_assert_eq(rc, 0, "run exited %d: %s\n%s", rc, scenario_stderr(&sc), out_file("cli"));
  cr_expect_str_eq(out_file("during-cli"), "1", "the CLI's --rm=false build kept no step container: %s",
                   out_file("cli"));
  cr_expect_str_eq(out_file("during-api"), "1", "the rm=0&forcerm=0 build kept no step container: %s", out_file("api"));
  cr_expect_str_eq(out_file("during-quiet"), "0", "the quiet CLI build kept a step container no output named");
  cr_expect_not_null(strstr(out_file("apiq"), "sha256:"), "the quiet API build did not build: %s", out_file("apiq"));
  cr_expect_str_eq(out_file("during-qapi"), "0", "the quiet API build kept a step container: %s", out_file("apiq"));
  cr_assert_str_eq(out_file("left"), "", "step containers outlived the run");
  scenario_assert_nothing_left(&sc, id);
}
