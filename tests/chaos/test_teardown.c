/* Bounded teardown (issue 19): an engine that wedges at the end of a session holds the end no longer than the
 * teardown timeout, what was not removed is named and stays registered, and once the engine answers again one gc
 * collects it; a host crash that left many dead sessions costs the next start one watcher for late creates, not one
 * process per session. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "cli_run.h"
#include "fake_daemon.h"
#include "session.h"

#define IMAGE "cleanup-test/busybox:latest"

static struct scenario sc;
static char shared_engine[] = "unix:///var/run/docker.sock";

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  scenario_setup(&sc);
}
static void teardown(void) {
  scenario_teardown(&sc);
}

TestSuite(teardown, .init = setup, .fini = teardown, .timeout = 400 * AG_TIMEOUT_SCALE);

/* ---- a wedged engine at the end --------------------------------------------------------------------------------- */

#define WEDGED_TRIALS 20
#define MAX_CONTAINERS 8

/* A fake engine that remembers: the first session it is asked about has `containers` containers, each gone only once
 * a DELETE of it was answered; while wedged, no DELETE is answered. */
struct wedge_engine {
  pthread_mutex_t mu;
  char session[33];
  int containers;
  bool removed[MAX_CONTAINERS];
  volatile bool wedged;
};

static void list_containers(struct wedge_engine *e, const char *id, int conn) {
  char body[4096] = "[";
  pthread_mutex_lock(&e->mu);
  if (!e->session[0])
    snprintf(e->session, sizeof(e->session), "%s", id);
  for (int i = 0; streq(e->session, id) && i < e->containers; i++)
    if (!e->removed[i])
      snprintf(body + strlen(body), sizeof(body) - strlen(body),
               "%s{\"Id\":\"%s%030x\",\"State\":\"running\",\"Labels\":{\"" AG_LABEL_SESSION "\":\"%s\"}}",
               body[1] ? "," : "", id, i, id);
  pthread_mutex_unlock(&e->mu);
  strcat(body, "]");
  fake_reply(conn, 200, "1.41", NULL, body);
}

static bool wedge_handler(void *ud, const struct fake_request *rq, int conn) {
  struct wedge_engine *e = ud;
  char id[33];
  if (streq(rq->path, "/_ping")) {
    fake_reply(conn, 200, "1.41", "text/plain", "OK");
  } else if (streq(rq->method, "DELETE")) {
    for (int i = 0; i < 1200 && e->wedged; i++)
      usleep(50 * 1000);
    if (e->wedged)
      return false; /* never answered */
    const char *c = strstr(rq->path, "/containers/");
    unsigned n = 0;
    if (c && strlen(c + 12) >= 62 && sscanf(c + 12 + 32, "%30x", &n) == 1 && n < MAX_CONTAINERS) {
      pthread_mutex_lock(&e->mu);
      e->removed[n] = true;
      pthread_mutex_unlock(&e->mu);
    }
    fake_reply(conn, 204, "1.41", NULL, "");
  } else if (strstr(rq->path, "/containers/json") && scenario_session_in_path(rq->path, id)) {
    list_containers(e, id, conn);
  } else if (strstr(rq->path, "/volumes")) {
    fake_reply(conn, 200, "1.41", NULL, "{\"Volumes\":[],\"Warnings\":null}");
  } else {
    fake_reply(conn, 200, "1.41", NULL, "[]");
  }
  return true;
}

static int containers_left(struct wedge_engine *e) {
  int n = 0;
  pthread_mutex_lock(&e->mu);
  for (int i = 0; i < e->containers; i++)
    n += !e->removed[i];
  pthread_mutex_unlock(&e->mu);
  return n;
}

/* One trial: run's end against the wedged engine, then the engine answers again and gc collects. Returns what was
 * left; *end_secs is how long run took, *named whether stderr named every container and the registry stayed. */
static int wedged_trial(int containers, double *end_secs, bool *named) {
  struct wedge_engine e = {.mu = PTHREAD_MUTEX_INITIALIZER, .containers = containers, .wedged = true};
  struct fake_daemon *fake = fake_start(wedge_handler, &e);
  const char *script = scenario_script(&sc, "id.sh", "echo $CLEANUP_AGENT_SESSION > $OUT/started\n");
  uint64_t t0 = ca_now_monotonic_usec();
  pid_t agent = scenario_start(&sc, (const char *[]){"--docker-host", fake_host(fake), "--teardown-timeout", "2s",
                                                     "run", "--no-docker-proxy", "--", script, NULL});
  int rc = scenario_wait_bounded(agent, 60000);
  *end_secs = (double)(ca_now_monotonic_usec() - t0) / 1e6;
  int said = 0;
  for (const char *p = scenario_stderr(&sc); (p = strstr(p, "not removed: ")); p++)
    said++;
  *named = rc == 0 && said == containers && scenario_count_state_files(&sc) > 0;
  if (!*named)
    fprintf(stderr, "chaos: wedged engine: run exited %d and named %d of %d: %s\n", rc, said, containers,
            scenario_stderr(&sc));
  e.wedged = false;
  (void)scenario_run(&sc, (const char *[]){"--docker-host", fake_host(fake), "gc", NULL});
  int left = containers_left(&e) + scenario_count_state_files(&sc);
  if (left)
    fprintf(stderr, "chaos: wedged engine: gc left %d things: %s\n", left, scenario_stderr(&sc));
  fake_stop(fake);
  return left;
}

Test(teardown, a_wedged_engine_at_the_end_holds_it_no_longer_than_the_teardown_timeout) {
  int bad = 0, named = 0;
  double longest = 0;
  for (int t = 0; t < WEDGED_TRIALS; t++) {
    double secs = 0;
    bool ok = false;
    int left = wedged_trial(1 + (int)chaos_rand(MAX_CONTAINERS), &secs, &ok);
    longest = secs > longest ? secs : longest;
    named += ok;
    bad += left > 0 || !ok || secs > 8.0;
    cr_expect_eq(left, 0, "trial %d left %d things after the engine answered again and gc ran", t, left);
    cr_expect(ok, "trial %d: run did not name every container it left, or forgot the session", t);
    cr_expect_leq(secs, 8.0, "trial %d: the end took %.1f s with --teardown-timeout 2s", t, secs);
  }
  chaos_report("a wedged engine at the end (no DELETE answered), --teardown-timeout 2s; then it answers and gc runs",
               WEDGED_TRIALS, bad,
               "the longest run took %.1f s; every container left named and the session kept in %d of %d; one gc "
               "collected once the engine answered",
               longest, named, WEDGED_TRIALS);
}

/* ---- a host crash left many dead sessions --------------------------------------------------------------------- */

#define CRASHED 100
#define WITH_CONTAINER 5

/* CRASHED dead sessions that recorded the shared engine (WITH_CONTAINER of them with a container): the next start
 * collects them all with one watcher for late creates, which forgets every one after its watch. */
Test(teardown, a_host_crash_leaves_many_dead_sessions_the_next_start_forks_one_watcher) {
  static char ids[CRASHED][33];
  for (int i = 0; i < CRASHED; i++)
    scenario_dead_session(&sc, shared_engine, ids[i]);
  for (int i = 0; i < WITH_CONTAINER; i++) {
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "docker create --network none --label " AG_LABEL_SESSION "=%.32s --label %s " IMAGE
             " sleep 1000 >/dev/null",
             ids[i], sc.test_label);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
  }
  char none_host[180];
  snprintf(none_host, sizeof(none_host), "unix://%s/none.sock", sc.dir);
  uint64_t t0 = ca_now_monotonic_usec();
  int rc = scenario_run(&sc, (const char *[]){"--docker-host", none_host, "run", "--", "true", NULL});
  double start_secs = (double)(ca_now_monotonic_usec() - t0) / 1e6;
  int watchers = scenario_count_lock_holders(&sc);
  int files = 0;
  for (int waited = 0; waited < 60000 && (files = scenario_count_state_files(&sc)) > 0; waited += 200)
    chaos_sleep_ms(200);
  double all_secs = (double)(ca_now_monotonic_usec() - t0) / 1e6;
  int containers = 0;
  for (int i = 0; i < WITH_CONTAINER; i++)
    containers += scenario_count_docker(&sc, DK_CONTAINER, ids[i]);
  cr_expect_eq(rc, 0, "run: %s", scenario_stderr(&sc));
  cr_expect_eq(watchers, 1, "%d processes watched the %d dead sessions", watchers, CRASHED);
  cr_expect_eq(files, 0, "%d state files left after the watch", files);
  cr_expect_eq(containers, 0, "%d containers of the dead sessions left", containers);
  chaos_report("a host crash left 100 dead sessions: the next start collects them", 1,
               files + containers > 0 || watchers != 1,
               "%d process%s watched them for late creates; the start took %.1f s, every registry was gone after "
               "%.1f s",
               watchers, watchers == 1 ? "" : "es", start_secs, all_secs);
}
