/* Scenario helpers for the run tests: a private state dir and cgroup root, the agent started as a user would start
 * it, and the checks a user would make afterwards (/proc, the engine, the cgroup tree, the state dir). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "docker.h"
#include "test_label.h"

struct scenario {
  char dir[64];          /* temp dir under /var/tmp: state/, out/ and scripts */
  char state[96];        /* --state-dir */
  char cgroup_root[128]; /* --cgroup-root, under the host's cgroup2 mount */
  char test_label[80];   /* AG_TEST_LABEL_KEY=<random>: on every resource a test creates itself */
  char docker_host[128]; /* --docker-host for every scenario_start ("": the agent's default engine) */
  pid_t dockerd;         /* a private engine's (scenario_engine.h), 0 when none */
  struct dk_client *dk;
};

/* Creates the dirs and connects to the engine (fails the test loudly when there is none). */
void scenario_setup(struct scenario *s);
/* Removes whatever a failed test left (test-labeled resources, the cgroup root, the dir). */
void scenario_teardown(struct scenario *s);

/* Writes an executable sh script at <dir>/<name> and returns its path (static buffer, valid until the next call). */
const char *scenario_script(struct scenario *s, const char *name, const char *body);

/* Starts `cleanup-agent --state-dir ... --cgroup-root ... [--docker-host ...] <args>` with stdout/stderr to <dir>/out
 * and <dir>/err. */
pid_t scenario_start(struct scenario *s, const char *const *args);
/* The same, with prepare (NULL: none) called in the child just before the agent is executed: a mount namespace of its
 * own, say. */
pid_t scenario_start_in(struct scenario *s, const char *const *args, void (*prepare)(struct scenario *s));
/* A prepare hook for scenario_start_in: a mount namespace of its own where the cgroup2 mount is read-only, as for a
 * non-root runner without delegation: the agent can only track processes there (and so can its guardian). */
void scenario_without_cgroup(struct scenario *s);
/* The guardian pid session id's registry names (the test fails when there is none). */
pid_t scenario_guardian_of(struct scenario *s, const char *id);
/* Waits for it and returns its exit code (128+N for a signal). */
int scenario_wait(pid_t pid);
/* Runs it to the end: scenario_start + scenario_wait. */
int scenario_run(struct scenario *s, const char *const *args);
/* The contents of a text file, "" when it cannot be read (static buffer, valid until the next call). */
const char *scenario_read_text(const char *path);
/* The contents of <dir>/<name> (a script's $OUT/<name>) without trailing newlines (static buffer). */
const char *scenario_out(struct scenario *s, const char *name);
/* The agent's stderr (static buffer). */
const char *scenario_stderr(struct scenario *s);

/* The waits below last up to timeout_ms times AG_TIMEOUT_SCALE (tests/CMakeLists.txt: 1 but on a slow host). */

/* Waits up to timeout_ms for the file <dir>/<name> to exist and holds its first line in ret (size 128). */
bool scenario_read_marker(struct scenario *s, const char *name, int timeout_ms, char *ret);

/* What a session left: its processes (by CLEANUP_AGENT_SESSION=id in their environment, by its cgroup leaf run-<id>,
 * and every descendant of those: cli_count_session_processes), labeled containers, networks and volumes, its cgroup
 * leaf, its state files (every entry of <state>/sessions, dot-files included). */
int scenario_count_processes(const char *id);
int scenario_count_docker(struct scenario *s, enum dk_kind kind, const char *id);
bool scenario_cgroup_exists(struct scenario *s, const char *id);
int scenario_count_state_files(struct scenario *s);
/* A dead session of s's state dir (its lock free, its owner pid 1: not us) that recorded docker_host and s's cgroup
 * root, as an agent killed with its guardian leaves it; its new id goes to id. */
void scenario_dead_session(struct scenario *s, const char *docker_host, char id[static 33]);
/* How many processes (the caller's own aside) hold a session lock of <state>/sessions open, by /proc/<pid>/fd: the
 * agents, guardians and watchers that keep sessions of this state dir (a lock made unnamed, O_TMPFILE, included). */
int scenario_count_lock_holders(struct scenario *s);
/* SIGKILLs those holders (the new lock of a session being created too) until a scan finds none: a killed process
 * holds its files until it has exited, which on a loaded machine takes a while, and a process forked while /proc is
 * read is missed by that scan. Only then is their session dead to the next start, which leaves a held lock alone. */
void scenario_kill_lock_holders(struct scenario *s);
/* Waits for our child pid at most timeout_ms: its exit code (128+N for a signal), or -1 when it was still running
 * (then it is killed and reaped). */
int scenario_wait_bounded(pid_t pid, int timeout_ms);
/* The 32 hex digits after "session=" (or its URL encoding) in an engine request's path, into id (what a fake engine
 * is asked to list); false when there are none. */
bool scenario_session_in_path(const char *path, char id[static 33]);
/* Asserts that nothing of session id is left anywhere. */
void scenario_assert_nothing_left(struct scenario *s, const char *id);
/* Polls scenario_assert_nothing_left's checks until they pass or timeout_ms passed; returns true when clean. */
bool scenario_wait_nothing_left(struct scenario *s, const char *id, int timeout_ms);
