/* The registry goes last (issue 19): a session's registry is removed only once the engine it recorded answered and
 * its cgroup went. Each path that ends a session (gc, the start-up collection, kill, the guardian, the end of run)
 * meets a recorded engine that does not answer: the registry stays, with the reason written into it, and once the
 * engine answers at that address again a later gc or start collects against it, whatever --docker-host it was given.
 *
 * The recorded engine is <dir>/engine.sock: first a socket nobody listens on (connect is refused), then a symlink to
 * the shared engine's socket. The agent's own --docker-host is <dir>/none.sock, which does not exist, so that no gc
 * here scans the shared engine: what goes is listed by session id only. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <glob.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "fake_daemon.h"
#include "scenario.h"
#include "session.h"

#define IMAGE "cleanup-test/busybox:latest"
#define SHARED_SOCKET "/var/run/docker.sock"

static struct scenario sc;
static char engine_sock[160], engine_host[180], none_host[180];

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  scenario_setup(&sc);
  snprintf(engine_sock, sizeof(engine_sock), "%s/engine.sock", sc.dir);
  snprintf(engine_host, sizeof(engine_host), "unix://%s", engine_sock);
  snprintf(none_host, sizeof(none_host), "unix://%s/none.sock", sc.dir);
}
static void teardown(void) {
  scenario_teardown(&sc);
}

TestSuite(registry_last, .init = setup, .fini = teardown, .timeout = 180 * AG_TIMEOUT_SCALE);

/* The recorded engine is down: a socket file that refuses connections. */
static void engine_down(void) {
  unlink(engine_sock);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  cr_assert_lt(strlen(engine_sock), sizeof(a.sun_path));
  memcpy(a.sun_path, engine_sock, strlen(engine_sock) + 1);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %s: %s", engine_sock, strerror(errno));
  close(fd); /* never listened: connect is refused */
}

/* The recorded engine answers again, at the same address. */
static void engine_up(void) {
  unlink(engine_sock);
  cr_assert_eq(symlink(SHARED_SOCKET, engine_sock), 0);
}

/* A container on the shared engine that carries only the session's label (and the test's), made as a test would. */
static void leave_container(const char *id) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "docker -H unix://" SHARED_SOCKET " create --network none --label " AG_LABEL_SESSION "=%s --label %s " IMAGE
           " sleep 1000 >/dev/null",
           id, sc.test_label);
  cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static const char *registry_of(const char *id) {
  char path[1024];
  snprintf(path, sizeof(path), "%s/sessions/%s.json", sc.state, id);
  return scenario_read_text(path);
}

/* The registry is still there and says why it was kept. */
static void expect_kept(const char *id, const char *who) {
  const char *text = registry_of(id);
  cr_expect(*text, "%s removed the registry of session %s while its engine did not answer: %s", who, id,
            scenario_stderr(&sc));
  cr_expect(strstr(text, "\"collect_error\""), "%s kept the registry without saying why: %s", who, text);
  cr_expect(strstr(text, "\"collect_error_at\""), "%s kept the registry without saying when: %s", who, text);
}

/* Waits up to timeout_ms for the registry of id to go. */
static bool registry_gone(const char *id, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 100) {
    if (!*registry_of(id))
      return true;
    usleep(100 * 1000);
  }
  return !*registry_of(id);
}

Test(registry_last, gc_keeps_the_registry_until_the_recorded_engine_answers) {
  char id[33];
  engine_down();
  scenario_dead_session(&sc, engine_host, id);
  leave_container(id);
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "gc", NULL});
  cr_expect_eq(rc, 1, "gc said everything went while the session's engine was down: %s", scenario_stderr(&sc));
  expect_kept(id, "gc");
  cr_expect(strstr(scenario_stderr(&sc), id), "gc did not name the session it kept: %s", scenario_stderr(&sc));

  /* The engine is back at the recorded address; gc still runs with another --docker-host. */
  engine_up();
  rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "gc", NULL});
  cr_expect_eq(rc, 0, "gc: %s", scenario_stderr(&sc));
  cr_expect_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 0,
               "gc did not collect the container on the engine the session recorded: %s", scenario_stderr(&sc));
  cr_expect(!*registry_of(id), "the registry outlived a complete collection: %s", scenario_stderr(&sc));
  cr_expect_eq(scenario_count_state_files(&sc), 0);
}

Test(registry_last, the_next_start_keeps_the_registry_until_the_recorded_engine_answers) {
  char id[33];
  engine_down();
  scenario_dead_session(&sc, engine_host, id);
  leave_container(id);
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "run", "--", "true", NULL});
  cr_expect_eq(rc, 0, "run: %s", scenario_stderr(&sc));
  usleep(500 * 1000); /* a guardian it handed the session to would have forgotten it by now */
  expect_kept(id, "the start-up collection");

  engine_up();
  rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "run", "--", "true", NULL});
  cr_expect_eq(rc, 0, "run: %s", scenario_stderr(&sc));
  cr_expect_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 0,
               "the next start did not collect the container on the engine the session recorded: %s",
               scenario_stderr(&sc));
  /* Its watcher for late creates looks for 10 s, then forgets the session. */
  cr_expect(registry_gone(id, 20000), "the registry outlived a complete collection");
}

/* A dead session whose collection went is handed to a watcher for creates that land late; when no watcher can be
 * started (fork fails: here the start runs in a pids cgroup of one task), the session stays registered, with the
 * reason, for the next start to collect and watch again (before, it was forgotten unwatched). */
Test(registry_last, the_start_keeps_a_dead_session_no_watcher_could_watch) {
  char id[33];
  engine_up();
  scenario_dead_session(&sc, engine_host, id);
  leave_container(id);
  if (access("/sys/fs/cgroup/pids/cgroup.procs", F_OK) != 0)
    cr_skip_test("needs the cgroup v1 pids controller at /sys/fs/cgroup/pids");
  char pids[128], cmd[1024];
  snprintf(pids, sizeof(pids), "/sys/fs/cgroup/pids/%s", strrchr(sc.dir, '/') + 1);
  cr_assert_eq(mkdir(pids, 0755), 0, "mkdir %s: %s (the host's cgroup v1 pids hierarchy)", pids, strerror(errno));
  snprintf(cmd, sizeof(cmd),
           "sh -c 'echo 1 > %s/pids.max && echo $$ > %s/cgroup.procs && exec %s --state-dir %s --cgroup-root %s "
           "--docker-host %s run -- true' > %s/pids.out 2>&1",
           pids, pids, AG_BINARY, sc.state, sc.cgroup_root, none_host, sc.dir);
  int rc = system(cmd);
  char out[256], said[4096];
  snprintf(out, sizeof(out), "%s/pids.out", sc.dir);
  snprintf(said, sizeof(said), "%s", scenario_read_text(out));
  /* with the v1 parent the agent made in its own v1 cgroup (named after --cgroup-root) */
  snprintf(cmd, sizeof(cmd), "find %s -depth -type d -exec rmdir {} +", pids);
  cr_expect_eq(system(cmd), 0, "cannot remove %s", pids);
  cr_assert_neq(rc, -1);
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 0, "the start did not collect the dead session: %s", said);
  expect_kept(id, "a start that could not watch for late creates");
  cr_expect(strstr(registry_of(id), "watcher"), "the registry does not say the watcher did not start: %s",
            registry_of(id));

  rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "run", "--", "true", NULL});
  cr_expect_eq(rc, 0, "run: %s", scenario_stderr(&sc));
  cr_expect(registry_gone(id, 20000), "the next start's watcher did not forget the session: %s", scenario_stderr(&sc));
}

Test(registry_last, kill_keeps_the_registry_until_the_recorded_engine_answers) {
  char id[33];
  engine_down();
  scenario_dead_session(&sc, engine_host, id);
  leave_container(id);
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "kill", id, NULL});
  cr_expect_eq(rc, 1, "kill said it collected a session whose engine was down: %s", scenario_stderr(&sc));
  expect_kept(id, "kill");

  engine_up();
  rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "kill", id, NULL});
  cr_expect_eq(rc, 0, "kill: %s", scenario_stderr(&sc));
  cr_expect_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 0,
               "kill did not collect the container on the engine the session recorded: %s", scenario_stderr(&sc));
  cr_expect(!*registry_of(id), "the registry outlived a complete collection: %s", scenario_stderr(&sc));
}

/* Reads the session id the command wrote to <dir>/<name>. */
static void started_session(const char *name, char id[static 128]) {
  cr_assert(scenario_read_marker(&sc, name, 30000, id), "the command never started: %s", scenario_stderr(&sc));
}

Test(registry_last, the_guardian_keeps_the_registry_when_the_engine_does_not_answer) {
  engine_down();
  const char *script = scenario_script(&sc, "wait.sh",
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/started.tmp && mv $OUT/started.tmp "
                                       "$OUT/started\nsleep 1000\n");
  pid_t agent = scenario_start(&sc, (const char *[]){"--docker-host", engine_host, "run", "--", script, NULL});
  char id[128];
  started_session("started", id);
  kill(agent, SIGKILL); /* our own child: the guardian takes over */
  scenario_wait(agent);
  struct ag_state *st = NULL;
  cr_assert_eq(ag_state_open(sc.state, &st, NULL), 0);
  int lock = -1, r;
  for (int i = 0; i < 300 && (r = ag_session_lock(st, id, false, &lock, NULL)) == -EWOULDBLOCK; i++)
    usleep(100 * 1000);
  cr_assert_neq(r, -EWOULDBLOCK, "the guardian never finished");
  if (lock >= 0)
    close(lock);
  ag_state_free(st);
  cr_expect_eq(scenario_count_processes(id), 0, "the guardian left the command running");
  cr_expect(!scenario_cgroup_exists(&sc, id), "the guardian left the session's cgroup");
  expect_kept(id, "the guardian");

  engine_up();
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "gc", NULL});
  cr_expect_eq(rc, 0, "gc: %s", scenario_stderr(&sc));
  cr_expect(!*registry_of(id), "gc did not finish the session once its engine answered: %s", scenario_stderr(&sc));
}

Test(registry_last, the_end_of_run_keeps_the_registry_when_the_engine_does_not_answer) {
  engine_down();
  const char *script = scenario_script(&sc, "id.sh", "echo $CLEANUP_AGENT_SESSION > $OUT/started\n");
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", engine_host, "run", "--", script, NULL});
  cr_expect_eq(rc, 0, "run: %s", scenario_stderr(&sc));
  char id[128];
  started_session("started", id);
  expect_kept(id, "the end of run");
  cr_expect(strstr(scenario_stderr(&sc), "stays registered"), "run did not say the session stays registered: %s",
            scenario_stderr(&sc));
  cr_expect(!scenario_cgroup_exists(&sc, id), "the session's cgroup outlived the run");

  engine_up();
  rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "gc", NULL});
  cr_expect_eq(rc, 0, "gc: %s", scenario_stderr(&sc));
  cr_expect(!*registry_of(id), "gc did not finish the session once its engine answered: %s", scenario_stderr(&sc));
}

/* A cgroup that cannot be removed at the end of run keeps the registry too. On a hybrid host a limit puts the
 * command in a v1 pids leaf as well; a process that leaves the v2 leaf (root may) survives the v2 kill and keeps
 * the v1 leaf busy. */
Test(registry_last, the_end_of_run_keeps_the_registry_when_its_cgroup_cannot_be_removed) {
  char v1[200];
  snprintf(v1, sizeof(v1), "/sys/fs/cgroup/pids%s", strrchr(sc.cgroup_root, '/'));
  if (access("/sys/fs/cgroup/pids/cgroup.procs", F_OK) != 0 || access("/sys/fs/cgroup/unified", F_OK) != 0)
    cr_skip_test("needs a hybrid host with the v1 pids controller");
  const char *script = scenario_script(&sc, "escape.sh",
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/started\nsleep 1000 &\n"
                                       "echo $! > /sys/fs/cgroup/unified/cgroup.procs\necho $! > $OUT/survivor\n");
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "run", "--pids", "100", "--", script, NULL});
  char id[128], survivor[128], leaf[400];
  started_session("started", id);
  cr_assert(scenario_read_marker(&sc, "survivor", 1000, survivor));
  snprintf(leaf, sizeof(leaf), "%s/run-%s", v1, id);
  bool leaf_left = access(leaf, F_OK) == 0;
  const char *text = registry_of(id);
  bool kept = *text && strstr(text, "\"collect_error\"");
  char err[4096];
  snprintf(err, sizeof(err), "%s", scenario_stderr(&sc));
  kill(atoi(survivor), SIGKILL); /* the test's own escapee, by the pid it wrote */
  for (int i = 0; i < 50 && rmdir(leaf) < 0 && errno == EBUSY; i++)
    usleep(100 * 1000);
  rmdir(v1);
  cr_expect_eq(rc, 0, "run: %s", err);
  cr_assert(leaf_left, "the v1 leaf went: the case this test stages did not happen: %s", err);
  cr_expect(kept, "the registry went (or stayed without its reason) while the session's cgroup was left: %s", err);
  cr_expect(strstr(err, "stays registered"), "run did not say the session stays registered: %s", err);
}

/* ---- bounded teardown: an engine that lists the session's container and never answers its DELETE ---------------- */

static volatile bool wedge_released;

/* What the fake engine below does: it lists `containers` containers of any session it is asked about, and either
 * never answers their DELETE (wedged) or removes the even ones and fails the odd ones. */
struct engine_fault {
  int containers;
  bool wedged;
};

/* The fake engines' answer to anything else: an empty listing. */
static void reply_empty(const struct fake_request *rq, int conn) {
  if (strstr(rq->path, "/volumes"))
    fake_reply(conn, 200, "1.41", NULL, "{\"Volumes\":[],\"Warnings\":null}");
  else
    fake_reply(conn, 200, "1.41", NULL, "[]");
}

static bool session_engine(void *ud, const struct fake_request *rq, int conn) {
  const struct engine_fault *f = ud;
  char id[33];
  if (streq(rq->path, "/_ping")) {
    fake_reply(conn, 200, "1.41", "text/plain", "OK");
  } else if (streq(rq->method, "DELETE") && f->wedged) {
    for (int i = 0; i < 1200 && !wedge_released; i++)
      usleep(50 * 1000); /* never answered while the test runs */
    return false;
  } else if (streq(rq->method, "DELETE")) {
    const char *last = rq->path + strcspn(rq->path, "?") - 1; /* the id's last digit */
    bool odd = strchr("13579bdf", *last) != NULL;
    fake_reply(conn, odd ? 500 : 204, "1.41", NULL, odd ? "{\"message\":\"driver failed\"}" : "");
  } else if (strstr(rq->path, "/containers/json") && scenario_session_in_path(rq->path, id)) {
    char body[8192] = "[";
    for (int i = 0; i < f->containers; i++)
      snprintf(body + strlen(body), sizeof(body) - strlen(body),
               "%s{\"Id\":\"%s%030x\",\"State\":\"running\",\"Labels\":{\"" AG_LABEL_SESSION "\":\"%s\"}}",
               i ? "," : "", id, i, id);
    strcat(body, "]");
    fake_reply(conn, 200, "1.41", NULL, body);
  } else {
    reply_empty(rq, conn);
  }
  return true;
}

Test(registry_last, the_end_of_run_stops_at_the_teardown_timeout_and_keeps_what_is_left) {
  wedge_released = false;
  struct fake_daemon *fake = fake_start(session_engine, &(struct engine_fault){.containers = 1, .wedged = true});
  const char *script = scenario_script(&sc, "id.sh", "echo $CLEANUP_AGENT_SESSION > $OUT/started\n");
  setenv("CLEANUP_AGENT_TEARDOWN_TIMEOUT", "4s", 1);
  uint64_t t0 = ca_now_monotonic_usec();
  pid_t agent = scenario_start(
      &sc, (const char *[]){"--docker-host", fake_host(fake), "run", "--no-docker-proxy", "--", script, NULL});
  unsetenv("CLEANUP_AGENT_TEARDOWN_TIMEOUT");
  int rc = scenario_wait_bounded(agent, 30000);
  double secs = (double)(ca_now_monotonic_usec() - t0) / 1e6;
  wedge_released = true;
  char id[128];
  started_session("started", id);
  cr_expect_neq(rc, -1, "run was still ending after 30 s with a teardown timeout of 4 s: %s", scenario_stderr(&sc));
  cr_expect_eq(rc, 0, "run: %s", scenario_stderr(&sc));
  cr_expect_lt(secs, 10.0, "the end took %.1f s with a teardown timeout of 4 s: %s", secs, scenario_stderr(&sc));
  char short_id[16];
  snprintf(short_id, sizeof(short_id), "%.12s", id);
  const char *err = scenario_stderr(&sc);
  fprintf(stderr, "registry_last: the end took %.1f s with a teardown timeout of 4 s; run said:\n%s", secs, err);
  cr_expect(strstr(err, short_id) && strstr(err, "not removed"), "the container left was not named: %s", err);
  expect_kept(id, "the end of run at its teardown timeout");
  fake_stop(fake);
}

Test(registry_last, the_guardian_stops_at_the_teardown_timeout_and_keeps_what_is_left) {
  wedge_released = false;
  struct fake_daemon *fake = fake_start(session_engine, &(struct engine_fault){.containers = 1, .wedged = true});
  const char *script = scenario_script(&sc, "wait.sh",
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/started.tmp && mv $OUT/started.tmp "
                                       "$OUT/started\nsleep 1000\n");
  pid_t agent = scenario_start(&sc, (const char *[]){"--docker-host", fake_host(fake), "--teardown-timeout", "4s",
                                                     "run", "--no-docker-proxy", "--", script, NULL});
  char id[128];
  started_session("started", id);
  kill(agent, SIGKILL); /* our own child: the guardian takes over */
  scenario_wait(agent);
  uint64_t t0 = ca_now_monotonic_usec();
  struct ag_state *st = NULL;
  cr_assert_eq(ag_state_open(sc.state, &st, NULL), 0);
  int lock = -1, r;
  for (int i = 0; i < 300 && (r = ag_session_lock(st, id, false, &lock, NULL)) == -EWOULDBLOCK; i++)
    usleep(100 * 1000);
  double secs = (double)(ca_now_monotonic_usec() - t0) / 1e6;
  wedge_released = true;
  if (lock >= 0)
    close(lock);
  ag_state_free(st);
  cr_expect_neq(r, -EWOULDBLOCK, "the guardian was still collecting after 30 s with a teardown timeout of 4 s");
  cr_expect_lt(secs, 10.0, "the guardian took %.1f s with a teardown timeout of 4 s", secs);
  cr_expect_eq(scenario_count_processes(id), 0, "the guardian left the command running");
  expect_kept(id, "the guardian at its teardown timeout");
  fake_stop(fake);
}

static bool failing_engine(void *ud, const struct fake_request *rq, int conn) {
  (void)ud, (void)rq;
  fake_reply(conn, 500, "1.41", NULL, "{\"message\":\"engine is shutting down\"}");
  return true;
}

/* Dead sessions that recorded one engine that does not answer: gc waits for it once, not once per session. */
Test(registry_last, gc_asks_an_engine_that_does_not_answer_once_for_all_its_sessions) {
  struct fake_daemon *fake = fake_start(failing_engine, NULL);
  snprintf(engine_host, sizeof(engine_host), "%s", fake_host(fake));
  char ids[3][33];
  for (int i = 0; i < 3; i++)
    scenario_dead_session(&sc, engine_host, ids[i]);
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "gc", NULL});
  cr_expect_eq(rc, 1, "gc: %s", scenario_stderr(&sc));
  for (int i = 0; i < 3; i++)
    expect_kept(ids[i], "gc");
  unsigned pings = fake_count(fake, "GET", "/_ping");
  cr_expect_leq(pings, 3, "gc pinged the engine %u times for 3 sessions (one client's tries are 3): %s", pings,
                scenario_stderr(&sc));
  fake_stop(fake);
}

Test(registry_last, the_end_of_run_names_every_container_it_could_not_remove) {
  struct fake_daemon *fake = fake_start(session_engine, &(struct engine_fault){.containers = 40});
  const char *script = scenario_script(&sc, "id.sh", "echo $CLEANUP_AGENT_SESSION > $OUT/started\n");
  int rc = scenario_run(
      &sc, (const char *[]){"--docker-host", fake_host(fake), "run", "--no-docker-proxy", "--", script, NULL});
  char id[128];
  started_session("started", id);
  cr_expect_eq(rc, 0, "run: %s", scenario_stderr(&sc));
  int named = 0;
  for (const char *p = scenario_stderr(&sc); (p = strstr(p, "not removed: ")); p++)
    named++;
  cr_expect_eq(named, 20, "%d of the 20 containers the engine refused were named: %s", named, scenario_stderr(&sc));
  cr_expect_eq(fake_count(fake, "DELETE", ""), 40, "not every container was tried");
  expect_kept(id, "the end of run");
  fake_stop(fake);
}

/* ---- one watcher for late creates serves every session a start-up collection handed off -------------------------- */

Test(registry_last, one_watcher_serves_every_dead_session_a_start_collects) {
  enum { N = 20 };
  char ids[N][33];
  engine_up();
  for (int i = 0; i < N; i++)
    scenario_dead_session(&sc, engine_host, ids[i]);
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "run", "--", "true", NULL});
  cr_expect_eq(rc, 0, "run: %s", scenario_stderr(&sc));
  int holders = scenario_count_lock_holders(&sc);
  /* A create one of them had in flight lands now: the watcher still takes it. */
  leave_container(ids[N - 1]);
  cr_expect_eq(holders, 1, "the start handed %d dead sessions to %d processes that watch the engine", N, holders);
  for (int i = 0; i < N; i++)
    cr_expect(registry_gone(ids[i], 25000), "the registry of dead session %d outlived its watch", i);
  cr_expect_eq(scenario_count_docker(&sc, DK_CONTAINER, ids[N - 1]), 0,
               "the watcher did not remove a container created after the start collected its session");
  cr_expect_eq(scenario_count_lock_holders(&sc), 0, "a watcher still holds a lock after its watch");
  cr_expect_eq(scenario_count_state_files(&sc), 0);
}

/* ---- what the end could not remove in time is named, on stderr and in --report ----------------------------------- */

Test(registry_last, the_report_names_what_the_end_could_not_remove_in_time) {
  wedge_released = false;
  struct fake_daemon *fake = fake_start(session_engine, &(struct engine_fault){.containers = 3, .wedged = true});
  const char *script = scenario_script(&sc, "id.sh", "echo $CLEANUP_AGENT_SESSION > $OUT/started\n");
  char report[300];
  snprintf(report, sizeof(report), "%s/report.json", sc.dir);
  pid_t agent =
      scenario_start(&sc, (const char *[]){"--docker-host", fake_host(fake), "--teardown-timeout", "2s", "run",
                                           "--no-docker-proxy", "--report", report, "--", script, NULL});
  int rc = scenario_wait_bounded(agent, 30000);
  wedge_released = true;
  char id[128];
  started_session("started", id);
  cr_expect_eq(rc, 0, "run: %s", scenario_stderr(&sc));
  const char *err = scenario_stderr(&sc);
  char text[16384];
  snprintf(text, sizeof(text), "%s", scenario_read_text(report));
  cr_assert(*text, "run wrote no report: %s", err);
  int named = 0;
  for (const char *p = err; (p = strstr(p, "not removed: ")); p++)
    named++;
  cr_expect_eq(named, 3, "stderr named %d of the 3 containers left behind: %s", named, err);
  cJSON *j = cJSON_Parse(text);
  cr_assert(j, "the report is not JSON: %s", text);
  const cJSON *left = cJSON_GetObjectItemCaseSensitive(j, "not_removed");
  cr_expect(cJSON_IsArray(left) && cJSON_GetArraySize(left) == 3, "the report does not name the 3 containers left: %s",
            text);
  for (int i = 0; i < 3; i++) {
    char container[80];
    snprintf(container, sizeof(container), "%.32s%030x", id, i);
    bool found = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, left) {
      const cJSON *iid = cJSON_GetObjectItemCaseSensitive(it, "id");
      const cJSON *reason = cJSON_GetObjectItemCaseSensitive(it, "reason");
      found = found || (cJSON_IsString(iid) && streq(iid->valuestring, container) && cJSON_IsString(reason) &&
                        *reason->valuestring);
    }
    cr_expect(found, "the report did not name container %d (with why), left behind: %s", i, text);
  }
  cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stays_registered")),
            "the report does not say the session stays registered: %s", text);
  cJSON_Delete(j);
  expect_kept(id, "the end of run at its teardown timeout");
  fake_stop(fake);
}

/* A v1-only leftover on a hybrid host (issue 19): the agent and its guardian were SIGKILLed while the session's end
 * had removed the v2 leaf and not yet the v1 leaves its limits made (memory, pids, cpu). The next start collects the
 * dead session: it must remove those v1 leaves, or keep the registry that names them; it forgot the session and left
 * them for good. */
Test(registry_last, the_next_start_removes_a_v1_only_leftover) {
  static const char *const ctl[] = {"memory", "pids", "cpu"};
  char v1[3][400], probe[200];
  for (int i = 0; i < 3; i++) {
    snprintf(probe, sizeof(probe), "/sys/fs/cgroup/%s/cgroup.procs", ctl[i]);
    if (access(probe, F_OK) != 0 || access("/sys/fs/cgroup/unified", F_OK) != 0)
      cr_skip_test("needs a hybrid host with the v1 memory, pids and cpu controllers");
  }
  engine_up();
  const char *script = scenario_script(&sc, "wait.sh",
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/started.tmp && mv $OUT/started.tmp "
                                       "$OUT/started\nexec sleep 1000\n");
  pid_t agent = scenario_start(&sc, (const char *[]){"--docker-host", engine_host, "run", "--memory", "256M", "--pids",
                                                     "100", "--cpus", "1", "--", script, NULL});
  char id[128], leaf[400];
  started_session("started", id);
  pid_t guardian = scenario_guardian_of(&sc, id);
  kill(guardian, SIGKILL); /* the session's own guardian, by the pid its registry names */
  kill(agent, SIGKILL);
  scenario_wait(agent);
  /* the end got as far as the v2 leaf: its tree killed, the leaf removed */
  snprintf(leaf, sizeof(leaf), "%s/run-%s", sc.cgroup_root, id);
  char kill_file[450];
  snprintf(kill_file, sizeof(kill_file), "%s/cgroup.kill", leaf);
  FILE *f = fopen(kill_file, "w");
  cr_assert(f, "no cgroup.kill in %s", leaf);
  fputs("1", f);
  fclose(f);
  for (int i = 0; i < 100 && rmdir(leaf) < 0 && errno == EBUSY; i++)
    usleep(50 * 1000);
  cr_assert(access(leaf, F_OK) != 0, "the v2 leaf %s did not go", leaf);
  for (int i = 0; i < 3; i++) {
    /* the v1 parent is under the mount, or under the agent's own v1 cgroup there */
    char pattern[300];
    glob_t g;
    snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/%s{,/*,/*/*}%s/run-%s", ctl[i], strrchr(sc.cgroup_root, '/'),
             id);
    snprintf(v1[i], sizeof(v1[i]), "%s", pattern);
    if (glob(pattern, GLOB_ONLYDIR | GLOB_BRACE, NULL, &g) == 0) {
      snprintf(v1[i], sizeof(v1[i]), "%s", g.gl_pathv[0]);
      globfree(&g);
    }
    cr_assert(access(v1[i], F_OK) == 0, "the v1 %s leaf %s was never made: the case this test stages did not happen",
              ctl[i], v1[i]);
  }
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", engine_host, "run", "--", "true", NULL});
  cr_expect_eq(rc, 0, "the next start: %s", scenario_stderr(&sc));
  /* the start hands the session to its watcher for late creates, which forgets it some 10 s later */
  for (int i = 0; i < 300 && *registry_of(id) && !strstr(registry_of(id), "\"collect_error\""); i++)
    usleep(100 * 1000);
  bool forgotten = !*registry_of(id);
  for (int i = 0; i < 3; i++) {
    bool left = access(v1[i], F_OK) == 0;
    cr_expect(!(left && forgotten), "the next start forgot session %s and left its v1 %s leaf %s: %s", id, ctl[i],
              v1[i], scenario_stderr(&sc));
    cr_expect(!left, "the v1 %s leaf %s is left: %s", ctl[i], v1[i], scenario_stderr(&sc));
    (void)rmdir(v1[i]); /* empty: nothing ran in it since the kill */
  }
  cr_expect(forgotten, "the registry of session %s stayed: %s", id, scenario_stderr(&sc));
}

/* An engine whose container create lands 5 s after it was asked, past the end's 2 s drain, labeled with the session
 * that asked; it lists the container by that label from then on, until it is deleted. */
static struct { atomic_bool landed, deleted; } late;

#define LATE_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static bool late_create_engine(void *ud, const struct fake_request *rq, int conn) {
  (void)ud;
  char id[33];
  if (streq(rq->path, "/_ping")) {
    fake_reply(conn, 200, "1.41", "text/plain", "OK");
  } else if (streq(rq->method, "POST") && strstr(rq->path, "/containers/create")) {
    sleep(5);
    atomic_store(&late.landed, true);
    fake_reply(conn, 201, "1.41", NULL, "{\"Id\":\"" LATE_ID "\"}"); /* to a proxy that stopped waiting */
    return false;
  } else if (streq(rq->method, "DELETE") && strstr(rq->path, "/containers/" LATE_ID)) {
    atomic_store(&late.deleted, true);
    fake_reply(conn, 204, "1.41", NULL, "");
  } else if (strstr(rq->path, "/containers/json") && scenario_session_in_path(rq->path, id) &&
             atomic_load(&late.landed) && !atomic_load(&late.deleted)) {
    char body[512];
    snprintf(body, sizeof(body),
             "[{\"Id\":\"" LATE_ID "\",\"State\":\"created\",\"Labels\":{\"" AG_LABEL_SESSION "\":\"%s\"}}]", id);
    fake_reply(conn, 200, "1.41", NULL, body);
  } else {
    reply_empty(rq, conn);
  }
  return true;
}

/* Runs a command that sends a container create with curl's data_args through the proxy of a session on fake, and lets
 * the command end once the engine was asked for prefix (with method), so that the session's end begins while that
 * request is unanswered; id gets the session. */
static void end_while_asked(struct fake_daemon *fake, const char *data_args, const char *method, const char *prefix,
                            char id[static 128]) {
  char body[1024];
  snprintf(body, sizeof(body),
           "echo $CLEANUP_AGENT_SESSION > $OUT/started\n"
           "echo ${DOCKER_HOST#unix://} > $OUT/proxy\n"
           "curl -s --unix-socket \"${DOCKER_HOST#unix://}\" -H 'Content-Type: application/json' %s "
           "http://docker/v1.41/containers/create >/dev/null &\n"
           "while [ ! -e $OUT/go ]; do sleep 0.05; done\n",
           data_args);
  const char *script = scenario_script(&sc, "late.sh", body);
  pid_t agent = scenario_start(&sc, (const char *[]){"--docker-host", fake_host(fake), "run", "--", script, NULL});
  for (int waited = 0; fake_count(fake, method, prefix) == 0 && waited < 10000; waited += 50)
    usleep(50 * 1000);
  cr_assert_gt(fake_count(fake, method, prefix), 0, "%s %s never reached the engine: %s", method, prefix,
               scenario_stderr(&sc));
  char go[128];
  snprintf(go, sizeof(go), "%s/go", sc.dir);
  cr_assert_eq(close(open(go, O_CREAT | O_WRONLY, 0644)), 0);
  cr_assert_eq(scenario_wait(agent), 0, "run: %s", scenario_stderr(&sc));
  started_session("started", id);
}

/* What landed after the end's listing was removed (a watcher's), and then the session was forgotten. */
static void late_went(atomic_bool *landed, atomic_bool *deleted, const char *id, const char *what) {
  for (int waited = 0; !atomic_load(deleted) && waited < 20000 * AG_TIMEOUT_SCALE; waited += 100)
    usleep(100 * 1000);
  cr_assert(atomic_load(landed), "the %s never landed", what);
  cr_assert(atomic_load(deleted), "the %s that landed after the end's listing was never removed: %s", what,
            scenario_stderr(&sc));
  for (int waited = 0; *registry_of(id) && waited < 15000 * AG_TIMEOUT_SCALE; waited += 100) /* the watch: 10 s */
    usleep(100 * 1000);
  cr_assert(!*registry_of(id), "the session stayed registered once its late %s went", what);
}

/* The end stops the proxy with a create still unanswered by the engine: what that create makes lands after the end's
 * listing, so the session is watched for it (as the guardian and the start-up collection do) before it is forgotten. */
Test(registry_last, the_end_of_run_watches_for_a_create_the_engine_had_not_answered) {
  struct fake_daemon *fake = fake_start(late_create_engine, NULL);
  char id[128];
  end_while_asked(fake, "-d '{\"Image\":\"x\"}'", "POST", "/v1.41/containers/create", id);
  late_went(&late.landed, &late.deleted, id, "container");
  fake_stop(fake);
}

/* An engine slow to make a volume that a container create binds. Its answer to the proxy's own create of it comes
 * once it answered the session's end's listing of volumes; with slow_get, its answer to the proxy's look for it first
 * comes once the end's stop of the proxy began, while it still drains (2 s). Each comes at most 9.5 s later, within
 * the proxy's 10 s for an answer. The volume it makes is labeled with the session and listed
 * by that label from then on, until it is deleted. A container create that reaches it is only counted. */
static struct { atomic_bool landed, deleted, listed, slow_get, unwaited; } slow_volume;

static void wait_listed(void) {
  for (int i = 0; i < 95 && !atomic_load(&slow_volume.listed); i++)
    usleep(100 * 1000);
}

/* Until the session's proxy socket is gone: the stop removes it right after it began to refuse (proxy.c). */
static void wait_proxy_stopped(void) {
  char path[512];
  if (!scenario_read_marker(&sc, "proxy", 10000, path)) {
    atomic_store(&slow_volume.unwaited, true); /* the test fails on it */
    return;
  }
  for (int i = 0; i < 95 && access(path, F_OK) == 0; i++)
    usleep(100 * 1000);
}

static bool slow_volume_engine(void *ud, const struct fake_request *rq, int conn) {
  (void)ud;
  char id[33];
  bool there = atomic_load(&slow_volume.landed) && !atomic_load(&slow_volume.deleted);
  if (streq(rq->path, "/_ping")) {
    fake_reply(conn, 200, "1.41", "text/plain", "OK");
  } else if (streq(rq->method, "GET") && strstr(rq->path, "/volumes/data")) {
    if (atomic_load(&slow_volume.slow_get))
      wait_proxy_stopped();
    fake_reply(conn, there ? 200 : 404, "1.41", NULL,
               there ? "{\"Name\":\"data\"}" : "{\"message\":\"no such volume\"}");
  } else if (streq(rq->method, "POST") && strstr(rq->path, "/volumes/create")) {
    wait_listed();
    atomic_store(&slow_volume.landed, true);
    fake_reply(conn, 201, "1.41", NULL, "{\"Name\":\"data\"}");
    return false;
  } else if (streq(rq->method, "POST") && strstr(rq->path, "/containers/create")) {
    fake_reply(conn, 201, "1.41", NULL, "{\"Id\":\"" LATE_ID "\"}");
  } else if (streq(rq->method, "DELETE") && strstr(rq->path, "/volumes/data")) {
    atomic_store(&slow_volume.deleted, true);
    fake_reply(conn, 204, "1.41", NULL, "");
  } else if (strstr(rq->path, "/volumes") && scenario_session_in_path(rq->path, id)) {
    char body[512];
    snprintf(body, sizeof(body), "{\"Volumes\":[%s%s%s],\"Warnings\":null}",
             there ? "{\"Name\":\"data\",\"Labels\":{\"" AG_LABEL_SESSION "\":\"" : "", there ? id : "",
             there ? "\"}}" : "");
    fake_reply(conn, 200, "1.41", NULL, body);
    atomic_store(&slow_volume.listed, true);
  } else {
    reply_empty(rq, conn);
  }
  return true;
}

/* The end stops the proxy while the proxy itself creates a volume that a container create binds (with the session's
 * labels, before it forwards the create): the volume lands after the end's listing, so the session is watched for it
 * before it is forgotten, and the container create, which would come after the end began, is answered 503 instead. */
Test(registry_last, the_end_of_run_watches_for_a_volume_its_proxy_was_creating) {
  memset(&slow_volume, 0, sizeof(slow_volume));
  struct fake_daemon *fake = fake_start(slow_volume_engine, NULL);
  char id[128];
  end_while_asked(fake, "-d '{\"Image\":\"x\",\"HostConfig\":{\"Binds\":[\"data:/data\"]}}'", "POST", "/volumes/create",
                  id);
  late_went(&slow_volume.landed, &slow_volume.deleted, id, "volume");
  cr_assert_eq(fake_count(fake, "POST", "/v1.41/containers/create"), 0,
               "the container create went to the engine after the session's end began");
  fake_stop(fake);
}

/* The end stops the proxy while the proxy looks whether a volume that a container create binds exists: it is not made
 * once the end began (the end may have listed already), and the container create is answered 503. */
Test(registry_last, a_volume_the_proxy_looks_for_while_the_session_ends_is_not_made) {
  memset(&slow_volume, 0, sizeof(slow_volume));
  atomic_store(&slow_volume.slow_get, true);
  struct fake_daemon *fake = fake_start(slow_volume_engine, NULL);
  char id[128];
  end_while_asked(fake, "-d '{\"Image\":\"x\",\"HostConfig\":{\"Binds\":[\"data:/data\"]}}'", "GET", "/volumes/data",
                  id);
  for (int waited = 0; *registry_of(id) && waited < 20000 * AG_TIMEOUT_SCALE; waited += 100)
    usleep(100 * 1000);
  cr_assert(!atomic_load(&slow_volume.unwaited), "the engine could not wait for the proxy's stop: no $OUT/proxy");
  cr_assert_eq(fake_count(fake, "POST", "/volumes/create"), 0, "the volume was made after the session's end began");
  cr_assert_eq(fake_count(fake, "POST", "/v1.41/containers/create"), 0,
               "the container create went to the engine after the session's end began");
  cr_assert(!*registry_of(id), "the session stayed registered: %s", scenario_stderr(&sc));
  fake_stop(fake);
}

/* An engine that warns in its volume lists (as one does of a volume driver it could not ask, whose volumes are then
 * missing) while warn is set; once it stops, it lists the session's volume "pv" until it is deleted. A real engine
 * warns so only with a volume plugin that is down, and a legacy plugin is found machine-wide (every dockerd here would
 * take it up): a fake engine is the safe way to have one. */
static struct { atomic_bool warn, deleted; } warning;

static bool warning_engine(void *ud, const struct fake_request *rq, int conn) {
  (void)ud;
  char id[33], body[512];
  if (streq(rq->path, "/_ping")) {
    fake_reply(conn, 200, "1.41", "text/plain", "OK");
  } else if (streq(rq->method, "DELETE") && strstr(rq->path, "/volumes/pv")) {
    atomic_store(&warning.deleted, true);
    fake_reply(conn, 204, "1.41", NULL, "");
  } else if (strstr(rq->path, "/volumes") && atomic_load(&warning.warn)) {
    fake_reply(conn, 200, "1.41", NULL,
               "{\"Volumes\":[],\"Warnings\":[\"list plug: VolumeDriver.List: backend down\"]}");
  } else if (strstr(rq->path, "/volumes") && scenario_session_in_path(rq->path, id) && !atomic_load(&warning.deleted)) {
    snprintf(body, sizeof(body),
             "{\"Volumes\":[{\"Name\":\"pv\",\"Labels\":{\"" AG_LABEL_SESSION "\":\"%s\"}}],\"Warnings\":null}", id);
    fake_reply(conn, 200, "1.41", NULL, body);
  } else {
    reply_empty(rq, conn);
  }
  return true;
}

/* A volume list with warnings is no proof that the session's volumes are gone: the end and gc keep the session
 * registered and name the warning, gc exits 1; once the list is whole, gc removes the volume, and the registry last. */
Test(registry_last, a_volume_list_with_warnings_keeps_the_session_registered) {
  memset(&warning, 0, sizeof(warning));
  atomic_store(&warning.warn, true);
  struct fake_daemon *fake = fake_start(warning_engine, NULL);
  const char *script = scenario_script(&sc, "warned.sh", "echo $CLEANUP_AGENT_SESSION > $OUT/started\n");
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", fake_host(fake), "run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exits with its command's status, whatever its end kept: %s", scenario_stderr(&sc));
  char id[128];
  started_session("started", id);
  cr_assert(*registry_of(id), "the end forgot the session with an incomplete volume list: %s", scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "backend down"), "the end did not say why: %s", scenario_stderr(&sc));
  rc = scenario_run(&sc, (const char *[]){"--docker-host", fake_host(fake), "gc", NULL});
  cr_assert_eq(rc, 1, "gc with an incomplete volume list: %s", scenario_stderr(&sc));
  cr_assert(*registry_of(id), "gc forgot the session with an incomplete volume list");
  cr_assert_not_null(strstr(scenario_stderr(&sc), "backend down"), "gc did not say why: %s", scenario_stderr(&sc));
  atomic_store(&warning.warn, false);
  rc = scenario_run(&sc, (const char *[]){"--docker-host", fake_host(fake), "gc", NULL});
  cr_assert_eq(rc, 0, "gc once the list was whole: %s", scenario_stderr(&sc));
  cr_assert(atomic_load(&warning.deleted), "gc did not remove the volume: %s", scenario_stderr(&sc));
  cr_assert(!*registry_of(id), "the registry stayed once the volume went: %s", scenario_stderr(&sc));
  fake_stop(fake);
}
