/* The leak receipt of a run (issue 23): every resource created through the session's proxy with who created it and
 * how it ended, the processes that outlived the command and how they were killed, and the images built. One receipt
 * per process (run has one session): the proxy's threads, the session's end and run feed it; report.c writes it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "common.h"
#include "docker.h"

struct ag_proxy_observer;
struct ag_not_removed;

#define AG_RECEIPT_RESOURCES_MAX 10000 /* beyond, resources are only counted (resources_unlisted) */
#define AG_RECEIPT_PROCESSES_MAX 1000
#define AG_RECEIPT_IMAGES_MAX 1000

enum ag_receipt_outcome {
  AG_RECEIPT_PENDING = 0,        /* not decided yet (before ag_receipt_finish) */
  AG_RECEIPT_REMOVED_BY_CREATOR, /* a DELETE through the proxy, or the engine's AutoRemove its creator asked for */
  AG_RECEIPT_REMOVED_AT_END,     /* the session's end removed it */
  AG_RECEIPT_KEPT,               /* io.cleanup-agent.keep=true: left on purpose */
  AG_RECEIPT_NOT_REMOVED,        /* the end could not remove it: error says why */
  AG_RECEIPT_GONE,               /* gone before the end, not through the proxy */
};

/* Who created a resource: the proxy's client at its connection's accept, and the request's headers and labels. */
struct ag_receipt_creator {
  pid_t pid; /* 0: unknown */
  char *exe;
  char *cmdline; /* the arguments NUL-separated, cmdline_len bytes (cut at 2 KiB) */
  size_t cmdline_len;
  char *user_agent, *tc_session, *compose_project;
};

struct ag_receipt_resource {
  char kind; /* 'c', 'n', 'v' */
  char *id, *name, *image;
  uint64_t created_usec; /* CLOCK_REALTIME */
  struct ag_receipt_creator creator;
  bool keep, auto_remove, removed_by_creator, removed_at_end;
  enum ag_receipt_outcome outcome;
  char *error; /* AG_RECEIPT_NOT_REMOVED: the engine's error */
};

struct ag_receipt_process {
  pid_t pid;
  uint64_t start_time;
  char comm[17];
  char *exe, *cmdline; /* cmdline NUL-separated, cmdline_len bytes */
  size_t cmdline_len;
  int term_signal;       /* the graceful signal it got (--timeout's SIGTERM, or one forwarded), 0: none */
  const char *killed_by; /* "SIGTERM" (or the signal forwarded: honoured), "SIGKILL", "cgroup.kill", or NULL: not
                            killed (it exited by itself) */
};

struct ag_receipt_image {
  char *id;
  char **tags; /* NULL-terminated */
  uint64_t size;
};

struct ag_receipt {
  struct ag_receipt_resource *resources;
  size_t n_resources;
  unsigned resources_unlisted;
  struct ag_receipt_process *processes;
  size_t n_processes;
  unsigned processes_unlisted;
  struct ag_receipt_image *images;
  size_t n_images;
};

/* receipt.c: the process's receipt. Nothing is recorded until ag_receipt_enable. */
void ag_receipt_enable(void);
/* The receipt after ag_receipt_finish (no thread feeds it any more). */
const struct ag_receipt *ag_receipt_get(void);
/* Forgets everything and disables the receipt (tests). */
void ag_receipt_reset(void);
/* The proxy's observer that feeds the receipt; NULL while it is disabled. */
const struct ag_proxy_observer *ag_receipt_observer(void);
/* The session's end removed kind id (its id, or a volume's name). */
void ag_receipt_removed_at_end(enum dk_kind kind, const char *id);
/* Processes that are in the command's leaf now, but the main process exclude: recorded (exe and command line read
 * from /proc) when new. term_signal: the graceful signal they are about to get (0: none). */
void ag_receipt_processes_seen(const cg_proc_info *procs, size_t n, pid_t exclude, int term_signal);
/* Those of procs (what is in the leaf right before its kill) are killed by how ("SIGKILL", "cgroup.kill"); the
 * others that got a SIGTERM honoured it. */
void ag_receipt_processes_killed(const cg_proc_info *procs, size_t n, const char *how);
/* An image the session built: id, tags (NULL-terminated, copied), size in bytes. */
void ag_receipt_image_add(const char *id, const char *const *tags, uint64_t size);
/* Decides each resource's outcome: not_removed names what the end could not remove; end_error (NULL: none) is why the
 * session stays registered, for what was neither removed nor named. */
void ag_receipt_finish(const struct ag_not_removed *not_removed, const char *end_error);

/* What outlived the command: resources removed at the end, not removed, or kept, and processes that were killed. */
bool ag_receipt_resource_leaked(const struct ag_receipt_resource *res);
bool ag_receipt_process_leaked(const struct ag_receipt_process *p);
size_t ag_receipt_count_leaked(const struct ag_receipt *r);
const char *ag_receipt_kind_name(char kind);
const char *ag_receipt_outcome_name(enum ag_receipt_outcome o);
/* "compose project e2e", "testcontainers session 1b2c...", "pid 123 (python3 -m pytest)" or "an unknown client". */
void ag_receipt_creator_name(const struct ag_receipt_creator *c, char *buf, size_t size);
/* A command line (NUL-separated) as one line with spaces, cut with "..." to fit size. */
void ag_receipt_cmdline_text(const char *cmdline, size_t len, char *buf, size_t size);
/* The worst offender among the creators of leaked resources: "compose project e2e left 3 containers and a network";
 * false when no resource leaked. */
bool ag_receipt_worst_offender(const struct ag_receipt *r, char *buf, size_t size);

/* receipt_json.c: the receipt's arrays (docs/RECEIPT.md) added to report: "resources", "processes", "images". */
int ag_receipt_json_add(const struct ag_receipt *r, struct cJSON *report);

/* receipt_junit.c: JUnit XML, one testcase per leaked resource or process named by its creator, each with a failure
 * element; an empty testsuite when nothing leaked. */
int ag_receipt_junit(const struct ag_receipt *r, const char *session_id, ca_buf *out, ca_error **err);
int ag_receipt_junit_write(const struct ag_receipt *r, const char *session_id, const char *path, ca_error **err);
