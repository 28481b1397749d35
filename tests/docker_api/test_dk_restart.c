/* The engine stopped and started again between two calls of one client. The engine is a second dockerd that this
 * test starts itself (own data root, exec root, pid file and socket in a temp dir) and stops; the shared engine is
 * never touched. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "docker.h"
#include "private_engine.h"
#include "test_label.h"

static char dir[] = "/tmp/dkr-XXXXXX";
static char host[128];
static pid_t dockerd = -1;

static pid_t start_dockerd(void) {
  return private_engine_start(dir, host);
}

static void stop_dockerd(void) {
  private_engine_stop(&dockerd);
}

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(dk_global_init(NULL), 0);
  cr_assert_not_null(mkdtemp(dir));
  snprintf(host, sizeof(host), "unix://%s/docker.sock", dir);
}

static void teardown(void) {
  stop_dockerd();
  /* the vfs data root of an engine that ran no container holds only metadata */
  char cmd[96];
  snprintf(cmd, sizeof(cmd), "rm -rf --one-file-system '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "restart: could not remove %s\n", dir);
}

Test(restart, engine_stopped_and_started_between_two_calls, .init = setup, .fini = teardown,
     .timeout = 180 * AG_TIMEOUT_SCALE) {
  dockerd = start_dockerd();
  struct dk_client_options o = {.host = host};
  struct dk_client *c = NULL;
  ca_error *e = NULL;
  cr_assert_eq(dk_client_new(&o, &c, &e), 0, "%s", e ? e->msg : "");
  const char *labels[] = {AG_TEST_LABEL_KEY "=restart", NULL};
  _cleanup_free_ char *vol = NULL;
  cr_assert_eq(dk_volume_create(c, "dk-restart-test", labels, &vol, &e), 0, "%s", e ? e->msg : "");
  const struct dk_filter f[] = {{"label", AG_TEST_LABEL_KEY "=restart"}, {0}};
  _cleanup_(dk_list_freep) struct dk_list *before = NULL;
  cr_assert_eq(dk_list(c, DK_VOLUME, f, &before, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(before->n, 1);

  stop_dockerd();
  /* the same client, engine gone: a transient error that names the engine, after bounded retries */
  struct dk_list *during = NULL;
  _cleanup_error_ ca_error *de = NULL;
  uint64_t t0 = ca_now_monotonic_usec();
  cr_assert_lt(dk_list(c, DK_VOLUME, f, &during, &de), 0);
  uint64_t took = ca_now_monotonic_usec() - t0;
  cr_assert_eq(dk_error_kind(de), DK_ERR_TRANSIENT, "%s", de->msg);
  cr_assert(strstr(de->msg, "is the Docker engine running?"), "%s", de->msg);
  cr_assert_lt(took, 10000000, "retries took %llu us", (unsigned long long)took);

  dockerd = start_dockerd();
  /* the same client again: reconnects by itself, and the engine kept the volume */
  _cleanup_(dk_list_freep) struct dk_list *after = NULL;
  cr_assert_eq(dk_list(c, DK_VOLUME, f, &after, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(after->n, 1);
  cr_assert_str_eq(after->items[0].id, "dk-restart-test");
  cr_assert_eq(dk_remove(c, DK_VOLUME, "dk-restart-test", &e), 0, "%s", e ? e->msg : "");
  dk_client_free(c);
}

/* A private engine leaves the network of its caller alone: dockerd --bridge=none deletes a docker0 it finds, which on a
 * stock host is the host engine's bridge. The test makes a docker0 of its own, in a network namespace of its own. */
Test(restart, a_private_engine_keeps_its_callers_docker0, .init = setup, .fini = teardown,
     .timeout = 120 * AG_TIMEOUT_SCALE) {
  private_engine_own_network();
  cr_assert_eq(system("ip link add docker0 type bridge"), 0, "cannot make a docker0 in the test's namespace");
  dockerd = start_dockerd();
  cr_expect_eq(system("ip link show docker0 >/dev/null 2>&1"), 0, "the private engine deleted the caller's docker0");
  stop_dockerd();
}
