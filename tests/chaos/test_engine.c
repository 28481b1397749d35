/* The engine restarted in the middle of `container-seq` and of `gc`. The engine is a private dockerd this test starts
 * and restarts itself (tests/docker_api/private_engine.h); the shared engine only lends it the test image. A trial
 * passes when the agent exits with a status of its contract (never a crash or a hang), and once it and the next start
 * (or the next gc) are done nothing of the session is left and nothing live was lost. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "cli_run.h"
#include "private_engine.h"
#include "cgroup.h"
#include "session.h"

#define IMAGE "cleanup-test/busybox:latest"
#define TRIALS 2

static struct scenario sc;
static char dir[] = "/var/tmp/chaos-engine-XXXXXX";
static char host[128];
static pid_t dockerd = -1;

static void connect_private(void) {
  dk_client_free(sc.dk);
  sc.dk = NULL;
  struct dk_client_options o = {.host = host};
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(dk_client_new(&o, &sc.dk, &err), 0, "%s", err ? err->msg : "");
}

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  scenario_setup(&sc); /* connects to the shared engine, which has the image */
  cr_assert_not_null(mkdtemp(dir));
  snprintf(host, sizeof(host), "unix://%s/docker.sock", dir);
  dockerd = private_engine_start(dir, host);
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "docker save %s | docker -H %s load -q >/dev/null", IMAGE, host);
  cr_assert_eq(system(cmd), 0, "cannot copy %s from the shared engine into the private one", IMAGE);
  connect_private();
}

static void teardown(void) {
  private_engine_stop(&dockerd);
  scenario_teardown(&sc);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf --one-file-system '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "chaos: could not remove %s\n", dir);
}

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 600 * AG_TIMEOUT_SCALE);

static void restart_engine(int down_ms) {
  private_engine_stop(&dockerd);
  chaos_sleep_ms(down_ms);
  dockerd = private_engine_start(dir, host);
  connect_private();
}

Test(engine, restarted_during_container_seq) {
  char mount[160];
  snprintf(mount, sizeof(mount), "%.64s:/out", sc.dir);
  const char *files[] = {"a.sh", "b.sh", "c.sh", "d.sh", "e.sh", NULL};
  for (const char *const *f = files; *f; f++) {
    char path[256];
    snprintf(path, sizeof(path), "%.64s/%s", sc.dir, *f);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fputs("trap 'exit 0' TERM\nsleep 0.5 & wait\n", fp);
    fclose(fp);
  }
  int left = 0, clean_exits = 0;
  char codes[128] = "";
  for (int t = 0; t < TRIALS; t++) {
    char tag[48];
    snprintf(tag, sizeof(tag), "%d-engine-seq-%d", (int)getpid(), t);
    setenv("CHAOS_TAG", tag, 1);
    pid_t agent = scenario_start(&sc, (const char *[]){"--docker-host",
                                                       host,
                                                       "container-seq",
                                                       "--image",
                                                       IMAGE,
                                                       "--network",
                                                       "none",
                                                       "--mount",
                                                       mount,
                                                       "--workdir",
                                                       "/out",
                                                       "a.sh",
                                                       "b.sh",
                                                       "c.sh",
                                                       "d.sh",
                                                       "e.sh",
                                                       "--",
                                                       "sh",
                                                       "{}",
                                                       NULL});
    unsetenv("CHAOS_TAG");
    uint64_t start = 0;
    (void)cg_proc_start_time(NULL, agent, &start, NULL);
    struct chaos_owner owner;
    chaos_owner_of(agent, start, &owner);
    int delay = 500 + (int)chaos_rand(2000);
    chaos_sleep_ms(delay);
    restart_engine(1000);
    int rc = scenario_wait_bounded(agent, 120000);
    snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes), "%s%d", t ? "," : "", rc);
    cr_expect(rc >= 0 && rc < 128, "trial %d: container-seq crashed or hung (exit %d): %s", t, rc,
              scenario_stderr(&sc));
    fprintf(stderr, "chaos: container-seq, engine restarted at %d ms: exit %d; it said:\n%s", delay, rc,
            scenario_stderr(&sc));
    struct chaos_left l;
    chaos_count_left(&sc, tag, &owner, &l);
    clean_exits += chaos_left_total(&l) == 0;
    /* What the session could not remove while the engine was down stays registered: the next start collects it. */
    int next = scenario_run(&sc, (const char *[]){"--docker-host", host, "run", "--", "true", NULL});
    cr_expect_eq(next, 0, "the next start: %s", scenario_stderr(&sc));
    for (int w = 0; w < 200 && scenario_count_state_files(&sc) > 0; w++)
      chaos_sleep_ms(100);
    chaos_count_left(&sc, tag, &owner, &l);
    if (chaos_left_total(&l)) {
      char what[256];
      left++;
      fprintf(stderr, "chaos: container-seq, engine restarted: trial %d left %s\n", t,
              chaos_left_describe(&l, what, sizeof(what)));
      chaos_sweep(&sc, tag, &owner);
    }
  }
  chaos_report("container-seq: the engine restarted in the middle", TRIALS, left,
               "exit codes %s; %d of %d sessions left nothing even before the next start", codes, clean_exits, TRIALS);
  cr_expect_eq(left, 0);
}

#define DEAD_SESSIONS 4
#define PER_SESSION 8

/* Creates a container and a volume labeled with session id and the test label; returns nothing, counts by label. */
static void stage(const char *id) {
  char label[96];
  snprintf(label, sizeof(label), AG_LABEL_SESSION "=%s", id);
  const char *labels[] = {label, sc.test_label, NULL};
  for (int i = 0; i < PER_SESSION; i++) {
    struct dk_container_spec spec = {
        .image = IMAGE, .cmd = (const char *[]){"sleep", "1000", NULL}, .labels = labels, .network_mode = "none"};
    _cleanup_free_ char *cid = NULL, *vid = NULL;
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_eq(dk_container_create(sc.dk, &spec, &cid, &err), 0, "%s", err ? err->msg : "");
    cr_assert_eq(dk_volume_create(sc.dk, NULL, labels, &vid, &err), 0, "%s", err ? err->msg : "");
  }
}

static int count_session(const char *id) {
  return scenario_count_docker(&sc, DK_CONTAINER, id) + scenario_count_docker(&sc, DK_VOLUME, id);
}

Test(engine, restarted_during_gc) {
  struct ag_state *st = NULL;
  cr_assert_eq(ag_state_open(sc.state, &st, NULL), 0);
  int left = 0, lost = 0;
  char codes[128] = "";
  for (int t = 0; t < TRIALS; t++) {
    /* Dead sessions: a lock file nobody holds. A live one: its lock held by this test. */
    char dead[DEAD_SESSIONS][33], live[33];
    for (int d = 0; d < DEAD_SESSIONS; d++) {
      cr_assert_eq(ag_session_id_new(dead[d], NULL), 0);
      int fd = -1;
      cr_assert_eq(ag_session_lock(st, dead[d], true, &fd, NULL), 0);
      struct ag_registry reg = {.created = time(NULL), .docker_host = host};
      memcpy(reg.id, dead[d], sizeof(reg.id));
      strcpy(reg.mode, "run");
      cr_assert_eq(ag_owner_self(&reg.owner, NULL), 0);
      cr_assert_eq(ag_registry_write(st, &reg, NULL), 0);
      close(fd);
      stage(dead[d]);
    }
    cr_assert_eq(ag_session_id_new(live, NULL), 0);
    int live_fd = -1;
    cr_assert_eq(ag_session_lock(st, live, true, &live_fd, NULL), 0);
    stage(live);

    char tag[48];
    snprintf(tag, sizeof(tag), "%d-engine-gc-%d", (int)getpid(), t);
    setenv("CHAOS_TAG", tag, 1);
    pid_t gc = scenario_start(&sc, (const char *[]){"--docker-host", host, "gc", "--parallel", "2", NULL});
    unsetenv("CHAOS_TAG");
    int delay = (int)chaos_rand(1500);
    chaos_sleep_ms(delay);
    restart_engine(500);
    int rc = scenario_wait_bounded(gc, 120000);
    snprintf(codes + strlen(codes), sizeof(codes) - strlen(codes), "%s%d", t ? "," : "", rc);
    cr_expect(rc == 0 || rc == 1, "trial %d: gc crashed or hung (exit %d): %s", t, rc, scenario_stderr(&sc));
    fprintf(stderr, "chaos: gc, engine restarted at %d ms: exit %d; it said:\n%s", delay, rc, scenario_stderr(&sc));
    /* The next gc finishes the job. */
    int again = scenario_run(&sc, (const char *[]){"--docker-host", host, "gc", NULL});
    cr_expect_eq(again, 0, "the second gc: %s", scenario_stderr(&sc));
    int dead_left = 0;
    for (int d = 0; d < DEAD_SESSIONS; d++)
      dead_left += count_session(dead[d]);
    int live_have = count_session(live);
    left += dead_left > 0;
    lost += live_have != 2 * PER_SESSION;
    cr_expect_eq(dead_left, 0, "trial %d: %d resources of dead sessions left after two gcs", t, dead_left);
    cr_expect_eq(live_have, 2 * PER_SESSION, "trial %d: the live session lost %d resources", t,
                 2 * PER_SESSION - live_have);
    char entry[64];
    snprintf(entry, sizeof(entry), "CHAOS_TAG=%s", tag);
    cr_expect_eq(cli_count_env_processes(entry), 0, "trial %d: gc left processes", t);
    /* End the live session: release its lock and let the next gc take it. */
    cr_assert_eq(ag_registry_remove(st, live, NULL), 0);
    close(live_fd);
    const struct dk_filter f[] = {{"label", sc.test_label}, {NULL, NULL}};
    for (enum dk_kind k = DK_CONTAINER; k <= DK_VOLUME; k++) {
      struct dk_list *l = NULL;
      if (dk_list(sc.dk, k, f, &l, NULL) == 0) {
        for (size_t i = 0; i < l->n; i++)
          (void)dk_remove(sc.dk, k, l->items[i].id, NULL); /* the live session's, counted above */
        dk_list_free(l);
      }
    }
  }
  ag_state_free(st);
  chaos_report("gc: the engine restarted in the middle", TRIALS, left + lost,
               "exit codes %s; %d dead sessions of %d resources each per trial, and one live one that lost nothing "
               "in %d of %d trials",
               codes, DEAD_SESSIONS, 2 * PER_SESSION, TRIALS - lost, TRIALS);
}
