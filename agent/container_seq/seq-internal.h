/* container-seq's own header: its options, the state of one run shared by its threads, and what its files call of
 * each other. Where each part lives:
 *   container_seq.c  the command: the session brought up and down around the run, the summary and the exit code;
 *   options.c        the command line and its CLEANUP_AGENT_* variables (struct seq_opts), --help;
 *   workers.c        the threads beside the main one: creator, remover, engine events, monitor (signals, load);
 *   test.c           one test file: its container's spec, start, wait with the timeout, kill, the result;
 *   output.c         one test's output: prefixed lines on stdout or a --log-dir file, the tail kept for a failure;
 *   loop.c           every file in order: the checkpoint, the engine's recovery, the PASS and FAIL lines;
 *   checkpoint.c, load.c, junit.c  the parsers and writers of seq.h (no engine, no threads: unit-tested, fuzzed). */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "cgroup.h"
#include "collect.h"
#include "guardian.h"
#include "proxy.h"
#include "seq.h"

/* ---- options (options.c) ----------------------------------------------------------------------------------- */

struct seq_opts {
  const char *image;
  uint64_t memory, pids, timeout_usec;
  double cpus;
  struct dk_mount *mounts;
  size_t n_mounts;
  const char **env; /* "K=V", NULL-terminated */
  size_t n_env;
  const char *workdir, *network, *checkpoint, *junit, *log_dir;
  bool resume, self_protect, docker_proxy;
  double cpu_limit, mem_limit;
  const char *const *files;
  size_t n_files;
  char **cmd;
  char **owned; /* strings allocated while parsing, NULL-terminated */
  size_t n_owned;
};

/* Reads the CLEANUP_AGENT_* variables, then the flags over them. 0 to go on, -1 after --help (printed), else the
 * exit code of a usage error (its one line printed). o is filled as far as parsing went: opts_done it either way. */
int parse_seq_opts(int argc, char **argv, struct seq_opts *o);
void opts_done(struct seq_opts *o);

/* ---- the run ----------------------------------------------------------------------------------------------- */

enum stop_reason { STOP_NONE = 0, STOP_SIGNAL, STOP_PROTECT };

/* A container made ahead of its test by the creator. */
struct slot {
  char *cid;
  ca_error *err;
  bool ready;
};

struct seq {
  const struct seq_opts *o;
  struct ag_session *session; /* owns what the views below point to */
  char id[AG_SESSION_ID_LEN + 1];
  const char *docker_host;
  struct ag_env env; /* the session's */
  struct dk_client *dk_create, *dk_remove, *dk_logs, *dk_events;
  char **labels; /* the session labels of every container (the session's) */
  char session_env[64];

  struct seq_result *results; /* one per file */
  size_t *order;              /* indices of the files still to run, in order */
  size_t n_order;
  char *checkpoint;
  bool checkpoint_default;

  /* Shared with the creator and remover: guarded by mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct slot *slots; /* by position in order */
  size_t create_next, create_limit;
  char **rm_queue;
  size_t rm_n, rm_cap;
  bool quit;

  /* Shared with the monitor. */
  atomic_int stop;        /* enum stop_reason, set once */
  atomic_int stop_signal; /* the signal that stopped the run */
  char protect_msg[256];  /* written before stop is set to STOP_PROTECT */
  atomic_bool over_now;   /* the host is over a threshold right now (not yet for the whole window) */
  struct dk_cancel cancel;
  pthread_t monitor;
  bool monitor_started;
  struct seq_load load;
  uint64_t window_usec;
  atomic_int own_pid; /* the running test's main process (self-protection leaves its load out), 0 between tests */
  cg_mounts mounts;   /* where the monitor reads that test's cgroup; unified NULL: it cannot, judges the whole host */

  pthread_mutex_t out_mu; /* one line at a time on stdout */

  /* Containers the engine reported an "oom" event for (guarded by mu): the event can come after the exit, when
   * 20.10 no longer sets State.OOMKilled. */
  char **oom_ids;
  size_t oom_n, oom_cap;
  struct dk_cancel events_cancel;
  pthread_t events;
  bool events_started;
  uint64_t engine_retry_usec;
};

/* ---- the threads beside the main one (workers.c) ----------------------------------------------------------- */

/* "TERM" for SIGTERM. */
const char *sig_name(int sig);
/* Thread bodies; arg is the struct seq. The creator makes the containers of the next files ahead of their tests,
 * the remover removes finished ones, events_main follows the engine's "oom" events of the session, the monitor
 * takes the signals and samples the host load until it gets SIGUSR1. */
void *creator_main(void *arg);
void *remover_main(void *arg);
void *events_main(void *arg);
void *monitor_main(void *arg);
/* Tells the creator and remover to quit (the remover drains its queue first) and joins them. */
void stop_workers(struct seq *s, pthread_t creator, pthread_t remover);
/* Hands a finished container to the remover (takes cid; NULL is fine). */
void queue_removal(struct seq *s, char *cid);
/* Whether the engine reported an "oom" event for the container. */
bool saw_oom_event(struct seq *s, const char *cid);

/* ---- one test (test.c, output.c) --------------------------------------------------------------------------- */

/* Creates the container of a file, named "ca-seq-<first 12 of the session>-<file index>[-<attempt>]". */
int container_spec_create(struct seq *s, struct dk_client *dk, size_t file, int attempt, char **ret_cid,
                          ca_error **err);

enum test_status {
  TEST_DONE,    /* a result was recorded */
  TEST_STOPPED, /* the run is stopping: no result */
  TEST_ENGINE,  /* the engine went away: no result, err says how */
  TEST_FAILED,  /* the agent failed: err says why */
};
/* Runs the file in its created container cid and records what it did in ret (TEST_DONE only). */
enum test_status run_test(struct seq *s, size_t file, const char *cid, struct seq_result *ret, ca_error **err);

#define LINE_MAX_BYTES (16 * 1024) /* a longer line is printed in pieces */
#define TAIL_BYTES (4 * 1024)      /* output kept for the JUnit failure and the checkpoint */

struct line_buf {
  char data[LINE_MAX_BYTES];
  size_t len;
};

/* One test's output, followed by a thread of its own while the main thread waits for the test's exit. */
struct test_output {
  struct seq *s;
  const char *file;
  const char *cid;
  FILE *log; /* --log-dir, else NULL: stdout with prefixes */
  struct line_buf lines[2];
  ca_buf tail;
  struct dk_cancel cancel;
  ca_error *err;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  pthread_t thread;
  bool started;
};

/* Sets t up for the test file in container cid and opens its --log-dir file. On failure t needs no cleanup. */
int test_output_init(struct test_output *t, struct seq *s, const char *file, const char *cid, ca_error **err);
/* Starts following the container's output (the test runs unseen when no thread can be started). */
void test_output_follow(struct test_output *t);
/* After the test's exit: lets the stream deliver its last frames for a moment, then cuts it. warn: say when the
 * output was lost to an error. */
void test_output_finish(struct test_output *t, bool warn);
/* The last TAIL_BYTES of output from a line start, or NULL when there was none (caller frees). */
char *test_output_tail(struct test_output *t);
void test_output_done(struct test_output *t);

/* ---- every file in order (loop.c) -------------------------------------------------------------------------- */

/* Resolves the checkpoint path and, with --resume, loads the results it holds. */
int setup_checkpoint(struct seq *s, ca_error **err);
int save_checkpoint(struct seq *s, ca_error **err);

enum loop_end { LOOP_COMPLETE, LOOP_STOPPED, LOOP_ENGINE_GONE, LOOP_FAILED };
/* Runs the pending files one after another, saving the checkpoint after each. */
enum loop_end run_all(struct seq *s, ca_error **err);
