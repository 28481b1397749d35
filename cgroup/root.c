/* Mode detection and root selection.
 *
 * Tracking and killing use the cgroup2 hierarchy whenever one is mounted, hybrid hosts included: cgroup.kill,
 * cgroup.events and CLONE_INTO_CGROUP exist only there. Limits go to v2 controllers when the root has them, else
 * (hybrid) to the v1 memory, pids and cpu hierarchies.
 *
 * v1 leaves are created under the agent's OWN cgroup of each v1 hierarchy (/proc/self/cgroup), not under the
 * hierarchy root: v1 limits are hierarchical, so a leaf below the agent keeps the command inside whatever limit the
 * CI runner or container put on the job, while a leaf at the root would let it escape that limit. The agent's own v1
 * cgroup is also the only writable place inside most containers, and v1 has no no-internal-processes rule that would
 * forbid a child next to the agent. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "cgroup-internal.h"

const char *const cg_v1_names[CG_V1_N] = {"memory", "pids", "cpu"};

const char *cg_mode_name(enum cg_mode mode) {
  switch (mode) {
    case CG_MODE_NONE:
      return "none";
    case CG_MODE_LEGACY:
      return "legacy";
    case CG_MODE_HYBRID:
      return "hybrid";
    case CG_MODE_UNIFIED:
      return "unified";
  }
  return "unknown";
}

const char *cg_tracking_name(enum cg_tracking tracking) {
  return tracking == CG_TRACK_CGROUP ? "cgroup" : "process";
}

void cg_root_free(cg_root *root) {
  if (!root)
    return;
  cg_systemd_close(root);
  free(root->proc);
  free(root->fallback_reason);
  free(root->root_option);
  cg_mounts_done(&root->mounts);
  free(root->track_mount);
  free(root->path);
  for (int i = 0; i < CG_V1_N; i++)
    free(root->v1_parent[i]);
  free(root);
}

enum cg_mode cg_root_mode(const cg_root *root) {
  return root->mode;
}
enum cg_driver cg_root_driver(const cg_root *root) {
  return root->driver;
}
enum cg_tracking cg_root_tracking(const cg_root *root) {
  return root->tracking;
}
const char *cg_root_fallback_reason(const cg_root *root) {
  return root->fallback_reason;
}
const char *cg_root_path(const cg_root *root) {
  return root->tracking == CG_TRACK_CGROUP ? root->path : NULL;
}

bool cg_root_can_limit(const cg_root *root, const char *controller) {
  if (root->tracking != CG_TRACK_CGROUP)
    return false;
  for (int i = 0; i < CG_V1_N; i++)
    if (streq(controller, cg_v1_names[i])) {
      bool v2 = i == CG_V1_MEMORY ? root->v2_memory : i == CG_V1_PIDS ? root->v2_pids : root->v2_cpu;
      return v2 || root->v1_parent[i];
    }
  return false;
}

/* "cannot <what> <path>: <strerror>", with a hint on permission errors that names the caller's root option. */
static int access_error(const cg_root *root, int e, const char *what, const char *path, ca_error **err) {
  if (e == EACCES || e == EPERM || e == EROFS)
    return ca_error_set(err, e, "cannot %s %s: %s; run as root or set %s to a delegated subtree", what, path,
                        strerror(e), root->root_option);
  return ca_error_set(err, e, "cannot %s %s: %s", what, path, strerror(e));
}

/* mkdir -p; every component that exists already is fine. */
static int mkdir_p(const cg_root *root, const char *path, ca_error **err) {
  _cleanup_free_ char *p = strdup(path);
  if (!p)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == '\0') {
      char c = *s;
      *s = '\0';
      if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return access_error(root, errno, "create", p, err);
      *s = c;
      if (!c)
        break;
    }
  }
  return 0;
}

static bool is_directory(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_cgroup2(const char *path) {
  struct statfs sfs;
  return path && statfs(path, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
}

/* Writes "+name" to subtree_control of dir, retrying EBUSY (processes leaving a cgroup make it transient). */
static int enable_controllers(const char *dir, const char *value, ca_error **err) {
  _cleanup_close_ int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0)
    return ca_error_set_errno(err, errno, "cannot open %s", dir);
  int r = 0;
  for (int attempt = 0; attempt < 5; attempt++) {
    r = cg_write_at(dirfd, dir, "cgroup.subtree_control", value, err);
    if (r != -EBUSY)
      return r;
    usleep(10000u << attempt);
  }
  return r;
}

/* A cgroup namespace's root that holds processes (a container's: its init, this agent) cannot give its children
 * controllers (cgroup v2's "no internal processes": EBUSY). Its processes move into its leaf "init", as docker's
 * hack/dind does; the host's real root never gets here (it is exempt). 0 once the root holds none. */
static int evacuate_namespace_root(const char *dir) {
  _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || (mkdirat(dfd, "init", 0755) < 0 && errno != EEXIST))
    return -errno;
  char procs[PATH_MAX];
  snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
  for (int round = 0; round < 10; round++) { /* a process forked meanwhile is there in the next round */
    _cleanup_free_ char *text = NULL;
    _cleanup_free_ pid_t *pids = NULL;
    size_t n = 0, cap = 0;
    if (ca_read_file(procs, CG_PROCS_FILE_MAX, &text, NULL, NULL) < 0 ||
        cg_parse_procs(text, procs, &pids, &n, &cap, NULL) < 0)
      return -EIO;
    if (n == 0)
      return 0;
    for (size_t i = 0; i < n; i++) {
      char pid[24];
      snprintf(pid, sizeof(pid), "%d", (int)pids[i]);
      (void)cg_write_at(dfd, dir, "init/cgroup.procs", pid, NULL); /* one that exited meanwhile: ESRCH */
    }
  }
  return -EBUSY;
}

/* Whether the cgroup at dfd holds processes of its own (cgroup.procs lists them; not its descendants'). */
static bool holds_processes(int dfd) {
  char procs[16];
  int n = ca_read_file_buf(dfd, "cgroup.procs", procs, sizeof(procs), NULL);
  return n > 0 || n == -EFBIG; /* more than the buffer holds: more processes */
}

/* Enables the memory, pids and cpu controllers on the path from the mount down to root->path (so the leaves get
 * them), combined first, then one at a time. What cannot be enabled stays off and limits on it fail later. Not in a
 * cgroup below the mount that holds processes (a nested session's root is the outer session's leaf, where the inner
 * agent runs): "no internal processes" refuses the domain controllers there, and the threaded ones it takes (pids,
 * cpu) would make it a thread root, whose domain children cannot hold processes (clone3 into them: EOPNOTSUPP). */
static void enable_v2_controllers(cg_root *root) {
  char avail[256];
  _cleanup_close_ int mfd = open(root->track_mount, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (mfd < 0 || ca_read_file_buf(mfd, "cgroup.controllers", avail, sizeof(avail), NULL) < 0)
    return;
  const char *names[] = {"memory", "pids", "cpu"};
  bool want[3];
  for (int i = 0; i < 3; i++)
    want[i] = cg_has_word(avail, names[i]);

  size_t mlen = strlen(root->track_mount);
  _cleanup_free_ char *walk = strdup(root->path);
  if (!walk)
    return;
  /* Each directory from the mount down to root->path, inclusive. */
  for (char *s = walk + mlen;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    char cur[256] = "";
    _cleanup_close_ int dfd = open(walk, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
      (void)ca_read_file_buf(dfd, "cgroup.subtree_control", cur, sizeof(cur), NULL); /* empty on failure: write all */
    char all[64] = "";
    for (int i = 0; i < 3; i++)
      if (want[i] && !cg_has_word(cur, names[i])) {
        strcat(all, all[0] ? " +" : "+");
        strcat(all, names[i]);
      }
    bool busy = all[0] && s != walk + mlen && dfd >= 0 && holds_processes(dfd);
    int r = busy ? -EBUSY : all[0] ? enable_controllers(walk, all, NULL) : 0;
    if (r == -EBUSY && s == walk + mlen && evacuate_namespace_root(walk) == 0)
      r = enable_controllers(walk, all, NULL);
    if (busy)
      for (int i = 0; i < 3; i++)
        want[i] = want[i] && cg_has_word(cur, names[i]);
    else if (r < 0)
      for (int i = 0; i < 3; i++)
        if (want[i] && !cg_has_word(cur, names[i])) {
          char one[16];
          snprintf(one, sizeof(one), "+%s", names[i]);
          if (enable_controllers(walk, one, NULL) < 0)
            want[i] = false;
        }
    *s = c;
    if (!c)
      break;
  }
  root->v2_memory = want[0];
  root->v2_pids = want[1];
  root->v2_cpu = want[2];
}

static int fallback(cg_root *root, const cg_root_options *opts, ca_error **err) {
  if (!opts->allow_process && !opts->force_process)
    return -((*err) ? (*err)->code : EIO);
  root->tracking = CG_TRACK_PROCESS;
  root->fallback_reason = opts->force_process ? strdup("process tracking was requested")
                          : (err && *err)     ? strdup((*err)->msg)
                                              : strdup("no writable cgroup");
  if (err) {
    ca_error_free(*err);
    *err = NULL;
  }
  return root->fallback_reason ? 0 : ca_error_set(err, ENOMEM, "out of memory");
}

/* <mount>[<own cgroup>]<rel>: the own cgroup "/" counts as none. */
static char *join_path(const char *mount, const char *own, const char *rel) {
  char *s = NULL;
  if (own && streq(own, "/"))
    own = "";
  if (asprintf(&s, "%s%s%s", mount, own ? own : "", rel) < 0)
    return NULL;
  return s;
}

int cg_mounts_read(const char *proc, cg_mounts *ret, ca_error **err) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/self/mountinfo", proc ? proc : "/proc");
  _cleanup_free_ char *mountinfo = NULL;
  if (ca_read_file(path, CG_MOUNTINFO_MAX, &mountinfo, NULL, err) < 0 || cg_parse_mountinfo(mountinfo, ret, err) < 0)
    return ca_error_wrap(err, "cgroup: cannot detect the cgroup mounts");
  if (ret->unified && !is_cgroup2(ret->unified)) {
    free(ret->unified); /* listed but not reachable from here (another mount namespace view) */
    ret->unified = NULL;
  }
  return 0;
}

/* Reads the cgroup mounts from mountinfo and sets root->mode. */
static int detect_mounts(cg_root *root, ca_error **err) {
  int r = cg_mounts_read(root->proc, &root->mounts, err);
  if (r < 0)
    return r;
  root->mode = root->mounts.unified    ? (root->mounts.v1_count ? CG_MODE_HYBRID : CG_MODE_UNIFIED)
               : root->mounts.v1_count ? CG_MODE_LEGACY
                                       : CG_MODE_NONE;
  return 0;
}

/* Whether cgroup path p is dir or below it ("/" is above everything). */
static bool path_below(const char *p, const char *dir) {
  size_t n = dir ? strlen(dir) : 0;
  return dir && (streq(dir, "/") || (strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/')));
}

/* one_path on a host with v1 hierarchies: the deepest of the caller's own cgroups in the tracking and v1 hierarchies,
 * which every other must contain, so that a root below it is below the caller's own cgroup in each (a limit the job
 * has stays over the session). ENOTSUP when they are not nested. */
static int one_path_own(const cg_root *root, const cg_proc_cgroup *own, const char *own_track, const char **ret,
                        ca_error **err) {
  const char *owns[] = {own_track, root->mounts.v1_memory ? own->v1_memory : NULL,
                        root->mounts.v1_pids ? own->v1_pids : NULL, root->mounts.v1_cpu ? own->v1_cpu : NULL};
  const char *deepest = "/";
  for (size_t i = 0; i < 4; i++)
    if (owns[i] && strlen(owns[i]) > strlen(deepest))
      deepest = owns[i];
  for (size_t i = 0; i < 4; i++)
    if (owns[i] && !path_below(deepest, owns[i]))
      return ca_error_set(err, ENOTSUP,
                          "the session's cgroups need one path in every hierarchy (the container engine takes one "
                          "cgroup parent for all), and this process is in unrelated ones: %s and %s",
                          owns[i], deepest);
  *ret = deepest;
  return 0;
}

/* Results of the steps of cg_root_open besides 0 and a negative errno (a usage or memory error, which no fallback
 * hides): no cgroup is usable, *err says why, and process tracking may take over. */
#define NO_CGROUP 1

/* Moves the caller out of its delegated cgroup own_dir into own_dir/supervisor, so that own_dir can hold the session
 * leaves (the no-internal-processes rule). */
static int leave_delegated(const char *own_dir, ca_error **err) {
  char sup[PATH_MAX + 32];
  snprintf(sup, sizeof(sup), "%s/supervisor", own_dir);
  if (mkdir(sup, 0755) < 0 && errno != EEXIST)
    return ca_error_set(err, errno, "cannot create %s in the delegated subtree: %s", sup, strerror(errno));
  strcat(sup, "/cgroup.procs");
  return cg_write_path(sup, "0", err);
}

/* The default root: <mount>[<own>]/<name>, own being the caller's v1 cgroup on legacy hosts, or with one_path the
 * deepest of its cgroups (one_path_own). */
static char *named_path(const cg_root *root, const cg_root_options *opts, const char *own, ca_error **err) {
  const char *name = opts->name;
  if (!name || !name[0] || strchr(name, '/') || streq(name, ".") || streq(name, "..")) {
    ca_error_set(err, EINVAL, "cgroup: no root was given and \"%s\" is no name for a default one", name ? name : "");
    return NULL;
  }
  char rel[PATH_MAX];
  snprintf(rel, sizeof(rel), "/%s", name);
  char *p = join_path(root->track_mount, own, rel);
  if (!p)
    ca_error_set(err, ENOMEM, "out of memory");
  return p;
}

/* Sets root->path: opts->root checked to lie inside the tracking mount, else the delegated subtree the caller runs
 * in, else the named default. 0, NO_CGROUP or a negative errno. */
static int select_path(cg_root *root, const cg_root_options *opts, const char *own_track, const char *own_named,
                       ca_error **err) {
  const char *track = root->track_mount;
  if (opts->root) {
    size_t ml = strlen(track);
    if (opts->root[0] != '/' || strncmp(opts->root, track, ml) != 0 || (opts->root[ml] && opts->root[ml] != '/') ||
        strstr(opts->root, "/.."))
      return ca_error_set(err, EINVAL, "%s %s is not a directory inside the cgroup mount %s", root->root_option,
                          opts->root, track);
    root->path = strdup(opts->root);
  } else {
    char own_dir[PATH_MAX] = "";
    if (root->track_is_v2 && own_track && !streq(own_track, "/"))
      snprintf(own_dir, sizeof(own_dir), "%s%s", track, own_track);
    if (own_dir[0] && cg_dir_delegated(own_dir)) {
      /* Only an agent that makes leaves needs to leave room for them. */
      if (!opts->open_existing && leave_delegated(own_dir, err) < 0)
        return NO_CGROUP;
      root->path = strdup(own_dir);
    } else if (!(root->path = named_path(root, opts, own_named, err))) {
      return -(*err)->code;
    }
  }
  if (!root->path)
    return ca_error_set(err, ENOMEM, "out of memory");
  size_t plen = strlen(root->path);
  while (plen > 1 && root->path[plen - 1] == '/')
    root->path[--plen] = '\0';
  return 0;
}

/* The v1 parents of the leaves, for limits and stats on hybrid and legacy hosts: under the caller's OWN cgroup of
 * each hierarchy (see the top of the file). A hierarchy that is not writable only costs its limits. */
static int open_v1_parents(cg_root *root, const cg_proc_cgroup *own, const char *own_track, ca_error **err) {
  /* A root below the caller's own cgroup of a hierarchy already (one_path's, or one it recorded) is taken as it is. */
  const char *rel = root->path + strlen(root->track_mount);
  /* legacy: rel is relative to the tracking hierarchy, which already includes the caller's own cgroup */
  if (!root->one_path && !root->track_is_v2 && own_track && !streq(own_track, "/") &&
      strncmp(rel, own_track, strlen(own_track)) == 0)
    rel += strlen(own_track);
  const char *mounts[CG_V1_N] = {root->mounts.v1_memory, root->mounts.v1_pids, root->mounts.v1_cpu};
  const char *owns[CG_V1_N] = {own->v1_memory, own->v1_pids, own->v1_cpu};
  bool v2_has[CG_V1_N] = {root->v2_memory, root->v2_pids, root->v2_cpu};
  for (int i = 0; i < CG_V1_N; i++) {
    if (!mounts[i] || v2_has[i])
      continue;
    _cleanup_free_ char *parent =
        join_path(mounts[i], root->one_path || path_below(rel, owns[i]) ? NULL : owns[i], rel);
    if (!parent)
      return ca_error_set(err, ENOMEM, "out of memory");
    /* asking for a limit there later gives the error */
    if (root->open_existing ? is_directory(parent) : mkdir_p(root, parent, NULL) == 0)
      root->v1_parent[i] = TAKE_PTR(parent);
  }
  return 0;
}

/* root->path created and writable, with the controllers enabled on the way down to it. 0 or NO_CGROUP. */
static int make_writable(cg_root *root, ca_error **err) {
  if (mkdir_p(root, root->path, err) < 0)
    return NO_CGROUP;
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/cgroup.procs", root->path);
  if (access(path, W_OK) < 0) {
    access_error(root, errno, "write", path, err);
    return NO_CGROUP;
  }
  if (root->track_is_v2)
    enable_v2_controllers(root);
  return 0;
}

/* root->path as it is: it must exist; its leaves have the controllers its subtree_control shows. 0 or NO_CGROUP. */
static int take_existing(cg_root *root, ca_error **err) {
  struct stat st;
  int e = stat(root->path, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  if (e) {
    ca_error_set(err, e, "cgroup root %s: %s (nothing ran there yet)", root->path, strerror(e));
    return NO_CGROUP;
  }
  char cur[256] = "";
  _cleanup_close_ int dfd = open(root->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root->track_is_v2 && dfd >= 0)
    (void)ca_read_file_buf(dfd, "cgroup.subtree_control", cur, sizeof(cur), NULL); /* none readable: no controller */
  root->v2_memory = cg_has_word(cur, "memory");
  root->v2_pids = cg_has_word(cur, "pids");
  root->v2_cpu = cg_has_word(cur, "cpu");
  return 0;
}

/* Cgroup tracking: the tracking hierarchy, root->path created and writable (or as it is, with open_existing), its
 * controllers, the v1 parents.
 * 0, NO_CGROUP or a negative errno. */
static int open_tracking(cg_root *root, const cg_root_options *opts, ca_error **err) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/self/cgroup", root->proc);
  _cleanup_free_ char *self_cgroup = NULL;
  _cleanup_(cg_proc_cgroup_done) cg_proc_cgroup own = {0};
  if (ca_read_file(path, CG_SMALL_FILE_MAX * 4, &self_cgroup, NULL, err) < 0 ||
      cg_parse_proc_cgroup(self_cgroup, &own, err) < 0)
    return ca_error_wrap(err, "cgroup: cannot read our own cgroup");
  const char *track = root->mounts.unified, *own_track = own.unified;
  root->track_is_v2 = track != NULL;
  if (!track) {
    track = root->mounts.v1_pids ? root->mounts.v1_pids : root->mounts.v1_memory;
    own_track = root->mounts.v1_pids ? own.v1_pids : own.v1_memory;
  }
  if (!track) {
    ca_error_set(err, ENOENT, "no cgroup filesystem is mounted (looked for cgroup2, and v1 pids or memory)");
    return NO_CGROUP;
  }
  if (!(root->track_mount = strdup(track)))
    return ca_error_set(err, ENOMEM, "out of memory");
  const char *own_named = root->track_is_v2 ? NULL : own_track;
  root->one_path = opts->one_path && root->mode != CG_MODE_UNIFIED;
  root->command_sub = opts->one_path && root->mode == CG_MODE_UNIFIED;
  if (root->one_path && one_path_own(root, &own, own_track, &own_named, err) < 0)
    return -ENOTSUP;
  int r = select_path(root, opts, own_track, own_named, err);
  if (r != 0)
    return r;
  r = opts->open_existing ? take_existing(root, err) : make_writable(root, err);
  if (r != 0)
    return r;
  return open_v1_parents(root, &own, own_track, err);
}

/* Whether the caller's own v2 cgroup is a subtree delegated to it. */
static bool own_delegated(const cg_root *root) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/self/cgroup", root->proc);
  _cleanup_free_ char *text = NULL;
  _cleanup_(cg_proc_cgroup_done) cg_proc_cgroup own = {0};
  if (!root->mounts.unified || ca_read_file(path, CG_SMALL_FILE_MAX * 4, &text, NULL, NULL) < 0 ||
      cg_parse_proc_cgroup(text, &own, NULL) < 0 || !own.unified || streq(own.unified, "/"))
    return false;
  snprintf(path, sizeof(path), "%s%s", root->mounts.unified, own.unified);
  return cg_dir_delegated(path);
}

/* The systemd driver's root: the slice's cgroup, as it is (open_existing) or to be made by systemd. Where systemd
 * cannot be reached and the driver was picked by AUTO, root goes on with cgroupfs (it may write the tree); an
 * unprivileged caller gets process tracking instead. 0, NO_CGROUP or a negative errno. */
static int open_systemd(cg_root *root, const cg_root_options *opts, ca_error **err) {
  int r = cg_systemd_open(root, opts, err);
  if (r == NO_CGROUP && cg_driver_wanted(opts->driver) == CG_DRIVER_AUTO && geteuid() == 0) {
    ca_error_free(TAKE_PTR(*err));
    cg_systemd_close(root);
    free(root->track_mount);
    free(root->path);
    root->track_mount = root->path = NULL;
    root->driver = CG_DRIVER_CGROUPFS;
    return open_tracking(root, opts, err);
  }
  if (r != 0 || !opts->open_existing)
    return r;
  return take_existing(root, err);
}

int cg_root_open(const cg_root_options *opts, cg_root **ret, ca_error **err) {
  _cleanup_error_ ca_error *local_err = NULL;
  if (!err)
    err = &local_err;
  static const cg_root_options defaults = {0};
  if (!opts)
    opts = &defaults;
  _cleanup_cg_root_ cg_root *root = calloc(1, sizeof(*root));
  if (!root || !(root->proc = strdup(opts->proc ? opts->proc : "/proc")) ||
      !(root->root_option = strdup(opts->root_option ? opts->root_option : "the cgroup root")))
    return ca_error_set(err, ENOMEM, "out of memory");
  root->avoid_cgroup_kill = opts->avoid_cgroup_kill;
  root->open_existing = opts->open_existing;
  int r = detect_mounts(root, err);
  if (r < 0)
    return r;
  /* No driver but cgroupfs for a root given by path (a delegated subtree, a parent session's leaf) or a caller that
   * named no slice (gc and kill look at the leaves of a recorded root). */
  bool booted = cg_systemd_booted(opts->systemd_dir);
  root->driver = cg_driver_resolve(opts->driver, booted, root->mode == CG_MODE_UNIFIED, opts->root || !opts->slice,
                                   !opts->root && own_delegated(root));
  /* Only a caller that named systemd gets it without systemd: an error, not another driver behind its back. */
  if (root->driver == CG_DRIVER_SYSTEMD && !booted)
    return ca_error_set(err, ENOTSUP,
                        "the systemd cgroup driver needs systemd as PID 1, and systemd is not PID 1 here (no %s): use "
                        "the auto or cgroupfs driver",
                        opts->systemd_dir ? opts->systemd_dir : "/run/systemd/system");
  if (opts->force_process)
    r = NO_CGROUP;
  else
    r = root->driver == CG_DRIVER_SYSTEMD ? open_systemd(root, opts, err) : open_tracking(root, opts, err);
  if (r < 0)
    return r;
  if (r == NO_CGROUP && fallback(root, opts, err) < 0)
    return ca_error_wrap(err, "cgroup");
  *ret = TAKE_PTR(root);
  return 0;
}

bool cg_leaf_name_id(const char *name, const char **ret_id) {
  size_t len = strlen(name), id_len = 32;
  const char *id = NULL;
  if (len == 4 + id_len && strncmp(name, "run-", 4) == 0)
    id = name + 4;
  else if (len >= 4 + id_len + 6 && streq(name + len - 6, ".scope") &&
           strncmp(name + len - 6 - id_len - 4, "run-", 4) == 0 &&
           (len == 4 + id_len + 6 || name[len - 6 - id_len - 5] == '-'))
    id = name + len - 6 - id_len;
  char buf[33];
  if (!id)
    return false;
  memcpy(buf, id, 32);
  buf[32] = '\0';
  if (!ca_session_id_valid(buf))
    return false;
  *ret_id = id;
  return true;
}

/* Whether name is the slice of a run --contain-containers session below root (cg_session_slice_name of the root's
 * name): such a session's scope is inside it, or gone while the slice stays. */
static bool session_slice_id(const cg_root *root, const char *name, const char **ret_id) {
  const char *base = strrchr(root->path, '/');
  size_t stem = base && strlen(base + 1) > 6 ? strlen(base + 1) - 6 : 0; /* "<stem>.slice" */
  char id[33], want[NAME_MAX + 1];
  if (!stem || strlen(name) != stem + 1 + 32 + 6)
    return false;
  memcpy(id, name + stem + 1, 32);
  id[32] = '\0';
  if (!ca_session_id_valid(id) || cg_session_slice_name(base + 1, id, want, sizeof(want)) < 0 || !streq(want, name))
    return false;
  *ret_id = name + stem + 1;
  return true;
}

int cg_root_list_sessions(cg_root *root, char ***ret_ids, ca_error **err) {
  size_t n = 0, cap = 8;
  _cleanup_strv_free_ char **ids = calloc(cap + 1, sizeof(char *));
  if (!ids)
    return ca_error_set(err, ENOMEM, "out of memory");
  if (root->tracking == CG_TRACK_CGROUP) {
    DIR *d = opendir(root->path);
    if (!d)
      return ca_error_set_errno(err, errno, "cannot list %s", root->path);
    struct dirent *de;
    while ((de = readdir(d))) {
      const char *id;
      if ((!cg_leaf_name_id(de->d_name, &id) && !session_slice_id(root, de->d_name, &id)) || de->d_type != DT_DIR)
        continue;
      if (n == cap) {
        char **grown = realloc(ids, (cap * 2 + 1) * sizeof(char *));
        if (!grown) {
          closedir(d);
          return ca_error_set(err, ENOMEM, "out of memory");
        }
        ids = grown;
        cap *= 2;
      }
      if (!(ids[n] = strndup(id, 32))) {
        closedir(d);
        return ca_error_set(err, ENOMEM, "out of memory");
      }
      ids[++n] = NULL;
    }
    closedir(d);
  }
  *ret_ids = TAKE_PTR(ids);
  return 0;
}

int cg_root_remove(cg_root *root, ca_error **err) {
  if (root->tracking != CG_TRACK_CGROUP || root->driver == CG_DRIVER_SYSTEMD)
    return 0; /* systemd's slice: it unloads it once unused */
  for (int i = 0; i < CG_V1_N; i++)
    if (root->v1_parent[i] && rmdir(root->v1_parent[i]) < 0 && errno != ENOENT)
      return ca_error_set_errno(err, errno, "cannot remove %s", root->v1_parent[i]);
  if (rmdir(root->path) < 0 && errno != ENOENT)
    return ca_error_set_errno(err, errno, "cannot remove %s", root->path);
  return 0;
}
