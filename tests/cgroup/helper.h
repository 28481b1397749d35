/* Workloads the live cgroup tests and benchmarks spawn: the binary re-executes itself with CG_TEST_HELPER set. */
#pragma once

/* CG_TEST_HELPER values: "tree:N", "hog", "forkbomb", "spin:MS", "cgroup" (writes /proc/self/cgroup to CG_TEST_OUT),
 * "park" (ignores SIGTERM and sleeps). */
const char *helper_self(void);
