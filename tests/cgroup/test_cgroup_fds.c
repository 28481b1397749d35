/* The fds a spawned command inherits: the inherited set the agent records at start, and marking everything else
 * close-on-exec with close_range and without it (kernels before 5.11). No cgroup, no root needed. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup-internal.h"

static bool cloexec(int fd) {
  return fcntl(fd, F_GETFD) & FD_CLOEXEC;
}

Test(fds, inherited_are_the_open_fds_without_cloexec_ascending) {
  int a = open("/dev/null", O_RDONLY), b = open("/dev/null", O_RDONLY | O_CLOEXEC), c = dup(a);
  int *fds = NULL;
  size_t n = 0;
  cr_assert_eq(cg_fds_inherited(&fds, &n, NULL), 0);
  bool saw_a = false, saw_c = false;
  for (size_t i = 0; i < n; i++) {
    cr_assert_gt(fds[i], 2);
    cr_assert(i == 0 || fds[i] > fds[i - 1], "not ascending");
    cr_assert_neq(fds[i], b, "fd %d is close-on-exec", b);
    saw_a |= fds[i] == a;
    saw_c |= fds[i] == c;
  }
  cr_assert(saw_a && saw_c);
  free(fds);
  close(a);
  close(b);
  close(c);
}

/* A process started with 0, 1 and 2 only (in a child, which closes the rest first) inherited nothing. */
Test(fds, inherited_can_be_none) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    (void)close_range(3, ~0U, 0);
    int *fds = NULL;
    size_t n = 99;
    _exit(cg_fds_inherited(&fds, &n, NULL) == 0 && n == 0 ? 0 : 1);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* In a child, so that the test process's own fds are left alone: fd keep[] stay as they are, every other is marked. */
static void check_cloexec(bool use_close_range) {
  int fds[6];
  for (int i = 0; i < 6; i++)
    fds[i] = open("/dev/null", O_RDONLY);
  int keep[] = {fds[1], fds[2], fds[4]};
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    if (cg_fds_cloexec(keep, 3, use_close_range) < 0)
      _exit(10);
    if (cloexec(0) || cloexec(1) || cloexec(2))
      _exit(11);
    for (int i = 0; i < 6; i++)
      if (cloexec(fds[i]) != (i != 1 && i != 2 && i != 4))
        _exit(20 + i);
    _exit(0);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: exit %d", use_close_range ? "close_range" : "one at a time",
            WEXITSTATUS(st));
  for (int i = 0; i < 6; i++)
    close(fds[i]);
}

Test(fds, cloexec_with_close_range) {
  check_cloexec(true);
}

Test(fds, cloexec_one_fd_at_a_time) {
  check_cloexec(false);
}
