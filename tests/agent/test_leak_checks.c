/* The leak checks of the suites tell the truth (issue 19): a process that cleared its environment (`env -i`) is
 * still found, by the session's cgroup leaf or as a descendant of a process of the session, and a leftover dot-file
 * in the state dir counts as a state file. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_run.h"
#include "scenario.h"

/* A random session id: 32 lowercase hex characters. */
static void test_session_id(char id[33]) {
  unsigned char raw[16];
  cr_assert_eq(getrandom(raw, sizeof(raw), 0), (ssize_t)sizeof(raw));
  for (int i = 0; i < 16; i++)
    snprintf(id + 2 * i, 3, "%02x", raw[i]);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Whether /proc/<pid>/comm says name (the exec happened). */
static bool comm_is(pid_t pid, const char *name) {
  char path[64], want[64];
  snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
  snprintf(want, sizeof(want), "%s\n", name);
  return streq(scenario_read_text(path), want);
}

TestSuite(leak_checks, .timeout = 30 * AG_TIMEOUT_SCALE);

static void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL); /* our own child, by pid */
  waitpid(pid, NULL, 0);
}

Test(leak_checks, an_env_i_process_in_the_session_cgroup_is_found) {
  char id[33], root[160], leaf[224], procs[256];
  test_session_id(id);
  struct stat st;
  const char *mount =
      stat("/sys/fs/cgroup/unified/cgroup.procs", &st) == 0 ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
  snprintf(root, sizeof(root), "%s/cleanup-agent-test-leak-%d", mount, (int)getpid());
  snprintf(leaf, sizeof(leaf), "%s/run-%s", root, id);
  snprintf(procs, sizeof(procs), "%s/cgroup.procs", leaf);
  cr_assert_eq(mkdir(root, 0755), 0, "mkdir %s: %m (needs root and a cgroup2 mount)", root);
  cr_assert_eq(mkdir(leaf, 0755), 0, "mkdir %s: %m", leaf);

  pid_t child = fork();
  cr_assert_geq(child, 0);
  if (child == 0) {
    FILE *f = fopen(procs, "w");
    if (!f || fprintf(f, "0\n") < 0 || fclose(f) != 0)
      _exit(90);
    execl("/usr/bin/env", "env", "-i", "/bin/sleep", "1000", (char *)NULL);
    _exit(91);
  }
  for (int waited = 0; waited < 5000 && !comm_is(child, "sleep"); waited += 10)
    sleep_ms(10);
  cr_expect(comm_is(child, "sleep"), "the child did not become `env -i sleep`");
  pid_t found[4] = {0};
  int n = cli_find_session_processes(id, found, 4);
  kill_and_reap(child);
  rmdir(leaf);
  rmdir(root);
  cr_assert_eq(n, 1, "the `env -i` process in the session's leaf run-%s was found %d times, not once", id, n);
  cr_assert_eq(found[0], child);
}

Test(leak_checks, an_env_i_child_of_a_session_process_is_found) {
  char id[33], entry[80], tag[64];
  test_session_id(id);
  snprintf(entry, sizeof(entry), "CLEANUP_AGENT_SESSION=%s", id);
  snprintf(tag, sizeof(tag), "AG_LEAK_TEST=%s", id); /* the way the chaos suites tag a trial's processes */
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t sh = fork();
  cr_assert_geq(sh, 0);
  if (sh == 0) {
    setpgid(0, 0); /* its own group: the test ends the sh and its sleeper together, found or not */
    putenv(entry);
    putenv(tag);
    dup2(fds[1], 3);
    execl("/bin/sh", "sh", "-c", "/usr/bin/env -i /bin/sleep 1000 3>&- & echo $! >&3; exec 3>&-; wait", (char *)NULL);
    _exit(91);
  }
  close(fds[1]);
  char line[32] = "";
  FILE *f = fdopen(fds[0], "r");
  cr_assert(f && fgets(line, sizeof(line), f), "the sh did not say its sleeper's pid");
  fclose(f);
  pid_t sleeper = (pid_t)atoi(line);
  for (int waited = 0; waited < 5000 && !comm_is(sleeper, "sleep"); waited += 10)
    sleep_ms(10);
  bool exec_done = comm_is(sleeper, "sleep");
  pid_t found[4] = {0};
  int n = cli_find_session_processes(id, found, 4), by_tag = cli_count_env_processes(tag);
  kill(-sh, SIGKILL); /* the group of our own child */
  waitpid(sh, NULL, 0);
  cr_assert(exec_done, "the sh's child did not become `env -i sleep`");
  cr_assert_eq(n, 2, "the session's sh and its `env -i sleep` child: found %d of 2", n);
  cr_assert(found[0] == sleeper || found[1] == sleeper, "the `env -i` sleeper %d was not found", (int)sleeper);
  cr_assert_eq(by_tag, 2, "a tag in the environment finds the tagged sh and its `env -i` child: %d of 2", by_tag);
}

Test(leak_checks, a_dot_file_in_the_state_dir_counts_as_a_state_file) {
  struct scenario s = {0};
  snprintf(s.dir, sizeof(s.dir), "/var/tmp/ag-leak-test-XXXXXX");
  cr_assert_not_null(mkdtemp(s.dir));
  snprintf(s.state, sizeof(s.state), "%s/state", s.dir);
  char path[256];
  snprintf(path, sizeof(path), "%s/sessions", s.state);
  cr_assert_eq(mkdir(s.state, 0700), 0);
  cr_assert_eq(mkdir(path, 0700), 0);
  cr_assert_eq(scenario_count_state_files(&s), 0);
  snprintf(path, sizeof(path), "%s/sessions/.0123456789abcdef0123456789abcdef.json.tmp", s.state);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fclose(f);
  int n = scenario_count_state_files(&s);
  unlink(path);
  snprintf(path, sizeof(path), "%s/sessions", s.state);
  rmdir(path);
  rmdir(s.state);
  rmdir(s.dir);
  cr_assert_eq(n, 1, "a leftover dot-file in the state dir was not counted");
}
