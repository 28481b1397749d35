/* run inside the cgroup v2 VM (every controller, cgroup.kill): the OOM exit and a leaky tree, with no engine. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_run.h"

static struct cli_result r;
static const char *const env[] = {"DOCKER_HOST=unix:///nonexistent/docker.sock", NULL};

Test(run_vm, memory_limit_oom_gives_137_and_says_so) {
  cli_run(&r,
          (const char *[]){"--state-dir", "/run/ca-state", "--cgroup-root", "/sys/fs/cgroup/ca-test", "run", "--memory",
                           "32M", "--", "sh", "-c", "x=aaaaaaaa; while true; do x=$x$x; done", NULL},
          env);
  cr_assert_eq(r.status, 137, "run exited %d: %s", r.status, r.err);
  cr_assert_not_null(strstr(r.err, "killed by the OOM killer (memory limit 32M"), "%s", r.err);
  cr_assert_eq(access("/sys/fs/cgroup/ca-test", F_OK), 0);
  DIR *d = opendir("/sys/fs/cgroup/ca-test");
  struct dirent *de;
  while ((de = readdir(d)))
    cr_assert(strncmp(de->d_name, "run-", 4) != 0, "leaf %s left", de->d_name);
  closedir(d);
}

Test(run_vm, leaky_tree_is_killed_by_cgroup_kill_and_status_kept) {
  cli_run(&r,
          (const char *[]){"--state-dir", "/run/ca-state", "--cgroup-root", "/sys/fs/cgroup/ca-test", "run", "--pids",
                           "100", "--", "sh", "-c",
                           "echo $CLEANUP_AGENT_SESSION > /tmp/session; ( trap '' TERM; sleep 1000 & ) & "
                           "setsid sh -c 'trap \"\" TERM; sleep 1000' & exit 3",
                           NULL},
          env);
  cr_assert_eq(r.status, 3, "run exited %d: %s", r.status, r.err);
  cr_assert_not_null(strstr(r.err, "outlived the command"), "%s", r.err);
  char id[64] = "";
  FILE *f = fopen("/tmp/session", "r");
  cr_assert_not_null(f);
  cr_assert_not_null(fgets(id, sizeof(id), f));
  fclose(f);
  id[strcspn(id, "\n")] = '\0';
  cr_assert_eq(strlen(id), 32, "session '%s'", id);
  cr_assert_eq(cli_count_session_processes(id), 0, "processes of session %s are left", id);
}

/* A run inside a run on pure cgroup v2: the inner session's leaf goes inside the outer's, which holds processes (the
 * inner agent). Enabling controllers there can only take the threaded ones (pids, cpu), which would make the outer
 * leaf a thread root and every domain child of it invalid: the inner command could not be placed (EOPNOTSUPP). */
Test(run_vm, a_nested_run_starts_its_command) {
  char inner[256];
  snprintf(inner, sizeof(inner), "%s/cleanup-agent", getenv("AG_VM_EXTRA_DIR") ? getenv("AG_VM_EXTRA_DIR") : "");
  cli_run(&r,
          (const char *[]){"--state-dir", "/run/ca-state", "--cgroup-root", "/sys/fs/cgroup/ca-test", "run", "--",
                           inner, "--state-dir", "/run/ca-state", "run", "--", "sh", "-c",
                           "echo inner-ran; cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/../cgroup.type", NULL},
          env);
  cr_assert_eq(r.status, 0, "run exited %d: %s", r.status, r.err);
  cr_assert_str_eq(r.out, "inner-ran\ndomain\n", "the outer leaf is no thread root; stderr: %s", r.err);
}
