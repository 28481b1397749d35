/* Fault-injection helpers: a seeded PRNG whose seed is printed, the result line every scenario prints, and the
 * leftover count of one trial, taken from the real things (/proc, the engine, the cgroup tree, the state dir,
 * /dev/shm). Builds on tests/agent/scenario.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "scenario.h"

/* The suite's PRNG: seeded from CHAOS_SEED when set (to replay a failing trial), else from the clock. Prints the seed
 * once. */
uint64_t chaos_seed(void);
/* Uniform in [0, n). */
uint64_t chaos_rand(uint64_t n);

/* Prints "chaos: <scenario>: <trials> trials, <left> left something behind[; note]" to stderr and appends it to the
 * file named by CHAOS_RESULTS (tests/chaos/reliability.sh turns those lines into docs/RELIABILITY.md). */
void chaos_report(const char *scenario, int trials, int left, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* What one trial may leave: every field is a count of real things found. */
struct chaos_left {
  int processes;  /* processes whose environment holds CHAOS_TAG=<tag> */
  int containers; /* engine objects carrying the trial's test label or its agent's owner labels */
  int networks;
  int volumes;
  int cgroups;     /* directories under the slot's cgroup root */
  int state_files; /* entries of <state>/sessions */
  int shm;         /* /dev/shm/chaos-<tag>* */
};

/* The owner labels of one agent process ("io.cleanup-agent.owner-pid=..", "..owner-start=.."), filled when it is
 * started; empty strings when unknown. */
struct chaos_owner {
  char pid_label[64];
  char start_label[80];
};

/* Counts everything of a trial. tag is the trial's CHAOS_TAG, owner may be NULL. */
void chaos_count_left(struct scenario *s, const char *tag, const struct chaos_owner *owner, struct chaos_left *ret);
/* Total of the counts; describe writes "2 processes, 1 container" into buf (size len). */
int chaos_left_total(const struct chaos_left *l);
const char *chaos_left_describe(const struct chaos_left *l, char *buf, size_t len);
/* Removes what a failed trial left (test-labeled and owner-labeled resources, tagged processes, state files, cgroup
 * leaves), so that the next trial starts clean. */
void chaos_sweep(struct scenario *s, const char *tag, const struct chaos_owner *owner);

/* The owner labels of the agent process pid started at start (field 22 of /proc/<pid>/stat). */
void chaos_owner_of(pid_t pid, uint64_t start, struct chaos_owner *ret);
/* Writes "1" to <cgroup>/cgroup.kill and waits until it is empty (populated 0). */
bool chaos_cgroup_kill(const char *cgroup, int timeout_ms);
/* Sleeps ms milliseconds. */
void chaos_sleep_ms(int ms);
/* Creates the cgroup <v2 mount>/<name> for a test's own processes (the "CI job") and returns its path in ret. */
void chaos_job_cgroup(const struct scenario *s, const char *name, char *ret, size_t len);
