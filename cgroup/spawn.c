/* Spawning the command inside the leaf.
 *
 * clone3(CLONE_INTO_CGROUP) puts the child into the v2 leaf atomically (as crun and systemd do): it never runs an
 * instruction outside it. Without clone3 (kernels before 5.7, seccomp filters) the child writes itself into
 * cgroup.procs of every leaf before it execs, and only execs when that worked. On hybrid hosts the child also joins
 * the v1 leaves before exec: CLONE_INTO_CGROUP only knows v2. Errors reach the parent through a close-on-exec pipe:
 * EOF means exec succeeded. Between fork and exec the child only makes async-signal-safe calls. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup-internal.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

enum child_stage { STAGE_JOIN_V2 = 1, STAGE_JOIN_V1, STAGE_PRE_EXEC, STAGE_CHDIR, STAGE_FDS, STAGE_EXEC };

struct child_report {
  int stage;
  int err;
};

struct child_ctx {
  int report_fd;
  int go_fd, go_write_fd; /* with opts->started: the child execs once a byte came; -1 without */
  int v2_procs_fd;        /* -1 when CLONE_INTO_CGROUP placed the child already */
  int v1_procs_fd[CG_V1_N];
  const char *path;
  char *const *argv;
  char *const *envp;
  const char *cwd;
  int (*pre_exec)(void *userdata);
  void *pre_exec_data;
  const int *keep_fds;
  size_t n_keep_fds;
  bool take_terminal;
};

static bool fd_kept(int fd, const int *keep, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (keep[i] == fd)
      return true;
  return false;
}

static int fd_set_cloexec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0)
    return errno == EBADF ? 0 : -errno;
  return (flags & FD_CLOEXEC) || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 ? 0 : -errno;
}

/* Without close_range: the fds /proc/self/fd lists, read with getdents64 (no allocation), else every fd below
 * RLIMIT_NOFILE. */
static int fds_cloexec_each(const int *keep, size_t n) {
  int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    struct rlimit rl;
    int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (1u << 20) ? (int)rl.rlim_cur : (1 << 20);
    for (int fd = 3; fd < max; fd++)
      if (!fd_kept(fd, keep, n) && fd_set_cloexec(fd) < 0)
        return -errno;
    return 0;
  }
  char buf[4096];
  ssize_t len;
  int r = 0;
  while (r == 0 && (len = getdents64(dfd, buf, sizeof(buf))) > 0)
    for (ssize_t off = 0; off < len;) {
      struct dirent64 *d = (struct dirent64 *)(buf + off);
      off += d->d_reclen;
      int fd = 0;
      for (const char *p = d->d_name; *p >= '0' && *p <= '9' && fd < (1 << 28); p++)
        fd = fd * 10 + (*p - '0');
      if (fd > 2 && fd != dfd && !fd_kept(fd, keep, n))
        r = fd_set_cloexec(fd);
    }
  if (r == 0 && len < 0)
    r = -errno;
  close(dfd);
  return r;
}

int cg_fds_cloexec(const int *keep, size_t n, bool use_close_range) {
  unsigned lo = 3; /* the first fd not yet handled */
  for (size_t i = 0; use_close_range && i <= n; i++) {
    if (i < n && keep[i] < (int)lo)
      continue;                                        /* 0-2, and repeats */
    unsigned hi = i < n ? (unsigned)keep[i] - 1 : ~0U; /* the range below keep[i], or up to the end */
    if (hi >= lo && close_range(lo, hi, CLOSE_RANGE_CLOEXEC) < 0) {
      if (errno != ENOSYS && errno != EINVAL)
        return -errno;
      use_close_range = false; /* before Linux 5.11 (or under seccomp): one fd at a time */
    }
    if (i < n)
      lo = (unsigned)keep[i] + 1;
  }
  return use_close_range ? 0 : fds_cloexec_each(keep, n);
}

static _noreturn_ void child_fail(const struct child_ctx *c, int stage) {
  struct child_report rep = {.stage = stage, .err = errno};
  ssize_t n = write(c->report_fd, &rep, sizeof(rep));
  (void)n; /* nothing else can be done: the parent sees EOF and a 127 exit */
  _exit(127);
}

/* With a started hook: waits for the agent's byte; end of file (the agent died first) ends the child unexec'd. */
static void child_wait_go(const struct child_ctx *c) {
  if (c->go_fd < 0)
    return;
  close(c->go_write_fd); /* else this copy would keep the pipe open after the agent died */
  char b;
  ssize_t n;
  do
    n = read(c->go_fd, &b, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1)
    _exit(127);
}

static _noreturn_ void child_run(const struct child_ctx *c) {
  if (c->v2_procs_fd >= 0 && write(c->v2_procs_fd, "0", 1) != 1)
    child_fail(c, STAGE_JOIN_V2);
  for (int i = 0; i < CG_V1_N; i++)
    if (c->v1_procs_fd[i] >= 0 && write(c->v1_procs_fd[i], "0", 1) != 1)
      child_fail(c, STAGE_JOIN_V1);
  (void)setpgid(0, 0); /* the parent does the same; one of the two wins, either result is right */
  if (c->take_terminal) {
    /* Before exec, so that a command that reads the terminal at once is not stopped by SIGTTIN. SIGTTOU ignored
     * for the call: the new group is not the foreground yet. Failing is harmless: the command then runs as a
     * background job would. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    (void)sigaction(SIGTTOU, &ign, NULL);
    (void)tcsetpgrp(STDIN_FILENO, getpid());
  }
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  for (int sig = 1; sig < _NSIG; sig++)
    (void)sigaction(sig, &dfl, NULL); /* EINVAL for SIGKILL, SIGSTOP and the libc-internal ones */
  sigset_t none;
  sigemptyset(&none);
  (void)sigprocmask(SIG_SETMASK, &none, NULL);
  if (c->pre_exec) {
    int r = c->pre_exec(c->pre_exec_data);
    if (r < 0) {
      errno = -r;
      child_fail(c, STAGE_PRE_EXEC);
    }
  }
  if (c->cwd && chdir(c->cwd) < 0)
    child_fail(c, STAGE_CHDIR);
  /* Close-on-exec rather than closed: the report pipe must outlive a failed execve. */
  int r = cg_fds_cloexec(c->keep_fds, c->n_keep_fds, true);
  if (r < 0) {
    errno = -r;
    child_fail(c, STAGE_FDS);
  }
  child_wait_go(c);
  execve(c->path, c->argv, c->envp);
  child_fail(c, STAGE_EXEC);
}

static const char *env_get(char *const *envp, const char *name) {
  size_t len = strlen(name);
  for (char *const *e = envp; e && *e; e++)
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
      return *e + len + 1;
  return NULL;
}

/* Resolves argv[0] like execvp does, before the fork, so the child needs no allocation. */
static int resolve_program(const char *name, char *const *envp, char **ret, ca_error **err) {
  if (!name || !*name)
    return ca_error_set(err, EINVAL, "empty command");
  if (strchr(name, '/')) {
    if (!(*ret = strdup(name)))
      return ca_error_set(err, ENOMEM, "out of memory");
    return 0;
  }
  const char *path = env_get(envp, "PATH");
  if (!path)
    path = "/usr/local/bin:/usr/bin:/bin";
  int saw = ENOENT;
  for (const char *p = path;;) {
    const char *colon = strchrnul(p, ':');
    char *cand = NULL;
    if (asprintf(&cand, "%.*s%s%s", (int)(colon - p), p, colon == p ? "" : "/", name) < 0)
      return ca_error_set(err, ENOMEM, "out of memory");
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(cand, X_OK) == 0) {
        *ret = cand;
        return 0;
      }
      saw = EACCES;
    }
    free(cand);
    if (!*colon)
      break;
    p = colon + 1;
  }
  int r = ca_error_set(err, saw, "%s: %s", name, saw == ENOENT ? "command not found in PATH" : "permission denied");
  (*err)->detail = CG_ERROR_DETAIL_EXEC;
  return r;
}

static pid_t clone3_into(int cgroup_fd, int *ret_pidfd) {
  struct clone_args args = {
      .flags = CLONE_PIDFD | CLONE_INTO_CGROUP,
      .pidfd = (uint64_t)(uintptr_t)ret_pidfd,
      .exit_signal = SIGCHLD,
      .cgroup = (uint64_t)cgroup_fd,
  };
  return (pid_t)syscall(SYS_clone3, &args, sizeof(args));
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* Appends fd to *fds (n used, *cap allocated). */
static int fds_append(int **fds, size_t *n, size_t *cap, int fd) {
  if (*n == *cap) {
    size_t grown_cap = *cap ? *cap * 2 : 8;
    int *grown = reallocarray(*fds, grown_cap, sizeof(**fds));
    if (!grown)
      return -ENOMEM;
    *fds = grown;
    *cap = grown_cap;
  }
  (*fds)[(*n)++] = fd;
  return 0;
}

int cg_fds_inherited(int **ret_fds, size_t *ret_n, ca_error **err) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return ca_error_set_errno(err, errno, "cannot list /proc/self/fd");
  _cleanup_free_ int *fds = NULL;
  size_t n = 0, cap = 0;
  int r = 0;
  struct dirent *e;
  while (r == 0 && (e = readdir(d))) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    if (*end || end == e->d_name || fd < 3 || fd > INT_MAX || fd == dirfd(d))
      continue;
    int flags = fcntl((int)fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC))
      r = fds_append(&fds, &n, &cap, (int)fd);
  }
  closedir(d);
  if (r < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  if (n > 1)
    qsort(fds, n, sizeof(*fds), cmp_int);
  *ret_fds = TAKE_PTR(fds);
  *ret_n = n;
  return 0;
}

/* The v2 cgroup the command goes into: the leaf's CG_COMMAND_CGROUP where it has one, else the leaf. */
static int command_dirfd(const cg_leaf *leaf) {
  return leaf->cmd_dirfd >= 0 ? leaf->cmd_dirfd : leaf->dirfd;
}

/* Opens the cgroup.procs files the child writes itself into: v2 unless CLONE_INTO_CGROUP places it (*into), and every
 * v1 leaf that is not the tracking one. */
static int open_procs_files(cg_leaf *leaf, bool into, struct child_ctx *c, ca_error **err) {
  if (!leaf->path)
    return 0;
  if (!into && (c->v2_procs_fd = openat(command_dirfd(leaf), "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0)
    return ca_error_set_errno(err, errno, "cannot open %s/cgroup.procs", leaf->path);
  for (int i = 0; i < CG_V1_N; i++) {
    if (!leaf->v1_path[i] || (!leaf->root->track_is_v2 && streq(leaf->v1_path[i], leaf->path)))
      continue;
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/cgroup.procs", leaf->v1_path[i]);
    if ((c->v1_procs_fd[i] = open(p, O_WRONLY | O_CLOEXEC)) < 0)
      return ca_error_set_errno(err, errno, "cannot open %s", p);
  }
  return 0;
}

/* Starts the child: clone3(CLONE_INTO_CGROUP) when *into, else (or when the kernel refuses it, which clears *into)
 * fork, with the child joining through c's cgroup.procs fds. Returns the pid, or a negative errno with err set. */
static pid_t start_child(cg_leaf *leaf, bool *into, struct child_ctx *c, int *ret_pidfd, ca_error **err) {
  pid_t pid = -1;
  if (*into) {
    pid = clone3_into(command_dirfd(leaf), ret_pidfd);
    if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EPERM || errno == EINVAL)) {
      /* No clone3 or no CLONE_INTO_CGROUP here: join after fork instead. */
      *into = false;
      if ((c->v2_procs_fd = openat(command_dirfd(leaf), "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0)
        return ca_error_set_errno(err, errno, "cannot open %s/cgroup.procs", leaf->path);
    }
  }
  if (!*into)
    pid = fork();
  if (pid == 0)
    child_run(c);
  if (pid < 0) {
    int e = errno;
    return ca_error_set(err, e, "cannot start the command: %s%s", strerror(e),
                        e == EAGAIN ? " (process limit reached)" : "");
  }
  return pid;
}

/* The error of a child that reported a failure before exec (n bytes of rep were read). */
static int child_report_error(const struct child_report *rep, ssize_t n, const cg_leaf *leaf,
                              const cg_spawn_options *opts, const char *program, ca_error **err) {
  if (n != (ssize_t)sizeof(*rep))
    return ca_error_set(err, EIO, "the child failed before exec without a report");
  switch (rep->stage) {
    case STAGE_EXEC: {
      int r = ca_error_set_errno(err, rep->err, "cannot execute %s", program);
      (*err)->detail = CG_ERROR_DETAIL_EXEC;
      return r;
    }
    case STAGE_PRE_EXEC:
      return ca_error_set_errno(err, rep->err, "%s", opts->pre_exec_what ? opts->pre_exec_what : "prepare the command");
    case STAGE_CHDIR:
      return ca_error_set_errno(err, rep->err, "cannot change directory to %s", opts->cwd);
    case STAGE_FDS:
      return ca_error_set_errno(err, rep->err, "cannot mark the agent's file descriptors close-on-exec");
    default:
      return ca_error_set_errno(err, rep->err, "the child could not join %s", leaf->path);
  }
}

static void close_ctx(struct child_ctx *c) {
  ca_close_keep_errno(c->v2_procs_fd);
  for (int i = 0; i < CG_V1_N; i++)
    ca_close_keep_errno(c->v1_procs_fd[i]);
}

/* Waits for the child's exec (end of file on the report pipe) and fills *ret; on a reported failure the child is
 * reaped and the error returned. */
static int await_exec(cg_leaf *leaf, const cg_spawn_options *opts, const char *program, const cg_process *child,
                      int report_fd, cg_process *ret, ca_error **err) {
  pid_t pid = child->pid;
  int pidfd = child->pidfd;
  struct child_report rep;
  ssize_t n;
  do
    n = read(report_fd, &rep, sizeof(rep));
  while (n < 0 && errno == EINTR);
  if (n != 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
    ca_close_keep_errno(pidfd);
    return child_report_error(&rep, n, leaf, opts, program, err);
  }
  if (pidfd < 0)
    pidfd = cg_pidfd_open(pid); /* -1 on kernels before 5.3: callers fall back to the pid */
  *ret = *child;
  ret->pidfd = pidfd;
  if (!leaf->path) {
    leaf->main_pid = pid;
    leaf->main_start = child->start_time;
  }
  return 0;
}

/* Tells opts->started about the child, which waits before exec, then lets it go; when the hook fails, the child is
 * told nothing (the end of file ends it unexec'd) and reaped. */
static int release_child(const cg_spawn_options *opts, const cg_process *child, int *go_fd, ca_error **err) {
  int r = opts->started(opts->started_data, child, err);
  if (r < 0) {
    ca_close_keep_errno(*go_fd);
    *go_fd = -1;
    while (waitpid(child->pid, NULL, 0) < 0 && errno == EINTR)
      ;
    if (child->pidfd >= 0)
      close(child->pidfd);
    return r;
  }
  /* A child that failed before its wait reports that, and await_exec reads it. The write meets no closed pipe (no
   * SIGPIPE, whatever the caller's disposition): cg_spawn holds the read end until the child exec'ed or failed. */
  (void)!write(*go_fd, "x", 1);
  return 0;
}

static bool fds_ascending(const int *fds, size_t n) {
  for (size_t i = 1; i < n; i++)
    if (fds[i] <= fds[i - 1])
      return false;
  return true;
}

int cg_spawn(cg_leaf *leaf, const cg_spawn_options *opts, cg_process *ret, ca_error **err) {
  _cleanup_error_ ca_error *local = NULL;
  if (!err)
    err = &local;
  if (!opts || !opts->argv || !opts->argv[0])
    return ca_error_set(err, EINVAL, "cg_spawn: no command");
  if (!fds_ascending(opts->keep_fds, opts->n_keep_fds))
    return ca_error_set(err, EINVAL, "cg_spawn: keep_fds must be ascending");
  char *const *envp = opts->envp ? opts->envp : environ;
  _cleanup_free_ char *program = NULL;
  if (resolve_program(opts->argv[0], envp, &program, err) < 0)
    return -(*err)->code;

  struct child_ctx c = {.v2_procs_fd = -1,
                        .go_fd = -1,
                        .go_write_fd = -1,
                        .path = program,
                        .argv = opts->argv,
                        .envp = envp,
                        .cwd = opts->cwd,
                        .pre_exec = opts->pre_exec,
                        .pre_exec_data = opts->pre_exec_data,
                        .keep_fds = opts->keep_fds,
                        .n_keep_fds = opts->n_keep_fds,
                        .take_terminal = opts->take_terminal};
  for (int i = 0; i < CG_V1_N; i++)
    c.v1_procs_fd[i] = -1;
  bool into = leaf->path && leaf->root->track_is_v2 && !opts->join_after_fork;
  int pipefd[2] = {-1, -1}, go[2] = {-1, -1}, pidfd = -1, r;
  if ((r = open_procs_files(leaf, into, &c, err)) < 0)
    goto out;
  if (pipe2(pipefd, O_CLOEXEC) < 0 || (opts->started && pipe2(go, O_CLOEXEC) < 0)) {
    r = ca_error_set_errno(err, errno, "pipe");
    goto out;
  }
  c.report_fd = pipefd[1];
  c.go_fd = go[0];
  c.go_write_fd = go[1];
  pid_t pid = start_child(leaf, &into, &c, &pidfd, err);
  ca_close_keep_errno(pipefd[1]);
  if (pid < 0) {
    r = pid;
    goto out;
  }
  (void)setpgid(pid, pid); /* EACCES once the child has exec'ed: it did setpgid itself before that */
  cg_proc_stat st = {0};
  (void)cg_proc_read_stat(leaf->root->proc, pid, &st, NULL); /* the unreaped child cannot vanish: always works */
  cg_process child = {.pid = pid, .pidfd = pidfd, .start_time = st.start_time, .clone_into_cgroup = into};
  if (opts->started && (r = release_child(opts, &child, &go[1], err)) < 0)
    goto out;
  r = await_exec(leaf, opts, program, &child, pipefd[0], ret, err);
out:
  ca_close_keep_errno(pipefd[0]);
  ca_close_keep_errno(go[0]);
  ca_close_keep_errno(go[1]);
  close_ctx(&c);
  return r;
}
