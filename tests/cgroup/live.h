/* Shared by the live suites (host, VM) and the benchmark: a throwaway cgroup root and spawning the helper. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cgroup.h"

/* The cgroup2 mount of this machine: /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid). */
const char *live_v2_mount(void);
/* 32 random lowercase hex characters. */
void live_session_id(char id[33]);
/* Opens a root <v2 mount>/cleanup-agent-test-<random> (ret_path receives it); false with a message on failure. */
bool live_root_open(bool avoid_cgroup_kill, cg_root **ret, char *ret_path, size_t size, char *msg, size_t msg_size);
/* Kills and removes every leaf under the root, then the root itself (test teardown). */
void live_root_destroy(cg_root *root);
/* Spawns the test binary itself with CG_TEST_HELPER=mode (plus extra "K=V" env, may be NULL). */
int live_spawn_helper(cg_leaf *leaf, const char *mode, const char *extra_env, bool join_after_fork, cg_process *ret,
                      ca_error **err);
/* Waits until the leaf holds at least n processes (or timeout_ms); returns the last count seen. */
size_t live_wait_count(cg_leaf *leaf, size_t n, int timeout_ms);
/* Waits until the root pid of a tree (helper "tree:N") forked all its members (or timeout_ms, or it is gone): a count
 * of the leaf's processes alone can be reached before, with double-fork intermediates alive. The daemons' grandchildren
 * may still be on their way. */
bool live_wait_tree(pid_t pid, int timeout_ms);
/* waitpid with EINTR handling; returns the status. */
int live_reap(int pid);
