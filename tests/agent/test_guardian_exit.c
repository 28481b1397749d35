/* A guardian whose agent was SIGKILLed exits once it collected when no create was in flight and the command could
 * reach the engine only through the session's proxy (issue 24): it no longer lives on 10 s watching for late creates
 * that cannot come. With a create in flight (a fake engine that answers it late), or without the proxy (the command
 * has the engine itself), it still watches. */
#include <criterion/criterion.h>
#include <signal.h>
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

Test(guardian_exit, a_create_in_flight_is_watched_for) {
  struct fake_daemon *fake = fake_start(slow_create_engine, NULL);
  char id[128];
  /* The command's create goes through the proxy and waits for the engine's answer in the background. */
  pid_t agent = start((const char *[]){"--docker-host", fake_host(fake), "run", NULL},
                      "curl -s --unix-socket \"${DOCKER_HOST#unix://}\" -H 'Content-Type: application/json' "
                      "-d '{\"Image\":\"x\"}' http://docker/v1.41/containers/create >/dev/null &",
                      id);
  for (int waited = 0; fake_count(fake, "POST", "") == 0 && waited < 10000; waited += 50)
    usleep(50 * 1000);
  cr_assert_gt(fake_count(fake, "POST", ""), 0, "the create never reached the engine");
  pid_t guardian = kill_agent(agent, id);
  int ms = lifetime_ms(guardian, 20000);
  cr_assert_geq(ms, 5000, "the guardian left after %d ms with a create in flight", ms);
  fake_stop(fake);
}
