#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "docker.h"
#include "private_engine.h"

static bool own_network; /* this process left the host's network namespace (private_engine_own_network) */

void private_engine_own_network(void) {
  cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
  cr_assert_eq(system("ip link set lo up"), 0, "cannot bring up the loopback of the test's network namespace");
  own_network = true;
}

pid_t private_engine_start(const char *dir, const char *host) {
  return private_engine_start_with(dir, host, NULL);
}

/* The socket of each engine started here, by pid, for its stop (a test runs a few at most). */
static struct {
  pid_t pid;
  char sock[256];
} started[8];

pid_t private_engine_start_with(const char *dir, const char *host, const char *const *extra) {
  char data[256], exec[256], pidfile[256], sock[256], log[256];
  snprintf(data, sizeof(data), "%s/data", dir);
  snprintf(exec, sizeof(exec), "%s/exec", dir);
  snprintf(pidfile, sizeof(pidfile), "%s/docker.pid", dir);
  snprintf(sock, sizeof(sock), "unix://%s/docker.sock", dir);
  snprintf(log, sizeof(log), "%s/dockerd.log", dir);
  /* A network namespace of its own: dockerd --bridge=none deletes a docker0 it finds (moby's
   * removeDefaultBridgeInterface), on a stock host the bridge of the host's engine. An engine reached over TCP shares
   * its caller's, which must then be the test's own (private_engine_own_network). */
  bool tcp = strncmp(host, "tcp://", 6) == 0;
  for (size_t i = 0; extra && extra[i]; i++)
    tcp |= strncmp(extra[i], "tcp://", 6) == 0;
  if (tcp)
    cr_assert(own_network, "a TCP engine shares its caller's network: call private_engine_own_network first");
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (!tcp && unshare(CLONE_NEWNET) < 0) {
      fprintf(stderr, "private engine: unshare(CLONE_NEWNET): %s\n", strerror(errno));
      _exit(126);
    }
    const char *argv[64] = {"dockerd",
                            "--data-root",
                            data,
                            "--exec-root",
                            exec,
                            "--pidfile",
                            pidfile,
                            "-H",
                            sock,
                            "--iptables=false",
                            "--ip6tables=false",
                            "--bridge=none",
                            "--storage-driver=vfs"};
    size_t n = 13;
    for (size_t i = 0; extra && extra[i] && n < 63; i++)
      argv[n++] = extra[i];
    argv[n] = NULL;
    execvp("dockerd", (char **)argv);
    _exit(127);
  }
  /* ready when it answers */
  for (int i = 0; i < 300; i++) {
    struct dk_client_options o = {.host = host, .retries = -1};
    struct dk_client *c = NULL;
    if (dk_client_new(&o, &c, NULL) == 0) {
      dk_client_free(c);
      for (size_t k = 0; k < sizeof(started) / sizeof(started[0]); k++)
        if (started[k].pid == 0) {
          started[k].pid = pid;
          snprintf(started[k].sock, sizeof(started[k].sock), "%s", sock);
          break;
        }
      return pid;
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "dockerd exited early; see %s", log);
    usleep(100000);
  }
  cr_assert_fail("dockerd did not answer within 30 s; see %s", log);
  return -1;
}

void private_engine_stop(pid_t *pid) {
  if (*pid <= 0)
    return;
  /* Its networks first: a stopped dockerd leaves their bridges on the host, and ~30 of them exhaust every engine's
   * address pools. Everything on this engine is the test's. */
  for (size_t k = 0; k < sizeof(started) / sizeof(started[0]); k++)
    if (started[k].pid == *pid) {
      char cmd[320];
      snprintf(cmd, sizeof(cmd), "docker -H '%s' network prune -f >/dev/null 2>&1", started[k].sock);
      if (system(cmd) != 0)
        fprintf(stderr, "private engine %d: could not remove its networks\n", (int)*pid);
      started[k].pid = 0;
    }
  kill(*pid, SIGTERM); /* our own child, by pid */
  int status;
  for (int i = 0; i < 300 && waitpid(*pid, &status, WNOHANG) == 0; i++)
    usleep(100000);
  if (waitpid(*pid, &status, WNOHANG) == 0) {
    kill(*pid, SIGKILL);
    waitpid(*pid, &status, 0);
  }
  *pid = -1;
}
