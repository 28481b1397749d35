/* cgroup: one cgroup leaf per session that places, limits, kills and measures a whole process tree.
 * The one public header of the module. Tracking and killing happen on the cgroup v2 hierarchy whenever one is
 * mounted (hybrid hosts included); limits go to v2 controllers, or on hybrid hosts to the v1 memory, pids and cpu
 * hierarchies in leaves of the same name. Without any writable cgroup the module falls back to process tracking
 * (subreaper + process group + /proc walk verified by start time) and says so through cg_root_tracking().
 * Functions never print and never exit: they return a negative errno and fill ca_error. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"

/* ---- modes and roots --------------------------------------------------------------------------------------- */

/* How cgroups are mounted on this host. */
enum cg_mode {
  CG_MODE_NONE = 0, /* no cgroup filesystem at all */
  CG_MODE_LEGACY,   /* v1 controllers only */
  CG_MODE_HYBRID,   /* v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified) */
  CG_MODE_UNIFIED,  /* pure cgroup v2 at /sys/fs/cgroup */
};
const char *cg_mode_name(enum cg_mode mode);

/* How sessions are tracked and killed once a root is open. */
enum cg_tracking {
  CG_TRACK_CGROUP = 0, /* a cgroup leaf per session: exact */
  CG_TRACK_PROCESS,    /* no writable cgroup: subreaper + process group + /proc walk verified by start time */
};
const char *cg_tracking_name(enum cg_tracking tracking);

/* Who manages the session cgroups. */
enum cg_driver {
  CG_DRIVER_AUTO = 0, /* systemd where systemd is PID 1 on a pure cgroup v2 host and the caller is in no delegated
                       * subtree; cgroupfs elsewhere */
  CG_DRIVER_CGROUPFS, /* the module writes the leaves itself under its root; always so for a root given by path */
  CG_DRIVER_SYSTEMD,  /* a transient scope per session, asked of systemd over D-Bus (Delegate=yes, limits as unit
                       * properties); the module writes only inside the scope's cgroup */
};
const char *cg_driver_name(enum cg_driver driver);
/* "auto", "systemd" or "cgroupfs"; EINVAL with a message naming the three otherwise. */
int cg_driver_parse(const char *text, enum cg_driver *ret, ca_error **err);
/* What AUTO resolves to for every root opened with driver AUTO in this process (the agent's --cgroup-driver). */
void cg_driver_set_default(enum cg_driver driver);
/* Whether systemd runs as PID 1, as sd_booted() tells: systemd_dir ("/run/systemd/system" when NULL) exists. */
bool cg_systemd_booted(const char *systemd_dir);
/* The driver `wanted` means on a host with these traits: AUTO resolved through the default, cgroupfs for a root
 * given by path whatever was wanted, else what was asked. A pure function of its arguments and the default. */
enum cg_driver cg_driver_resolve(enum cg_driver wanted, bool systemd_booted, bool unified, bool root_given,
                                 bool in_delegated);

/* Options of cg_root_open. Zero-initialise and set what you need; every path is a runtime parameter so tests can
 * point the module at temp dirs. */
typedef struct cg_root_options {
  const char *root;        /* absolute path of the root of the session leaves inside the cgroup2 (or, on legacy hosts,
                            * the v1 pids/memory) mount; NULL picks a delegated subtree the caller runs under, else
                            * <mount>/<name> */
  const char *name;        /* the directory made under the mount (on legacy hosts, under the caller's own v1 cgroup)
                            * when root is NULL and the caller is in no delegated subtree: the caller's own name, one
                            * path component; needed then (EINVAL without it) */
  const char *root_option; /* how the caller's users set root (its command-line option, say), for messages; NULL:
                            * "the cgroup root" */
  const char *proc;        /* procfs mount, "/proc" when NULL */
  bool force_process;      /* use CG_TRACK_PROCESS even when a cgroup is writable */
  bool allow_process;      /* fall back to CG_TRACK_PROCESS when no cgroup is writable instead of failing */
  bool avoid_cgroup_kill;  /* kill by freeze + checked pidfd kills even where cgroup.kill exists (tests, benchmarks) */
  bool open_existing;      /* take the root as it is, to look at or collect the leaves in it (ps, kill, gc): nothing
                            * is created, no controller enabled, no process moved; a root that does not exist yet is
                            * no cgroup (ENOENT, or process tracking with allow_process); no leaf can be created */
  bool one_path;           /* the leaves are to hold a container engine's containers (cg_leaf_engine_parent): its
                            * cgroupfs driver takes one cgroup parent for all hierarchies, so on hosts with v1
                            * hierarchies the default root goes below the deepest of the caller's own cgroups, and the
                            * v1 leaves at the tracking leaf's path, and on a pure v2 host the command goes into the
                            * leaf's sub-cgroup "command" so that the containers can be its siblings; with the systemd
                            * driver each session scope goes into a slice of its own holding the limits,
                            * <slice without .slice>-<id>.slice */
  enum cg_driver driver;   /* AUTO: cg_driver_set_default's, itself AUTO unless set */
  const char *slice;       /* systemd: the slice of the session scopes ("cleanup_agent.slice"); needed with systemd */
  const char
      *unit_prefix; /* systemd: scopes are <unit_prefix>run-<id>.scope (helpers <unit_prefix><what>-<id>.scope) */
  const char *systemd_dir; /* "/run/systemd/system" when NULL (tests) */
  const char *bus_address; /* systemd: D-Bus address; NULL: the system bus as root, else the user manager's bus */
} cg_root_options;

/* An opened root: the mounts, the chosen root directory and what its controllers can do. */
typedef struct cg_root cg_root;

/* Detects the mode, selects and creates the root (mkdir -p), checks that it is writable and enables the memory,
 * pids and cpu controllers available along the path from the mount to the root (retrying EBUSY, then one at a
 * time). Fails with a message that says what to do when nothing writable is found and !allow_process. With
 * open_existing it only selects the root and reads which controllers its leaves have. */
int cg_root_open(const cg_root_options *opts, cg_root **ret, ca_error **err);
void cg_root_free(cg_root *root);
DEFINE_TRIVIAL_CLEANUP_FUNC(cg_root *, cg_root_free)
#define _cleanup_cg_root_ _cleanup_(cg_root_freep)

enum cg_mode cg_root_mode(const cg_root *root);
/* The driver in use: CGROUPFS or SYSTEMD (also under process tracking: the one that was tried). */
enum cg_driver cg_root_driver(const cg_root *root);
/* Moves pid, a helper of the caller (the guardian), out of the caller's cgroup into a scope of its own,
 * <unit_prefix><what>-<session_id>.scope in the slice, so that a service stop that kills the caller's cgroup leaves it
 * alone. A no-op (0) unless the systemd driver is in use. */
int cg_root_adopt_helper(cg_root *root, const char *what, const char *session_id, pid_t pid, ca_error **err);
enum cg_tracking cg_root_tracking(const cg_root *root);
/* Why process tracking is in use ("cannot write /sys/fs/cgroup/...: permission denied"), NULL with cgroups. */
const char *cg_root_fallback_reason(const cg_root *root);
/* Absolute path of the directory holding the run-* leaves; NULL under process tracking. */
const char *cg_root_path(const cg_root *root);
/* Whether a limit of this kind can be applied ("memory", "pids", "cpu"), through v2 or the v1 hierarchies. */
bool cg_root_can_limit(const cg_root *root, const char *controller);

/* The session ids (32 lowercase hex) of the run-<id> leaves under the root; a NULL-terminated list, caller frees
 * with ca_strv_free. Names that are not run-<32 hex> are skipped. Empty under process tracking. */
int cg_root_list_sessions(cg_root *root, char ***ret_ids, ca_error **err);

/* Removes the root directory and the v1 parents when they hold no leaves (tests, uninstall); EBUSY otherwise. */
int cg_root_remove(cg_root *root, ca_error **err);

/* ---- session leaves ---------------------------------------------------------------------------------------- */

/* Limits written before the child runs; 0 means "no limit". A limit that cannot be applied is an error. */
typedef struct cg_limits {
  uint64_t memory_max; /* bytes; swap is limited to 0 along with it */
  uint64_t pids_max;
  double cpus; /* fractional CPUs: cpu.max = cpus * 100000 per 100000 period */
} cg_limits;

/* One session: the v2 leaf <root>/run-<id> (plus v1 leaves of the same name on hybrid hosts), or the process
 * tracker when no cgroup is writable. */
typedef struct cg_leaf cg_leaf;

/* cgroupfs on a pure cgroup v2 host with one_path (run --contain-containers): the command runs in this sub-cgroup of
 * its leaf, so that the leaf holds no process of its own (v2's no-internal-processes rule) and the engine can make
 * the containers' cgroups next to it and enable controllers in the leaf's subtree_control. The limits, stats and kill
 * stay on the leaf, and so cover the command and the containers together; a session nested in the command puts its
 * leaves in the leaf, next to the containers. */
#define CG_COMMAND_CGROUP "command"

/* Creates run-<session_id> with the limits applied. Fails with EEXIST when the leaf exists already. Under process
 * tracking it makes the caller a child subreaper, and any limit is an ENOTSUP error. */
int cg_leaf_create(cg_root *root, const char *session_id, const cg_limits *limits, cg_leaf **ret, ca_error **err);
/* Opens an existing leaf (for gc and kill of another session); ENOENT when it does not exist. */
int cg_leaf_open(cg_root *root, const char *session_id, cg_leaf **ret, ca_error **err);
/* Closes the handle; the cgroup stays (see cg_leaf_remove). */
void cg_leaf_free(cg_leaf *leaf);
DEFINE_TRIVIAL_CLEANUP_FUNC(cg_leaf *, cg_leaf_free)
#define _cleanup_cg_leaf_ _cleanup_(cg_leaf_freep)

/* Declares pid, a helper of the caller (the guardian), as no part of the session: process tracking never counts or
 * signals it, even when it started in the same clock tick as the command. A no-op with cgroups, where helpers live
 * outside the leaf. At most CG_LEAF_MAX_IGNORED pids; EINVAL beyond. */
#define CG_LEAF_MAX_IGNORED 4
int cg_leaf_ignore_pid(cg_leaf *leaf, pid_t pid, ca_error **err);

/* Absolute path of the v2 (or tracking v1) leaf; NULL under process tracking. */
const char *cg_leaf_path(const cg_leaf *leaf);
/* The cgroup parent a container engine with cgroup driver engine_driver ("cgroupfs", "systemd": `docker info`'s Cgroup
 * Driver) needs to create its containers inside the leaf (caller frees *ret_parent): with cgroupfs, the leaf's path
 * below the mounts, the same in every hierarchy (a root opened with one_path; on a pure v2 host the command is in the
 * leaf's sub-cgroup "command", next to the containers), so that the leaf's limits bound them, its kill kills them and
 * its OOM events count theirs; with systemd, the session's own slice (a root opened with
 * one_path), which holds the limits and whose memory.events the stats read, and which cg_leaf_remove kills and stops.
 * ENOTSUP, with err saying why, under process tracking, for an engine driver other than the root's, for leaves at
 * different paths in different hierarchies and, with cgroupfs on a pure cgroup v2 host, for a leaf whose command runs
 * in the leaf itself (a root opened without one_path). */
int cg_leaf_engine_parent(const cg_leaf *leaf, const char *engine_driver, char **ret_parent, ca_error **err);
/* The systemd unit of the leaf ("cleanup-agent-run-<id>.scope"), NULL when it is no scope. */
const char *cg_leaf_unit(const cg_leaf *leaf);

/* ---- spawn ------------------------------------------------------------------------------------------------- */

/* ca_error.detail of a cg_spawn failure that comes from the command itself (execve failed or the program was not
 * found): code is ENOENT for "not found" (exit 127) and EACCES, ENOEXEC, ... for "not executable" (exit 126). */
#define CG_ERROR_DETAIL_EXEC 1

struct cg_process;
typedef struct cg_spawn_options {
  char *const *argv;    /* argv[0] is looked up in PATH (from envp, else the agent's) when it holds no '/' */
  char *const *envp;    /* NULL: the agent's environment */
  const char *cwd;      /* NULL: the agent's */
  bool join_after_fork; /* skip clone3(CLONE_INTO_CGROUP): fork, join, exec (tests and benchmarks) */
  /* Runs in the child after it joined the cgroups and before exec (a private mount namespace, say): only
   * async-signal-safe calls. Returns 0, or -errno, which fails cg_spawn with pre_exec_what in the message. */
  int (*pre_exec)(void *userdata);
  void *pre_exec_data;
  const char *pre_exec_what;
  /* The fds above 2 the command inherits, ascending (cg_fds_inherited): every other fd of the agent is closed when the
   * command execs, whatever the code that opened it forgot. */
  const int *keep_fds;
  size_t n_keep_fds;
  /* The command's new process group becomes the foreground of the terminal on stdin before exec (a command that
   * reads the terminal), as a shell does for a foreground job. */
  bool take_terminal;
  /* Runs in the agent once the child exists, in its own process group, and before it execs (to record the group, say):
   * the command runs only after it returned 0. An agent that dies before takes the child with it, and a hook that
   * fails (a negative errno, err set) stops it before exec (cg_spawn fails with that error, the child reaped): the
   * command never runs unrecorded. proc->pidfd stays cg_spawn's (-1 until exec where clone3 gave none). */
  int (*started)(void *data, const struct cg_process *proc, ca_error **err);
  void *started_data;
} cg_spawn_options;

typedef struct cg_process {
  pid_t pid;
  int pidfd;              /* close-on-exec; -1 on kernels without pidfds; caller closes */
  uint64_t start_time;    /* field 22 of /proc/<pid>/stat */
  bool clone_into_cgroup; /* placed by clone3(CLONE_INTO_CGROUP) rather than by joining after fork */
} cg_process;

/* Starts the command inside the leaf: the child is in the v2 leaf (and the v1 leaves) before it runs a single
 * instruction of the command, in its own process group, with default signal dispositions and an empty signal
 * mask. On failure nothing is left running; the child is reaped. */
int cg_spawn(cg_leaf *leaf, const cg_spawn_options *opts, cg_process *ret, ca_error **err);
/* The fds above 2 open without close-on-exec, ascending (caller frees *ret_fds): called first thing in a program, the
 * ones its caller passed on (a pipe of the shell's <(...), make's jobserver), which its own command should get too. */
int cg_fds_inherited(int **ret_fds, size_t *ret_n, ca_error **err);

/* ---- signal, kill, wait ------------------------------------------------------------------------------------ */

/* Sends sig to every process of the leaf (the graceful phase). Each pid read from cgroup.procs is pinned with a
 * pidfd and only then looked up in /proc/<pid>/cgroup; the signal goes through the pidfd. So it reaches only a process
 * that was in the leaf when that lookup ran: a pid reused by an outsider before the pidfd was opened fails the
 * lookup, and a pinned process that exits afterwards takes the signal with it (its pid's next owner gets nothing).
 * One that moves out of the leaf between the lookup and the signal is still signalled. Returns the number of
 * processes signalled. */
int cg_leaf_signal_all(cg_leaf *leaf, int sig, ca_error **err);
/* Kills every process of the leaf (cgroup.kill, else freeze + pidfd kills checked as cg_leaf_signal_all checks its
 * signals + thaw, repeated) and waits until it is empty or timeout_usec passed (ETIMEDOUT names how many processes
 * are left). */
int cg_leaf_kill_all(cg_leaf *leaf, uint64_t timeout_usec, ca_error **err);
/* How cg_leaf_kill_all kills now: "cgroup.kill" where the kernel has it (and the root may use it), else "SIGKILL". */
const char *cg_leaf_kill_method(cg_leaf *leaf);
/* Waits until the leaf holds no process (cgroup.events "populated 0"), ETIMEDOUT after timeout_usec. */
int cg_leaf_wait_empty(cg_leaf *leaf, uint64_t timeout_usec, ca_error **err);

typedef struct cg_proc_info {
  pid_t pid;
  uint64_t start_time;
  char comm[17];
} cg_proc_info;

/* The processes in the leaf now (zombies excluded), for "3 processes outlived the command: sleep (pid 123), ...".
 * Caller frees *ret_procs. */
int cg_leaf_list_processes(cg_leaf *leaf, cg_proc_info **ret_procs, size_t *ret_count, ca_error **err);

/* ---- stats ------------------------------------------------------------------------------------------------- */

typedef struct cg_stats {
  bool has_memory;         /* memory_peak and oom_kills are meaningful */
  uint64_t memory_current; /* bytes in use now: memory.current (v2), memory.usage_in_bytes (v1) */
  uint64_t memory_peak;    /* bytes: memory.peak (v2), memory.max_usage_in_bytes (v1), else highest sample */
  uint64_t oom_kills;      /* processes killed by the OOM killer inside the leaf since creation */
  bool has_pids;
  uint64_t pids_limit_hits; /* forks refused at pids.max since creation */
  bool has_cpu;
  uint64_t cpu_usage_usec; /* user + system CPU time of the whole tree */
  uint64_t cpu_throttled;  /* periods in which cpu.max throttled the tree */
  uint64_t cpu_throttled_usec;
  uint64_t nr_processes; /* processes in the leaf now */
} cg_stats;

/* Reads the stats of the leaf (all fields zero with has_* false under process tracking). */
int cg_leaf_stats(cg_leaf *leaf, cg_stats *ret, ca_error **err);
/* Records memory.current as a peak candidate, for kernels without memory.peak; callers sample it periodically. */
void cg_leaf_sample(cg_leaf *leaf);

/* Removes the leaf bottom-up (sub-cgroups the command created first, v1 leaves too) with bounded backoff on EBUSY.
 * The leaf must be empty: call cg_leaf_kill_all first. The handle stays valid for cg_leaf_free. */
int cg_leaf_remove(cg_leaf *leaf, ca_error **err);
/* Hybrid hosts: removes the v1 leaves (memory, pids, cpu) of a session whose v2 leaf is gone (an end killed between
 * the two removals), so that no collection forgets them. 1 when some were removed, 0 when there were none. */
int cg_leaf_remove_v1_left(cg_root *root, const char *session_id, ca_error **err);

/* ---- process identity -------------------------------------------------------------------------------------- */

/* Signals pid only when it is still the process that started at start_time (field 22 of /proc/<pid>/stat): opens a
 * pidfd first, then reads the start time, then signals through the pidfd. A pid reused before the open shows another
 * start time and is not signalled; a pinned process that exits after the open takes the signal with it. What is not
 * told apart: two processes of the same pid started in the same clock tick (10 ms), which needs the pid space to wrap
 * within it. Returns 0, or -ESRCH (with err) when the process is gone or the pid now names another process. */
int cg_signal_verified(const char *proc, pid_t pid, uint64_t start_time, int sig, ca_error **err);

/* A process group a session recorded under process tracking, for a later collector without the agent: the main
 * process and the group it leads, each with its start time (field 22 of /proc/<pid>/stat). */
typedef struct cg_group {
  pid_t main_pid;
  uint64_t main_start;
  pid_t pgrp;
  uint64_t pgrp_start;   /* of the group's leader, the process whose pid is pgrp */
  const char *env_entry; /* "CLEANUP_AGENT_SESSION=<id>": proves a member when the group's leader is gone; NULL:
                          * such members are not taken */
} cg_group;

/* Kills what is left of the recorded group g (SIGSTOP, then SIGKILL, each through cg_signal_verified, repeated until
 * none is left or timeout_usec passed: ETIMEDOUT). A process is a member when it is the main process (pid and start
 * time), or it is in the group and started no earlier than its leader, the leader being alive with its recorded start
 * time or, when no process has the leader's pid any more, its environment holding env_entry; or its parent is a
 * member and it started no earlier than that parent. A leader's pid held by a process of another start time means the
 * group is gone and the pid reused: nothing is signalled. exclude (the caller) never is. *ret_killed: how many
 * processes were found to kill. */
int cg_group_kill(const char *proc, const cg_group *g, pid_t exclude, uint64_t timeout_usec, unsigned *ret_killed,
                  ca_error **err);

/* ---- parsers (buffers in, no I/O; cg_proc_read_stat aside) ------------------------------------------------------- */

/* The cgroup mounts found in /proc/self/mountinfo. Paths are malloc'ed; free with cg_mounts_done. */
typedef struct cg_mounts {
  char *unified;   /* cgroup2 mount point, NULL if none */
  char *v1_memory; /* v1 hierarchies that carry each controller, NULL if none */
  char *v1_pids;
  char *v1_cpu;
  size_t v1_count; /* number of v1 mounts of any controller (legacy/hybrid detection) */
} cg_mounts;
int cg_parse_mountinfo(const char *text, cg_mounts *ret, ca_error **err);
void cg_mounts_done(cg_mounts *m);
/* Reads them from <proc>/self/mountinfo (proc NULL: /proc), keeping a cgroup2 mount only when it is reachable. */
int cg_mounts_read(const char *proc, cg_mounts *ret, ca_error **err);

/* What the cgroup of another process (a container's main process, say) has used, read through this process's
 * mounts: CPU time from the v2 cpu.stat (every v2 cgroup has it, controller enabled or not) and anonymous memory
 * from the memory.stat of whichever hierarchy carries the memory controller. */
typedef struct cg_usage {
  uint64_t cpu_usec;
  uint64_t anon_bytes;
  bool has_memory; /* anon_bytes is known */
} cg_usage;
/* ESRCH when pid is gone, ENOTSUP without a cgroup2 mount to read the CPU time from. */
int cg_proc_usage(const char *proc, const cg_mounts *m, pid_t pid, cg_usage *ret, ca_error **err);

/* The fields of /proc/<pid>/stat the module needs; comm may hold spaces and parentheses. */
typedef struct cg_proc_stat {
  pid_t pid;
  char comm[17];
  char state;
  pid_t ppid;
  pid_t pgrp;
  uint64_t start_time; /* field 22, clock ticks since boot */
} cg_proc_stat;
int cg_parse_proc_stat(const char *text, cg_proc_stat *ret, ca_error **err);
/* Reads and parses /proc/<pid>/stat under procfs proc ("/proc" when NULL): the one reader of that file. ESRCH when
 * there is no such process. */
int cg_proc_read_stat(const char *proc, pid_t pid, cg_proc_stat *ret, ca_error **err);
/* Its field 22, the start time in clock ticks since boot: with the pid, the identity of a process. */
int cg_proc_start_time(const char *proc, pid_t pid, uint64_t *ret, ca_error **err);
/* Whether the process pid of the caller's PID namespace that started at start_time still runs: 1 it does, -1 it is
 * gone (no process has the pid, or another one does), 0 it cannot be told (its stat is hidden, as under hidepid, or
 * unreadable). */
int cg_proc_alive(pid_t pid, uint64_t start_time);

/* /proc/<pid>/cgroup: the v2 path ("0::/x") and the v1 paths of the memory, pids and cpu hierarchies. */
typedef struct cg_proc_cgroup {
  char *unified;
  char *v1_memory;
  char *v1_pids;
  char *v1_cpu;
} cg_proc_cgroup;
int cg_parse_proc_cgroup(const char *text, cg_proc_cgroup *ret, ca_error **err);
void cg_proc_cgroup_done(cg_proc_cgroup *c);

/* cgroup.events. */
typedef struct cg_events {
  bool populated;
} cg_events;
int cg_parse_events(const char *text, cg_events *ret, ca_error **err);

/* memory.events (v2) or memory.oom_control (v1): the counter the stats need, oom_kill, which both files carry on
 * every supported kernel. */
typedef struct cg_memory_events {
  uint64_t oom_kill;
} cg_memory_events;
int cg_parse_memory_events(const char *text, cg_memory_events *ret, ca_error **err);

/* cpu.stat: v2 (usage_usec, nr_throttled, throttled_usec) or v1 (nr_throttled, throttled_time in ns). */
typedef struct cg_cpu_stat {
  uint64_t usage_usec;
  uint64_t nr_throttled;
  uint64_t throttled_usec;
} cg_cpu_stat;
int cg_parse_cpu_stat(const char *text, cg_cpu_stat *ret, ca_error **err);

/* The value of "key N" in a flat-keyed file (pids.events, memory.stat, ...). ENOENT when key is missing, EINVAL
 * on a malformed line or number. */
int cg_parse_keyed(const char *text, const char *key, uint64_t *ret, ca_error **err);
