/* Session leaves: create with limits, open, stats, remove. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "cgroup-internal.h"

void cg_leaf_free(cg_leaf *leaf) {
  if (!leaf)
    return;
  cg_systemd_release_holder(leaf);
  free(leaf->unit);
  free(leaf->slice_unit);
  free(leaf->slice_path);
  free(leaf->path);
  free(leaf->rel);
  if (leaf->dirfd >= 0)
    ca_close_keep_errno(leaf->dirfd);
  if (leaf->cmd_dirfd >= 0)
    ca_close_keep_errno(leaf->cmd_dirfd);
  if (leaf->slice_dirfd >= 0)
    ca_close_keep_errno(leaf->slice_dirfd);
  if (leaf->oom_efd >= 0)
    ca_close_keep_errno(leaf->oom_efd);
  for (int i = 0; i < CG_V1_N; i++) {
    free(leaf->v1_path[i]);
    free(leaf->v1_rel[i]);
  }
  free(leaf->tracked);
  free(leaf);
}

const char *cg_leaf_path(const cg_leaf *leaf) {
  return leaf->path;
}

const char *cg_leaf_unit(const cg_leaf *leaf) {
  return leaf->unit;
}

/* True when the machine has swap configured: then a memory limit without a swap limit would not bite. */
static bool swap_configured(const char *proc) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/swaps", proc);
  _cleanup_free_ char *text = NULL;
  if (ca_read_file(path, CG_SMALL_FILE_MAX * 16, &text, NULL, NULL) < 0)
    return true; /* cannot tell: assume the worst, so a missing swap limit is an error */
  const char *nl = strchr(text, '\n');
  return nl && nl[1] != '\0';
}

static int write_in(const char *dir, const char *name, const char *value, ca_error **err) {
  _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return ca_error_set_errno(err, errno, "cannot open %s", dir);
  return cg_write_at(fd, dir, name, value, err);
}

static int read_in(const char *dir, const char *name, char *buf, size_t size, ca_error **err) {
  _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return ca_error_set_errno(err, errno, "cannot open %s", dir);
  int r = ca_read_file_buf(fd, name, buf, size, err);
  return r < 0 ? ca_error_wrap(err, "%s", dir) : r;
}

/* The v1 leaf of hierarchy i (mkdir when create); sets leaf->v1_path/v1_rel. */
static int v1_leaf(cg_leaf *leaf, int i, bool create, ca_error **err) {
  if (leaf->v1_path[i])
    return 0;
  const char *parent = leaf->root->v1_parent[i];
  const char *mounts[CG_V1_N] = {leaf->root->mounts.v1_memory, leaf->root->mounts.v1_pids, leaf->root->mounts.v1_cpu};
  if (!parent)
    return ca_error_set(err, ENOTSUP, "no writable v1 %s hierarchy", cg_v1_names[i]);
  char *p = NULL;
  if (asprintf(&p, "%s/run-%s", parent, leaf->id) < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  if (create && mkdir(p, 0755) < 0 && errno != EEXIST) {
    int e = errno;
    free(p);
    return ca_error_set(err, e, "cannot create %s/run-%s: %s", parent, leaf->id, strerror(e));
  }
  if (!create && access(p, F_OK) < 0) {
    free(p);
    return -ENOENT;
  }
  leaf->v1_path[i] = p;
  leaf->v1_rel[i] = strdup(p + strlen(mounts[i]));
  if (!leaf->v1_rel[i])
    return ca_error_set(err, ENOMEM, "out of memory");
  return 0;
}

/* v1 counts an OOM kill only in the victim's own memory cgroup (a container's below the leaf, gone with it), while the
 * kernel signals an OOM of the leaf, its limit hit, to the eventfds registered on it: one per OOM, whoever in the
 * subtree is killed. Best effort: without it the leaf's own counter is all the stats have. */
static void watch_v1_oom(cg_leaf *leaf) {
  const char *dir = leaf->v1_path[CG_V1_MEMORY];
  char path[PATH_MAX], line[64];
  snprintf(path, sizeof(path), "%s/memory.oom_control", dir);
  _cleanup_close_ int ofd = open(path, O_RDONLY | O_CLOEXEC);
  int efd = ofd < 0 ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  snprintf(line, sizeof(line), "%d %d", efd, ofd);
  if (efd >= 0 && write_in(dir, "cgroup.event_control", line, NULL) == 0)
    leaf->oom_efd = efd;
  else if (efd >= 0)
    close(efd);
}

/* The OOMs the eventfd counted since the last read, added up. */
static uint64_t v1_oom_events(cg_leaf *leaf) {
  eventfd_t v;
  if (leaf->oom_efd >= 0 && eventfd_read(leaf->oom_efd, &v) == 0)
    leaf->oom_events += v;
  return leaf->oom_events;
}

static int apply_memory(cg_leaf *leaf, uint64_t bytes, ca_error **err) {
  char v[32];
  snprintf(v, sizeof(v), "%" PRIu64, bytes);
  bool swap = swap_configured(leaf->root->proc);
  if (leaf->root->v2_memory) {
    if (cg_write_at(leaf->dirfd, leaf->path, "memory.max", v, err) < 0)
      return -EIO;
    int r = cg_write_at(leaf->dirfd, leaf->path, "memory.swap.max", "0", err);
    if (r == -ENOENT && !swap) {
      ca_error_free(*err);
      *err = NULL;
      r = 0; /* no swap controller and no swap: memory.max alone bites */
    }
    return r;
  }
  if (v1_leaf(leaf, CG_V1_MEMORY, true, err) < 0)
    return ca_error_wrap(err, "cannot limit memory: the cgroup2 root has no memory controller");
  const char *dir = leaf->v1_path[CG_V1_MEMORY];
  if (write_in(dir, "memory.limit_in_bytes", v, err) < 0)
    return -EIO;
  watch_v1_oom(leaf);
  /* memsw (memory + swap) equal to the limit means no swap; it must be written after limit_in_bytes. */
  int r = write_in(dir, "memory.memsw.limit_in_bytes", v, err);
  if (r == -ENOENT && !swap) {
    ca_error_free(*err);
    *err = NULL;
    r = 0;
  }
  return r;
}

static int apply_pids(cg_leaf *leaf, uint64_t n, ca_error **err) {
  char v[32];
  snprintf(v, sizeof(v), "%" PRIu64, n);
  if (leaf->root->v2_pids)
    return cg_write_at(leaf->dirfd, leaf->path, "pids.max", v, err);
  if (v1_leaf(leaf, CG_V1_PIDS, true, err) < 0)
    return ca_error_wrap(err, "cannot limit pids: the cgroup2 root has no pids controller");
  return write_in(leaf->v1_path[CG_V1_PIDS], "pids.max", v, err);
}

static int apply_cpu(cg_leaf *leaf, double cpus, ca_error **err) {
  if (!(cpus > 0) || cpus > 100000)
    return ca_error_set(err, EINVAL, "a cpu limit of %g CPUs is out of range", cpus);
  uint64_t quota = (uint64_t)llround(cpus * 100000.0);
  if (quota < 1000)
    quota = 1000; /* the kernel's minimum quota (1 ms) */
  char v[64];
  if (leaf->root->v2_cpu) {
    snprintf(v, sizeof(v), "%" PRIu64 " 100000", quota);
    return cg_write_at(leaf->dirfd, leaf->path, "cpu.max", v, err);
  }
  if (v1_leaf(leaf, CG_V1_CPU, true, err) < 0)
    return ca_error_wrap(err, "cannot limit cpu: the cgroup2 root has no cpu controller");
  if (write_in(leaf->v1_path[CG_V1_CPU], "cpu.cfs_period_us", "100000", err) < 0)
    return -EIO;
  snprintf(v, sizeof(v), "%" PRIu64, quota);
  return write_in(leaf->v1_path[CG_V1_CPU], "cpu.cfs_quota_us", v, err);
}

/* Where the v2 stats are read: the session's own slice when it has one (its memory.events, hierarchical, count an OOM
 * kill inside a container too), else the leaf. */
static int stats_fd(const cg_leaf *leaf) {
  return leaf->slice_dirfd >= 0 ? leaf->slice_dirfd : leaf->dirfd;
}

static const char *stats_path(const cg_leaf *leaf) {
  return leaf->slice_dirfd >= 0 ? leaf->slice_path : leaf->path;
}

/* Reads the counters that the stats report as deltas since creation. */
static void read_baselines(cg_leaf *leaf) {
  char buf[CG_SMALL_FILE_MAX];
  cg_memory_events me;
  uint64_t v;
  if (leaf->root->v2_memory && ca_read_file_buf(stats_fd(leaf), "memory.events", buf, sizeof(buf), NULL) >= 0 &&
      cg_parse_memory_events(buf, &me, NULL) == 0)
    leaf->oom_kill_base = me.oom_kill;
  else if (leaf->v1_path[CG_V1_MEMORY] &&
           read_in(leaf->v1_path[CG_V1_MEMORY], "memory.oom_control", buf, sizeof(buf), NULL) >= 0 &&
           cg_parse_memory_events(buf, &me, NULL) == 0)
    leaf->oom_kill_base = me.oom_kill;
  if (leaf->root->v2_pids && ca_read_file_buf(stats_fd(leaf), "pids.events", buf, sizeof(buf), NULL) >= 0 &&
      cg_parse_keyed(buf, "max", &v, NULL) == 0)
    leaf->pids_max_base = v;
  else if (leaf->v1_path[CG_V1_PIDS] &&
           read_in(leaf->v1_path[CG_V1_PIDS], "pids.events", buf, sizeof(buf), NULL) >= 0 &&
           cg_parse_keyed(buf, "max", &v, NULL) == 0)
    leaf->pids_max_base = v;
}

static int leaf_new(cg_root *root, const char *session_id, cg_leaf **ret, ca_error **err) {
  if (!ca_session_id_valid(session_id))
    return ca_error_set(err, EINVAL, "invalid session id \"%.40s\": expected 32 lowercase hex characters",
                        session_id ? session_id : "(null)");
  cg_leaf *leaf = calloc(1, sizeof(*leaf));
  if (!leaf)
    return ca_error_set(err, ENOMEM, "out of memory");
  leaf->root = root;
  leaf->dirfd = -1;
  leaf->cmd_dirfd = -1;
  leaf->slice_dirfd = -1;
  leaf->holder_fd = -1;
  leaf->oom_efd = -1;
  memcpy(leaf->id, session_id, 33);
  if (root->tracking == CG_TRACK_CGROUP) {
    /* systemd names the scope's cgroup after the unit */
    bool scope = root->driver == CG_DRIVER_SYSTEMD;
    char name[NAME_MAX + 1];
    if (scope)
      snprintf(name, sizeof(name), "%srun-%s.scope", root->unit_prefix, session_id);
    else
      snprintf(name, sizeof(name), "run-%s", session_id);
    if ((scope && !(leaf->unit = strdup(name))) || asprintf(&leaf->path, "%s/%s", root->path, name) < 0) {
      leaf->path = NULL;
      cg_leaf_free(leaf);
      return ca_error_set(err, ENOMEM, "out of memory");
    }
    /* /proc/<pid>/cgroup shows the path below the mount; on legacy hosts the mount is the v1 one. */
    if (!(leaf->rel = strdup(leaf->path + strlen(root->track_mount)))) {
      cg_leaf_free(leaf);
      return ca_error_set(err, ENOMEM, "out of memory");
    }
  }
  *ret = leaf;
  return 0;
}

/* The command's sub-cgroup of a new leaf (root->command_sub), made last: nothing is left of it on failure. */
static int make_command_cgroup(cg_leaf *leaf, ca_error **err) {
  if (mkdirat(leaf->dirfd, CG_COMMAND_CGROUP, 0755) < 0)
    return ca_error_set_errno(err, errno, "cannot create %s/" CG_COMMAND_CGROUP, leaf->path);
  leaf->cmd_dirfd = openat(leaf->dirfd, CG_COMMAND_CGROUP, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (leaf->cmd_dirfd < 0) {
    int e = errno;
    (void)unlinkat(leaf->dirfd, CG_COMMAND_CGROUP, AT_REMOVEDIR); /* empty and just made */
    return ca_error_set_errno(err, e, "cannot open %s/" CG_COMMAND_CGROUP, leaf->path);
  }
  return 0;
}

static void remove_created(cg_leaf *leaf) {
  for (int i = 0; i < CG_V1_N; i++)
    if (leaf->v1_path[i])
      (void)rmdir(leaf->v1_path[i]); /* empty and just created: nothing to report on this error path */
  if (leaf->path)
    (void)rmdir(leaf->path);
}

/* The systemd driver's leaf: a scope with the limits as its properties. A limit whose controller the scope did not
 * get (a user manager without it delegated) is an error, as with cgroupfs. */
static int create_scope(cg_leaf *leaf, const cg_limits *limits, ca_error **err) {
  if (cg_systemd_start_scope(leaf, limits, err) < 0)
    return ca_error_wrap(err, "cgroup: session %s", leaf->id);
  leaf->dirfd = open(leaf->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (leaf->dirfd < 0)
    return ca_error_set_errno(err, errno, "cgroup: session %s: cannot open %s", leaf->id, leaf->path);
  char avail[256] = "";
  (void)ca_read_file_buf(leaf->dirfd, "cgroup.controllers", avail, sizeof(avail), NULL); /* empty: none */
  cg_root *root = leaf->root;
  root->v2_memory = cg_has_word(avail, "memory");
  root->v2_pids = cg_has_word(avail, "pids");
  root->v2_cpu = cg_has_word(avail, "cpu");
  const char *missing = limits->memory_max && !root->v2_memory ? "memory"
                        : limits->pids_max && !root->v2_pids   ? "pids"
                        : limits->cpus > 0 && !root->v2_cpu    ? "cpu"
                                                               : NULL;
  if (missing)
    return ca_error_set(err, ENOTSUP, "cgroup: session %s: cannot limit %s: systemd gave scope %s no %s controller",
                        leaf->id, missing, leaf->unit, missing);
  read_baselines(leaf);
  return 0;
}

int cg_leaf_create(cg_root *root, const char *session_id, const cg_limits *limits, cg_leaf **ret, ca_error **err) {
  _cleanup_error_ ca_error *local_err = NULL;
  if (!err)
    err = &local_err;
  static const cg_limits none = {0};
  if (!limits)
    limits = &none;
  _cleanup_cg_leaf_ cg_leaf *leaf = NULL;
  if (leaf_new(root, session_id, &leaf, err) < 0)
    return -EINVAL;
  if (root->open_existing)
    return ca_error_set(err, EINVAL, "cannot create session %s: the cgroup root was opened only to look at it",
                        session_id);

  if (root->tracking == CG_TRACK_PROCESS) {
    if (limits->memory_max || limits->pids_max || limits->cpus > 0)
      return ca_error_set(err, ENOTSUP,
                          "memory, pids and cpu limits need a writable cgroup, and process tracking is in use (%s)",
                          root->fallback_reason);
    if (cg_track_start(leaf, err) < 0)
      return -EIO;
    *ret = TAKE_PTR(leaf);
    return 0;
  }
  if (root->driver == CG_DRIVER_SYSTEMD) {
    if (create_scope(leaf, limits, err) < 0)
      return -EIO; /* the scope goes with the holder, its only process */
    *ret = TAKE_PTR(leaf);
    return 0;
  }

  if (mkdir(leaf->path, 0755) < 0)
    return ca_error_set(err, errno, "cannot create %s: %s%s", leaf->path, strerror(errno),
                        errno == EEXIST ? "; a session with this id exists already" : "");
  leaf->dirfd = open(leaf->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (leaf->dirfd < 0) {
    int e = errno;
    remove_created(leaf);
    return ca_error_set_errno(err, e, "cannot open %s", leaf->path);
  }

  int r = 0;
  /* On hybrid hosts a v1 leaf exists only for a limit that needs it: moving a process into a v1 memory cgroup
   * waits for an RCU grace period (several ms), which a session without a memory limit should not pay for its stats. */
  if (limits->memory_max && (r = apply_memory(leaf, limits->memory_max, err)) < 0)
    goto fail;
  if (limits->pids_max && (r = apply_pids(leaf, limits->pids_max, err)) < 0)
    goto fail;
  if (limits->cpus > 0 && (r = apply_cpu(leaf, limits->cpus, err)) < 0)
    goto fail;
  if (root->command_sub && (r = make_command_cgroup(leaf, err)) < 0)
    goto fail;
  read_baselines(leaf);
  *ret = TAKE_PTR(leaf);
  return 0;
fail:
  remove_created(leaf);
  return ca_error_wrap(err, "cgroup: session %s", session_id);
}

/* A session scope in dir (the root opened as a plain directory by a collector of a root that a systemd session
 * recorded, or the session's own slice): the entry named *run-<id>.scope becomes the leaf. 0, or -ENOENT. */
static int find_scope(cg_leaf *leaf, const char *dir) {
  DIR *d = opendir(dir);
  if (!d)
    return -errno;
  struct dirent *de;
  const char *id;
  int r = -ENOENT;
  while (r == -ENOENT && (de = readdir(d))) {
    char *path = NULL;
    if (de->d_type != DT_DIR || !cg_leaf_name_id(de->d_name, &id) || strncmp(id, leaf->id, 32) != 0)
      continue;
    if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
      r = -ENOMEM;
      break;
    }
    free(leaf->path);
    free(leaf->rel);
    free(leaf->unit);
    leaf->path = path;
    leaf->rel = strdup(path + strlen(leaf->root->track_mount));
    leaf->unit = strdup(de->d_name);
    r = leaf->rel && leaf->unit ? 0 : -ENOMEM;
  }
  closedir(d);
  return r;
}

/* Makes leaf the session's slice alone, slice_path (no unit): what is left of a run --contain-containers session
 * whose scope went, killed and removed as the session. */
static int take_slice_path(cg_leaf *leaf, const char *slice_path) {
  free(TAKE_PTR(leaf->unit));
  free(leaf->rel);
  free(leaf->path);
  leaf->rel = NULL;
  leaf->path = strdup(slice_path);
  if (leaf->path)
    leaf->rel = strdup(leaf->path + strlen(leaf->root->track_mount));
  return leaf->rel ? 0 : -ENOMEM;
}

static bool is_slice_only(const cg_leaf *leaf) {
  return leaf->slice_path && leaf->path && streq(leaf->path, leaf->slice_path);
}

/* A scope of run --contain-containers: in the session's own slice below the root, named after the root's slice
 * (cg_session_slice_name). Found by any collector, with the systemd driver or the root as a plain directory, so that
 * the slice is stopped with the scope; a slice without its scope (its agent or guardian killed between the scope's
 * stop and the slice's) is the leaf itself. 0, -ENOENT (no slice), -ENOMEM. */
static int find_in_session_slice(cg_leaf *leaf) {
  const char *root = leaf->root->path, *base = strrchr(root, '/');
  char name[NAME_MAX + 1];
  if (!base || cg_session_slice_name(base + 1, leaf->id, name, sizeof(name)) < 0)
    return -ENOENT;
  if (!(leaf->slice_unit = strdup(name)) || asprintf(&leaf->slice_path, "%s/%s", root, name) < 0) {
    leaf->slice_path = NULL;
    return -ENOMEM;
  }
  leaf->slice_dirfd = open(leaf->slice_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (leaf->slice_dirfd < 0)
    return -errno;
  int r = find_scope(leaf, leaf->slice_path);
  return r == -ENOENT ? take_slice_path(leaf, leaf->slice_path) : r;
}

static int open_dir(cg_leaf *leaf) {
  leaf->dirfd = open(leaf->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return leaf->dirfd < 0 ? -errno : 0;
}

/* The leaf's dirfd, its cgroup looked for wherever a session of ours puts it. 0 or a negative errno. */
static int open_leaf_dir(cg_leaf *leaf) {
  int r = open_dir(leaf);
  if (r == -ENOENT && leaf->root->driver == CG_DRIVER_CGROUPFS && find_scope(leaf, leaf->root->path) == 0)
    r = open_dir(leaf);
  if (r == -ENOENT && (r = find_in_session_slice(leaf)) == 0)
    r = open_dir(leaf);
  /* A scope found in the session's slice that systemd removed before its open (its last process died): the slice is
   * what is left of the session. */
  if (r == -ENOENT && leaf->slice_path && !is_slice_only(leaf) && (r = take_slice_path(leaf, leaf->slice_path)) == 0)
    r = open_dir(leaf);
  return r;
}

int cg_leaf_open(cg_root *root, const char *session_id, cg_leaf **ret, ca_error **err) {
  _cleanup_cg_leaf_ cg_leaf *leaf = NULL;
  if (leaf_new(root, session_id, &leaf, err) < 0)
    return -EINVAL;
  if (root->tracking == CG_TRACK_PROCESS)
    return ca_error_set(err, ENOTSUP, "cannot open session %s: process tracking is in use (%s)", session_id,
                        root->fallback_reason);
  int r = open_leaf_dir(leaf);
  if (r < 0)
    return ca_error_set_errno(err, -r, "cannot open %s", leaf->path ? leaf->path : "the session's slice");
  for (int i = 0; i < CG_V1_N; i++)
    if (root->v1_parent[i])
      (void)v1_leaf(leaf, i, false, NULL); /* absent v1 leaves are fine: the session set no such limit */
  *ret = TAKE_PTR(leaf);
  return 0;
}

/* rmdir with bounded backoff: a cgroup stays busy for a moment after its last process was reaped. */
static int rmdir_backoff(const char *path, ca_error **err) {
  unsigned delay = 1000;
  for (uint64_t deadline = cg_now_usec() + 2000000;;) {
    if (rmdir(path) == 0 || errno == ENOENT)
      return 0;
    if (errno != EBUSY || cg_now_usec() >= deadline)
      return ca_error_set(err, errno, "cannot remove %s: %s%s", path, strerror(errno),
                          errno == EBUSY ? " (still busy after 2 s: processes left? kill them first)" : "");
    usleep(delay);
    delay = CA_MIN(delay * 2, 100000u);
  }
}

/* Removes the sub-cgroups below path (depth first), then path itself unless it is keep_self. */
static int remove_tree(const char *path, int depth, bool keep_self, ca_error **err) {
  if (depth > 64)
    return ca_error_set(err, ELOOP, "cgroup tree below %s is deeper than 64", path);
  DIR *d = opendir(path);
  if (!d)
    return errno == ENOENT ? 0 : ca_error_set_errno(err, errno, "cannot list %s", path);
  struct dirent *de;
  int r = 0;
  while ((de = readdir(d)) && r == 0) {
    if (de->d_type != DT_DIR || streq(de->d_name, ".") || streq(de->d_name, ".."))
      continue;
    char *sub = NULL;
    if (asprintf(&sub, "%s/%s", path, de->d_name) < 0) {
      r = ca_error_set(err, ENOMEM, "out of memory");
      break;
    }
    r = remove_tree(sub, depth + 1, false, err);
    free(sub);
  }
  closedir(d);
  return r < 0 || keep_self ? r : rmdir_backoff(path, err);
}

int cg_slice_kill_remove(cg_leaf *leaf, uint64_t timeout_usec, ca_error **err) {
  _cleanup_cg_leaf_ cg_leaf *slice = NULL;
  int r = leaf_new(leaf->root, leaf->id, &slice, err);
  if (r < 0)
    return r;
  if (take_slice_path(slice, leaf->slice_path) < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  r = open_dir(slice);
  if (r == -ENOENT)
    return 0;
  if (r < 0)
    return ca_error_set_errno(err, -r, "cannot open %s", slice->path);
  if (cg_leaf_kill_all(slice, timeout_usec, err) < 0)
    return -EIO;
  return remove_tree(slice->path, 0, false, err);
}

int cg_leaf_engine_parent(const cg_leaf *leaf, const char *engine_driver, char **ret_parent, ca_error **err) {
  const cg_root *root = leaf->root;
  if (!leaf->path)
    return ca_error_set(err, ENOTSUP, "process tracking is in use (%s): there is no session cgroup to put them in",
                        root->fallback_reason);
  if (!streq(engine_driver, cg_driver_name(root->driver)))
    return ca_error_set(err, ENOTSUP,
                        "the engine's cgroup driver is %s and the session's is %s: they must be the same (the "
                        "engine's native.cgroupdriver, the agent's --cgroup-driver)",
                        engine_driver, cg_driver_name(root->driver));
  if (root->driver == CG_DRIVER_SYSTEMD) {
    if (!leaf->slice_unit)
      return ca_error_set(err, ENOTSUP, "session %s has no slice of its own for the engine's systemd driver", leaf->id);
    if (!(*ret_parent = strdup(leaf->slice_unit)))
      return ca_error_set(err, ENOMEM, "out of memory");
    return 0;
  }
  if (root->mode == CG_MODE_UNIFIED && leaf->cmd_dirfd < 0)
    return ca_error_set(err, ENOTSUP,
                        "on a pure cgroup v2 host the session's command runs in %s itself, where the engine cannot "
                        "put containers next to it (no internal processes): the session must be created for "
                        "containers (a cgroup root opened with one_path)",
                        leaf->path);
  for (int i = 0; i < CG_V1_N; i++)
    if (leaf->v1_rel[i] && !streq(leaf->v1_rel[i], leaf->rel))
      return ca_error_set(err, ENOTSUP,
                          "the session's cgroup is %s in the %s hierarchy but %s in the tracking one, and the engine "
                          "takes one cgroup parent for all (a --cgroup-root or a parent session's cgroup elsewhere?)",
                          leaf->v1_rel[i], cg_v1_names[i], leaf->rel);
  if (!(*ret_parent = strdup(leaf->rel)))
    return ca_error_set(err, ENOMEM, "out of memory");
  return 0;
}

/* With one_path, the engine made the leaf's path in the v1 hierarchies we set no limit in (blkio, devices, ...) for
 * its containers: removed with the leaf. Each mount next to the memory one that is a v1 cgroup hierarchy. */
static int remove_engine_dirs(cg_leaf *leaf, ca_error **err) {
  const char *mem = leaf->root->mounts.v1_memory;
  const char *slash = mem ? strrchr(mem, '/') : NULL;
  if (!leaf->root->one_path || !slash || slash == mem)
    return 0;
  _cleanup_free_ char *top = strndup(mem, (size_t)(slash - mem));
  DIR *d = top ? opendir(top) : NULL;
  if (!d)
    return 0; /* nothing to find: the leaf's own hierarchies went already */
  struct dirent *de;
  struct statfs sfs;
  int r = 0;
  while (r == 0 && (de = readdir(d))) {
    char *dir = NULL;
    if (de->d_name[0] == '.' || asprintf(&dir, "%s/%s%s", top, de->d_name, leaf->rel) < 0)
      continue;
    if (statfs(dir, &sfs) == 0 && sfs.f_type == CGROUP_SUPER_MAGIC)
      r = remove_tree(dir, 0, false, err);
    free(dir);
  }
  closedir(d);
  return r;
}

int cg_leaf_remove(cg_leaf *leaf, ca_error **err) {
  if (!leaf->path)
    return 0;
  /* A scope's own cgroup is systemd's to remove: we remove only what was made inside it, then stop the unit. */
  cg_systemd_release_holder(leaf);
  /* A leaf of the slice alone: the slice's stop removes it. */
  int r = is_slice_only(leaf) ? 0 : remove_tree(leaf->path, 0, leaf->unit != NULL, err);
  if (r == 0 && leaf->unit)
    r = cg_systemd_stop_scope(leaf, err);
  if (r == 0)
    r = cg_systemd_stop_slice(leaf, err); /* run --contain-containers: the containers in it go at once */
  for (int i = 0; i < CG_V1_N && r == 0; i++)
    if (leaf->v1_path[i])
      r = remove_tree(leaf->v1_path[i], 0, false, err);
  if (r == 0)
    r = remove_engine_dirs(leaf, err);
  return r < 0 ? ca_error_wrap(err, "cgroup: remove session %s", leaf->id) : 0;
}

int cg_leaf_remove_v1_left(cg_root *root, const char *session_id, ca_error **err) {
  _cleanup_cg_leaf_ cg_leaf *leaf = NULL;
  if (leaf_new(root, session_id, &leaf, err) < 0)
    return -EINVAL;
  int r = 0, found = 0;
  for (int i = 0; i < CG_V1_N && r == 0; i++)
    if (root->v1_parent[i] && v1_leaf(leaf, i, false, NULL) == 0) {
      found = 1;
      r = remove_tree(leaf->v1_path[i], 0, false, err);
    }
  return r < 0 ? ca_error_wrap(err, "cgroup: remove the v1 leaves of session %s", session_id) : found;
}

/* memory.current (v2) or memory.usage_in_bytes (v1); false when the leaf has no memory accounting. */
static bool memory_current(cg_leaf *leaf, uint64_t *ret) {
  char buf[64];
  int r = -1;
  if (leaf->root->v2_memory && leaf->dirfd >= 0)
    r = ca_read_file_buf(stats_fd(leaf), "memory.current", buf, sizeof(buf), NULL);
  else if (leaf->v1_path[CG_V1_MEMORY])
    r = read_in(leaf->v1_path[CG_V1_MEMORY], "memory.usage_in_bytes", buf, sizeof(buf), NULL);
  return r > 0 && sscanf(buf, "%" SCNu64, ret) == 1;
}

void cg_leaf_sample(cg_leaf *leaf) {
  uint64_t v;
  if (memory_current(leaf, &v) && v > leaf->memory_sampled_peak)
    leaf->memory_sampled_peak = v;
}

static int read_u64_file(int dirfd, const char *dir, const char *name, uint64_t *ret, ca_error **err) {
  char buf[64];
  int r = dirfd >= 0 ? ca_read_file_buf(dirfd, name, buf, sizeof(buf), err) : read_in(dir, name, buf, sizeof(buf), err);
  if (r < 0)
    return r;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(buf, &end, 10);
  if (errno || end == buf || (*end && *end != '\n'))
    return ca_error_set(err, EINVAL, "%s/%s: not a number: \"%.30s\"", dir, name, buf);
  *ret = v;
  return 0;
}

int cg_leaf_stats(cg_leaf *leaf, cg_stats *ret, ca_error **err) {
  cg_stats s = {0};
  char buf[CG_SMALL_FILE_MAX];
  if (!leaf->path) {
    cg_track_scan(leaf, NULL);
    s.nr_processes = leaf->n_tracked;
    *ret = s;
    return 0;
  }
  cg_root *root = leaf->root;
  cg_memory_events me;
  cg_leaf_sample(leaf);
  (void)memory_current(leaf, &s.memory_current); /* stays 0 without memory accounting */
  if (root->v2_memory) {
    uint64_t peak;
    if (read_u64_file(stats_fd(leaf), stats_path(leaf), "memory.peak", &peak, NULL) < 0)
      peak = leaf->memory_sampled_peak; /* memory.peak is 5.19+ */
    if (ca_read_file_buf(stats_fd(leaf), "memory.events", buf, sizeof(buf), err) < 0 ||
        cg_parse_memory_events(buf, &me, err) < 0)
      return ca_error_wrap(err, "cgroup: stats of %s", stats_path(leaf));
    s.has_memory = true;
    s.memory_peak = CA_MAX(peak, leaf->memory_sampled_peak);
    s.oom_kills = me.oom_kill - CA_MIN(me.oom_kill, leaf->oom_kill_base);
  } else if (leaf->v1_path[CG_V1_MEMORY]) {
    const char *dir = leaf->v1_path[CG_V1_MEMORY];
    uint64_t peak;
    if (read_u64_file(-1, dir, "memory.max_usage_in_bytes", &peak, err) < 0 ||
        read_in(dir, "memory.oom_control", buf, sizeof(buf), err) < 0 || cg_parse_memory_events(buf, &me, err) < 0)
      return ca_error_wrap(err, "cgroup: stats of %s", dir);
    s.has_memory = true;
    s.memory_peak = CA_MAX(peak, leaf->memory_sampled_peak);
    s.oom_kills = CA_MAX(me.oom_kill - CA_MIN(me.oom_kill, leaf->oom_kill_base), v1_oom_events(leaf));
  }
  uint64_t v;
  int r = -1;
  if (root->v2_pids)
    r = ca_read_file_buf(stats_fd(leaf), "pids.events", buf, sizeof(buf), err);
  else if (leaf->v1_path[CG_V1_PIDS])
    r = read_in(leaf->v1_path[CG_V1_PIDS], "pids.events", buf, sizeof(buf), err);
  if (r >= 0) {
    if (cg_parse_keyed(buf, "max", &v, err) < 0)
      return ca_error_wrap(err, "cgroup: pids.events of session %s", leaf->id);
    s.has_pids = true;
    s.pids_limit_hits = v - CA_MIN(v, leaf->pids_max_base);
  } else if (root->v2_pids || leaf->v1_path[CG_V1_PIDS]) {
    return ca_error_wrap(err, "cgroup: stats of session %s", leaf->id);
  }
  /* cpu.stat's usage exists on every v2 cgroup, controller enabled or not; throttling needs cpu.max. */
  cg_cpu_stat cs;
  if (root->track_is_v2 && ca_read_file_buf(stats_fd(leaf), "cpu.stat", buf, sizeof(buf), NULL) >= 0 &&
      cg_parse_cpu_stat(buf, &cs, err) == 0) {
    s.has_cpu = true;
    s.cpu_usage_usec = cs.usage_usec;
    s.cpu_throttled = cs.nr_throttled;
    s.cpu_throttled_usec = cs.throttled_usec;
  }
  if (leaf->v1_path[CG_V1_CPU] && read_in(leaf->v1_path[CG_V1_CPU], "cpu.stat", buf, sizeof(buf), NULL) >= 0 &&
      cg_parse_cpu_stat(buf, &cs, NULL) == 0) {
    s.cpu_throttled = cs.nr_throttled;
    s.cpu_throttled_usec = cs.throttled_usec;
  }
  _cleanup_free_ pid_t *pids = NULL;
  size_t n = 0;
  if (cg_leaf_read_pids(leaf, &pids, &n, err) < 0)
    return ca_error_wrap(err, "cgroup: stats of session %s", leaf->id);
  s.nr_processes = n;
  *ret = s;
  return 0;
}
