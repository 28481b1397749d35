/* Without a cgroup, the same promises (issue 19): a run that tracks its command by process group (the cgroup mount is
 * read-only in the agent's mount namespace, as for a non-root runner without delegation) and is SIGKILLed leaves no
 * process behind: its guardian kills the recorded process group, and with the guardian SIGKILLed too, the next start
 * does. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_run.h"
#include "scenario.h"
#include "scenario_engine.h"
#include "session.h"

static struct scenario sc;

/* Kills what a failed test left of session id (the test's own processes, found by their session). */
static void kill_leftovers(const char *id) {
  pid_t pids[256];
  int n = cli_find_session_processes(id, pids, 256);
  for (int i = 0; i < n && i < 256; i++)
    kill(pids[i], SIGKILL);
}

static char last_id[128];

static void setup(void) {
  last_id[0] = '\0';
  scenario_setup(&sc);
}
static void teardown(void) {
  if (last_id[0])
    kill_leftovers(last_id);
  scenario_private_engine_stop(&sc); /* nothing when the test used the shared engine */
  scenario_teardown(&sc);
}

TestSuite(no_cgroup, .init = setup, .fini = teardown, .timeout = 120 * AG_TIMEOUT_SCALE);

/* In the agent's child before exec: the cgroup2 mount read-only (scenario_without_cgroup). */
static void without_cgroup(struct scenario *s) {
  scenario_without_cgroup(s);
}

static pid_t start_without_cgroup(const char *const *args) {
  return scenario_start_in(&sc, args, without_cgroup);
}

/* A command whose tree outlives its parents: a double-forked, TERM-ignoring daemon and its child, a background
 * sleeper, and the main process sleeping on. */
static const char tree[] = "( trap '' TERM HUP; ( trap '' TERM HUP; sleep 1000 & exec sleep 1000 ) & ) &\n"
                           "sleep 1000 &\n"
                           "echo $CLEANUP_AGENT_SESSION > $OUT/session.tmp && mv $OUT/session.tmp $OUT/session\n"
                           "exec sleep 1000\n";

/* Starts the tree under a process-tracking run and waits until it is up: 4 processes of the session. */
static pid_t start_tree(char id[static 128]) {
  const char *script = scenario_script(&sc, "tree.sh", tree);
  pid_t agent = start_without_cgroup((const char *[]){"run", "--", script, NULL});
  cr_assert(scenario_read_marker(&sc, "session", 60000, id), "the command never got going: %s", scenario_stderr(&sc));
  snprintf(last_id, sizeof(last_id), "%s", id);
  int procs = 0;
  for (int i = 0; i < 100 && (procs = scenario_count_processes(id)) != 4; i++) /* the double fork passes 5 */
    usleep(20000);
  cr_assert_eq(procs, 4, "the tree should have 4 processes, has %d", procs);
  const char *err = scenario_stderr(&sc);
  cr_assert_not_null(strstr(err, "no writable cgroup"), "the agent should track processes: %s", err);
  cr_assert_not_null(strstr(err, "not caught this way: a process that leaves the group (setsid)"),
                     "the start notice should say what this mode cannot catch: %s", err);
  return agent;
}

/* Waits up to timeout_ms for no process of session id to be left; returns how many were left at the end. */
static int wait_no_processes(const char *id, int timeout_ms) {
  int procs = scenario_count_processes(id);
  for (int waited = 0; procs > 0 && waited < timeout_ms; waited += 50) {
    usleep(50000);
    procs = scenario_count_processes(id);
  }
  return procs;
}

Test(no_cgroup, sigkill_of_the_agent_the_guardian_kills_the_tree) {
  char id[128];
  pid_t agent = start_tree(id);
  cr_assert_eq(kill(agent, SIGKILL), 0); /* our own child */
  cr_assert_eq(scenario_wait(agent), 128 + SIGKILL);
  int left = wait_no_processes(id, 5000);
  cr_assert_eq(left, 0, "%d processes of session %s outlived the agent and its guardian: %s", left, id,
               scenario_stderr(&sc));
  cr_assert(scenario_wait_nothing_left(&sc, id, 5000), "session %s was not forgotten: %s", id, scenario_stderr(&sc));
}

/* The tree of a process-tracking run whose guardian and then agent were SIGKILLed (the whole job killed by a CI
 * runner, the guardian first so that it cannot start cleaning), then `cleanup-agent <args>` run to collect it: the
 * tree is still there before, and gone after. */
static void tree_outlives_both_until(const char *const *args, const char *who) {
  char id[128];
  pid_t agent = start_tree(id);
  cr_assert_eq(kill(scenario_guardian_of(&sc, id), SIGKILL), 0);
  cr_assert_eq(kill(agent, SIGKILL), 0); /* our own child */
  cr_assert_eq(scenario_wait(agent), 128 + SIGKILL);
  usleep(300 * 1000);
  cr_assert_eq(scenario_count_processes(id), 4, "the killed session's tree should still be there");

  const char *argv[8];
  size_t n = 0;
  for (; args[n] && n < 6; n++)
    argv[n] = streq(args[n], "ID") ? id : args[n];
  argv[n] = NULL;
  int rc = scenario_wait(start_without_cgroup(argv));
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  int left = wait_no_processes(id, 2000);
  cr_assert_eq(left, 0, "%d processes of session %s outlived %s: %s", left, id, who, scenario_stderr(&sc));
  cr_assert(scenario_wait_nothing_left(&sc, id, 20000), "session %s was not forgotten within 20 s", id);
}

Test(no_cgroup, sigkill_of_agent_and_guardian_the_next_start_kills_the_tree) {
  tree_outlives_both_until((const char *[]){"run", "--", "true", NULL}, "the next start");
  cr_assert_not_null(strstr(scenario_stderr(&sc), "collected 1 dead session"), "%s", scenario_stderr(&sc));
}

Test(no_cgroup, sigkill_of_agent_and_guardian_kill_of_the_session_kills_the_tree) {
  tree_outlives_both_until((const char *[]){"kill", "ID", NULL}, "kill");
}

Test(no_cgroup, sigkill_of_agent_and_guardian_gc_kills_the_tree) {
  scenario_private_engine_start(&sc); /* gc takes every dead session of its engine: never the shared one */
  tree_outlives_both_until((const char *[]){"gc", NULL}, "gc");
}

/* The command runs only once the registry records its process group: an agent SIGKILLed at any moment leaves no tree
 * that the later layers cannot find (before, the command ran for a few system calls with its group unrecorded). */
Test(no_cgroup, the_command_starts_with_its_group_recorded) {
  char body[512], seen[128], marker[300];
  snprintf(body, sizeof(body),
           "if grep -Eq '\"pgrp\":[[:space:]]*'$$'[^0-9]' '%s/sessions/'$CLEANUP_AGENT_SESSION.json; then r=recorded; "
           "else r=missing; fi\necho $r > $OUT/seen.tmp && mv $OUT/seen.tmp $OUT/seen\n",
           sc.state);
  const char *script = scenario_script(&sc, "check.sh", body);
  snprintf(marker, sizeof(marker), "%s/seen", sc.dir);
  for (int i = 0; i < 20; i++) {
    unlink(marker);
    int rc = scenario_wait(start_without_cgroup((const char *[]){"run", "--", script, NULL}));
    cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
    cr_assert(scenario_read_marker(&sc, "seen", 5000, seen), "the command did not run: %s", scenario_stderr(&sc));
    cr_assert_str_eq(seen, "recorded", "run %d: the command started before the registry named its group", i);
  }
}

/* without_cgroup, with the state dir on a tmpfs of 64 KiB: room for a registry of about 40 KiB, not for the copy
 * that rewriting it takes (the registry is written whole and renamed). */
static void without_cgroup_small_state(struct scenario *s) {
  scenario_without_cgroup(s);
  (void)mkdir(s->state, 0700);
  if (mount("tmpfs", s->state, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0700") < 0) {
    dprintf(2, "test: cannot mount a tmpfs on %s: %m\n", s->state);
    _exit(98);
  }
}

/* The registry cannot record the command's process group: the command does not start, since without a cgroup
 * nothing else would let the guardian or a later cleanup find its tree. */
Test(no_cgroup, a_command_whose_group_cannot_be_recorded_does_not_start) {
  char body[512];
  snprintf(body, sizeof(body), "touch %s/ran\n", sc.dir);
  const char *script = scenario_script(&sc, "ran.sh", body);
  enum { N = 3000 }; /* arguments of 12 bytes: a registry of about 40 KiB */
  const char *args[N + 8] = {"--docker-host", "unix:///nonexistent.sock", "run", "--no-docker-proxy", "--", script};
  size_t n = 6;
  for (int i = 0; i < N; i++)
    args[n++] = "argument-xyz";
  args[n] = NULL;
  pid_t agent = fork();
  cr_assert_geq(agent, 0);
  if (agent == 0) { /* scenario_start_in takes at most 63 arguments: exec the agent here */
    char err[256];
    snprintf(err, sizeof(err), "%s/err", sc.dir);
    dup2(open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    without_cgroup_small_state(&sc);
    const char *argv[N + 16] = {AG_BINARY, "--state-dir", sc.state, "--cgroup-root", sc.cgroup_root};
    memcpy(argv + 5, args, (n + 1) * sizeof(char *));
    execv(AG_BINARY, (char **)argv);
    _exit(99);
  }
  int rc = scenario_wait(agent);
  char ran[300];
  snprintf(ran, sizeof(ran), "%s/ran", sc.dir);
  cr_assert_neq(access(ran, F_OK), 0, "the command ran with its process group unrecorded: %s", scenario_stderr(&sc));
  cr_assert_eq(rc, 125, "exit %d: %s", rc, scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "process group cannot be recorded"), "%s", scenario_stderr(&sc));
}
