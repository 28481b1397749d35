/* Private to the cgroup module: the handle structs and the helpers shared between its sources. */
#pragma once

#include <limits.h>

#include "cgroup.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif

/* Caps for what the module reads from cgroupfs and procfs: these files are small, anything bigger is an error. */
#define CG_SMALL_FILE_MAX 4096
#define CG_PROCS_FILE_MAX (4u << 20)
#define CG_MOUNTINFO_MAX (1u << 20)
#define CG_ENVIRON_MAX (4u << 20) /* /proc/<pid>/environ: what execve allows, with room */

enum cg_v1_index { CG_V1_MEMORY = 0, CG_V1_PIDS, CG_V1_CPU, CG_V1_N };
extern const char *const cg_v1_names[CG_V1_N];

struct cg_root {
  enum cg_mode mode;
  enum cg_tracking tracking;
  char *proc;
  char *fallback_reason;
  char *root_option; /* cg_root_options.root_option, for messages */
  cg_mounts mounts;
  /* Tracking hierarchy: the cgroup2 mount (unified/hybrid) or a v1 mount (legacy). */
  char *track_mount;
  bool track_is_v2;
  bool avoid_cgroup_kill;
  bool open_existing; /* cg_root_options.open_existing: no leaf is created under this root */
  char *path;         /* absolute root of the run-* leaves in the tracking hierarchy */
  /* v2 controllers usable in leaves under path (enabled in path's subtree_control). */
  bool v2_memory, v2_pids, v2_cpu;
  /* v1 parents of the run-* leaves per controller (absolute), NULL when that hierarchy is not used. */
  char *v1_parent[CG_V1_N];
};

struct cg_leaf {
  cg_root *root; /* borrowed */
  char id[33];
  char *path; /* absolute tracking leaf; NULL under process tracking */
  char *rel;  /* the same, as it reads in /proc/<pid>/cgroup */
  int dirfd;  /* O_PATH|O_DIRECTORY of path, -1 under process tracking */
  char *v1_path[CG_V1_N];
  char *v1_rel[CG_V1_N];
  uint64_t oom_kill_base;
  uint64_t pids_max_base;
  uint64_t memory_sampled_peak;
  /* Process tracking. */
  pid_t main_pid;
  uint64_t main_start;
  bool main_reaped; /* the main process was seen gone: its pid, and so its group id, may be reused from now on */
  pid_t owner_pid;
  cg_proc_info *tracked;
  size_t n_tracked;
  pid_t ignored[CG_LEAF_MAX_IGNORED]; /* the caller's helpers: never members */
  size_t n_ignored;
};

/* util.c */
uint64_t cg_now_usec(void);
int cg_write_at(int dirfd, const char *dir_for_msg, const char *name, const char *value, ca_error **err);
int cg_write_path(const char *path, const char *value, ca_error **err);
bool cg_has_word(const char *list, const char *word);
int cg_pidfd_open(pid_t pid);
int cg_pidfd_send_signal(int pidfd, int sig);
/* Whether cgroup path rel (as in /proc/<pid>/cgroup) is leaf_rel or below it. */
bool cg_rel_is_inside(const char *rel, const char *leaf_rel);

/* parse.c: cgroup.procs (one pid a line) appended to *pids (n used, cap allocated, grown as needed); path names the
 * file in the message. */
int cg_parse_procs(const char *text, const char *path, pid_t **pids, size_t *n, size_t *cap, ca_error **err);

/* kill.c */
int cg_leaf_read_pids(cg_leaf *leaf, pid_t **ret, size_t *ret_n, ca_error **err);

/* fallback.c: process tracking */
int cg_track_start(cg_leaf *leaf, ca_error **err);
int cg_track_scan(cg_leaf *leaf, ca_error **err);
int cg_track_signal_all(cg_leaf *leaf, int sig, ca_error **err);
int cg_track_kill_all(cg_leaf *leaf, uint64_t timeout_usec, ca_error **err);

/* spawn.c: marks every fd above 2 close-on-exec except keep[] (ascending): close_range where the kernel has
 * CLOSE_RANGE_CLOEXEC (5.11) and use_close_range, else one fd at a time. Async-signal-safe; 0 or -errno. */
int cg_fds_cloexec(const int *keep, size_t n, bool use_close_range);
