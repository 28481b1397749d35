#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "private_engine.h"
#include "scenario_engine.h"

#define IMAGE "cleanup-test/busybox:latest"

static void connect_to(struct scenario *s, const char *host) {
  dk_client_free(s->dk);
  s->dk = NULL;
  struct dk_client_options o = {.host = host};
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(dk_client_new(&o, &s->dk, &err), 0, "%s", err ? err->msg : "");
}

void scenario_private_engine_start(struct scenario *s) {
  scenario_private_engine_start_with(s, NULL);
}

void scenario_private_engine_start_with(struct scenario *s, const char *const *extra) {
  signal(SIGPIPE, SIG_IGN);
  char dir[96], host[128], cmd[512];
  snprintf(dir, sizeof(dir), "%s/engine", s->dir);
  cr_assert_eq(mkdir(dir, 0700), 0, "mkdir %s: %m", dir);
  snprintf(host, sizeof(host), "unix://%s/docker.sock", dir);
  s->dockerd = private_engine_start_with(dir, host, extra);
  /* The shared engine only lends it the image. */
  snprintf(cmd, sizeof(cmd), "docker save %s | docker -H %s load -q >/dev/null", IMAGE, host);
  cr_assert_eq(system(cmd), 0, "cannot copy %s from the shared engine into the private one", IMAGE);
  snprintf(s->docker_host, sizeof(s->docker_host), "%s", host);
  connect_to(s, host);
}

void scenario_private_engine_stop(struct scenario *s) {
  if (s->dockerd <= 0)
    return;
  /* Everything on it is this test's: forced removals are quicker than dockerd stopping each container. Its networks
   * go too: a stopped dockerd leaves their bridges on the host, and ~30 of them exhaust every engine's address pools
   * ("could not find an available, non-overlapping IPv4 address pool"). */
  const struct dk_filter all[] = {{NULL, NULL}};
  for (enum dk_kind kind = DK_CONTAINER; kind <= DK_NETWORK; kind++) {
    struct dk_list *l = NULL;
    if (!s->dk || dk_list(s->dk, kind, all, &l, NULL) < 0)
      continue;
    for (size_t i = 0; i < l->n; i++) {
      const char *name = l->items[i].names ? l->items[i].names[0] : NULL;
      bool predefined = name && (!strcmp(name, "bridge") || !strcmp(name, "host") || !strcmp(name, "none"));
      if (kind == DK_CONTAINER || !predefined)
        (void)dk_remove(s->dk, kind, l->items[i].id, NULL);
    }
    dk_list_free(l);
  }
  dk_client_free(s->dk);
  s->dk = NULL;
  private_engine_stop(&s->dockerd);
  char cmd[160];
  snprintf(cmd, sizeof(cmd), "rm -rf --one-file-system '%s/engine'", s->dir);
  cr_expect_eq(system(cmd), 0, "cannot remove %s/engine", s->dir);
}
