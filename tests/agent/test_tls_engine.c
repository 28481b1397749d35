/* A TLS engine for real (issue 20): a private dockerd with --tlsverify on 127.0.0.1, its CA and certificates made by
 * openssl here. run (with --ttl), gc and container-seq work against it as DOCKER_TLS_VERIFY and DOCKER_CERT_PATH say;
 * a wrong CA and an expired client certificate are refused with one clear line. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "private_engine.h"
#include "scenario.h"

#define IMAGE "cleanup-test/busybox:latest"

static struct scenario sc;
static pid_t engine = -1;
static char tls_dir[160], engine_dir[160], tcp_host[64], unix_host[200], mount_arg[200];
static char tls_ca[200], tls_cert[200], tls_key[200];

/* Certificates: a CA, the engine's (for IP 127.0.0.1), a client's; a second CA unrelated to the first; a client
 * certificate that has expired (valid for 0 days). Client sets live in good/, wrongca/ and expired/. */
static const char certs_script[] =
    "set -e; cd \"$1\"; mkdir good wrongca expired\n"
    "q() { \"$@\" >/dev/null 2>&1; }\n"
    "q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=test-ca\n"
    "q openssl req -x509 -newkey rsa:2048 -nodes -keyout other-key.pem -out wrongca/ca.pem -days 2 -subj /CN=other\n"
    "q openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=127.0.0.1\n"
    "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' >server.ext\n"
    "q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile server.ext "
    "-out server-cert.pem\n"
    "q openssl req -newkey rsa:2048 -nodes -keyout good/key.pem -out client.csr -subj /CN=client\n"
    "printf 'extendedKeyUsage=clientAuth\\n' >client.ext\n"
    "q openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile client.ext "
    "-out good/cert.pem\n"
    "q openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 0 -extfile client.ext "
    "-out expired/cert.pem\n"
    "cp ca.pem good/; cp ca.pem expired/; cp good/key.pem expired/; cp good/cert.pem good/key.pem wrongca/\n";

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* Points this process (and so the agent and the docker CLI it starts) at the TLS engine with the client set set. */
static void use_client_set(const char *set) {
  char path[200];
  snprintf(path, sizeof(path), "%s/%s", tls_dir, set);
  setenv("DOCKER_HOST", tcp_host, 1);
  setenv("DOCKER_TLS_VERIFY", "1", 1);
  setenv("DOCKER_CERT_PATH", path, 1);
}

/* The TLS engine on tcp_host (and its own unix socket, for loading the image). */
static void start_engine(void) {
  const char *extra[] = {"-H", tcp_host, "--tlsverify", tls_ca, tls_cert, tls_key, NULL};
  engine = private_engine_start_with(engine_dir, tcp_host, extra);
}

static void setup(void) {
  scenario_setup(&sc);
  private_engine_own_network(); /* the engine listens on 127.0.0.1 of the test's own namespace */
  snprintf(tls_dir, sizeof(tls_dir), "%s/tls", sc.dir);
  snprintf(engine_dir, sizeof(engine_dir), "%s/engine", sc.dir);
  snprintf(mount_arg, sizeof(mount_arg), "%s:/out", sc.dir);
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "mkdir -p %s %s && sh -c '%s' sh %s", tls_dir, engine_dir, "eval \"$(cat)\"", tls_dir);
  FILE *p = popen(cmd, "w");
  cr_assert_not_null(p);
  fputs(certs_script, p);
  cr_assert_eq(pclose(p), 0, "openssl could not make the certificates");
  snprintf(tcp_host, sizeof(tcp_host), "tcp://127.0.0.1:%d", free_port());
  snprintf(unix_host, sizeof(unix_host), "unix://%s/docker.sock", engine_dir);
  snprintf(tls_ca, sizeof(tls_ca), "--tlscacert=%s/ca.pem", tls_dir);
  snprintf(tls_cert, sizeof(tls_cert), "--tlscert=%s/server-cert.pem", tls_dir);
  snprintf(tls_key, sizeof(tls_key), "--tlskey=%s/server-key.pem", tls_dir);
  use_client_set("good");
  start_engine();
  /* The test image, from the shared engine (its socket, not TLS) into the private one (its own unix socket), without
   * the TLS variables set above: Debian 12's docker CLI (20.10) dials a unix socket over https when
   * DOCKER_TLS_VERIFY=1 ("lookup /var/run/docker.sock: no such host"); a newer CLI first in PATH ignores them. */
  snprintf(cmd, sizeof(cmd),
           "env -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH docker -H unix:///var/run/docker.sock save %s | "
           "env -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH docker -H %s load -q >/dev/null",
           IMAGE, unix_host);
  cr_assert_eq(system(cmd), 0, "cannot load %s into the TLS engine", IMAGE);
}

static void teardown(void) {
  private_engine_stop(&engine);
  unsetenv("DOCKER_HOST");
  unsetenv("DOCKER_TLS_VERIFY");
  unsetenv("DOCKER_CERT_PATH");
  scenario_teardown(&sc);
}

TestSuite(tls_engine, .init = setup, .fini = teardown, .timeout = 240 * AG_TIMEOUT_SCALE);

/* Output of a shell command against the TLS engine through the docker CLI, trimmed (static buffer). */
static const char *docker_tls(const char *args) {
  static char out[4096];
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "docker %s 2>&1", args);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, sizeof(out) - 1, p);
  out[n] = '\0';
  pclose(p);
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
    out[--n] = '\0';
  return out;
}

Test(tls_engine, run_gc_and_container_seq_work_over_tls) {
  /* run --ttl: the command's container (labeled by itself, which the proxy lets through) goes with the session. */
  const char *script = scenario_script(
      &sc, "leak.sh",
      "docker run -d --label io.cleanup-agent.session=$CLEANUP_AGENT_SESSION --label \"$TEST_LABEL\" " IMAGE
      " sleep 600 >\"$OUT/cid\"\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--ttl", "1h", "--", "sh", script, NULL});
  cr_assert_eq(rc, 0, "run over TLS exited %d:\n%s", rc, scenario_stderr(&sc));
  char path[200];
  snprintf(path, sizeof(path), "%s/cid", sc.dir);
  char cid[80];
  snprintf(cid, sizeof(cid), "%.64s", scenario_read_text(path));
  cr_assert_eq(strlen(cid), 64, "the command could not create its container over TLS: '%s'", cid);
  char args[512];
  snprintf(args, sizeof(args), "ps -aq --no-trunc --filter id=%s", cid);
  cr_assert_str_eq(docker_tls(args), "", "the session's container outlived the run on the TLS engine");

  /* gc: an expired session's container goes. */
  char expired[64];
  snprintf(expired, sizeof(expired), "%lld", (long long)time(NULL) - 60);
  snprintf(
      args, sizeof(args),
      "run -d --label io.cleanup-agent.session=0123456789abcdef0123456789abcdef --label io.cleanup-agent.expires=%s "
      "--label %s %s sleep 600",
      expired, sc.test_label, IMAGE);
  const char *made = docker_tls(args);
  cr_assert_eq(strlen(made), 64, "docker run over TLS: %s", made);
  snprintf(cid, sizeof(cid), "%s", made);
  rc = scenario_run(&sc, (const char *[]){"gc", NULL});
  cr_assert_eq(rc, 0, "gc over TLS exited %d:\n%s", rc, scenario_stderr(&sc));
  snprintf(args, sizeof(args), "ps -aq --no-trunc --filter id=%s", cid);
  cr_assert_str_eq(docker_tls(args), "", "gc left the expired container on the TLS engine");

  /* container-seq: a test file in its container on the TLS engine. */
  scenario_script(&sc, "t.sh", "echo over-tls\n");
  rc = scenario_run(&sc, (const char *[]){"container-seq", "--image", IMAGE, "--mount", mount_arg, "--workdir", "/out",
                                          "t.sh", "--", "sh", "{}", NULL});
  snprintf(path, sizeof(path), "%s/out", sc.dir);
  cr_assert_eq(rc, 0, "container-seq over TLS exited %d:\n%s", rc, scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_read_text(path), "PASS t.sh"), "%s", scenario_read_text(path));
  cr_assert_str_eq(docker_tls("ps -aq"), "", "container-seq left containers on the TLS engine");
}

/* The agent's stderr has exactly one line, and it says TLS and which certificate set: the user knows what to fix. */
static void assert_one_tls_line(const char *what) {
  const char *err = scenario_stderr(&sc);
  const char *nl = strchr(err, '\n');
  cr_assert(nl && nl[1] == '\0', "%s: more or less than one line:\n%s", what, err);
  cr_assert_not_null(strstr(err, "TLS"), "%s: the line does not say TLS:\n%s", what, err);
}

/* gc and run with the client set set: both refused, run without running its command. */
static void assert_refused(const char *set) {
  use_client_set(set);
  int rc = scenario_run(&sc, (const char *[]){"gc", NULL});
  cr_assert_neq(rc, 0, "gc with the %s set exited 0:\n%s", set, scenario_stderr(&sc));
  assert_one_tls_line("gc");
  const char *marker = scenario_script(&sc, "ran.sh", "touch \"$OUT/ran\"\n");
  rc = scenario_run(&sc, (const char *[]){"run", "--", "sh", marker, NULL});
  cr_assert_eq(rc, 125, "run with the %s set exited %d:\n%s", set, rc, scenario_stderr(&sc));
  assert_one_tls_line("run");
  char path[200];
  snprintf(path, sizeof(path), "%s/ran", sc.dir);
  cr_assert_neq(access(path, F_OK), 0, "run ran its command against an engine it could not verify");
}

Test(tls_engine, a_wrong_ca_or_an_expired_certificate_is_refused_with_one_line) {
  assert_refused("wrongca");
  sleep(1); /* the expired set was valid for 0 days: expired one second after it was made */
  assert_refused("expired");
}

/* Issue 21: a TLS engine (GitLab's docker-in-docker) gets the labeling proxy too. The command gets the session's Unix
 * socket without TLS variables, and what it creates through it, unlabeled, carries the session label and is gone after
 * the run; an attached run streams its output back through the proxy's TLS connection. */
Test(tls_engine, a_tls_engine_gets_the_labeling_proxy) {
  const char *script = scenario_script(
      &sc, "proxied.sh",
      "echo $CLEANUP_AGENT_SESSION >\"$OUT/session\"\n"
      "echo \"$DOCKER_HOST ${DOCKER_TLS_VERIFY:-no-tls}\" >\"$OUT/host\"\n"
      "c=$(docker run -d --label \"$TEST_LABEL\" " IMAGE " sleep 600) || exit 90\n"
      "echo $c >\"$OUT/cid\"\n"
      "docker inspect -f '{{index .Config.Labels \"io.cleanup-agent.session\"}}' $c >\"$OUT/label\" || exit 91\n"
      "docker run --rm --label \"$TEST_LABEL\" " IMAGE " echo through-tls >\"$OUT/attached\" || exit 92\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", "sh", script, NULL});
  cr_assert_eq(rc, 0, "run over TLS exited %d:\n%s", rc, scenario_stderr(&sc));
  char path[200], id[128] = "", host[256], cid[80];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  snprintf(path, sizeof(path), "%s/host", sc.dir);
  snprintf(host, sizeof(host), "%s", scenario_read_text(path));
  cr_assert(strncmp(host, "unix://", 7) == 0 && strstr(host, id) && strstr(host, " no-tls"),
            "the command got %s, not the session's socket without TLS:\n%s", host, scenario_stderr(&sc));
  snprintf(path, sizeof(path), "%s/label", sc.dir);
  cr_assert_eq(strncmp(scenario_read_text(path), id, 32), 0, "the container's session label: '%s'",
               scenario_read_text(path));
  snprintf(path, sizeof(path), "%s/attached", sc.dir);
  cr_assert_str_eq(scenario_read_text(path), "through-tls\n");
  snprintf(path, sizeof(path), "%s/cid", sc.dir);
  snprintf(cid, sizeof(cid), "%.64s", scenario_read_text(path));
  char args[512];
  snprintf(args, sizeof(args), "ps -aq --no-trunc --filter id=%s", cid);
  cr_assert_str_eq(docker_tls(args), "", "the session's container outlived the run on the TLS engine");
  cr_assert_str_eq(docker_tls("ps -aq"), "", "the run left containers on the TLS engine");
}

/* Issue 21: a TCP engine that does not answer yet when the run starts (GitLab's docker-in-docker service still
 * booting) gets the proxy all the same. The command waits for the engine through the session's socket; what it creates
 * once the engine is up carries the session label, and the run's end removes it. */
Test(tls_engine, a_tls_engine_that_comes_up_during_the_run_gets_the_proxy) {
  private_engine_stop(&engine);
  const char *script = scenario_script(
      &sc, "late.sh",
      "echo \"$DOCKER_HOST ${DOCKER_TLS_VERIFY:-no-tls}\" >\"$OUT/host.tmp\" && mv \"$OUT/host.tmp\" \"$OUT/host\"\n"
      "i=0; until docker version >/dev/null 2>&1; do i=$((i + 1)); [ $i -lt 240 ] || exit 93; sleep 0.5; done\n"
      "c=$(docker run -d --label \"$TEST_LABEL\" " IMAGE " sleep 600) || exit 90\n"
      "echo $c >\"$OUT/cid\"\n"
      "docker inspect -f '{{index .Config.Labels \"io.cleanup-agent.session\"}}' $c >\"$OUT/label\" || exit 91\n");
  pid_t agent = scenario_start(&sc, (const char *[]){"run", "--", "sh", script, NULL});
  char host[256] = "";
  cr_assert(scenario_read_marker(&sc, "host", 30000, host), "the command did not start: %s", scenario_stderr(&sc));
  start_engine();
  int rc = scenario_wait_bounded(agent, 150000);
  cr_assert_eq(rc, 0, "run exited %d:\n%s", rc, scenario_stderr(&sc));
  cr_assert(strncmp(host, "unix://", 7) == 0 && strstr(host, " no-tls"),
            "the command got %s, not the session's socket:\n%s", host, scenario_stderr(&sc));
  char path[200], cid[80];
  snprintf(path, sizeof(path), "%s/label", sc.dir);
  char label[40];
  snprintf(label, sizeof(label), "%.32s", scenario_read_text(path));
  cr_assert(strlen(label) == 32 && strstr(host, label), "the container's session label '%s', the command's socket %s",
            label, host);
  snprintf(path, sizeof(path), "%s/cid", sc.dir);
  snprintf(cid, sizeof(cid), "%.64s", scenario_read_text(path));
  char args[512];
  snprintf(args, sizeof(args), "ps -aq --no-trunc --filter id=%s", cid);
  cr_assert_str_eq(docker_tls(args), "", "the session's container outlived the run on the TLS engine");
}
