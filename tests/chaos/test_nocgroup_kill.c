/* SIGKILL in the no-cgroup mode (issue 19): `run` tracks its command by process group (the cgroup2 mount is read-only
 * in the agent's mount namespace, as for a non-root runner without delegation, the way tests/agent/test_no_cgroup.c
 * forces it) and is SIGKILLed at a random moment of its life: with its guardian left to clean up, and with the
 * guardian killed too (every process that holds a lock of the trial's state dir), followed by the next start (in the
 * same mode). The command is a tree that outlives its parents: a double-forked TERM-ignoring daemon and its child, a
 * background sleeper, the main process. A trial "left something" when any process carrying its CHAOS_TAG, or any file
 * of its state dir's sessions/, is still there once the guardian exited (or the next start's watch ended). Trials
 * run one after another; CHAOS_TRIALS sets how many (default 20 per variant). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "chaos.h"

#define TRIALS_DEFAULT 20
#define MAX_DELAY_MS 1500

static struct scenario sc;
static char tag[48];

static void setup(void) {
  scenario_setup(&sc);
}
static void teardown(void) {
  scenario_teardown(&sc);
}

TestSuite(nocgroup_kill, .init = setup, .fini = teardown, .timeout = 600 * AG_TIMEOUT_SCALE);

/* In the agent's child before exec: the trial's tag, and the cgroup2 mount read-only. */
static void without_cgroup(struct scenario *s) {
  setenv("CHAOS_TAG", tag, 1);
  scenario_without_cgroup(s);
}

static const char tree[] = "( trap '' TERM HUP; ( trap '' TERM HUP; sleep 1000 & exec sleep 1000 ) & ) &\n"
                           "sleep 1000 &\n"
                           "exec sleep 1000\n";

/* Whether a registry of the trial's state dir records the command's process group now. */
static bool group_recorded(void) {
  char dir[200];
  snprintf(dir, sizeof(dir), "%s/sessions", sc.state);
  DIR *d = opendir(dir);
  bool found = false;
  struct dirent *de;
  while (d && !found && (de = readdir(d))) {
    char path[512];
    size_t n = strlen(de->d_name);
    if (n < 5 || strcmp(de->d_name + n - 5, ".json") != 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    found = strstr(scenario_read_text(path), "\"pgrp\"") != NULL;
  }
  if (d)
    closedir(d);
  return found;
}

/* For the report of a trial that left state files: their names, which say how far the session came, whether a lock
 * is still held, and the reason a registry kept (collect_error), if any. */
static const char *state_names(char *buf, size_t len) {
  char dir[200];
  snprintf(dir, sizeof(dir), "%s/sessions", sc.state);
  DIR *d = opendir(dir);
  size_t n = snprintf(buf, len, "%d lock holders;", scenario_count_lock_holders(&sc));
  for (struct dirent *de; d && n < len && (de = readdir(d));) {
    if (streq(de->d_name, ".") || streq(de->d_name, ".."))
      continue;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    /* "collect_error": "<why>" (the value ends at its first quote: enough to read it) */
    const char *why = strstr(de->d_name, ".json") ? strstr(scenario_read_text(path), "\"collect_error\"") : NULL;
    const char *q = why ? strchr(why + 15, '"') : NULL, *end = q ? strchr(q + 1, '"') : NULL;
    n += (size_t)snprintf(buf + n, len - n, " %s%s%.*s", de->d_name, end ? " kept: " : "",
                          end ? (int)CA_MIN(end - q - 1, 300) : 0, end ? q + 1 : "");
  }
  if (d)
    closedir(d);
  return buf;
}

/* Waits up to timeout_ms for the trial to leave nothing; the count at the end. */
static int wait_clean(struct chaos_left *l, int timeout_ms) {
  for (int waited = 0;; waited += 100) {
    chaos_count_left(&sc, tag, NULL, l);
    if (chaos_left_total(l) == 0 || waited >= timeout_ms)
      return chaos_left_total(l);
    chaos_sleep_ms(100);
  }
}

static void trials(bool kill_guardian, const char *scenario) {
  (void)chaos_seed();
  const char *script = scenario_script(&sc, "tree.sh", tree);
  int n = getenv("CHAOS_TRIALS") ? atoi(getenv("CHAOS_TRIALS")) : TRIALS_DEFAULT, left = 0, up = 0, in_window = 0;
  for (int t = 0; t < n; t++) {
    snprintf(tag, sizeof(tag), "nocg-%d-%d-%d", (int)getpid(), kill_guardian, t);
    int delay = (int)chaos_rand(MAX_DELAY_MS + 1);
    pid_t agent = scenario_start_in(&sc, (const char *[]){"run", "--", script, NULL}, without_cgroup);
    chaos_sleep_ms(delay);
    struct chaos_left before;
    chaos_count_left(&sc, tag, NULL, &before);
    up += before.processes >= 5; /* the agent and the tree's 4 (the guardian too, once forked) */
    if (kill_guardian)
      scenario_kill_lock_holders(&sc); /* the guardian (and the agent, when it holds its lock already) */
    /* The command running with its group not recorded: run closes that window (the command execs only once the
     * registry names its group). Read last before the kill: the count and the walk above take a while under load. */
    bool window = !group_recorded();
    kill(agent, SIGKILL); /* our own child */
    int rc = scenario_wait(agent);
    if (kill_guardian) {
      scenario_kill_lock_holders(&sc); /* a guardian or a command not exec'd yet, forked since */
      int next = scenario_wait(scenario_start_in(&sc, (const char *[]){"run", "--", "true", NULL}, without_cgroup));
      cr_assert_eq(next, 0, "trial %d: the next start exited %d: %s", t, next, scenario_stderr(&sc));
    }
    struct chaos_left l;
    /* the guardian, or the next start's watch of late creates, takes its time */
    if (wait_clean(&l, 20000) > 0) {
      char what[256], names[1024];
      left++;
      in_window += window;
      fprintf(stderr,
              "chaos: %s: trial %d (kill at %d ms, agent exit %d%s) left %s (state files:%s); the agent said:\n%s\n",
              scenario, t, delay, rc, window ? ", before the group was recorded" : "",
              chaos_left_describe(&l, what, sizeof(what)), state_names(names, sizeof(names)), scenario_stderr(&sc));
      chaos_sweep(&sc, tag, NULL);
    }
  }
  chaos_report(scenario, n, left,
               "kill at a random moment in the first %d ms, the command's tree up in %d; %d of the leftovers were "
               "killed with the command running and its process group not recorded (the command execs only once it "
               "is); process tracking only",
               MAX_DELAY_MS, up, in_window);
  cr_expect_eq(left, 0, "%d of %d trials left something behind (%d with the group not recorded)", left, n, in_window);
}

Test(nocgroup_kill, sigkill_of_run_without_cgroup_guardian_cleans_up) {
  trials(false, "SIGKILL of run in the no-cgroup mode, the guardian cleans up");
}

Test(nocgroup_kill, sigkill_of_run_and_guardian_without_cgroup_next_start_cleans_up) {
  trials(true, "SIGKILL of run and its guardian in the no-cgroup mode, the next start cleans up");
}
