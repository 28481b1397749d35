/* gc against a real engine of its own (a private dockerd: gc on the shared engine would collect a developer's real
 * leftovers and what other suites stage): a population of foreign resources next to dead, rebooted-host and expired
 * ones. gc --dry-run lists exactly the collectable ones and removes nothing; gc removes exactly those. The running
 * containers it removes are killed by the engine (forced DELETE), as its events show. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scenario.h"
#include "scenario_engine.h"
#include "session.h"
#include "test_label.h"

static struct scenario sc;

static void setup(void) {
  scenario_setup(&sc);
  scenario_private_engine_start(&sc);
}
static void teardown(void) {
  scenario_private_engine_stop(&sc);
  scenario_teardown(&sc);
}

TestSuite(gc, .init = setup, .fini = teardown, .timeout = 300 * AG_TIMEOUT_SCALE);

#define MAX_RES 128
struct res {
  enum dk_kind kind;
  char *id;
  bool collectable;
};
static struct res pop[MAX_RES];
static size_t npop;

static char host[256], boot[64], l_machine[96], l_pidns[64];
#define DEAD "dddddddddddddddddddddddddddddddd"
#define LIVE "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define REBOOTED "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define EXPIRED "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
#define GONE "cccccccccccccccccccccccccccccccc"
#define OTHER "0000000000000000000000000000000f"

/* Adds a resource with the test label and labels, in a container state of "created", "running" or "exited". */
static void add(enum dk_kind kind, const char *state, bool collectable, const char *const *labels) {
  const char *all[16];
  size_t n = 0;
  all[n++] = sc.test_label;
  for (size_t i = 0; labels[i]; i++)
    all[n++] = labels[i];
  all[n] = NULL;
  char *id = NULL;
  _cleanup_error_ ca_error *err = NULL;
  if (kind == DK_CONTAINER) {
    bool exits = state && streq(state, "exited");
    struct dk_container_spec spec = {
        .image = "cleanup-test/busybox:latest",
        .cmd = exits ? (const char *[]){"true", NULL} : (const char *[]){"sleep", "1000", NULL},
        .labels = all,
        .network_mode = "none",
    };
    cr_assert_eq(dk_container_create(sc.dk, &spec, &id, &err), 0, "%s", err ? err->msg : "");
    if (state && !streq(state, "created")) {
      struct dk_wait *w = NULL;
      if (exits)
        cr_assert_eq(dk_wait_begin(sc.dk, id, DK_WAIT_NEXT_EXIT, &w, &err), 0, "%s", err ? err->msg : "");
      cr_assert_eq(dk_container_start(sc.dk, id, &err), 0, "%s", err ? err->msg : "");
      if (exits) {
        int code;
        cr_assert_eq(dk_wait_end(w, NULL, &code, &err), 0, "%s", err ? err->msg : "");
        dk_wait_free(w);
      }
    }
  } else if (kind == DK_NETWORK) {
    char name[128];
    snprintf(name, sizeof(name), "gc-test-%zu-%.32s", npop, sc.test_label + strlen(AG_TEST_LABEL_KEY "="));
    cr_assert_eq(dk_network_create(sc.dk, name, all, true, &id, &err), 0, "%s", err ? err->msg : "");
  } else {
    cr_assert_eq(dk_volume_create(sc.dk, NULL, all, &id, &err), 0, "%s", err ? err->msg : "");
  }
  cr_assert_lt(npop, MAX_RES);
  pop[npop++] = (struct res){kind, id, collectable};
}

static bool exists(const struct res *r) {
  struct dk_list *l = NULL;
  const struct dk_filter f[] = {{"label", sc.test_label}, {NULL, NULL}};
  cr_assert_eq(dk_list(sc.dk, r->kind, f, &l, NULL), 0);
  bool found = false;
  for (size_t i = 0; i < l->n; i++)
    found |= streq(l->items[i].id, r->id);
  dk_list_free(l);
  return found;
}

static int live_lock = -1;

static void populate(void) {
  struct ag_owner self;
  cr_assert_eq(ag_owner_self(&self, NULL), 0);
  snprintf(host, sizeof(host), "%s", self.host);
  snprintf(boot, sizeof(boot), "%s", self.boot_id);
  /* The owner rules judge only what names this machine and PID namespace (issue 19). */
  snprintf(l_machine, sizeof(l_machine), AG_LABEL_MACHINE "=%s", self.machine);
  snprintf(l_pidns, sizeof(l_pidns), AG_LABEL_PIDNS "=%llu", (unsigned long long)self.pidns);
  char l_host[300], l_boot[96], l_other_boot[96] = "io.cleanup-agent.boot-id=00000000-dead-beef-0000-000000000000";
  snprintf(l_host, sizeof(l_host), "io.cleanup-agent.host=%s", host);
  snprintf(l_boot, sizeof(l_boot), "io.cleanup-agent.boot-id=%s", boot);

  /* The live session: its lock held by this test process; the dead one: its registry here, lock free. */
  struct ag_state *st = NULL;
  cr_assert_eq(ag_state_open(sc.state, &st, NULL), 0);
  cr_assert_eq(ag_session_lock(st, LIVE, true, &live_lock, NULL), 0);
  int dead_lock = -1;
  cr_assert_eq(ag_session_lock(st, DEAD, true, &dead_lock, NULL), 0);
  close(dead_lock);
  ag_state_free(st);
  /* A process that existed and is gone: its pid and start time prove the owner dead. */
  pid_t gone = fork();
  if (gone == 0)
    _exit(0);
  waitpid(gone, NULL, 0);
  char l_gone_pid[64];
  snprintf(l_gone_pid, sizeof(l_gone_pid), "io.cleanup-agent.owner-pid=%d", (int)gone);

  /* ---- foreign: 56 resources that must survive ---- */
  const char *states[] = {"created", "running", "exited"};
  for (int i = 0; i < 10; i++)
    add(DK_CONTAINER, states[i % 3], false, (const char *[]){NULL}); /* unlabeled */
  const char *invalid[] = {"io.cleanup-agent.session=../../../../etc/passwd",
                           "io.cleanup-agent.session=",
                           "io.cleanup-agent.session=DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD",
                           "io.cleanup-agent.session=ddddddddddddddddddddddddddddddd",
                           "io.cleanup-agent.session=ddddddddddddddddddddddddddddddddd",
                           "io.cleanup-agent.session=dead",
                           "io.cleanup-agent.session=dddddddddddddddd dddddddddddddddd",
                           "io.cleanup-agent.session=dddddddddddddddddddddddddddddddé"};
  for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
    add(DK_CONTAINER, "created", false, (const char *[]){invalid[i], "io.cleanup-agent.expires=1", NULL});
  const char *other_ns[] = {"com.example.session=" DEAD, "io.cleanup-agent-evil.session=" DEAD,
                            "io.cleanup.agent.session=" DEAD, "session=" DEAD, "io.cleanup-agent.sessions=" DEAD};
  for (size_t i = 0; i < ELEMENTSOF(other_ns); i++)
    add(DK_CONTAINER, "created", false, (const char *[]){other_ns[i], NULL});
  for (int i = 0; i < 5; i++)
    add(DK_CONTAINER, states[i % 3], false,
        (const char *[]){"io.cleanup-agent.session=" DEAD, "io.cleanup-agent.keep=true", NULL});
  for (int i = 0; i < 6; i++)
    add(DK_CONTAINER, states[i % 3], false,
        (const char *[]){"io.cleanup-agent.session=" LIVE, l_host, l_boot, "io.cleanup-agent.expires=1", NULL});
  for (int i = 0; i < 6; i++)
    add(DK_CONTAINER, states[i % 3], false,
        (const char *[]){"io.cleanup-agent.session=" OTHER, "io.cleanup-agent.host=runner-elsewhere", l_other_boot,
                         "io.cleanup-agent.owner-pid=1", "io.cleanup-agent.owner-start=1", NULL});
  for (int i = 0; i < 3; i++) {
    add(DK_NETWORK, NULL, false, (const char *[]){"io.cleanup-agent.session=" LIVE, NULL});
    add(DK_VOLUME, NULL, false,
        (const char *[]){"io.cleanup-agent.session=" OTHER, "io.cleanup-agent.host=elsewhere", NULL});
  }
  add(DK_NETWORK, NULL, false, (const char *[]){"io.cleanup-agent.session=../x", NULL});
  add(DK_VOLUME, NULL, false, (const char *[]){"io.cleanup-agent.session=" DEAD, "io.cleanup-agent.keep=true", NULL});
  add(DK_NETWORK, NULL, false, (const char *[]){NULL});
  add(DK_VOLUME, NULL, false, (const char *[]){NULL});
  add(DK_VOLUME, NULL, false, (const char *[]){"io.cleanup-agent.session=" LIVE, NULL});

  /* ---- collectable: 16 resources ---- */
  for (int i = 0; i < 3; i++)
    add(DK_CONTAINER, states[i], true, (const char *[]){"io.cleanup-agent.session=" DEAD, NULL});
  add(DK_NETWORK, NULL, true, (const char *[]){"io.cleanup-agent.session=" DEAD, NULL});
  add(DK_VOLUME, NULL, true, (const char *[]){"io.cleanup-agent.session=" DEAD, NULL});
  for (int i = 0; i < 2; i++)
    add(DK_CONTAINER, states[i + 1], true,
        (const char *[]){"io.cleanup-agent.session=" REBOOTED, l_host, l_machine, l_other_boot, NULL});
  add(DK_VOLUME, NULL, true,
      (const char *[]){"io.cleanup-agent.session=" REBOOTED, l_host, l_machine, l_other_boot, NULL});
  for (int i = 0; i < 3; i++)
    add(DK_CONTAINER, states[i], true,
        (const char *[]){"io.cleanup-agent.session=" EXPIRED, "io.cleanup-agent.host=runner-elsewhere",
                         "io.cleanup-agent.expires=1000", NULL});
  add(DK_NETWORK, NULL, true,
      (const char *[]){"io.cleanup-agent.session=" EXPIRED, "io.cleanup-agent.expires=1000", NULL});
  for (int i = 0; i < 2; i++)
    add(DK_CONTAINER, states[i], true,
        (const char *[]){"io.cleanup-agent.session=" GONE, l_host, l_machine, l_boot, l_pidns, l_gone_pid,
                         "io.cleanup-agent.owner-start=1", NULL});
  /* The dead session's cgroup leaf, and the leaf of a session this state dir does not know (an agent with another
   * --state-dir may be running it): only the first is ours to collect. */
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "mkdir -p %s/run-%s %s/run-%s", sc.cgroup_root, DEAD, sc.cgroup_root, OTHER);
  cr_assert_eq(system(cmd), 0);
  sleep(1); /* everything above was created before the scan begins */
}

static int count(bool collectable) {
  int n = 0;
  for (size_t i = 0; i < npop; i++)
    n += pop[i].collectable == collectable;
  return n;
}

static cJSON *read_json_out(void) {
  char path[128];
  snprintf(path, sizeof(path), "%s/out", sc.dir);
  char *text = NULL;
  size_t len;
  cr_assert_eq(ca_read_file(path, 1 << 24, &text, &len, NULL), 0);
  cJSON *j = cJSON_Parse(text);
  cr_assert_not_null(j, "gc --format json printed something that is not JSON:\n%s", text);
  free(text);
  return j;
}

Test(gc, dry_run_lists_exactly_the_collectable_and_gc_removes_exactly_them) {
  populate();
  cr_assert_geq(count(false), 50, "the foreign population must be at least 50");

  int rc = scenario_run(&sc, (const char *[]){"gc", "--dry-run", "--format", "json", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cJSON *j = read_json_out();
  cJSON *items = cJSON_GetObjectItem(j, "items"), *it;
  /* Every collectable resource of ours is listed with a rule; no foreign one of ours is. */
  for (size_t i = 0; i < npop; i++) {
    bool listed = false;
    cJSON_ArrayForEach(it, items) {
      if (streq(cJSON_GetObjectItem(it, "id")->valuestring, pop[i].id)) {
        listed = true;
        cr_assert_str_eq(cJSON_GetObjectItem(it, "result")->valuestring, "would-remove");
        cr_assert_str_neq(cJSON_GetObjectItem(it, "rule")->valuestring, "");
      }
    }
    cr_assert_eq(listed, pop[i].collectable, "resource %zu (%s) listed=%d collectable=%d", i, pop[i].id, listed,
                 pop[i].collectable);
  }
  bool leaf_listed = false, registry_listed = false;
  cJSON_ArrayForEach(it, items) {
    const char *kind = cJSON_GetObjectItem(it, "kind")->valuestring, *id = cJSON_GetObjectItem(it, "id")->valuestring;
    leaf_listed |= streq(kind, "cgroup") && streq(id, DEAD);
    registry_listed |= streq(kind, "registry") && streq(id, DEAD);
    cr_assert(!streq(id, LIVE), "the live session was listed");
    cr_assert(!(streq(kind, "cgroup") && streq(id, OTHER)), "a leaf of an unknown session was listed");
  }
  cr_assert(leaf_listed && registry_listed, "the dead session's cgroup and registry are listed");
  cJSON_Delete(j);
  for (size_t i = 0; i < npop; i++)
    cr_assert(exists(&pop[i]), "--dry-run removed resource %zu", i);

  char metrics[128];
  snprintf(metrics, sizeof(metrics), "%s/gc.prom", sc.dir);
  rc = scenario_run(&sc, (const char *[]){"gc", "--parallel", "4", "--metrics-file", metrics, NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  for (size_t i = 0; i < npop; i++)
    cr_assert_eq(exists(&pop[i]), !pop[i].collectable, "resource %zu (%s): exists=%d collectable=%d", i, pop[i].id,
                 exists(&pop[i]), pop[i].collectable);
  cr_assert_not(scenario_cgroup_exists(&sc, DEAD), "the dead session's cgroup leaf is left");
  cr_assert(scenario_cgroup_exists(&sc, OTHER), "the leaf of a session unknown to this state dir was removed");
  char path[256];
  snprintf(path, sizeof(path), "%s/sessions/%s.lock", sc.state, DEAD);
  cr_assert_eq(access(path, F_OK), -1, "the dead session's registry files are left");
  snprintf(path, sizeof(path), "%s/sessions/%s.lock", sc.state, LIVE);
  cr_assert_eq(access(path, F_OK), 0, "the live session's lock file was removed");

  char *prom = NULL;
  size_t len;
  cr_assert_eq(ca_read_file(metrics, 1 << 20, &prom, &len, NULL), 0);
  cr_assert_not_null(strstr(prom, "cleanup_agent_gc_failed{kind=\"container\"} 0\n"), "%s", prom);
  cr_assert_not_null(strstr(prom, "cleanup_agent_gc_last_success_timestamp_seconds "), "%s", prom);
  char want[96];
  int ours = 0;
  for (size_t i = 0; i < npop; i++)
    ours += pop[i].collectable && pop[i].kind == DK_CONTAINER;
  snprintf(want, sizeof(want), "cleanup_agent_gc_removed{kind=\"container\"} ");
  const char *p = strstr(prom, want);
  cr_assert_not_null(p, "%s", prom);
  cr_assert_geq(atoi(p + strlen(want)), ours, "%s", prom);
  free(prom);
  close(live_lock);
}

Test(gc, a_second_gc_does_not_run_and_says_who_holds_the_lock) {
  char path[256];
  snprintf(path, sizeof(path), "%s", sc.state);
  struct ag_state *st = NULL;
  cr_assert_eq(ag_state_open(sc.state, &st, NULL), 0); /* creates the state dir */
  ag_state_free(st);
  snprintf(path, sizeof(path), "%s/gc.lock", sc.state);
  int fd = open(path, O_RDWR | O_CREAT, 0600);
  cr_assert_eq(flock(fd, LOCK_EX), 0);
  cr_assert_eq(write(fd, "pid 4242, started 1\n", 20), 20);
  int rc = scenario_run(&sc, (const char *[]){"gc", NULL});
  cr_assert_eq(rc, 1);
  cr_assert_not_null(strstr(scenario_stderr(&sc), "another gc is running (pid 4242"), "%s", scenario_stderr(&sc));
  close(fd);
  rc = scenario_run(&sc, (const char *[]){"gc", "--dry-run", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
}

Test(gc, usage_errors_exit_2_with_one_line) {
  const char *bad[][4] = {{"gc", "--older-than", "soon", NULL},
                          {"gc", "--format", "yaml", NULL},
                          {"gc", "--parallel", "0", NULL},
                          {"gc", "extra", NULL}};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    int rc = scenario_run(&sc, bad[i]);
    cr_assert_eq(rc, 2, "case %zu exited %d", i, rc);
    const char *e = scenario_stderr(&sc);
    cr_assert_eq(strchr(e, '\n'), e + strlen(e) - 1, "case %zu: not one line: %s", i, e);
  }
}

/* ---- a running container is killed by the engine: gc sends the forced DELETE, the engine kills it ---- */

#define MAX_WATCHED 4
/* What the engine's event stream said about each watched container, in order. */
struct watch {
  pthread_mutex_t lock;
  const char *ids[MAX_WATCHED];
  size_t n;
  char actions[MAX_WATCHED][128]; /* "kill:9 die:137 destroy " */
  struct dk_client *c;
  struct dk_cancel cancel;
  const struct dk_filter *filters;
  int64_t since_us;
  size_t want_destroyed; /* stop once this many watched containers are destroyed */
  int result;
  ca_error *err;
};

static int on_container_event(void *ud, const struct dk_event *ev) {
  struct watch *w = ud;
  pthread_mutex_lock(&w->lock);
  size_t destroyed = 0;
  for (size_t i = 0; i < w->n; i++) {
    char *log = w->actions[i];
    if (streq(ev->id, w->ids[i])) {
      const char *detail = streq(ev->action, "kill")  ? dk_labels_get(&ev->attributes, "signal")
                           : streq(ev->action, "die") ? dk_labels_get(&ev->attributes, "exitCode")
                                                      : NULL;
      size_t len = strlen(log);
      snprintf(log + len, sizeof(w->actions[i]) - len, "%s%s%s ", ev->action, detail ? ":" : "", detail ? detail : "");
    }
    destroyed += strstr(log, "destroy") != NULL;
  }
  pthread_mutex_unlock(&w->lock);
  return destroyed >= w->want_destroyed ? 1 : 0;
}

static void *events_thread(void *arg) {
  struct watch *w = arg;
  struct dk_events_options o = {
      .filters = w->filters, .since_us = w->since_us, .on_event = on_container_event, .userdata = w};
  w->result = dk_events(w->c, &o, &w->cancel, &w->err);
  return NULL;
}

static char *start_container(const char *const *labels) {
  const char *all[8] = {sc.test_label};
  for (size_t i = 0; labels[i]; i++)
    all[i + 1] = labels[i];
  struct dk_container_spec spec = {
      .image = "cleanup-test/busybox:latest",
      .cmd = (const char *[]){"sleep", "1000", NULL},
      .labels = all,
      .network_mode = "none",
  };
  char *id = NULL;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(dk_container_create(sc.dk, &spec, &id, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq(dk_container_start(sc.dk, id, &err), 0, "%s", err ? err->msg : "");
  return id;
}

static int container_pid(const char *id) {
  struct dk_container_info *info = NULL;
  if (dk_container_inspect(sc.dk, id, &info, NULL) < 0)
    return -1;
  int pid = info->running ? info->pid : 0;
  dk_container_info_free(info);
  return pid;
}

Test(gc, running_containers_of_a_dead_session_are_killed_by_the_engine) {
  /* The dead session: its registry here, its lock free. */
  struct ag_state *st = NULL;
  int dead_lock = -1;
  cr_assert_eq(ag_state_open(sc.state, &st, NULL), 0);
  cr_assert_eq(ag_session_lock(st, DEAD, true, &dead_lock, NULL), 0);
  close(dead_lock);
  ag_state_free(st);
  const char *dead[] = {"io.cleanup-agent.session=" DEAD, NULL};
  char *ours[2] = {start_container(dead), start_container(dead)};
  char *foreign = start_container((const char *[]){NULL});
  int foreign_pid = container_pid(foreign);
  cr_assert_gt(foreign_pid, 0);

  const struct dk_filter f[] = {{"type", "container"}, {"label", sc.test_label}, {0}};
  struct watch w = {.lock = PTHREAD_MUTEX_INITIALIZER,
                    .ids = {ours[0], ours[1], foreign},
                    .n = 3,
                    .filters = f,
                    .want_destroyed = ELEMENTSOF(ours)};
  w.since_us = (int64_t)ca_now_realtime_usec();
  w.cancel.deadline_usec = ca_now_monotonic_usec() + 60 * 1000000ULL;
  cr_assert_eq(dk_client_clone(sc.dk, &w.c, NULL), 0);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, events_thread, &w), 0);

  int rc = scenario_run(&sc, (const char *[]){"gc", NULL});
  pthread_join(t, NULL);
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert_eq(w.result, 0, "events: %s", w.err ? w.err->msg : "");
  /* The engine's own kill (SIGKILL, as a forced removal sends), then the exit it saw, then the removal: a process
   * killed behind the engine's back would show a die with no kill before it. */
  for (size_t i = 0; i < ELEMENTSOF(ours); i++) {
    cr_assert_str_eq(w.actions[i], "kill:9 die:137 destroy ", "container %zu: events %s", i, w.actions[i]);
    cr_assert_eq(container_pid(ours[i]), -1, "container %zu is still there", i);
  }
  cr_assert_str_empty(w.actions[2], "the foreign container saw: %s", w.actions[2]);
  cr_assert_eq(container_pid(foreign), foreign_pid, "the foreign container was stopped or restarted");
  dk_client_free(w.c);
  ca_error_free(w.err);
  free(ours[0]);
  free(ours[1]);
  free(foreign);
}
