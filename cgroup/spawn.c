/* Spawning the command inside the leaf.
 *
 * clone3(CLONE_INTO_CGROUP) puts the child into the v2 leaf atomically (as crun and systemd do): it never runs an
 * instruction outside it. Without clone3 (kernels before 5.7, seccomp filters) the child writes itself into
 * cgroup.procs of every leaf before it execs, and only execs when that worked. On hybrid hosts the child also joins
 * the v1 leaves before exec: CLONE_INTO_CGROUP only knows v2. Errors reach the parent through a close-on-exec pipe:
 * EOF means exec succeeded. Between fork and exec the child only makes async-signal-safe calls. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "cgroup-internal.h"

extern char **environ;

enum child_stage { STAGE_JOIN_V2 = 1, STAGE_JOIN_V1, STAGE_PRE_EXEC, STAGE_CHDIR, STAGE_EXEC };

struct child_report {
  int stage;
  int err;
};

struct child_ctx {
  int report_fd;
  int v2_procs_fd; /* -1 when CLONE_INTO_CGROUP placed the child already */
  int v1_procs_fd[CG_V1_N];
  const char *path;
  char *const *argv;
  char *const *envp;
  const char *cwd;
  int (*pre_exec)(void *userdata);
  void *pre_exec_data;
};

static _noreturn_ void child_fail(const struct child_ctx *c, int stage) {
  struct child_report rep = {.stage = stage, .err = errno};
  ssize_t n = write(c->report_fd, &rep, sizeof(rep));
  (void)n; /* nothing else can be done: the parent sees EOF and a 127 exit */
  _exit(127);
}

static _noreturn_ void child_run(const struct child_ctx *c) {
  if (c->v2_procs_fd >= 0 && write(c->v2_procs_fd, "0", 1) != 1)
    child_fail(c, STAGE_JOIN_V2);
  for (int i = 0; i < CG_V1_N; i++)
    if (c->v1_procs_fd[i] >= 0 && write(c->v1_procs_fd[i], "0", 1) != 1)
      child_fail(c, STAGE_JOIN_V1);
  (void)setpgid(0, 0); /* the parent does the same; one of the two wins, either result is right */
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

static void close_ctx(struct child_ctx *c) {
  ca_close_keep_errno(c->v2_procs_fd);
  for (int i = 0; i < CG_V1_N; i++)
    ca_close_keep_errno(c->v1_procs_fd[i]);
}

int cg_spawn(cg_leaf *leaf, const cg_spawn_options *opts, cg_process *ret, ca_error **err) {
  _cleanup_error_ ca_error *local = NULL;
  if (!err)
    err = &local;
  if (!opts || !opts->argv || !opts->argv[0])
    return ca_error_set(err, EINVAL, "cg_spawn: no command");
  char *const *envp = opts->envp ? opts->envp : environ;
  _cleanup_free_ char *program = NULL;
  if (resolve_program(opts->argv[0], envp, &program, err) < 0)
    return -(*err)->code;

  struct child_ctx c = {.v2_procs_fd = -1,
                        .path = program,
                        .argv = opts->argv,
                        .envp = envp,
                        .cwd = opts->cwd,
                        .pre_exec = opts->pre_exec,
                        .pre_exec_data = opts->pre_exec_data};
  for (int i = 0; i < CG_V1_N; i++)
    c.v1_procs_fd[i] = -1;
  bool into = false;
  int r = 0;
  if (leaf->path) {
    into = leaf->root->track_is_v2 && !opts->join_after_fork;
    if (!into && (c.v2_procs_fd = openat(leaf->dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0) {
      r = ca_error_set_errno(err, errno, "cannot open %s/cgroup.procs", leaf->path);
      goto out;
    }
    for (int i = 0; i < CG_V1_N; i++) {
      if (!leaf->v1_path[i] || (!leaf->root->track_is_v2 && streq(leaf->v1_path[i], leaf->path)))
        continue;
      char p[PATH_MAX];
      snprintf(p, sizeof(p), "%s/cgroup.procs", leaf->v1_path[i]);
      if ((c.v1_procs_fd[i] = open(p, O_WRONLY | O_CLOEXEC)) < 0) {
        r = ca_error_set_errno(err, errno, "cannot open %s", p);
        goto out;
      }
    }
  }
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) {
    r = ca_error_set_errno(err, errno, "pipe");
    goto out;
  }
  c.report_fd = pipefd[1];

  int pidfd = -1;
  pid_t pid = -1;
  if (into) {
    pid = clone3_into(leaf->dirfd, &pidfd);
    if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EPERM || errno == EINVAL)) {
      /* No clone3 or no CLONE_INTO_CGROUP here: join after fork instead. */
      into = false;
      c.v2_procs_fd = openat(leaf->dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
      if (c.v2_procs_fd < 0) {
        r = ca_error_set_errno(err, errno, "cannot open %s/cgroup.procs", leaf->path);
        ca_close_keep_errno(pipefd[0]);
        ca_close_keep_errno(pipefd[1]);
        goto out;
      }
    }
  }
  if (!into)
    pid = fork();
  if (pid == 0)
    child_run(&c);
  int fork_errno = errno;
  ca_close_keep_errno(pipefd[1]);
  if (pid < 0) {
    ca_close_keep_errno(pipefd[0]);
    r = ca_error_set(err, fork_errno, "cannot start the command: %s%s", strerror(fork_errno),
                     fork_errno == EAGAIN ? " (process limit reached)" : "");
    goto out;
  }
  (void)setpgid(pid, pid); /* EACCES once the child has exec'ed: it did setpgid itself before that */

  struct child_report rep;
  ssize_t n;
  do
    n = read(pipefd[0], &rep, sizeof(rep));
  while (n < 0 && errno == EINTR);
  ca_close_keep_errno(pipefd[0]);
  if (n != 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
    ca_close_keep_errno(pidfd);
    if (n != (ssize_t)sizeof(rep)) {
      r = ca_error_set(err, EIO, "the child failed before exec without a report");
    } else if (rep.stage == STAGE_EXEC) {
      r = ca_error_set_errno(err, rep.err, "cannot execute %s", program);
      (*err)->detail = CG_ERROR_DETAIL_EXEC;
    } else if (rep.stage == STAGE_PRE_EXEC) {
      r = ca_error_set_errno(err, rep.err, "%s", opts->pre_exec_what ? opts->pre_exec_what : "prepare the command");
    } else if (rep.stage == STAGE_CHDIR) {
      r = ca_error_set_errno(err, rep.err, "cannot change directory to %s", opts->cwd);
    } else {
      r = ca_error_set_errno(err, rep.err, "the child could not join %s", leaf->path);
    }
    goto out;
  }
  if (pidfd < 0)
    pidfd = cg_pidfd_open(pid); /* -1 on kernels before 5.3: callers fall back to the pid */
  cg_proc_stat st = {0};
  (void)cg_proc_read_stat(leaf->root->proc, pid, &st, NULL); /* the unreaped child cannot vanish: always works */
  *ret = (cg_process){.pid = pid, .pidfd = pidfd, .start_time = st.start_time, .clone_into_cgroup = into};
  if (!leaf->path) {
    leaf->main_pid = pid;
    leaf->main_start = st.start_time;
  }
out:
  close_ctx(&c);
  return r;
}
