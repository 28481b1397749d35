/* Workloads the live cgroup tests and benchmarks spawn: the binary re-executes itself with CG_TEST_HELPER set. */
#pragma once

/* CG_TEST_HELPER values: "tree:N", "hog", "forkbomb", "spin:MS", "cgroup" (writes /proc/self/cgroup to CG_TEST_OUT),
 * "park" (ignores SIGTERM and sleeps). */

/* The name (comm) a tree's root takes once it forked all its N members and its forking loop (live_wait_tree); the
 * double-forked daemons are forked by their own parents, which may not have done so yet. */
#define HELPER_TREE_READY "tree-ready"
const char *helper_self(void);
