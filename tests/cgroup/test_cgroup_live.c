/* Live tests of the cgroup module on a real kernel. Built twice: for the host (hybrid here: limits through the v1
 * hierarchies, tracking on the cgroup2 mount) and for the VM (pure v2 with every controller, -DCG_LIVE_VM). Every
 * test works under its own root <v2 mount>/cleanup-agent-test-<random>, removed in the teardown. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "cli_run.h"
#include "fake_systemd.h"
#include "live.h"

#ifdef CG_LIVE_VM
#define EXPECTED_MODE CG_MODE_UNIFIED
#define SUITE cgroup_vm
#else
/* This host's mode, from what is mounted at /sys/fs/cgroup (statfs, not the module's mountinfo parse): hybrid where
 * the cgroup2 mount is /sys/fs/cgroup/unified (this machine), unified on a stock Debian 12 host (the v1 leaves the
 * hybrid cases expect are then not made). */
#define EXPECTED_MODE (strcmp(live_v2_mount(), "/sys/fs/cgroup") == 0 ? CG_MODE_UNIFIED : CG_MODE_HYBRID)
#define SUITE cgroup_host
#endif

static cg_root *root;
static char root_path[512];
static bool use_walk_kill;

static void setup(void) {
  char msg[512];
  cr_assert(live_root_open(use_walk_kill, &root, root_path, sizeof(root_path), msg, sizeof(msg)), "%s", msg);
  cr_assert_eq(cg_root_tracking(root), CG_TRACK_CGROUP, "process tracking in use: %s", cg_root_fallback_reason(root));
}

/* Test-level init runs after the suite's: replace the root it opened by one that avoids cgroup.kill. */
static void setup_walk(void) {
  live_root_destroy(root);
  use_walk_kill = true;
  setup();
}

static void teardown(void) {
  live_root_destroy(root);
  root = NULL;
  struct stat st;
  cr_expect(stat(root_path, &st) < 0 && errno == ENOENT, "test root %s left behind", root_path);
}

static cg_leaf *new_leaf(const cg_limits *limits, char id[33]) {
  live_session_id(id);
  cg_leaf *leaf = NULL;
  ca_error *err = NULL;
  cr_assert(cg_leaf_create(root, id, limits, &leaf, &err) == 0, "cg_leaf_create: %s", err ? err->msg : "?");
  return leaf;
}

static cg_process spawn(cg_leaf *leaf, const char *mode) {
  cg_process p;
  ca_error *err = NULL;
  cr_assert(live_spawn_helper(leaf, mode, NULL, false, &p, &err) == 0, "cg_spawn %s: %s", mode, err ? err->msg : "?");
  return p;
}

static char *slurp(const char *path) {
  static char buf[8192];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  cr_assert(n >= 0);
  buf[n] = '\0';
  return buf;
}

/* The v1 memory leaf the module is documented to use: under the agent's own v1 memory cgroup. */
static void v1_memory_leaf(const char *id, char *out, size_t size) {
  cg_proc_cgroup self = {0};
  cr_assert(cg_parse_proc_cgroup(slurp("/proc/self/cgroup"), &self, NULL) == 0);
  const char *own = self.v1_memory && strcmp(self.v1_memory, "/") != 0 ? self.v1_memory : "";
  snprintf(out, size, "/sys/fs/cgroup/memory%s%s/run-%s", own, strrchr(root_path, '/'), id);
  cg_proc_cgroup_done(&self);
}

static void expect_in_leaf(const char *cgroup_text, const char *id, const char *what) {
  cg_proc_cgroup pc = {0};
  cr_assert(cg_parse_proc_cgroup(cgroup_text, &pc, NULL) == 0, "%s: unparsable:\n%s", what, cgroup_text);
  char want[600];
  snprintf(want, sizeof(want), "%s/run-%s", root_path + strlen(live_v2_mount()), id);
  cr_expect(pc.unified && strcmp(pc.unified, want) == 0, "%s: v2 cgroup is %s, expected %s", what,
            pc.unified ? pc.unified : "(none)", want);
  if (EXPECTED_MODE == CG_MODE_HYBRID) {
    char suffix[64];
    snprintf(suffix, sizeof(suffix), "/run-%s", id);
    size_t sl = strlen(suffix);
    cr_expect(pc.v1_memory && strlen(pc.v1_memory) > sl &&
                  strcmp(pc.v1_memory + strlen(pc.v1_memory) - sl, suffix) == 0,
              "%s: v1 memory cgroup is %s, expected the run-%s leaf", what, pc.v1_memory ? pc.v1_memory : "(none)", id);
    cr_expect(pc.v1_pids && strlen(pc.v1_pids) > sl && strcmp(pc.v1_pids + strlen(pc.v1_pids) - sl, suffix) == 0,
              "%s: v1 pids cgroup is %s, expected the run-%s leaf", what, pc.v1_pids ? pc.v1_pids : "(none)", id);
  }
  cg_proc_cgroup_done(&pc);
}

TestSuite(SUITE, .init = setup, .fini = teardown, .timeout = 60 * AG_TIMEOUT_SCALE);

Test(SUITE, detects_the_mode_of_this_kernel) {
  cr_expect_eq(cg_root_mode(root), EXPECTED_MODE, "mode is %s", cg_mode_name(cg_root_mode(root)));
  cr_expect_str_eq(cg_root_path(root), root_path);
  cr_expect(cg_root_can_limit(root, "memory"));
  cr_expect(cg_root_can_limit(root, "pids"));
  cr_expect(cg_root_can_limit(root, "cpu"));
}

/* The program's first action (reading /proc/self/cgroup) already sees the leaf, on both placement paths, and
 * so does the parent the moment cg_spawn returns. */
/* Limits generous enough never to bite, so that on hybrid hosts the v1 memory and pids leaves exist too. */
static const cg_limits roomy = {.memory_max = UINT64_C(1) << 30, .pids_max = 100000};

Test(SUITE, child_is_in_the_leaf_before_its_first_instruction) {
  char id[33];
  cg_leaf *leaf = new_leaf(&roomy, id);
  for (int join = 0; join <= 1; join++) {
    char out[256], env[300];
    snprintf(out, sizeof(out), "/tmp/cg-live-%d-%d", (int)getpid(), join);
    snprintf(env, sizeof(env), "CG_TEST_OUT=%s", out);
    cg_process p;
    ca_error *err = NULL;
    cr_assert(live_spawn_helper(leaf, "cgroup", env, join, &p, &err) == 0, "%s", err ? err->msg : "?");
    cr_expect_eq(p.clone_into_cgroup, !join, "clone_into_cgroup %d with join_after_fork %d", p.clone_into_cgroup, join);
    cr_expect_gt(p.start_time, 0);
    int status = live_reap(p.pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "helper failed: 0x%x", status);
    expect_in_leaf(slurp(out), id, join ? "fork+join" : "clone3");
    unlink(out);
    close(p.pidfd);
  }
  cg_process p = spawn(leaf, "park");
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/cgroup", p.pid);
  expect_in_leaf(slurp(path), id, "parent's view right after cg_spawn");
  cr_assert(cg_leaf_kill_all(leaf, 5000000, NULL) == 0);
  live_reap(p.pid);
  cg_leaf_free(leaf);
}

/* Without a limit no v1 leaf is made: joining a v1 memory cgroup costs an RCU grace period per spawn, and the v2
 * leaf alone tracks and kills the tree. */
Test(SUITE, no_limit_no_v1_leaf) {
  char id[33], v1[600];
  cg_leaf *leaf = new_leaf(NULL, id);
  v1_memory_leaf(id, v1, sizeof(v1));
  struct stat st;
  cr_expect(stat(v1, &st) < 0 && errno == ENOENT, "%s exists without a memory limit", v1);
  cg_process p = spawn(leaf, "park");
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/cgroup", p.pid);
  cg_proc_cgroup pc = {0};
  cr_assert(cg_parse_proc_cgroup(slurp(path), &pc, NULL) == 0);
  cr_expect(pc.unified && strstr(pc.unified, id), "v2 cgroup is %s", pc.unified ? pc.unified : "(none)");
  cg_proc_cgroup_done(&pc);
  cr_assert(cg_leaf_kill_all(leaf, 5000000, NULL) == 0);
  live_reap(p.pid);
  close(p.pidfd);
  cr_assert(cg_leaf_remove(leaf, NULL) == 0);
  cg_leaf_free(leaf);
}

/* systemd removes a scope's cgroup as soon as it is empty, and may do so while the agent kills it: a v2 cgroup can
 * only be removed when empty and never moved, so a leaf that is gone had nothing left, and the kill succeeds. */
static void kill_removed_leaf(void) {
  char id[33];
  cg_leaf *leaf = new_leaf(NULL, id);
  cg_process p = spawn(leaf, "park");
  cr_assert(cg_leaf_kill_all(leaf, 5000000, NULL) == 0);
  live_reap(p.pid);
  close(p.pidfd);
  cr_assert(rmdir(cg_leaf_path(leaf)) == 0, "rmdir %s: %s", cg_leaf_path(leaf), strerror(errno));
  ca_error *err = NULL;
  cr_expect(cg_leaf_kill_all(leaf, 5000000, &err) == 0, "kill of a removed leaf: %s", err ? err->msg : "?");
  ca_error_free(TAKE_PTR(err));
  cg_proc_info *procs = NULL;
  size_t n = 99;
  cr_expect(cg_leaf_list_processes(leaf, &procs, &n, &err) == 0 && n == 0, "processes of a removed leaf: %zu (%s)", n,
            err ? err->msg : "");
  free(procs);
  ca_error_free(TAKE_PTR(err));
  cr_expect(cg_leaf_remove(leaf, &err) == 0, "remove: %s", err ? err->msg : "?");
  ca_error_free(err);
  cg_leaf_free(leaf);
}

Test(SUITE, kill_of_a_leaf_removed_once_empty_succeeds_with_cgroup_kill) {
  kill_removed_leaf();
}

Test(SUITE, kill_of_a_leaf_removed_once_empty_succeeds_by_pidfd_walk, .init = setup_walk) {
  kill_removed_leaf();
}

/* n empty sub-cgroups of the leaf (its removal takes them): its listing walks them between the read of the leaf's
 * cgroup.procs and the look at each process it named, which widens that window. */
static void leaf_subgroups(cg_leaf *leaf, int n) {
  for (int i = 0; i < n; i++) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/sub%d", cg_leaf_path(leaf), i);
    cr_assert(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
  }
}

/* The slowest of 5 listings of leaf, in ms (at least 1). */
static long list_ms(cg_leaf *leaf) {
  uint64_t worst = 1000;
  for (int i = 0; i < 5; i++) {
    cg_proc_info *procs = NULL;
    size_t n = 0;
    uint64_t t0 = cg_now_usec();
    cr_assert(cg_leaf_list_processes(leaf, &procs, &n, NULL) == 0);
    worst = CA_MAX(worst, cg_now_usec() - t0);
    free(procs);
  }
  return (long)(worst / 1000);
}

/* A shell's `( cmd & ) &` leaves a process that forks and exits at once: when that happens between the module's
 * read of cgroup.procs and its look at the process, the child was not in the read. A relay does it every ten
 * listings' time; the list must still name a process every time. */
Test(SUITE, processes_are_listed_while_a_relay_forks_and_exits) {
  char id[33], mode[32];
  cg_leaf *leaf = new_leaf(NULL, id);
  leaf_subgroups(leaf, 200);
  snprintf(mode, sizeof(mode), "relay:%ld", 10 * list_ms(leaf));
  cg_process p = spawn(leaf, mode);
  int empty = 0, calls = 300;
  for (int i = 0; i < calls; i++) {
    cg_proc_info *procs = NULL;
    size_t n = 0;
    ca_error *err = NULL;
    cr_assert(cg_leaf_list_processes(leaf, &procs, &n, &err) == 0, "list: %s", err ? err->msg : "?");
    empty += n == 0;
    free(procs);
  }
  cr_expect_eq(empty, 0, "%d of %d lists of a leaf with a live relay (%s) were empty", empty, calls, mode);
  cr_assert(cg_leaf_kill_all(leaf, 5000000, NULL) == 0);
  live_reap(p.pid);
  close(p.pidfd);
  cr_assert(cg_leaf_remove(leaf, NULL) == 0);
  cg_leaf_free(leaf);
}

/* 200 processes that ignore SIGTERM, a third setsid, a third double-forked orphans, and a loop that keeps forking:
 * SIGTERM reaches all of them and kills none; the kill leaves nothing. */
static void kill_tree(void) {
  char id[33];
  cg_leaf *leaf = new_leaf(&roomy, id);
  cg_process p = spawn(leaf, "tree:200");
  cr_assert(live_wait_tree(p.pid, 30000), "the tree did not fork all its members");
  size_t count = live_wait_count(leaf, 202, 10000);
  cr_assert_geq(count, 202, "the tree only reached %zu processes", count);
  /* The leak check below does not trust the module: a /proc scan of every process's cgroup sees the tree too. */
  char leaf_name[40];
  snprintf(leaf_name, sizeof(leaf_name), "run-%s", id);
  int scanned = 0;
  for (int waited = 0; waited < 10000 && (scanned = cli_find_processes(NULL, leaf_name, NULL, 0)) < 202; waited += 10)
    usleep(10000); /* double-fork grandchildren still on their way */
  cr_assert_geq(scanned, 202, "a /proc scan finds %d processes in %s, the module %zu", scanned, leaf_name, count);

  ca_error *err = NULL;
  int signalled = cg_leaf_signal_all(leaf, SIGTERM, &err);
  cr_assert_geq(signalled, 200, "signal_all reached %d processes: %s", signalled, err ? err->msg : "");
  usleep(100000);
  cr_expect_geq(live_wait_count(leaf, 202, 0), 202, "SIGTERM-ignoring processes died");

  cr_assert(cg_leaf_kill_all(leaf, 10000000, &err) == 0, "kill_all: %s", err ? err->msg : "?");
  cg_proc_info *procs = NULL;
  size_t n = 99;
  cr_assert(cg_leaf_list_processes(leaf, &procs, &n, NULL) == 0);
  cr_expect_eq(n, 0, "%zu processes survived, first: %s (pid %d)", n, n ? procs[0].comm : "", n ? procs[0].pid : 0);
  free(procs);
  scanned = cli_find_processes(NULL, leaf_name, NULL, 0);
  cr_expect_eq(scanned, 0, "a /proc scan finds %d live processes of %s after the kill", scanned, leaf_name);
  char events[600];
  snprintf(events, sizeof(events), "%s/cgroup.events", cg_leaf_path(leaf));
  cr_expect(strstr(slurp(events), "populated 0"), "cgroup.events: %s", slurp(events));

  int status = live_reap(p.pid);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "main process status 0x%x", status);

  char leaf_path[600], v1[600];
  snprintf(leaf_path, sizeof(leaf_path), "%s", cg_leaf_path(leaf));
  v1_memory_leaf(id, v1, sizeof(v1));
  struct stat st;
  if (EXPECTED_MODE == CG_MODE_HYBRID)
    cr_expect(stat(v1, &st) == 0, "v1 memory leaf %s missing: %s", v1, strerror(errno));
  cr_assert(cg_leaf_remove(leaf, &err) == 0, "remove: %s", err ? err->msg : "?");
  cr_expect(stat(leaf_path, &st) < 0 && errno == ENOENT, "%s still exists", leaf_path);
  cr_expect(stat(v1, &st) < 0 && errno == ENOENT, "%s still exists", v1);
  close(p.pidfd);
  cg_leaf_free(leaf);
}

Test(SUITE, kill_all_empties_a_200_process_tree_with_cgroup_kill) {
  kill_tree();
}

Test(SUITE, kill_all_empties_a_200_process_tree_by_freeze_and_pidfd_walk, .init = setup_walk) {
  kill_tree();
}

Test(SUITE, memory_hog_is_oom_killed_and_reported) {
  char id[33];
  cg_limits limits = {.memory_max = 32u << 20};
  cg_leaf *leaf = new_leaf(&limits, id);
  cg_process p = spawn(leaf, "hog");
  int status = live_reap(p.pid);
  cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
            "hog was not OOM-killed: status 0x%x (exit 3: the "
            "limit did not bite)",
            status);
  cg_stats s;
  ca_error *err = NULL;
  cr_assert(cg_leaf_stats(leaf, &s, &err) == 0, "%s", err ? err->msg : "?");
  cr_expect(s.has_memory);
  cr_expect_eq(s.oom_kills, 1, "oom_kills %llu", (unsigned long long)s.oom_kills);
  cr_expect(s.memory_peak >= (16u << 20) && s.memory_peak <= (33u << 20), "memory peak %llu",
            (unsigned long long)s.memory_peak);
  cr_expect_eq(s.nr_processes, 0);
  close(p.pidfd);
  cr_assert(cg_leaf_remove(leaf, NULL) == 0);
  cg_leaf_free(leaf);
}

Test(SUITE, fork_bomb_stops_at_pids_max_and_is_counted) {
  char id[33];
  cg_limits limits = {.pids_max = 8};
  cg_leaf *leaf = new_leaf(&limits, id);
  cg_process p = spawn(leaf, "forkbomb");
  int status = live_reap(p.pid);
  /* pids.max 8 counts the bomb itself: 7 forks work, the 8th is refused. */
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 7, "expected 7 forks under pids.max 8, status 0x%x", status);
  cg_stats s;
  cr_assert(cg_leaf_stats(leaf, &s, NULL) == 0);
  cr_expect(s.has_pids);
  cr_expect_geq(s.pids_limit_hits, 1, "pids_limit_hits %llu", (unsigned long long)s.pids_limit_hits);
  cr_expect_eq(s.nr_processes, 7, "the bomb's 7 children should still be parked, found %llu",
               (unsigned long long)s.nr_processes);
  cr_assert(cg_leaf_kill_all(leaf, 5000000, NULL) == 0);
  close(p.pidfd);
  cr_assert(cg_leaf_remove(leaf, NULL) == 0);
  cg_leaf_free(leaf);
}

Test(SUITE, cpu_max_throttles_a_spinner) {
  char id[33];
  cg_limits limits = {.cpus = 0.1};
  cg_leaf *leaf = new_leaf(&limits, id);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  cg_process p = spawn(leaf, "spin:600");
  int status = live_reap(p.pid);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  long long wall_usec = (t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000;
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  cg_stats s;
  cr_assert(cg_leaf_stats(leaf, &s, NULL) == 0);
  cr_expect(s.has_cpu);
  cr_expect_gt(s.cpu_throttled, 0, "no throttled period under --cpus 0.1");
  /* An unthrottled spinner uses its whole lifetime in CPU; under 0.1 CPU it gets a tenth of it (start-up included,
   * which is long under TCG), so a third is a generous bound that still fails without the limit. */
  cr_expect(s.cpu_usage_usec > 0 && (long long)s.cpu_usage_usec * 3 < wall_usec, "cpu usage %llu us in %lld us",
            (unsigned long long)s.cpu_usage_usec, wall_usec);
  close(p.pidfd);
  cr_assert(cg_leaf_remove(leaf, NULL) == 0);
  cg_leaf_free(leaf);
}

Test(SUITE, sessions_are_listed_opened_and_removed) {
  char a[33], b[33];
  cg_leaf *la = new_leaf(NULL, a), *lb = new_leaf(NULL, b);
  char junk[600];
  snprintf(junk, sizeof(junk), "%s/run-not-a-session", root_path);
  cr_assert(mkdir(junk, 0755) == 0);

  char **ids = NULL;
  cr_assert(cg_root_list_sessions(root, &ids, NULL) == 0);
  size_t n = 0;
  bool seen_a = false, seen_b = false;
  for (; ids[n]; n++) {
    seen_a |= strcmp(ids[n], a) == 0;
    seen_b |= strcmp(ids[n], b) == 0;
  }
  cr_expect(n == 2 && seen_a && seen_b, "listed %zu sessions", n);
  ca_strv_free(ids);

  cg_leaf *again = NULL;
  ca_error *err = NULL;
  cr_assert(cg_leaf_open(root, a, &again, &err) == 0, "%s", err ? err->msg : "?");
  cg_process p = spawn(again, "park");
  cr_assert(cg_leaf_kill_all(again, 5000000, NULL) == 0);
  live_reap(p.pid);
  cr_assert(cg_leaf_remove(again, NULL) == 0);
  cr_assert(cg_root_list_sessions(root, &ids, NULL) == 0);
  cr_expect(ids[0] && strcmp(ids[0], b) == 0 && !ids[1], "after removing %s the list is not just %s", a, b);
  ca_strv_free(ids);

  cr_expect_eq(cg_leaf_create(root, b, NULL, &again, &err), -EEXIST);
  cr_expect_eq(cg_leaf_open(root, a, &again, &err), -ENOENT);
  ca_error_free(err);
  rmdir(junk);
  close(p.pidfd);
  cg_leaf_free(la);
  cg_leaf_free(lb);
}

/* The command gets 0, 1, 2 and the fds it is given, nothing else the spawner holds: clone3 and fork+join alike. */
Test(SUITE, the_command_gets_only_the_fds_it_is_given) {
  int leak = open("/dev/null", O_RDONLY), keep = open("/dev/null", O_RDONLY); /* no O_CLOEXEC, on purpose */
  cr_assert(leak > 2 && keep > 2);
  char script[256];
  snprintf(script, sizeof(script), "test -e /proc/self/fd/%d && exit 3; test -e /proc/self/fd/%d || exit 4; exit 0",
           leak, keep);
  char sh[] = "/bin/sh", dash_c[] = "-c";
  char *argv[] = {sh, dash_c, script, NULL};
  for (int join = 0; join <= 1; join++) {
    char id[33];
    cg_leaf *leaf = new_leaf(NULL, id);
    cg_spawn_options o = {.argv = argv, .join_after_fork = join, .keep_fds = &keep, .n_keep_fds = 1};
    cg_process p;
    ca_error *err = NULL;
    cr_assert_eq(cg_spawn(leaf, &o, &p, &err), 0, "%s", err ? err->msg : "");
    int st = live_reap(p.pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: exit %d (3: it holds fd %d, 4: it lacks fd %d)",
              join ? "fork+join" : "clone3", WEXITSTATUS(st), leak, keep);
    if (p.pidfd >= 0)
      close(p.pidfd);
    cr_assert_eq(cg_leaf_remove(leaf, NULL), 0);
    cg_leaf_free(leaf);
  }
  close(leak);
  close(keep);
}

Test(SUITE, exec_failures_are_reported_as_not_found_or_not_executable) {
  char id[33];
  cg_leaf *leaf = new_leaf(NULL, id);
  ca_error *err = NULL;
  cg_process p;
  char missing0[] = "/nonexistent/cleanup-agent-test";
  char *missing[] = {missing0, NULL};
  cr_expect_eq(cg_spawn(leaf, &(cg_spawn_options){.argv = missing}, &p, &err), -ENOENT);
  cr_expect(err && err->detail == CG_ERROR_DETAIL_EXEC, "not marked as an exec failure");
  char nip0[] = "cleanup-agent-no-such-command";
  char *not_in_path[] = {nip0, NULL};
  cr_expect_eq(cg_spawn(leaf, &(cg_spawn_options){.argv = not_in_path}, &p, &err), -ENOENT);
  cr_expect(err && err->detail == CG_ERROR_DETAIL_EXEC && strstr(err->msg, "not found"), "%s", err ? err->msg : "");

  char file[64];
  snprintf(file, sizeof(file), "/tmp/cg-noexec-%d", (int)getpid());
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  cr_assert(fd >= 0);
  cr_assert(write(fd, "#!/bin/sh\n", 10) == 10);
  close(fd);
  char *noexec[] = {file, NULL};
  cr_expect_eq(cg_spawn(leaf, &(cg_spawn_options){.argv = noexec}, &p, &err), -EACCES);
  cr_expect(err && err->detail == CG_ERROR_DETAIL_EXEC);
  unlink(file);
  ca_error_free(err);

  cg_proc_info *procs = NULL;
  size_t n = 99;
  cr_assert(cg_leaf_list_processes(leaf, &procs, &n, NULL) == 0);
  cr_expect_eq(n, 0, "a failed spawn left a process in the leaf");
  free(procs);
  cr_assert(cg_leaf_remove(leaf, NULL) == 0);
  cg_leaf_free(leaf);
}

Test(SUITE, bad_input_is_refused_with_a_clear_error) {
  cg_leaf *leaf = NULL;
  ca_error *err = NULL;
  cr_expect_eq(cg_leaf_create(root, "../../etc", NULL, &leaf, &err), -EINVAL);
  cr_expect(err && strstr(err->msg, "32 lowercase hex"), "%s", err ? err->msg : "");
  cr_expect_eq(cg_leaf_create(root, "0123456789ABCDEF0123456789abcdef", NULL, &leaf, &err), -EINVAL);

  cg_root *other = NULL;
  cr_expect_eq(cg_root_open(&(cg_root_options){.root = "/tmp/not-a-cgroup"}, &other, &err), -EINVAL);
  cr_expect(err && strstr(err->msg, "the cgroup root /tmp/not-a-cgroup is not"), "%s", err ? err->msg : "");
  cg_root_options named = {.root = "/tmp/not-a-cgroup", .root_option = "--cgroup-root"};
  cr_expect_eq(cg_root_open(&named, &other, &err), -EINVAL);
  cr_expect(err && strstr(err->msg, "--cgroup-root /tmp/not-a-cgroup is not"), "the caller's name for the option: %s",
            err ? err->msg : "");
  ca_error_free(err);
}

/* cgroup/ knows no name of its own: without a root, the caller's name places it under the mount. */
Test(SUITE, without_a_root_the_callers_name_places_it) {
  cg_root *other = NULL;
  ca_error *err = NULL;
  cr_expect_eq(cg_root_open(&(cg_root_options){0}, &other, &err), -EINVAL, "no root and no name");
  cr_expect(err && strstr(err->msg, "no name for a default one"), "%s", err ? err->msg : "");
  ca_error_free(TAKE_PTR(err));
  cr_expect_eq(cg_root_open(&(cg_root_options){.name = "a/b"}, &other, &err), -EINVAL, "a name is one component");
  ca_error_free(TAKE_PTR(err));

  char id[33], name[64], want[PATH_MAX];
  live_session_id(id);
  snprintf(name, sizeof(name), "cleanup-agent-test-%.12s.slice", id);
  snprintf(want, sizeof(want), "%s/%s", live_v2_mount(), name);
  cr_assert_eq(cg_root_open(&(cg_root_options){.name = name}, &other, &err), 0, "%s", err ? err->msg : "");
  cr_expect_str_eq(cg_root_path(other), want);
  cr_expect_eq(access(want, F_OK), 0);
  cr_expect_eq(cg_root_remove(other, NULL), 0);
  cr_expect_eq(access(want, F_OK), -1, "cg_root_remove leaves %s", want);
  cg_root_free(other);
}

/* A process parked in dir's cgroup.procs (a container's PID 1 in the session's slice). */
static pid_t park_in(const char *dir) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    for (;;)
      pause();
  }
  char path[PATH_MAX + 16], v[16];
  snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
  snprintf(v, sizeof(v), "%d", (int)pid);
  FILE *f = fopen(path, "w");
  cr_assert(f && fputs(v, f) >= 0 && fclose(f) == 0, "cannot move %d into %s", (int)pid, dir);
  return pid;
}

/* What a collector does with a run --contain-containers session of a dead agent, its root opened as a plain
 * directory and no systemd to ask (as here): the container in the session's slice killed (by the checked pidfd walk,
 * as on kernels without cgroup.kill), the slice removed; with its scope (with_scope) and without (the agent or
 * guardian killed between the scope's stop and the slice's). */
static void collect_contained(bool with_scope, bool unknown_to_manager) {
  char id[33], slice_root[PATH_MAX / 4], slice[PATH_MAX / 2], sub[PATH_MAX];
  live_session_id(id);
  snprintf(slice_root, sizeof(slice_root), "%s/cleanup_agent_test.slice", root_path);
  snprintf(slice, sizeof(slice), "%s/cleanup_agent_test-%s.slice", slice_root, id);
  cr_assert_eq(mkdir(slice_root, 0755), 0);
  cr_assert_eq(mkdir(slice, 0755), 0);
  snprintf(sub, sizeof(sub), "%s/cleanup-agent-test-run-%s.scope", slice, id);
  cr_assert(!with_scope || mkdir(sub, 0755) == 0);
  snprintf(sub, sizeof(sub), "%s/docker-test.scope", slice);
  cr_assert_eq(mkdir(sub, 0755), 0);
  pid_t container = park_in(sub);

  cg_root *collector = NULL;
  cg_leaf *leaf = NULL;
  ca_error *err = NULL;
  cr_assert_eq(cg_root_open(&(cg_root_options){.root = slice_root, .avoid_cgroup_kill = true}, &collector, &err), 0,
               "%s", err ? err->msg : "");
  char log_path[] = "/tmp/cg-fake-systemd-XXXXXX";
  pid_t manager = -1;
  if (unknown_to_manager) { /* a manager that has no unit for the slice: its cgroup is ours to remove */
    int lfd = mkstemp(log_path);
    cr_assert(lfd >= 0);
    close(lfd);
    manager = fake_systemd_start(log_path, &collector->bus);
    collector->removal_bus_tried = true;
  }
  char **ids = NULL; /* gc's listing of the root's sessions, for those whose registry file went */
  cr_assert_eq(cg_root_list_sessions(collector, &ids, NULL), 0);
  cr_expect(ids[0] && streq(ids[0], id) && !ids[1], "the root's sessions listed: %s (want %s only)",
            ids[0] ? ids[0] : "none", id);
  ca_strv_free(ids);
  cr_expect_eq(cg_leaf_open(collector, id, &leaf, &err), 0, "%s", err ? err->msg : "");
  cr_expect(leaf && cg_leaf_kill_all(leaf, 5000000, &err) == 0, "%s", err ? err->msg : "");
  cr_expect(leaf && cg_leaf_remove(leaf, &err) == 0, "%s", err ? err->msg : "");
  if (!leaf)
    kill(container, SIGKILL); /* the test failed already: only clean up */
  int status = live_reap(container);
  cr_expect(leaf && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the container's process was not killed");
  cr_expect(access(slice, F_OK) < 0 && errno == ENOENT, "%s is left", slice);
  cg_leaf_free(leaf);
  ca_error_free(err);
  rmdir(sub); /* when the test failed */
  snprintf(sub, sizeof(sub), "%s/cleanup-agent-test-run-%s.scope", slice, id);
  rmdir(sub);
  rmdir(slice);
  cr_expect_eq(cg_root_remove(collector, NULL), 0); /* with the v1 parents it made */
  cg_root_free(collector);
  if (manager > 0) {
    cr_expect(fake_systemd_wait(manager), "the fake manager failed");
    _cleanup_free_ char *calls = NULL;
    cr_expect_geq(ca_read_file(log_path, 4096, &calls, NULL, NULL), 0);
    unlink(log_path);
    char want[128];
    snprintf(want, sizeof(want), "KillUnit cleanup_agent_test-%s.slice\n", id);
    cr_expect(calls && strstr(calls, want), "the manager was not asked first; calls:\n%s", calls ? calls : "");
  }
}

Test(SUITE, a_contained_sessions_slice_is_collected_with_its_scope) {
  collect_contained(true, false);
}

Test(SUITE, a_contained_sessions_slice_is_collected_without_its_scope) {
  collect_contained(false, false);
}

Test(SUITE, a_contained_sessions_slice_unknown_to_the_manager_is_collected) {
  collect_contained(false, true);
}
