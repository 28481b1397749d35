/* Who "this host" is (issue 19), as trials against a private engine (gc never runs on the shared one): the host's gc
 * spares the live session of an agent that runs in its own PID namespace with this machine's hostname and id (a real
 * agent under unshare), and the live sessions of a cloned machine with the same hostname on the same engine (its
 * labels: another machine id and boot, the same PID namespace inode, an owner pid that does not exist here). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "scenario_engine.h"
#include "session.h"

#define IMAGE "cleanup-test/busybox:latest"

static struct scenario sc;

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  scenario_setup(&sc);
  scenario_private_engine_start(&sc);
}
static void teardown(void) {
  scenario_private_engine_stop(&sc);
  scenario_teardown(&sc);
}

TestSuite(identity, .init = setup, .fini = teardown, .timeout = 400 * AG_TIMEOUT_SCALE);

#define PIDNS_TRIALS 3

/* Starts the agent in a PID namespace of its own (unshare; SIGTERM to unshare reaches the agent), with its own state
 * dir, on the private engine; its command makes a container through the proxy and waits. */
static pid_t start_in_own_pidns(const char *state, const char *script) {
  char err[128];
  snprintf(err, sizeof(err), "%s/ns-err", sc.dir);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    FILE *e = freopen(err, "w", stderr);
    (void)e; /* without it the agent's lines go to the test's stderr */
    execlp("unshare", "unshare", "--pid", "--mount-proc", "--kill-child=SIGTERM", AG_BINARY, "--state-dir", state,
           "--cgroup-root", sc.cgroup_root, "--docker-host", sc.docker_host, "run", "--", script, (char *)NULL);
    _exit(99);
  }
  return pid;
}

/* One trial: 0 when the host's gc spared the live session and the agent's own end left nothing; *spared says the
 * first. */
static int pidns_trial(int t, bool *spared) {
  char state[96], marker[32], body[512];
  snprintf(state, sizeof(state), "%.60s/ns-state-%d", sc.dir, t);
  snprintf(marker, sizeof(marker), "ns-%d", t);
  snprintf(body, sizeof(body),
           "docker run -d --network none --label \"$TEST_LABEL\" " IMAGE " sleep 1000 >/dev/null || exit 90\n"
           "echo $CLEANUP_AGENT_SESSION > $OUT/%s.tmp && mv $OUT/%s.tmp $OUT/%s\nsleep 1000\n",
           marker, marker, marker);
  pid_t unshare = start_in_own_pidns(state, scenario_script(&sc, "ns.sh", body));
  char id[128] = "";
  bool started = scenario_read_marker(&sc, marker, 60000, id);
  if (started)
    (void)scenario_run(&sc, (const char *[]){"gc", NULL}); /* the host's nightly gc, its own state dir */
  *spared = started && scenario_count_docker(&sc, DK_CONTAINER, id) == 1;
  if (!*spared)
    fprintf(stderr, "chaos: own PID namespace, trial %d: started %d; gc said: %s\n", t, started, scenario_stderr(&sc));
  kill(unshare, SIGTERM); /* our own child: the agent ends its session */
  int rc = scenario_wait_bounded(unshare, 60000);
  struct scenario ns = sc; /* the agent's own state dir, for scenario_count_state_files */
  snprintf(ns.state, sizeof(ns.state), "%.60s/ns-state-%d", sc.dir, t);
  int left = 1;
  for (int waited = 0; waited < 30000 && left; waited += 200) {
    left = (started ? scenario_count_docker(&sc, DK_CONTAINER, id) : 0) + scenario_count_state_files(&ns);
    if (left)
      chaos_sleep_ms(200);
  }
  if (left)
    fprintf(stderr, "chaos: own PID namespace, trial %d: unshare exited %d, %d left\n", t, rc, left);
  return left;
}

Test(identity, an_agent_in_its_own_pid_namespace_keeps_its_live_session_through_the_hosts_gc) {
  int bad = 0, spared = 0;
  for (int t = 0; t < PIDNS_TRIALS; t++) {
    bool s = false;
    int left = pidns_trial(t, &s);
    spared += s;
    bad += left > 0 || !s;
    cr_expect(s, "trial %d: the host's gc removed a live session of an agent in its own PID namespace", t);
    cr_expect_eq(left, 0, "trial %d: the agent's end left %d things", t, left);
  }
  chaos_report("agent in its own PID namespace (unshare, same hostname and machine id), the host's gc runs",
               PIDNS_TRIALS, bad,
               "its live container survived the host's gc in %d of %d; the agent's own end (SIGTERM) left nothing",
               spared, PIDNS_TRIALS);
}

/* ---- a cloned machine with the same hostname on the same engine ----------------------------------------------- */

#define CLONE_TRIALS 10

/* A running container of a live session on a cloned machine: this hostname and PID namespace inode (the initial one
 * is the same on every machine), another machine id and boot id, an owner pid that does not exist here. */
static void clone_session(const struct ag_owner *self, const char *id, pid_t gone, bool clone) {
  char other_machine[33], other_boot[64], cmd[2048];
  cr_assert_eq(ag_session_id_new(other_machine, NULL), 0);
  cr_assert_eq(ag_session_id_new(other_boot, NULL), 0);
  if (!clone) { /* the control: this machine, this boot */
    snprintf(other_machine, sizeof(other_machine), "%s", self->machine);
    snprintf(other_boot, sizeof(other_boot), "%s", self->boot_id);
  }
  snprintf(cmd, sizeof(cmd),
           "docker -H %s run -d --network none --label '%s' --label " AG_LABEL_SESSION "=%s --label " AG_LABEL_MANAGED
           "=true --label " AG_LABEL_HOST "=%s --label " AG_LABEL_MACHINE "=%s --label " AG_LABEL_BOOT_ID
           "=%s --label " AG_LABEL_PIDNS "=%llu --label " AG_LABEL_OWNER_PID "=%d --label " AG_LABEL_OWNER_START
           "=1 --label " AG_LABEL_CREATED "=%lld " IMAGE " sleep 1000 >/dev/null",
           sc.docker_host, sc.test_label, id, self->host, other_machine, other_boot, (unsigned long long)self->pidns,
           (int)gone, (long long)time(NULL) - 3600);
  cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

Test(identity, a_cloned_machine_with_the_same_hostname_keeps_its_live_sessions_through_gc) {
  struct ag_owner self;
  cr_assert_eq(ag_owner_self(&self, NULL), 0);
  cr_assert_str_neq(self.machine, "", "this test needs /etc/machine-id");
  pid_t gone = fork(); /* a pid that ran and is gone: it proves an owner dead only on its own machine */
  if (gone == 0)
    _exit(0);
  waitpid(gone, NULL, 0);
  int bad = 0;
  for (int t = 0; t < CLONE_TRIALS; t++) {
    char id[33];
    cr_assert_eq(ag_session_id_new(id, NULL), 0);
    clone_session(&self, id, gone, true);
    (void)scenario_run(&sc, (const char *[]){"gc", NULL});
    bool spared = scenario_count_docker(&sc, DK_CONTAINER, id) == 1;
    bad += !spared;
    cr_expect(spared, "trial %d: gc removed a cloned machine's live session: %s", t, scenario_stderr(&sc));
  }
  /* The control: the same labels with this machine's id and boot are collected (the owner is gone), so the trials
   * above were judged by the machine id, not spared for another reason. */
  char control[33];
  cr_assert_eq(ag_session_id_new(control, NULL), 0);
  clone_session(&self, control, gone, false);
  (void)scenario_run(&sc, (const char *[]){"gc", NULL});
  cr_expect_eq(scenario_count_docker(&sc, DK_CONTAINER, control), 0,
               "gc spared a dead session of this machine with the same labels: the trials prove nothing: %s",
               scenario_stderr(&sc));
  chaos_report("same-hostname machines on one engine (a clone's live session: other machine id and boot, same "
               "hostname and PID namespace inode, owner pid gone here), gc runs",
               CLONE_TRIALS, bad,
               "its live container survived gc in %d of %d; the same labels with this machine's id and boot were "
               "collected",
               CLONE_TRIALS - bad, CLONE_TRIALS);
}
