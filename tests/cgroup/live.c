/* Helpers of the live cgroup suites and the benchmark (see live.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"
#include "live.h"

extern char **environ;

const char *live_v2_mount(void) {
  struct statfs sfs;
  if (statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == 0x63677270)
    return "/sys/fs/cgroup";
  return "/sys/fs/cgroup/unified";
}

void live_session_id(char id[33]) {
  unsigned char raw[16];
  if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
    abort(); /* getrandom of 16 bytes does not fail after boot */
  for (int i = 0; i < 16; i++)
    snprintf(id + 2 * i, 3, "%02x", raw[i]);
}

bool live_root_open(bool avoid_cgroup_kill, cg_root **ret, char *ret_path, size_t size, char *msg, size_t msg_size) {
  char id[33];
  live_session_id(id);
  snprintf(ret_path, size, "%s/cleanup-agent-test-%.12s", live_v2_mount(), id);
  cg_root_options opts = {.root = ret_path, .avoid_cgroup_kill = avoid_cgroup_kill};
  ca_error *err = NULL;
  if (cg_root_open(&opts, ret, &err) < 0) {
    snprintf(msg, msg_size, "%s", err->msg);
    ca_error_free(err);
    return false;
  }
  return true;
}

void live_root_destroy(cg_root *root) {
  if (!root)
    return;
  char **ids = NULL;
  if (cg_root_list_sessions(root, &ids, NULL) == 0) {
    for (char **id = ids; *id; id++) {
      cg_leaf *leaf = NULL;
      if (cg_leaf_open(root, *id, &leaf, NULL) == 0) {
        (void)cg_leaf_kill_all(leaf, 5000000, NULL);
        (void)cg_leaf_remove(leaf, NULL);
        cg_leaf_free(leaf);
      }
    }
    ca_strv_free(ids);
  }
  (void)cg_root_remove(root, NULL);
  cg_root_free(root);
}

int live_spawn_helper(cg_leaf *leaf, const char *mode, const char *extra_env, bool join_after_fork, cg_process *ret,
                      ca_error **err) {
  size_t n = 0;
  while (environ[n])
    n++;
  char **envp = calloc(n + 3, sizeof(char *));
  char *helper = NULL;
  if (!envp || asprintf(&helper, "CG_TEST_HELPER=%s", mode) < 0)
    abort();
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "CG_TEST_", 8) != 0)
      envp[k++] = environ[i];
  envp[k++] = helper;
  if (extra_env)
    envp[k++] = (char *)extra_env;
  envp[k] = NULL;
  char *argv[] = {(char *)helper_self(), NULL};
  cg_spawn_options opts = {.argv = argv, .envp = envp, .join_after_fork = join_after_fork};
  int r = cg_spawn(leaf, &opts, ret, err);
  free(helper);
  free(envp);
  return r;
}

size_t live_wait_count(cg_leaf *leaf, size_t n, int timeout_ms) {
  size_t count = 0;
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    cg_proc_info *procs = NULL;
    if (cg_leaf_list_processes(leaf, &procs, &count, NULL) == 0)
      free(procs);
    if (count >= n)
      break;
    usleep(10000);
  }
  return count;
}

bool live_wait_tree(pid_t pid, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms; waited += 10) {
    cg_proc_stat st;
    if (cg_proc_read_stat(NULL, pid, &st, NULL) < 0)
      return false; /* gone */
    if (strcmp(st.comm, HELPER_TREE_READY) == 0)
      return true;
    usleep(10000);
  }
  return false;
}

int live_reap(int pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return status;
}
