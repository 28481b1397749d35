/* Process tracking, for hosts where no cgroup is writable: weaker than a cgroup, and the caller says so.
 *
 * The agent becomes a child subreaper, so whatever the command's tree orphans (double forks, setsid daemons) is
 * reparented to the agent instead of init. A walk of /proc then finds the tree: a process belongs to the session when
 *   - it is the main process (pid and start time recorded at spawn), or
 *   - it is in the main process's process group and started after it, while the main process is not reaped (once
 *     it is, its pid and with it the group id may name a stranger's group), or
 *   - its parent belongs to the session and it started no earlier than that parent, or
 *   - its parent is the agent and it started no earlier than the main process (an orphan reparented to us; the
 *     agent's own helpers must be forked before cg_spawn), or
 *   - it was found in an earlier walk and still has the same start time,
 * and it is not one of the caller's helpers (cg_leaf_ignore_pid): start times tick in 10 ms, so a guardian forked
 * just before the command can carry the command's own start time.
 * Every process is signalled through cg_signal_verified (a pidfd opened before its start time is checked), so a pid
 * reused by a process with another start time is never hit.
 * What escapes this (a process that re-parents across a walk before we saw it, a daemon started via another
 * service) is why cgroups are preferred.
 * Once the agent is gone, a collector has only what the session recorded: the main process and its group
 * (cg_group_kill), with no subreaper left to keep the orphans' parent links. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cgroup-internal.h"

int cg_leaf_ignore_pid(cg_leaf *leaf, pid_t pid, ca_error **err) {
  if (pid <= 0 || leaf->n_ignored == CG_LEAF_MAX_IGNORED)
    return ca_error_set(err, EINVAL, "cgroup: cannot ignore pid %d", (int)pid);
  leaf->ignored[leaf->n_ignored++] = pid;
  return 0;
}

static bool is_ignored(const cg_leaf *leaf, pid_t pid) {
  for (size_t i = 0; i < leaf->n_ignored; i++)
    if (leaf->ignored[i] == pid)
      return true;
  return false;
}

int cg_track_start(cg_leaf *leaf, ca_error **err) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    return ca_error_set_errno(err, errno, "cannot become a child subreaper");
  leaf->owner_pid = getpid();
  return 0;
}

struct pinfo {
  cg_proc_stat st;
  bool member;
};

static int cmp_pid(const void *a, const void *b) {
  const struct pinfo *x = a, *y = b;
  return (x->st.pid > y->st.pid) - (x->st.pid < y->st.pid);
}

static struct pinfo *find(struct pinfo *all, size_t n, pid_t pid) {
  struct pinfo key = {.st.pid = pid};
  return bsearch(&key, all, n, sizeof(*all), cmp_pid);
}

static bool was_tracked(const cg_leaf *leaf, const cg_proc_stat *st) {
  for (size_t i = 0; i < leaf->n_tracked; i++)
    if (leaf->tracked[i].pid == st->pid && leaf->tracked[i].start_time == st->start_time)
      return true;
  return false;
}

/* Every process of procfs proc that could be read, sorted by pid; caller frees *ret. */
static int read_all(const char *proc, struct pinfo **ret, size_t *ret_n, ca_error **err) {
  DIR *d = opendir(proc);
  if (!d)
    return ca_error_set_errno(err, errno, "cannot list %s", proc);
  _cleanup_free_ struct pinfo *all = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end;
    long pid = strtol(de->d_name, &end, 10);
    if (*end || pid <= 0)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 256;
      struct pinfo *grown = realloc(all, cap * sizeof(*all));
      if (!grown) {
        closedir(d);
        return ca_error_set(err, ENOMEM, "out of memory");
      }
      all = grown;
    }
    if (cg_proc_read_stat(proc, (pid_t)pid, &all[n].st, NULL) == 0) {
      all[n].member = false;
      n++;
    }
  }
  closedir(d);
  if (n)
    qsort(all, n, sizeof(*all), cmp_pid);
  *ret = TAKE_PTR(all);
  *ret_n = n;
  return 0;
}

/* Marks the unmarked processes whose parent is marked and started no later than they did, until none is added; a
 * process of leaf (NULL: none) that is ignored never is. */
static void mark_descendants(const cg_leaf *leaf, struct pinfo *all, size_t n) {
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < n; i++) {
      if (all[i].member || (leaf && is_ignored(leaf, all[i].st.pid)))
        continue;
      struct pinfo *parent = find(all, n, all[i].st.ppid);
      if (parent && parent->member && all[i].st.start_time >= parent->st.start_time) {
        all[i].member = true;
        changed = true;
      }
    }
  }
}

/* Marks the members by the rules at the top of the file. */
static void mark_members(cg_leaf *leaf, struct pinfo *all, size_t n) {
  if (!leaf->main_reaped) {
    struct pinfo *main = find(all, n, leaf->main_pid);
    leaf->main_reaped = !main || main->st.start_time != leaf->main_start;
  }
  for (size_t i = 0; i < n; i++) {
    cg_proc_stat *st = &all[i].st;
    bool in_group = !leaf->main_reaped && st->pgrp == leaf->main_pid && st->start_time >= leaf->main_start;
    all[i].member = !is_ignored(leaf, st->pid) &&
                    ((st->pid == leaf->main_pid && st->start_time == leaf->main_start) || in_group ||
                     (st->ppid == leaf->owner_pid && st->start_time >= leaf->main_start) || was_tracked(leaf, st));
  }
  mark_descendants(leaf, all, n);
}

int cg_track_scan(cg_leaf *leaf, ca_error **err) {
  if (leaf->main_pid <= 0) {
    leaf->n_tracked = 0;
    return 0;
  }
  _cleanup_free_ struct pinfo *all = NULL;
  size_t n = 0;
  if (read_all(leaf->root->proc, &all, &n, err) < 0)
    return -EIO;
  mark_members(leaf, all, n);
  size_t k = 0;
  cg_proc_info *tracked = calloc(n ? n : 1, sizeof(*tracked));
  if (!tracked)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    if (!all[i].member || all[i].st.pid == leaf->owner_pid)
      continue;
    if (all[i].st.state == 'Z' || all[i].st.state == 'X') {
      /* Orphans reparented to us are ours to reap; the main process is the caller's. */
      if (all[i].st.ppid == leaf->owner_pid && all[i].st.pid != leaf->main_pid)
        (void)waitpid(all[i].st.pid, NULL, WNOHANG);
      continue;
    }
    tracked[k].pid = all[i].st.pid;
    tracked[k].start_time = all[i].st.start_time;
    memcpy(tracked[k].comm, all[i].st.comm, sizeof(tracked[k].comm));
    k++;
  }
  free(leaf->tracked);
  leaf->tracked = tracked;
  leaf->n_tracked = k;
  return 0;
}

int cg_track_signal_all(cg_leaf *leaf, int sig, ca_error **err) {
  if (cg_track_scan(leaf, err) < 0)
    return -EIO;
  int count = 0;
  for (size_t i = 0; i < leaf->n_tracked; i++)
    if (cg_signal_verified(leaf->root->proc, leaf->tracked[i].pid, leaf->tracked[i].start_time, sig, NULL) == 0)
      count++;
  return count;
}

int cg_track_kill_all(cg_leaf *leaf, uint64_t timeout_usec, ca_error **err) {
  uint64_t deadline = cg_now_usec() + timeout_usec;
  for (;;) {
    if (cg_track_scan(leaf, err) < 0)
      return ca_error_wrap(err, "cgroup: kill session %s", leaf->id);
    if (leaf->n_tracked == 0)
      return 0;
    if (cg_now_usec() >= deadline)
      return ca_error_set(err, ETIMEDOUT, "cgroup: kill session %s: %zu processes still alive after %.1f s", leaf->id,
                          leaf->n_tracked, (double)timeout_usec / 1e6);
    /* Stop everyone first so the forking ones cannot add children between our kill and their death. */
    for (size_t i = 0; i < leaf->n_tracked; i++)
      (void)cg_signal_verified(leaf->root->proc, leaf->tracked[i].pid, leaf->tracked[i].start_time, SIGSTOP, NULL);
    for (size_t i = 0; i < leaf->n_tracked; i++)
      (void)cg_signal_verified(leaf->root->proc, leaf->tracked[i].pid, leaf->tracked[i].start_time, SIGKILL, NULL);
    usleep(1000);
  }
}

/* Whether the environment of pid (NUL-separated entries) holds entry; false when it cannot be read. */
static bool environ_has(const char *proc, pid_t pid, const char *entry) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%d/environ", proc, (int)pid);
  _cleanup_free_ char *env = NULL;
  size_t len = 0;
  if (ca_read_file(path, CG_ENVIRON_MAX, &env, &len, NULL) < 0)
    return false;
  size_t want = strlen(entry);
  for (size_t at = 0; at < len;) {
    size_t n = strnlen(env + at, len - at);
    if (n == want && memcmp(env + at, entry, want) == 0)
      return true;
    at += n + 1;
  }
  return false;
}

static bool known(const cg_proc_info *procs, size_t n, const cg_proc_stat *st) {
  for (size_t i = 0; i < n; i++)
    if (procs[i].pid == st->pid && procs[i].start_time == st->start_time)
      return true;
  return false;
}

/* Marks the members of g (cg_group_kill's rules) among all; the processes of earlier rounds (seen) stay members. */
static void mark_group(const char *proc, const cg_group *g, pid_t exclude, struct pinfo *all, size_t n,
                       const cg_proc_info *seen, size_t n_seen) {
  const struct pinfo *leader = find(all, n, g->pgrp);
  if (leader && leader->st.start_time != g->pgrp_start && !n_seen)
    return; /* the group id names another process now: ours is gone */
  bool leader_alive = leader && leader->st.start_time == g->pgrp_start;
  for (size_t i = 0; i < n; i++) {
    const cg_proc_stat *st = &all[i].st;
    bool in_group = st->pgrp == g->pgrp && st->start_time >= g->pgrp_start &&
                    (leader_alive || (!leader && g->env_entry && environ_has(proc, st->pid, g->env_entry)));
    all[i].member = (st->pid == g->main_pid && st->start_time == g->main_start) || in_group || known(seen, n_seen, st);
  }
  mark_descendants(NULL, all, n);
  for (size_t i = 0; i < n; i++)
    if (all[i].st.pid == exclude || all[i].st.state == 'Z' || all[i].st.state == 'X')
      all[i].member = false;
}

/* The members of g now (with those of earlier rounds, *seen), into *seen; their number, or -errno. */
static int scan_group(const char *proc, const cg_group *g, pid_t exclude, cg_proc_info **seen, size_t *n_seen,
                      ca_error **err) {
  _cleanup_free_ struct pinfo *all = NULL;
  size_t n = 0;
  if (read_all(proc, &all, &n, err) < 0)
    return -EIO;
  mark_group(proc, g, exclude, all, n, *seen, *n_seen);
  cg_proc_info *members = calloc(n ? n : 1, sizeof(*members));
  if (!members)
    return ca_error_set(err, ENOMEM, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (all[i].member)
      members[k++] = (cg_proc_info){.pid = all[i].st.pid, .start_time = all[i].st.start_time};
  free(*seen);
  *seen = members;
  *n_seen = k;
  return (int)k;
}

int cg_group_kill(const char *proc, const cg_group *g, pid_t exclude, uint64_t timeout_usec, unsigned *ret_killed,
                  ca_error **err) {
  proc = proc ? proc : "/proc";
  uint64_t deadline = cg_now_usec() + timeout_usec;
  _cleanup_free_ cg_proc_info *seen = NULL;
  size_t n_seen = 0;
  unsigned found = 0;
  for (bool first = true;; first = false) {
    int n = scan_group(proc, g, exclude, &seen, &n_seen, err);
    if (n < 0)
      return ca_error_wrap(err, "cgroup: kill process group %d", (int)g->pgrp);
    if (first)
      found = (unsigned)n;
    if (ret_killed)
      *ret_killed = found;
    if (n == 0)
      return 0;
    if (cg_now_usec() >= deadline)
      return ca_error_set(err, ETIMEDOUT, "cgroup: kill process group %d: %d processes still alive after %.1f s",
                          (int)g->pgrp, n, (double)timeout_usec / 1e6);
    /* Stopped first, so that none adds a child between our kill and its death. */
    for (size_t i = 0; i < n_seen; i++)
      (void)cg_signal_verified(proc, seen[i].pid, seen[i].start_time, SIGSTOP, NULL);
    for (size_t i = 0; i < n_seen; i++)
      (void)cg_signal_verified(proc, seen[i].pid, seen[i].start_time, SIGKILL, NULL);
    usleep(1000);
  }
}
