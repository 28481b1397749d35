/* Process tracking (no writable cgroup): subreaper + process group + /proc walk, every pid verified by start time.
 * Needs neither root nor a cgroup, so it runs with the unit suites. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

TestSuite(cgroup_track, .init = setup, .fini = teardown, .timeout = 60 * AG_TIMEOUT_SCALE);

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
  cr_assert(live_wait_tree(p.pid, 20000), "the tree did not fork all its members");
  size_t count = live_wait_count(leaf, 32, 10000);
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

  int sent = cg_leaf_signal_all(leaf, SIGTERM, &err);
  cr_assert_geq(sent, 32,
                "cg_leaf_signal_all(SIGTERM) returned %d, for a tree of 32 lasting members (%zu listed before)%s%s",
                sent, n_before, err ? ": " : "", err ? err->msg : "");
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

/* ---- a recorded process group, killed by a collector without the agent (issue 19) ---------------------------- */

/* Forks a group leader with n members of its group, each a sleep started with the one environment entry envs[i];
 * the leader exits once they run when leader_exits (its pid is then free), else it waits. ret_members: their pids. */
static pid_t start_group(const char *const *envs, size_t n, bool leader_exits, pid_t *ret_members) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t leader = fork();
  cr_assert_geq(leader, 0);
  if (leader == 0) {
    setpgid(0, 0);
    for (size_t i = 0; i < n; i++) {
      pid_t m = fork();
      if (m == 0) {
        char *envp[] = {(char *)envs[i], NULL};
        execle("/bin/sleep", "sleep", "100", (char *)NULL, envp);
        _exit(127);
      }
      (void)!write(fds[1], &m, sizeof(m));
    }
    usleep(100000); /* the members exec'ed: their environment is the one given */
    (void)!write(fds[1], &n, 1);
    if (!leader_exits)
      pause();
    _exit(0);
  }
  close(fds[1]);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(read(fds[0], &ret_members[i], sizeof(pid_t)), (ssize_t)sizeof(pid_t));
  char done;
  cr_assert_eq(read(fds[0], &done, 1), 1);
  close(fds[0]);
  return leader;
}

static uint64_t start_of(pid_t pid) {
  uint64_t start = 0;
  cr_assert_eq(cg_proc_start_time(NULL, pid, &start, NULL), 0);
  return start;
}

/* Whether the process that started at start still runs as pid (a zombie does not run). */
static bool runs(pid_t pid, uint64_t start) {
  cg_proc_stat st;
  return cg_proc_read_stat(NULL, pid, &st, NULL) == 0 && st.start_time == start && st.state != 'Z';
}

Test(cgroup_track, a_recorded_group_is_killed_without_the_agent) {
  const char *envs[] = {"A=1", "B=2"};
  pid_t m[2];
  pid_t leader = start_group(envs, 2, false, m);
  uint64_t s0 = start_of(m[0]), s1 = start_of(m[1]), sl = start_of(leader);
  cg_group g = {.main_pid = leader, .main_start = sl, .pgrp = leader, .pgrp_start = sl};
  unsigned killed = 0;
  ca_error *err = NULL;
  cr_assert_eq(cg_group_kill(NULL, &g, getpid(), 5000000, &killed, &err), 0, "%s", err ? err->msg : "");
  cr_expect_eq(killed, 3);
  int status = live_reap(leader);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "leader status 0x%x", status);
  cr_expect(!runs(m[0], s0) && !runs(m[1], s1), "a member of the group survived");
}

Test(cgroup_track, with_its_leader_gone_only_members_that_name_the_session_are_killed) {
  const char *envs[] = {"CG_TEST_SESSION=0123", "OTHER=1"};
  pid_t m[2];
  pid_t leader = start_group(envs, 2, true, m);
  uint64_t s0 = start_of(m[0]), s1 = start_of(m[1]), sl = start_of(leader);
  live_reap(leader); /* its pid names no process now */
  cg_group g = {.main_pid = leader, .main_start = sl, .pgrp = leader, .pgrp_start = sl, .env_entry = envs[0]};
  unsigned killed = 0;
  ca_error *err = NULL;
  cr_assert_eq(cg_group_kill(NULL, &g, getpid(), 5000000, &killed, &err), 0, "%s", err ? err->msg : "");
  cr_expect_eq(killed, 1);
  cr_expect(!runs(m[0], s0), "the member that names the session survived");
  cr_expect(runs(m[1], s1), "a member whose identity is not proven was killed");
  (void)cg_signal_verified(NULL, m[1], s1, SIGKILL, NULL); /* the test's own */
}

Test(cgroup_track, a_group_id_that_names_another_process_now_is_left_alone) {
  const char *envs[] = {"CG_TEST_SESSION=0123"};
  pid_t m[1];
  pid_t leader = start_group(envs, 1, false, m);
  uint64_t s0 = start_of(m[0]), sl = start_of(leader);
  /* As if the recorded leader had died and its pid gone to this process: another start time. */
  cg_group g = {.main_pid = leader, .main_start = sl + 1, .pgrp = leader, .pgrp_start = sl + 1, .env_entry = envs[0]};
  unsigned killed = 0;
  ca_error *err = NULL;
  cr_assert_eq(cg_group_kill(NULL, &g, getpid(), 5000000, &killed, &err), 0, "%s", err ? err->msg : "");
  cr_expect_eq(killed, 0);
  cr_expect(runs(leader, sl) && runs(m[0], s0), "a process of another group was killed");
  kill(-leader, SIGKILL); /* the test's own group */
  live_reap(leader);
}

/* Writes <proc>/<pid>/stat of a fake procfs: a process of group pgrp whose parent is ppid. */
static void fake_stat(const char *proc, pid_t pid, pid_t ppid, pid_t pgrp, uint64_t start) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%d", proc, (int)pid);
  cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
  snprintf(path, sizeof(path), "%s/%d/stat", proc, (int)pid);
  FILE *f = fopen(path, "we");
  cr_assert_not_null(f);
  fprintf(f, "%d (fake) S %d %d %d 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 %" PRIu64 " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
          (int)pid, (int)ppid, (int)pgrp, (int)pgrp, start);
  fclose(f);
}

static bool listed(cg_leaf *l, pid_t pid) {
  cg_proc_info *procs = NULL;
  size_t n = 0;
  cr_assert_eq(cg_leaf_list_processes(l, &procs, &n, NULL), 0);
  bool found = false;
  for (size_t i = 0; i < n; i++)
    found |= procs[i].pid == pid;
  free(procs);
  return found;
}

/* Once the main process is reaped its pid may be reused, and with it the group id: a process of that group seen only
 * afterwards is a stranger's (a fake procfs stands for the reuse; nothing is signalled). */
Test(cgroup_track, the_group_adopts_no_new_member_once_the_main_process_is_reaped) {
  char proc[] = "/tmp/cg-fake-proc-XXXXXX", path[PATH_MAX];
  cr_assert_not_null(mkdtemp(proc));
  snprintf(path, sizeof(path), "%s/self", proc);
  cr_assert_eq(mkdir(path, 0755), 0);
  snprintf(path, sizeof(path), "%s/self/mountinfo", proc);
  fclose(fopen(path, "we"));
  cg_root *fake_root = NULL;
  cg_leaf *fake_leaf = NULL;
  ca_error *err = NULL;
  cr_assert(cg_root_open(&(cg_root_options){.force_process = true, .proc = proc}, &fake_root, &err) == 0, "%s",
            err ? err->msg : "");
  char id[33];
  live_session_id(id);
  cr_assert(cg_leaf_create(fake_root, id, NULL, &fake_leaf, &err) == 0, "%s", err ? err->msg : "");
  static char true_cmd[] = "true";
  char *argv[] = {true_cmd, NULL};
  cg_process p;
  cr_assert(cg_spawn(fake_leaf, &(cg_spawn_options){.argv = argv}, &p, &err) == 0, "%s", err ? err->msg : "");
  if (p.pidfd >= 0)
    close(p.pidfd);
  const pid_t member = 4190001, stranger = 4190002; /* in the fake procfs only */
  fake_stat(proc, p.pid, getpid(), p.pid, p.start_time);
  fake_stat(proc, member, 1, p.pid, p.start_time + 1);
  cr_expect(listed(fake_leaf, member), "a member of the main process's group while it lives");
  live_reap(p.pid);
  snprintf(path, sizeof(path), "%s/%d/stat", proc, (int)p.pid);
  cr_assert_eq(unlink(path), 0); /* reaped: gone from /proc */
  fake_stat(proc, stranger, 1, p.pid, p.start_time + 100);
  cr_expect(listed(fake_leaf, member), "a member seen before stays one");
  cr_expect(!listed(fake_leaf, stranger), "a process of the reused group id was adopted");
  cg_leaf_free(fake_leaf); /* not killed: its members are fake */
  cg_root_free(fake_root);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", proc);
  (void)!system(cmd);
}

/* The started hook of cg_spawn: a child that fails before it waits for the agent's go (a missing directory) is
 * reported as such, and the caller, which left SIGPIPE at its default, is not killed by the go that finds no reader. */
static char true_name[] = "true";
static char *const true_argv[] = {true_name, NULL};

static int note_started(void *data, const cg_process *proc, ca_error **err) {
  (void)err;
  *(pid_t *)data = proc->pid;
  usleep(200000); /* the child fails its chdir and exits meanwhile */
  return 0;
}

Test(cgroup_track, a_child_that_fails_before_its_go_is_reported_without_sigpipe) {
  cr_assert_eq(signal(SIGPIPE, SIG_DFL) != SIG_ERR, 1);
  char id[33];
  live_session_id(id);
  ca_error *err = NULL;
  cr_assert(cg_leaf_create(root, id, NULL, &leaf, &err) == 0, "%s", err ? err->msg : "");
  pid_t seen = 0;
  cg_process p;
  int r = cg_spawn(
      leaf,
      &(cg_spawn_options){
          .argv = true_argv, .cwd = "/nonexistent/cleanup-agent-test", .started = note_started, .started_data = &seen},
      &p, &err);
  cr_expect_eq(r, -ENOENT, "cg_spawn returned %d", r);
  cr_expect(err && strstr(err->msg, "cannot change directory to /nonexistent/cleanup-agent-test"), "%s",
            err ? err->msg : "");
  cr_expect_gt(seen, 0, "the hook was not told about the child");
  ca_error_free(err);
}

static int check_started(void *data, const cg_process *proc, ca_error **err) {
  (void)err;
  *(uint64_t *)data = proc->start_time;
  return 0;
}

/* A hook that could not record the child (a registry that could not be written, say). */
static int refuse_started(void *data, const cg_process *proc, ca_error **err) {
  *(pid_t *)data = proc->pid;
  return ca_error_set(err, ENOSPC, "cannot record the child");
}

/* A started hook that fails stops the command before it execs: cg_spawn fails with the hook's error, and the child is
 * gone and reaped, having run nothing. */
Test(cgroup_track, a_started_hook_that_fails_stops_the_command_before_exec) {
  char id[33];
  live_session_id(id);
  ca_error *err = NULL;
  cr_assert(cg_leaf_create(root, id, NULL, &leaf, &err) == 0, "%s", err ? err->msg : "");
  char marker[] = "/tmp/cg-hook-XXXXXX";
  int fd = mkstemp(marker);
  cr_assert_geq(fd, 0);
  close(fd);
  unlink(marker);
  char touch[] = "touch", *const argv[] = {touch, marker, NULL};
  pid_t child = 0;
  cg_process p;
  int r =
      cg_spawn(leaf, &(cg_spawn_options){.argv = argv, .started = refuse_started, .started_data = &child}, &p, &err);
  cr_expect_eq(r, -ENOSPC, "cg_spawn returned %d", r);
  cr_expect(err && strstr(err->msg, "cannot record the child"), "%s", err ? err->msg : "");
  ca_error_free(err);
  cr_assert_gt(child, 0, "the hook was not told about the child");
  cr_expect_eq(waitpid(child, NULL, WNOHANG), -1, "the child was left to reap");
  cr_expect_eq(errno, ECHILD);
  usleep(100000);
  cr_expect_neq(access(marker, F_OK), 0, "the command ran although its hook failed");
  unlink(marker);
}

/* Field 22 of /proc/<pid>/stat read here, apart from the agent's reader: the kernel's own record of the child. */
static uint64_t kernel_start_time(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  _cleanup_free_ char *buf = NULL;
  cr_assert_geq(ca_read_file(path, 4096, &buf, NULL, NULL), 0, "cannot read %s", path);
  char *field = strrchr(buf, ')'); /* the name in field 2 may hold spaces and parentheses */
  cr_assert(field, "%s: no ')'", path);
  for (int i = 2; i < 22 && field; i++)
    field = strchr(field + 1, ' ');
  cr_assert(field, "%s: fewer than 22 fields", path);
  return strtoull(field + 1, NULL, 10);
}

/* One read of the child's identity serves the hook (which records it) and the caller (which signals by it): both must
 * hold the kernel's value for that pid, the one a later cg_signal_verified compares with. */
Test(cgroup_track, the_started_hook_sees_the_start_time_the_caller_gets) {
  char id[33];
  live_session_id(id);
  ca_error *err = NULL;
  cr_assert(cg_leaf_create(root, id, NULL, &leaf, &err) == 0, "%s", err ? err->msg : "");
  uint64_t hooked = 0;
  cg_process p;
  cr_assert(cg_spawn(leaf, &(cg_spawn_options){.argv = true_argv, .started = check_started, .started_data = &hooked},
                     &p, &err) == 0,
            "%s", err ? err->msg : "");
  cr_expect_gt(p.start_time, 0);
  cr_expect_eq(hooked, p.start_time, "the hook saw %" PRIu64 ", the caller %" PRIu64, hooked, p.start_time);
  uint64_t kernel = kernel_start_time(p.pid); /* a zombie until the wait below: its stat stays */
  cr_expect_eq(p.start_time, kernel, "the caller got %" PRIu64 ", the kernel says %" PRIu64, p.start_time, kernel);
  int status;
  cr_expect_eq(waitpid(p.pid, &status, 0), p.pid);
  if (p.pidfd >= 0)
    close(p.pidfd);
}
