/* proxy_cut_child PROXY_SOCKET ENGINE_SOCKET: the proxy of test_proxy.c's accept_without_descriptors_backs_off, in a
 * process of its own. It starts the proxy, cuts RLIMIT_NOFILE to the descriptors it has, writes "x" to fd 3 (the
 * test's client connects then and waits in the backlog), measures its CPU time for one second, restores the limit,
 * writes the microseconds used to fd 4, and serves until it is killed.
 *
 * exec'd, not only forked from the test: a fork of the criterion worker (which has threads of its own) can copy an
 * allocator lock another thread held at that instant, and the child's next malloc then waits forever under ASan. */
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>
#include "proxy.h"
#include "session.h"

#define SESSION "0123456789abcdef0123456789abcdef"

static long cpu_usec(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000L + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
}

int main(int argc, char **argv) {
  static const char *const labels[] = {AG_LABEL_SESSION "=" SESSION, AG_LABEL_MANAGED "=true", AG_LABEL_MODE "=run",
                                       NULL};
  if (argc != 3)
    return 2;
  struct ag_proxy *px = NULL;
  struct ag_proxy_config cfg = {
      .socket_path = argv[1], .engine_socket = argv[2], .session_id = SESSION, .labels = labels};
  if (ag_proxy_start(&cfg, &px, NULL) < 0)
    return 2;
  int next = dup(0); /* the lowest free descriptor: every one below is in use */
  close(next);
  struct rlimit old, cut;
  getrlimit(RLIMIT_NOFILE, &old);
  cut = (struct rlimit){.rlim_cur = (rlim_t)next, .rlim_max = old.rlim_max};
  setrlimit(RLIMIT_NOFILE, &cut);
  (void)!write(3, "x", 1);
  long before = cpu_usec();
  sleep(1); /* the client waits in the backlog meanwhile */
  long used = cpu_usec() - before;
  setrlimit(RLIMIT_NOFILE, &old);
  (void)!write(4, &used, sizeof(used));
  for (;;)
    pause(); /* serves the waiting client until the test kills it */
}
