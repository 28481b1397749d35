/* A guardian whose agent was SIGKILLed exits once it collected when no create was in flight and the command could
 * reach the engine only through the session's proxy (issue 24): it no longer lives on 10 s watching for late creates
 * that cannot come. With a create in flight (a fake engine that answers it late), or without the proxy (the command
 * has the engine itself), it still watches. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fake_daemon.h"
#include "scenario.h"

static struct scenario sc;

static void setup(void) {
  signal(SIGPIPE, SIG_IGN); /* the fake engine answers a create whose client was killed */
  scenario_setup(&sc);
}

static void teardown(void) {
  scenario_teardown(&sc);
}

TestSuite(guardian_exit, .init = setup, .fini = teardown, .timeout = 120 * AG_TIMEOUT_SCALE);

/* How long pid lives on (a zombie counts as gone), at most limit_ms; in ms. */
static int lifetime_ms(pid_t pid, int limit_ms) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  int waited = 0;
  for (; waited < limit_ms; waited += 100) {
    const char *st = strrchr(scenario_read_text(path), ')');
    if (!st || st[2] == 'Z')
      break;
    usleep(100 * 1000);
  }
  return waited;
}

/* Starts run (extra options first) with a command that says its session and, after script, sleeps. */
static pid_t start(const char *const *extra, const char *script, char id[static 128]) {
  char body[1024];
  snprintf(body, sizeof(body),
           "%s\necho \"$CLEANUP_AGENT_SESSION\" > %s/session.tmp && mv %s/session.tmp %s/session\n"
           "exec sleep 60\n",
           script, sc.dir, sc.dir, sc.dir);
  const char *path = scenario_script(&sc, "job.sh", body);
  const char *args[12];
  size_t n = 0;
  for (; extra[n]; n++)
    args[n] = extra[n];
  args[n++] = "--";
  args[n++] = path;
  args[n] = NULL;
  pid_t agent = scenario_start(&sc, args);
  cr_assert(scenario_read_marker(&sc, "session", 30000, id), "the run never started: %s", scenario_stderr(&sc));
  return agent;
}

static pid_t kill_agent(pid_t agent, const char *id) {
  pid_t guardian = scenario_guardian_of(&sc, id);
  cr_assert_eq(kill(agent, SIGKILL), 0);
  cr_assert_eq(scenario_wait(agent), 128 + SIGKILL);
  return guardian;
}

Test(guardian_exit, no_create_in_flight_behind_the_proxy_exits_at_once) {
  char id[128];
  pid_t guardian = kill_agent(start((const char *[]){"run", NULL}, ":", id), id);
  int ms = lifetime_ms(guardian, 15000);
  cr_assert_lt(ms, 4000, "the guardian lived %d ms after it collected, with no create in flight", ms);
  cr_assert(scenario_wait_nothing_left(&sc, id, 3000), "the guardian left session %s behind", id);
}

Test(guardian_exit, without_the_proxy_it_still_watches) {
  char id[128];
  pid_t guardian = kill_agent(start((const char *[]){"run", "--no-docker-proxy", NULL}, ":", id), id);
  int ms = lifetime_ms(guardian, 20000);
  cr_assert_geq(ms, 5000, "the guardian left after %d ms: the command had the engine itself", ms);
  cr_assert(scenario_wait_nothing_left(&sc, id, 3000));
}

/* An engine that answers a container create 8 s late, and everything else at once, with nothing in it. */
static bool slow_create_engine(void *ud, const struct fake_request *rq, int conn) {
  (void)ud;
  if (streq(rq->method, "POST") && strstr(rq->path, "/containers/create")) {
    sleep(8);
    fake_reply(conn, 201, "1.41", NULL,
               "{\"Id\":\""
               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
               "\"}");
  } else if (strstr(rq->path, "/volumes") && streq(rq->method, "GET")) {
    fake_reply(conn, 200, "1.41", NULL, "{\"Volumes\":[],\"Warnings\":null}");
  } else if (streq(rq->method, "GET") && !strstr(rq->path, "/_ping")) {
    fake_reply(conn, 200, "1.41", NULL, "[]");
  } else {
    fake_reply(conn, 200, "1.41", "text/plain", "OK");
  }
  return true;
}

/* Starts run against fake with a command whose create goes through the proxy and waits for the engine's answer in
 * the background; returns once the create reached the engine. */
static pid_t start_with_create_in_flight(struct fake_daemon *fake, char id[static 128]) {
  pid_t agent = start((const char *[]){"--docker-host", fake_host(fake), "run", NULL},
                      "curl -s --unix-socket \"${DOCKER_HOST#unix://}\" -H 'Content-Type: application/json' "
                      "-d '{\"Image\":\"x\"}' http://docker/v1.41/containers/create >/dev/null &",
                      id);
  for (int waited = 0; fake_count(fake, "POST", "") == 0 && waited < 10000; waited += 50)
    usleep(50 * 1000);
  cr_assert_gt(fake_count(fake, "POST", ""), 0, "the create never reached the engine");
  return agent;
}

Test(guardian_exit, a_create_in_flight_is_watched_for) {
  struct fake_daemon *fake = fake_start(slow_create_engine, NULL);
  char id[128];
  pid_t agent = start_with_create_in_flight(fake, id);
  pid_t guardian = kill_agent(agent, id);
  int ms = lifetime_ms(guardian, 20000);
  cr_assert_geq(ms, 5000, "the guardian left after %d ms with a create in flight", ms);
  fake_stop(fake);
}

/* slow_create_engine, whose listings fail once the first look after the agent's death (six, by the two session
 * labels) was answered: the engine went away while the guardian watched for the create in flight. */
static atomic_int listings_after_kill = -1; /* -1 until the agent is killed */

static bool engine_lost_while_watching(void *ud, const struct fake_request *rq, int conn) {
  if (streq(rq->method, "GET") && strstr(rq->path, "filters") && atomic_load(&listings_after_kill) >= 0 &&
      atomic_fetch_add(&listings_after_kill, 1) >= 6) {
    fake_reply(conn, 500, "1.41", NULL, "{\"message\":\"the engine is going away\"}");
    return false;
  }
  return slow_create_engine(ud, rq, conn);
}

/* What could still land is the registry's to remember: the guardian forgets the session only once its watch saw the
 * engine empty, never before. */
Test(guardian_exit, a_watch_that_cannot_look_keeps_the_registry) {
  struct fake_daemon *fake = fake_start(engine_lost_while_watching, NULL);
  char id[128];
  pid_t agent = start_with_create_in_flight(fake, id);
  atomic_store(&listings_after_kill, 0);
  pid_t guardian = kill_agent(agent, id);
  int ms = lifetime_ms(guardian, 30000);
  cr_assert_lt(ms, 30000, "the guardian never left");
  cr_assert_gt(atomic_load(&listings_after_kill), 6, "the guardian never looked again after its collection");
  cr_assert_not_null(strstr(scenario_stderr(&sc), "watching 10 s"), "the collection before the watch failed: %s",
                     scenario_stderr(&sc));
  char path[256];
  snprintf(path, sizeof(path), "%s/sessions/%s.json", sc.state, id);
  cr_assert(access(path, F_OK) == 0, "the guardian forgot session %s while a create may still land: %s", id,
            scenario_stderr(&sc));
  fake_stop(fake);
}
