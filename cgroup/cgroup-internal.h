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

typedef struct sd_bus sd_bus;

struct cg_root {
  enum cg_mode mode;
  enum cg_driver driver;  /* CGROUPFS or SYSTEMD */
  sd_bus *bus;            /* systemd: the manager's bus; else the one a removal opened (removal_bus_tried) */
  bool removal_bus_tried; /* a removal looked for the bus of the manager owning path (cg_manager_addresses) */
  char *slice;            /* systemd: cg_root_options.slice */
  char *unit_prefix;      /* systemd: cg_root_options.unit_prefix */
  bool session_slices;    /* systemd: each session scope in a slice of its own (cg_root_options.one_path) */
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
  bool one_path;      /* cg_root_options.one_path on a host with v1 hierarchies: leaves at one path in each */
  bool command_sub;   /* cg_root_options.one_path on a pure v2 host: the command in its leaf's CG_COMMAND_CGROUP */
  char *path;         /* absolute root of the run-* leaves in the tracking hierarchy */
  /* v2 controllers usable in leaves under path (enabled in path's subtree_control). */
  bool v2_memory, v2_pids, v2_cpu;
  /* v1 parents of the run-* leaves per controller (absolute), NULL when that hierarchy is not used. */
  char *v1_parent[CG_V1_N];
};

struct cg_leaf {
  cg_root *root; /* borrowed */
  char id[33];
  char *unit;       /* the scope's name when the leaf is a systemd scope, else NULL */
  pid_t holder_pid; /* systemd: the process that keeps the new scope alive until the command is in it; 0: none */
  int holder_fd;    /* its pipe: closing it ends the holder */
  char *slice_unit; /* systemd: the session's own slice (cg_session_slice_name) holding the scope, else NULL */
  char *slice_path; /* its cgroup, absolute */
  int slice_dirfd;  /* slice_path opened, -1 without: the stats read it (its counters count the containers) */
  char *path;       /* absolute tracking leaf; NULL under process tracking */
  char *rel;        /* the same, as it reads in /proc/<pid>/cgroup */
  int dirfd;        /* O_PATH|O_DIRECTORY of path, -1 under process tracking */
  int cmd_dirfd;    /* its CG_COMMAND_CGROUP, where cg_spawn puts the command; -1: the leaf itself */
  char *v1_path[CG_V1_N];
  char *v1_rel[CG_V1_N];
  uint64_t oom_kill_base;
  int oom_efd;         /* v1: an eventfd the kernel signals on each OOM of the memory leaf, its subtree's included */
  uint64_t oom_events; /* what it counted so far */
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

/* systemd.c: the systemd driver. A scope is asked for with a holder process (a scope needs a process to exist),
 * which then waits in the scope's sub-cgroup CG_HOLDER_CGROUP until cg_leaf_remove: systemd removes a scope's cgroup
 * as soon as it is empty, and the agent still reads the stats (the OOM report) and kills the rest of the tree after
 * the command ended. Listing, signalling and waiting for the leaf leave the holder out. */
#define CG_HOLDER_CGROUP "holder"
/* One property of a transient unit; type is the D-Bus signature: 's', 'b', 't', or 'u' for PIDs (an "au" of one). */
typedef struct cg_unit_prop {
  const char *name;
  char type;
  const char *s;
  uint64_t u;
} cg_unit_prop;
#define CG_SCOPE_PROPS_MAX 16
/* The properties of a session scope for these limits: slice, Delegate, CollectMode, accounting, MemoryMax with
 * MemorySwapMax 0, TasksMax (one more, for the holder), CPUQuotaPerSecUSec, PIDs (holder). Returns how many it filled
 * (at most CG_SCOPE_PROPS_MAX). */
size_t cg_scope_properties(const char *slice, const char *description, const cg_limits *limits, pid_t holder,
                           cg_unit_prop ret[static CG_SCOPE_PROPS_MAX]);
/* The properties of a session's own slice (run --contain-containers: the engine's systemd driver puts containers
 * there, next to the scope): accounting and the limits, TasksMax one more for the scope's holder. The scope in it
 * gets no limits (cg_scope_properties with NULL). Returns how many it filled (at most CG_SCOPE_PROPS_MAX). */
size_t cg_slice_properties(const char *description, const cg_limits *limits,
                           cg_unit_prop ret[static CG_SCOPE_PROPS_MAX]);
/* The slice of session id inside parent ("cleanup_agent.slice"): "cleanup_agent-<id>.slice", a child of parent by
 * systemd's dash rule. -EINVAL when parent is no slice name of ours (or the root slice), -ENAMETOOLONG. */
int cg_session_slice_name(const char *parent, const char *id, char *ret, size_t size);
/* Connects to the manager's bus and sets root->path to the slice's cgroup. 0, or 1 (no usable systemd: *err says
 * why), or a negative errno. */
int cg_systemd_open(cg_root *root, const cg_root_options *opts, ca_error **err);
void cg_systemd_close(cg_root *root);
/* The scope of a new leaf (leaf->unit set): started with limits, its cgroup read back into leaf->path and rel. */
int cg_systemd_start_scope(cg_leaf *leaf, const cg_limits *limits, ca_error **err);
/* Ends the holder (if any) and reaps it. */
void cg_systemd_release_holder(cg_leaf *leaf);
/* Stops the scope (its processes are gone already) and waits until systemd removed its cgroup. */
int cg_systemd_stop_scope(cg_leaf *leaf, ca_error **err);
/* Kills what is left in the session's slice (the containers), stops it and waits until its cgroup is gone; 0 without
 * a slice. */
int cg_systemd_stop_slice(cg_leaf *leaf, ca_error **err);
/* The D-Bus addresses of the manager that owns cgroup path: the user manager of uid when path goes through
 * user@<uid>.service (its bus, and its private socket, which takes root too), else the system manager's. */
void cg_manager_addresses(const char *path, char *bus, char *private, size_t size);
/* root.c: whether name is a session leaf, run-<id> (cgroupfs) or <prefix>-run-<id>.scope (systemd); *ret_id points
 * at the 32 hex characters of the id in name. */
bool cg_leaf_name_id(const char *name, const char **ret_id);

/* driver, or the process's default when it is AUTO (which may be AUTO too). */
enum cg_driver cg_driver_wanted(enum cg_driver driver);
/* Whether our own v2 cgroup directory was delegated to us: systemd's xattr, or (unprivileged) owned by us. */
bool cg_dir_delegated(const char *dir);

/* leaf.c: with no manager to ask, the session's slice (leaf->slice_path) as systemd would stop it: every process in
 * it killed (cg_leaf_kill_all, within timeout_usec), then its cgroups removed. 0 when it is gone already. */
int cg_slice_kill_remove(cg_leaf *leaf, uint64_t timeout_usec, ca_error **err);

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
