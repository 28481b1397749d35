/* Process tracking (no writable cgroup): subreaper + process group + /proc walk, every pid verified by start time.
 * Needs neither root nor a cgroup, so it runs with the unit suites. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "live.h"

static cg_root *root;
static cg_leaf *leaf; /* killed in the teardown too, so a failed assertion leaves no tree behind */

static void setup(void) {
  ca_error *err = NULL;
  cr_assert(cg_root_open(&(cg_root_options){.force_process = true}, &root, &err) == 0, "%s", err ? err->msg : "");
}

static void teardown(void) {
  if (leaf)
    (void)cg_leaf_kill_all(leaf, 5000000, NULL); /* already empty unless the test failed */
  cg_leaf_free(leaf);
  leaf = NULL;
  cg_root_free(root);
}

TestSuite(cgroup_track, .init = setup, .fini = teardown, .timeout = 60);

Test(cgroup_track, the_caller_learns_that_the_weaker_mode_is_in_use) {
  cr_expect_eq(cg_root_tracking(root), CG_TRACK_PROCESS);
  cr_expect_str_eq(cg_tracking_name(cg_root_tracking(root)), "process");
  cr_expect_not_null(cg_root_fallback_reason(root));
  cr_expect_null(cg_root_path(root));
  cr_expect(!cg_root_can_limit(root, "memory"));
  char id[33];
  live_session_id(id);
  ca_error *err = NULL;
  cr_expect_eq(cg_leaf_create(root, id, &(cg_limits){.memory_max = 1 << 20}, &leaf, &err), -ENOTSUP,
               "a limit must never be dropped silently");
  cr_expect(err && strstr(err->msg, "memory, pids and cpu limits need a writable cgroup"), "%s", err ? err->msg : "");
  ca_error_free(err);
}

Test(cgroup_track, kills_setsid_and_double_forked_orphans) {
  char id[33];
  live_session_id(id);
  ca_error *err = NULL;
  cr_assert(cg_leaf_create(root, id, NULL, &leaf, &err) == 0, "%s", err ? err->msg : "");
  cg_process p;
  cr_assert(live_spawn_helper(leaf, "tree:30", NULL, false, &p, &err) == 0, "%s", err ? err->msg : "");
  size_t count = live_wait_count(leaf, 32, 20000);
  cr_assert_geq(count, 32, "the tree reached %zu processes", count);

  /* The daemons' intermediate parents exit on their own schedule: wait until all 10 orphans were reparented. */
  cg_proc_info *before = NULL;
  size_t n_before = 0, orphans = 0, other_session = 0;
  for (int tries = 0; tries < 500 && orphans < 10; tries++) {
    free(before);
    before = NULL;
    if (tries)
      usleep(10000);
    cr_assert(cg_leaf_list_processes(leaf, &before, &n_before, NULL) == 0);
    orphans = other_session = 0;
    for (size_t i = 0; i < n_before; i++) {
      cg_proc_stat st;
      if (cg_proc_read_stat(NULL, before[i].pid, &st, NULL) == 0) {
        orphans += st.ppid == getpid() && st.pid != p.pid;
        pid_t sid = getsid(st.pid);
        other_session += sid >= 0 && sid != getsid(0);
      }
    }
  }
  cr_expect_geq(orphans, 10, "double-forked orphans reparented to us (subreaper): %zu", orphans);
  cr_expect_geq(other_session, 10, "setsid members tracked: %zu", other_session);

  cr_assert_geq(cg_leaf_signal_all(leaf, SIGTERM, NULL), 32);
  cr_assert(cg_leaf_kill_all(leaf, 10000000, &err) == 0, "%s", err ? err->msg : "");
  int status = live_reap(p.pid);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "main status 0x%x", status);
  for (size_t i = 0; i < n_before; i++) {
    cg_proc_stat st;
    bool same = cg_proc_read_stat(NULL, before[i].pid, &st, NULL) == 0 && st.start_time == before[i].start_time;
    cr_expect(!same || st.state == 'Z', "%s (pid %d) survived", before[i].comm, before[i].pid);
  }
  free(before);
  close(p.pidfd);
}

Test(cgroup_track, a_helper_of_the_caller_is_never_counted_nor_killed) {
  char id[33];
  live_session_id(id);
  ca_error *err = NULL;
  cr_assert(cg_leaf_create(root, id, NULL, &leaf, &err) == 0, "%s", err ? err->msg : "");
  /* A helper forked right before the command, as the guardian is: likely the same start-time tick. */
  pid_t helper = fork();
  cr_assert_geq(helper, 0);
  if (helper == 0) {
    pause();
    _exit(0);
  }
  cr_assert(cg_leaf_ignore_pid(leaf, helper, &err) == 0, "%s", err ? err->msg : "");
  cg_process p;
  cr_assert(live_spawn_helper(leaf, "park", NULL, false, &p, &err) == 0, "%s", err ? err->msg : "");
  cg_proc_info *procs = NULL;
  size_t n = 0;
  cr_assert(cg_leaf_list_processes(leaf, &procs, &n, NULL) == 0);
  for (size_t i = 0; i < n; i++)
    cr_expect_neq(procs[i].pid, helper, "the helper was counted as the session's");
  free(procs);
  cr_assert(cg_leaf_kill_all(leaf, 10000000, &err) == 0, "%s", err ? err->msg : "");
  live_reap(p.pid);
  cr_expect_eq(kill(helper, 0), 0, "the helper was killed with the session");
  kill(helper, SIGKILL);
  waitpid(helper, NULL, 0);
  close(p.pidfd);
}

Test(cgroup_track, a_pid_recorded_with_another_start_time_is_never_signalled) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    pause();
    _exit(0);
  }
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE *f = fopen(path, "re");
  cr_assert_not_null(f);
  size_t got = fread(buf, 1, sizeof(buf) - 1, f);
  buf[got] = '\0';
  fclose(f);
  cg_proc_stat st;
  cr_assert(cg_parse_proc_stat(buf, &st, NULL) == 0);

  ca_error *err = NULL;
  cr_expect_eq(cg_signal_verified(NULL, pid, st.start_time + 1, SIGKILL, &err), -ESRCH);
  cr_expect(err && strstr(err->msg, "not signalled"), "%s", err ? err->msg : "");
  cr_expect_eq(cg_signal_verified(NULL, pid, st.start_time - 1, SIGKILL, &err), -ESRCH);
  usleep(50000);
  cr_expect_eq(waitpid(pid, NULL, WNOHANG), 0, "the process was signalled despite the start time mismatch");

  cr_expect_eq(cg_signal_verified(NULL, pid, st.start_time, SIGKILL, &err), 0, "%s", err ? err->msg : "");
  int status = live_reap(pid);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  cr_expect_eq(cg_signal_verified(NULL, pid, st.start_time, SIGKILL, &err), -ESRCH, "reaped pid");
  ca_error_free(err);
}
