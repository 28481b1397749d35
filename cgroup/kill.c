/* Signalling, killing and waiting for the processes of a leaf.
 *
 * cgroup.kill (5.14+) kills every process of the subtree in the kernel, including those forked while it runs. Where
 * it is missing, the leaf is frozen so that nothing forks, each pid of cgroup.procs is opened as a pidfd, then looked
 * up in /proc/<pid>/cgroup and signalled through the pidfd, then the leaf is thawed; repeated until cgroup.events
 * says "populated 0". The lookup comes after the open, and that order is what makes it hold: a pid reused between the
 * read of cgroup.procs and the open names the newcomer in both the pidfd and the lookup, so an outsider fails it; a
 * pinned process that exits after the open cannot pass its signal on to its pid's next owner. Membership is that of
 * the moment of the lookup: a process moved out of the leaf between the lookup and the signal still gets it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup-internal.h"

/* skip: a sub-cgroup of dir (depth 0) that is no part of the session (the scope's holder), or NULL. */
static int append_pids(const char *dir, int depth, const char *skip, pid_t **pids, size_t *n, size_t *cap,
                       ca_error **err) {
  if (depth > 64)
    return ca_error_set(err, ELOOP, "cgroup tree below %s is deeper than 64", dir);
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
  _cleanup_free_ char *text = NULL;
  int k = ca_read_file(path, CG_PROCS_FILE_MAX, &text, NULL, err);
  if (k == -ENOENT && depth > 0) {
    ca_error_free(err ? TAKE_PTR(*err) : NULL); /* a sub-cgroup removed meanwhile is fine */
    return 0;
  }
  if (k < 0)
    return k;
  k = cg_parse_procs(text, path, pids, n, cap, err);
  if (k < 0)
    return k;
  DIR *d = opendir(dir);
  if (!d)
    return errno == ENOENT && depth > 0 ? 0 : ca_error_set_errno(err, errno, "cannot list %s", dir);
  struct dirent *de;
  int r = 0;
  while (r == 0 && (de = readdir(d)))
    if (de->d_type == DT_DIR && !streq(de->d_name, ".") && !streq(de->d_name, "..") &&
        !(depth == 0 && skip && streq(de->d_name, skip))) {
      char sub[PATH_MAX];
      snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
      r = append_pids(sub, depth + 1, NULL, pids, n, cap, err);
    }
  closedir(d);
  return r;
}

/* Whether r (from reading or writing the leaf's files) says the leaf's cgroup is gone. A cgroup can only be removed
 * once empty, and a v2 one never moves (cgroup2 has no rename), so a gone leaf had no process left and can get none.
 * systemd removes a scope's cgroup as soon as it is empty, even while the agent is killing it: a normal end. */
static bool leaf_gone(cg_leaf *leaf, int r) {
  return (r == -ENOENT || r == -ENODEV) && (leaf->root->track_is_v2 || leaf->unit);
}

int cg_leaf_read_pids(cg_leaf *leaf, pid_t **ret, size_t *ret_n, ca_error **err) {
  pid_t *pids = NULL;
  size_t n = 0, cap = 0;
  int r = append_pids(leaf->path, 0, leaf->holder_pid > 0 ? CG_HOLDER_CGROUP : NULL, &pids, &n, &cap, err);
  if (leaf_gone(leaf, r)) {
    ca_error_free(err ? TAKE_PTR(*err) : NULL);
    r = 0;
  }
  if (r < 0) {
    free(pids);
    return ca_error_wrap(err, "cgroup: processes of session %s", leaf->id);
  }
  *ret = pids;
  *ret_n = n;
  return 0;
}

/* Opens a pidfd for pid, then checks that the process holding pid is inside the leaf: if that is not the pinned
 * one, the pinned one has exited and a signal through the pidfd reaches nobody. -ESRCH when gone or not a member. */
static int open_member(cg_leaf *leaf, pid_t pid) {
  _cleanup_close_ int pidfd = cg_pidfd_open(pid);
  if (pidfd < 0)
    return -errno;
  char path[64], buf[CG_SMALL_FILE_MAX];
  snprintf(path, sizeof(path), "%d/cgroup", (int)pid);
  _cleanup_close_ int procfd = open(leaf->root->proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (procfd < 0 || ca_read_file_buf(procfd, path, buf, sizeof(buf), NULL) < 0)
    return -ESRCH;
  cg_proc_cgroup pc = {0};
  if (cg_parse_proc_cgroup(buf, &pc, NULL) < 0)
    return -ESRCH;
  const char *rel = leaf->root->track_is_v2 ? pc.unified : pc.v1_pids ? pc.v1_pids : pc.v1_memory;
  bool inside = rel && cg_rel_is_inside(rel, leaf->rel);
  cg_proc_cgroup_done(&pc);
  return inside ? TAKE_FD(pidfd) : -ESRCH;
}

/* One pass over the members: signals those not in done[] (pids already signalled). Returns how many were new. */
static int signal_pass(cg_leaf *leaf, int sig, pid_t **done, size_t *n_done, ca_error **err) {
  _cleanup_free_ pid_t *pids = NULL;
  size_t n = 0;
  if (cg_leaf_read_pids(leaf, &pids, &n, err) < 0)
    return -EIO;
  int fresh = 0;
  for (size_t i = 0; i < n; i++) {
    bool seen = false;
    for (size_t j = 0; done && j < *n_done && !seen; j++)
      seen = (*done)[j] == pids[i];
    if (seen)
      continue;
    int pidfd = open_member(leaf, pids[i]);
    if (pidfd < 0)
      continue;
    if (cg_pidfd_send_signal(pidfd, sig) == 0) {
      fresh++;
      if (done) {
        pid_t *grown = realloc(*done, (*n_done + 1) * sizeof(pid_t));
        if (grown) {
          *done = grown;
          (*done)[(*n_done)++] = pids[i];
        }
      }
    }
    ca_close_keep_errno(pidfd);
  }
  return fresh;
}

int cg_leaf_signal_all(cg_leaf *leaf, int sig, ca_error **err) {
  if (!leaf->path)
    return cg_track_signal_all(leaf, sig, err);
  _cleanup_free_ pid_t *done = NULL;
  size_t n_done = 0;
  int total = 0;
  /* Processes forked during a pass show up in the next one; stop when a pass finds nobody new. */
  for (int pass = 0; pass < 16; pass++) {
    int r = signal_pass(leaf, sig, &done, &n_done, err);
    if (r < 0)
      return r;
    if (r == 0)
      break;
    total += r;
  }
  return total;
}

static int set_frozen(cg_leaf *leaf, bool frozen) {
  return cg_write_at(leaf->dirfd, leaf->path, "cgroup.freeze", frozen ? "1" : "0", NULL);
}

int cg_leaf_wait_empty(cg_leaf *leaf, uint64_t timeout_usec, ca_error **err) {
  uint64_t deadline = cg_now_usec() + timeout_usec;
  if (!leaf->path) {
    for (;;) {
      if (cg_track_scan(leaf, err) < 0)
        return -EIO;
      if (leaf->n_tracked == 0)
        return 0;
      if (cg_now_usec() >= deadline)
        return ca_error_set(err, ETIMEDOUT, "%zu processes still alive", leaf->n_tracked);
      usleep(2000);
    }
  }
  /* A scope's holder keeps it populated until the end: its members are counted without it, as on v1. */
  _cleanup_close_ int fd = leaf->holder_pid > 0 ? -1 : openat(leaf->dirfd, "cgroup.events", O_RDONLY | O_CLOEXEC);
  for (;;) {
    bool populated;
    if (fd >= 0) {
      char buf[256];
      ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
      if (n < 0 && leaf_gone(leaf, -errno))
        return 0;
      if (n < 0)
        return ca_error_set_errno(err, errno, "cannot read %s/cgroup.events", leaf->path);
      buf[n] = '\0';
      cg_events ev;
      if (cg_parse_events(buf, &ev, err) < 0)
        return ca_error_wrap(err, "%s", leaf->path);
      populated = ev.populated;
    } else {
      /* v1 (legacy hosts): no cgroup.events; the process list is the truth (a scope's too, its holder aside). */
      _cleanup_free_ pid_t *pids = NULL;
      size_t n = 0;
      if (cg_leaf_read_pids(leaf, &pids, &n, err) < 0)
        return -EIO;
      populated = n > 0;
    }
    if (!populated)
      return 0;
    uint64_t now = cg_now_usec();
    if (now >= deadline) {
      _cleanup_free_ pid_t *pids = NULL;
      size_t n = 0;
      (void)cg_leaf_read_pids(leaf, &pids, &n, NULL); /* only for the message */
      return ca_error_set(err, ETIMEDOUT, "%s still holds %zu processes after %.1f s", leaf->path, n,
                          (double)timeout_usec / 1e6);
    }
    /* cgroup.events signals POLLPRI on change; the timeout bounds a missed wakeup (level-triggered re-read). */
    int wait_ms = (int)CA_MIN((deadline - now + 999) / 1000, 50u);
    if (fd >= 0) {
      struct pollfd pfd = {.fd = fd, .events = POLLPRI};
      (void)poll(&pfd, 1, wait_ms); /* EINTR and timeouts both lead to a re-read */
    } else {
      usleep(2000);
    }
  }
}

static bool has_cgroup_kill(cg_leaf *leaf) {
  return leaf->path && leaf->root->track_is_v2 && !leaf->root->avoid_cgroup_kill &&
         faccessat(leaf->dirfd, "cgroup.kill", W_OK, 0) == 0;
}

const char *cg_leaf_kill_method(cg_leaf *leaf) {
  return has_cgroup_kill(leaf) ? "cgroup.kill" : "SIGKILL";
}

int cg_leaf_kill_all(cg_leaf *leaf, uint64_t timeout_usec, ca_error **err) {
  _cleanup_error_ ca_error *local_err = NULL;
  if (!err)
    err = &local_err;
  if (!leaf->path)
    return cg_track_kill_all(leaf, timeout_usec, err);
  uint64_t deadline = cg_now_usec() + timeout_usec;
  if (has_cgroup_kill(leaf)) {
    int r = cg_write_at(leaf->dirfd, leaf->path, "cgroup.kill", "1", err);
    if (leaf_gone(leaf, r)) {
      ca_error_free(TAKE_PTR(*err));
      return 0;
    }
    if (r < 0)
      return ca_error_wrap(err, "cgroup: kill session %s", leaf->id);
    return cg_leaf_wait_empty(leaf, timeout_usec, err) < 0 ? ca_error_wrap(err, "cgroup: kill session %s", leaf->id)
                                                           : 0;
  }
  bool can_freeze = leaf->root->track_is_v2 && faccessat(leaf->dirfd, "cgroup.freeze", W_OK, 0) == 0;
  for (;;) {
    if (can_freeze)
      (void)set_frozen(leaf, true); /* best effort: SIGKILL works on frozen and running tasks alike */
    int r = signal_pass(leaf, SIGKILL, NULL, NULL, err);
    if (can_freeze)
      (void)set_frozen(leaf, false);
    if (r < 0)
      return ca_error_wrap(err, "cgroup: kill session %s", leaf->id);
    uint64_t now = cg_now_usec();
    r = cg_leaf_wait_empty(leaf, CA_MIN(deadline > now ? deadline - now : 0, 20000u), err);
    if (r == 0)
      return 0;
    if (r != -ETIMEDOUT || cg_now_usec() >= deadline)
      return ca_error_wrap(err, "cgroup: kill session %s", leaf->id);
    ca_error_free(*err);
    *err = NULL;
  }
}

/* How many times at most cg_leaf_list_processes reads the leaf. */
#define LIST_ROUNDS 64

/* Into out (room for n): the processes of pids still running. *gone: whether one of them was not. */
static size_t running(cg_leaf *leaf, const pid_t *pids, size_t n, cg_proc_info *out, bool *gone) {
  size_t k = 0;
  *gone = false;
  for (size_t i = 0; i < n; i++) {
    cg_proc_stat st;
    if (cg_proc_read_stat(leaf->root->proc, pids[i], &st, NULL) < 0 || st.state == 'Z' || st.state == 'X') {
      *gone = true; /* exited since the list was read */
      continue;
    }
    out[k].pid = st.pid;
    out[k].start_time = st.start_time;
    memcpy(out[k].comm, st.comm, sizeof(out[k].comm));
    k++;
  }
  return k;
}

static int cmp_pid(const void *a, const void *b) {
  pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
  return (x > y) - (x < y);
}

/* A process that exited between the read of cgroup.procs and the look at it may have forked a child first, which the
 * read missed (a shell's `( cmd & ) &`): then the leaf is read again, until a read whose processes all ran, or one
 * that names the same processes as the one before (a child would be new in it: a process that stays listed as gone is
 * a leader whose threads still run), 64 reads at most; then the last look stands. */
static int list_running(cg_leaf *leaf, cg_proc_info **ret_procs, size_t *ret_count, ca_error **err) {
  _cleanup_free_ cg_proc_info *out = NULL;
  _cleanup_free_ pid_t *prev = NULL;
  size_t k = 0, n_prev = 0;
  bool gone = true;
  for (int round = 0; gone && round < LIST_ROUNDS; round++) {
    _cleanup_free_ pid_t *pids = NULL;
    size_t n = 0;
    if (cg_leaf_read_pids(leaf, &pids, &n, err) < 0)
      return -EIO;
    if (n)
      qsort(pids, n, sizeof(*pids), cmp_pid);
    if (prev && n == n_prev && memcmp(pids, prev, n * sizeof(*pids)) == 0)
      break;
    free(out);
    if (!(out = calloc(n ? n : 1, sizeof(*out))))
      return ca_error_set(err, ENOMEM, "out of memory");
    k = running(leaf, pids, n, out, &gone);
    free(prev);
    prev = TAKE_PTR(pids);
    n_prev = n;
  }
  *ret_procs = TAKE_PTR(out);
  *ret_count = k;
  return 0;
}

int cg_leaf_list_processes(cg_leaf *leaf, cg_proc_info **ret_procs, size_t *ret_count, ca_error **err) {
  if (leaf->path)
    return list_running(leaf, ret_procs, ret_count, err);
  if (cg_track_scan(leaf, err) < 0)
    return -EIO;
  cg_proc_info *copy = calloc(leaf->n_tracked ? leaf->n_tracked : 1, sizeof(*copy));
  if (!copy)
    return ca_error_set(err, ENOMEM, "out of memory");
  if (leaf->n_tracked) /* tracked is NULL while nothing is tracked: memcpy's source may not be NULL */
    memcpy(copy, leaf->tracked, leaf->n_tracked * sizeof(*copy));
  *ret_procs = copy;
  *ret_count = leaf->n_tracked;
  return 0;
}
