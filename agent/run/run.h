/* run's parts (run.c brings the session up and the command in, options.c, supervise.c and report.c): what they
 * share. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "disk.h"
#include "lifecycle.h"

struct run_opts {
  cg_limits limits;
  uint64_t timeout_usec, grace_usec, ttl_usec;
  const char **labels; /* --label K=V, NULL-terminated */
  size_t n_labels;
  bool private_tmp, no_docker_proxy, contain_containers;
  bool images_remove;        /* --images=remove */
  struct ag_disk_marks disk; /* the pressure check's marks: --disk-high, --disk-low */
  const char *report, *junit;
  enum ag_on_leak { AG_ON_LEAK_WARN = 0, AG_ON_LEAK_IGNORE, AG_ON_LEAK_FAIL } on_leak;
  char **argv;
};

/* Everything run knows while the command runs, for the summary and the report. */
struct run_state {
  struct ag_session *session;
  cg_leaf *leaf;
  pid_t pid;
  int status;    /* wait status of the main process */
  int exit_code; /* what the agent exits with */
  int signal;    /* signal the agent got, 0 if none */
  bool timed_out;
  uint64_t started_usec;
  unsigned survivors;
  const int *keep_fds; /* the fds our caller passed on: the command inherits these besides 0, 1 and 2 */
  size_t n_keep_fds;
  cg_stats stats;
  bool have_stats;
  bool gave_terminal; /* the command's process group got the terminal on stdin */
  bool said_stopped;  /* the command's stop without a terminal was said */
};

/* options.c: 0 when the command is to run, -1 after --help, else the usage error's exit code (message printed). */
int ag_run_parse_opts(int argc, char **argv, struct run_opts *o);

/* supervise.c: waits for the main process while handling signals, --timeout and the grace period. */
void ag_run_supervise(struct run_state *s, const struct run_opts *o, int sfd);
/* Reaps children without blocking; records the main process's status. Returns true once it has exited. */
bool ag_run_reap(struct run_state *s, bool *main_exited);
/* The graceful signal to the command's tree, and its kill, each recorded in the receipt first. */
void ag_run_signal_tree(struct run_state *s, int sig);
int ag_run_kill_tree(struct run_state *s, uint64_t timeout_usec, ca_error **err);
/* report.c: the images the session built (its label), with their size, into the receipt. */
void ag_run_receipt_images(struct run_state *s);
/* "3 processes outlived the command: sleep (pid 123), ..." for what is left in the leaf after the main process. */
void ag_run_report_survivors(struct run_state *s);

/* contain.c: --contain-containers refused before anything starts when it cannot work (no proxy, an engine on another
 * host): the exit code (message printed), or 0. */
int ag_run_contain_check(const struct ag_globals *g, const struct run_opts *o);
/* Once the leaf exists: the engine's cgroup parent for it, given to the proxy. 0, or the exit code (message printed).
 */
int ag_run_contain_start(struct run_state *s, const struct run_opts *o);

/* The OOM kills inside the session whose victim was not the main process (a process of its tree, a container with
 * --contain-containers), in one line; the main process's own is said with the exit code. */
void ag_run_report_oom_inside(const struct run_state *s, const struct run_opts *o);

/* terminal.c: whether stdin is a terminal whose foreground is the agent's process group. */
bool ag_run_terminal_is_ours(void);
/* Gives the terminal back to the agent's process group when the command's holds it. */
void ag_run_terminal_take_back(struct run_state *s);
/* The main process stopped with sig: with a terminal, the run stops too and both continue together. */
void ag_run_command_stopped(struct run_state *s, int sig);

/* report.c: the exit code from DESIGN.md's table, with the OOM message when the cgroup recorded an OOM kill. */
int ag_run_exit_code(struct run_state *s, const struct run_opts *o);
/* --report FILE: the JSON report of the run. */
void ag_run_write_report(const struct run_state *s, const struct run_opts *o);
/* The one-line summary, printed when anything was cleaned or limited; it names the worst offender unless
 * --on-leak=ignore. */
void ag_run_print_summary(const struct run_state *s, const struct run_opts *o);
/* --junit FILE: the receipt's leaks as JUnit XML. */
void ag_run_write_junit(const struct run_state *s, const struct run_opts *o);
/* --on-leak=fail: the exit code of a command that succeeded but left something behind (AG_EXIT_LEFT_BEHIND). */
int ag_run_leak_exit_code(const struct run_state *s, const struct run_opts *o);
