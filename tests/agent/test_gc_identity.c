/* Who "this host" is (issue 19), through a real engine of its own (a private dockerd: gc never runs on the shared one)
 * and the real binary: the owner rules judge only what names
 * gc's own machine (/etc/machine-id), boot and PID namespace. A same-named machine's live session on a shared engine,
 * and a session of an agent in its own PID namespace, are spared; this machine's previous boot is collected. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <grp.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scenario.h"
#include "scenario_engine.h"
#include "session.h"

static struct scenario sc;

static void setup(void) {
  scenario_setup(&sc);
  scenario_private_engine_start(&sc);
}
static void teardown(void) {
  scenario_private_engine_stop(&sc);
  scenario_teardown(&sc);
}

TestSuite(gc_identity, .init = setup, .fini = teardown, .timeout = 300 * AG_TIMEOUT_SCALE);

#define OTHER_MACHINE_SESSION "1111111111111111111111111111111a"
#define OTHER_PIDNS_SESSION "2222222222222222222222222222222b"
#define REBOOTED_SESSION "3333333333333333333333333333333c"

/* A running container with labels (the first is the test label), by id (caller frees). */
static char *add(const char *const *labels) {
  cr_assert_str_eq(labels[0], sc.test_label);
  struct dk_container_spec spec = {.image = "cleanup-test/busybox:latest",
                                   .cmd = (const char *[]){"sleep", "1000", NULL},
                                   .labels = labels,
                                   .network_mode = "none"};
  char *id = NULL;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(dk_container_create(sc.dk, &spec, &id, &err), 0, "%s", err ? err->msg : "");
  cr_assert_eq(dk_container_start(sc.dk, id, &err), 0, "%s", err ? err->msg : "");
  return id;
}

static bool exists(const char *id) {
  struct dk_list *l = NULL;
  const struct dk_filter f[] = {{"label", sc.test_label}, {NULL, NULL}};
  cr_assert_eq(dk_list(sc.dk, DK_CONTAINER, f, &l, NULL), 0);
  bool found = false;
  for (size_t i = 0; i < l->n; i++)
    found |= streq(l->items[i].id, id);
  dk_list_free(l);
  return found;
}

/* A pid that ran and is gone: in gc's namespace it proves an owner dead, if the labels named this namespace. */
static pid_t gone_pid(void) {
  pid_t p = fork();
  if (p == 0)
    _exit(0);
  waitpid(p, NULL, 0);
  return p;
}

/* The rule gc --dry-run names for id, "" when it does not list it (static buffer). */
static const char *dry_run_rule(const char *id) {
  static char rule[32];
  rule[0] = '\0';
  char path[128];
  snprintf(path, sizeof(path), "%s/out", sc.dir);
  cJSON *j = cJSON_Parse(scenario_read_text(path)), *it;
  cr_assert_not_null(j, "gc --format json printed something that is not JSON");
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "items")) {
    if (streq(cJSON_GetObjectItem(it, "id")->valuestring, id))
      snprintf(rule, sizeof(rule), "%s", cJSON_GetObjectItem(it, "rule")->valuestring);
  }
  cJSON_Delete(j);
  return rule;
}

Test(gc_identity, same_hostname_elsewhere_and_another_pid_namespace_are_spared_a_reboot_here_is_collected) {
  struct ag_owner self;
  cr_assert_eq(ag_owner_self(&self, NULL), 0);
  cr_assert_str_neq(self.machine, "", "this test needs /etc/machine-id");
  char l_host[300], l_machine[96], l_boot[96], l_pidns[64], l_pid[64], l_other_pidns[64];
  const char *l_other_machine = AG_LABEL_MACHINE "=0123456789abcdef0123456789abcdef",
             *l_other_boot = AG_LABEL_BOOT_ID "=00000000-dead-beef-0000-000000000000";
  snprintf(l_host, sizeof(l_host), AG_LABEL_HOST "=%s", self.host);
  snprintf(l_machine, sizeof(l_machine), AG_LABEL_MACHINE "=%s", self.machine);
  snprintf(l_boot, sizeof(l_boot), AG_LABEL_BOOT_ID "=%s", self.boot_id);
  snprintf(l_pidns, sizeof(l_pidns), AG_LABEL_PIDNS "=%llu", (unsigned long long)self.pidns);
  snprintf(l_other_pidns, sizeof(l_other_pidns), AG_LABEL_PIDNS "=%llu", (unsigned long long)self.pidns + 1);
  snprintf(l_pid, sizeof(l_pid), AG_LABEL_OWNER_PID "=%d", (int)gone_pid());
  cr_assert_str_neq(self.machine, "0123456789abcdef0123456789abcdef");

  /* A cloned CI machine with the same hostname on the shared engine, running its session. */
  _cleanup_free_ char *other_machine =
      add((const char *[]){sc.test_label, AG_LABEL_SESSION "=" OTHER_MACHINE_SESSION, l_host, l_other_machine,
                           l_other_boot, AG_LABEL_OWNER_PID "=1", AG_LABEL_OWNER_START "=1", NULL});
  /* An agent in a container with this machine's hostname and id, in its own PID namespace: its owner pid does not
   * exist here. */
  _cleanup_free_ char *other_pidns =
      add((const char *[]){sc.test_label, AG_LABEL_SESSION "=" OTHER_PIDNS_SESSION, l_host, l_machine, l_boot,
                           l_other_pidns, l_pid, AG_LABEL_OWNER_START "=1", NULL});
  /* This machine before its last reboot. */
  _cleanup_free_ char *rebooted =
      add((const char *[]){sc.test_label, AG_LABEL_SESSION "=" REBOOTED_SESSION, l_host, l_machine, l_other_boot,
                           l_pidns, l_pid, AG_LABEL_OWNER_START "=1", NULL});
  sleep(1); /* created before the scan begins */

  int rc = scenario_run(&sc, (const char *[]){"gc", "--dry-run", "--format", "json", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert_str_eq(dry_run_rule(other_machine), "", "another machine's live session would be removed");
  cr_assert_str_eq(dry_run_rule(other_pidns), "", "a session of another PID namespace would be removed");
  cr_assert_str_eq(dry_run_rule(rebooted), "rebooted");

  rc = scenario_run(&sc, (const char *[]){"gc", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert(exists(other_machine), "gc removed the live session of another machine with the same hostname");
  cr_assert(exists(other_pidns), "gc removed the live session of an agent in another PID namespace");
  cr_assert_not(exists(rebooted), "gc left this machine's rebooted session");
}

#define HIDDEN_OWNER_SESSION "4444444444444444444444444444444d"
#define GONE_OWNER_SESSION "5555555555555555555555555555555e"

/* scenario_start_in's hook: gc as a user who cannot see other users' processes, /proc mounted hidepid=invisible as
 * on a hardened shared host (in a mount namespace of its own), with the private engine's socket opened to it. */
static void as_nobody_under_hidepid(struct scenario *s) {
  char sock[128], cmd[512];
  snprintf(sock, sizeof(sock), "%s", s->docker_host + strlen("unix://"));
  snprintf(cmd, sizeof(cmd), "mkdir -p %s && chmod 700 %s && chown -R 65534:65534 %s", s->state, s->state, s->state);
  bool ok = chmod(sock, 0666) == 0 && system(cmd) == 0 && chmod(s->dir, 0711) == 0;
  *strrchr(sock, '/') = '\0';
  ok = ok && chmod(sock, 0711) == 0 && unshare(CLONE_NEWNS) == 0 &&
       mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
       mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") == 0 && setgroups(0, NULL) == 0 &&
       setgid(65534) == 0 && setuid(65534) == 0;
  if (!ok) {
    perror("as nobody under hidepid");
    _exit(98);
  }
}

/* An owner gc cannot see is not an owner gone: only the kernel's word that no process has the pid proves it dead. */
Test(gc_identity, an_owner_hidden_from_gc_is_spared_and_one_gone_is_collected) {
  struct ag_owner self;
  cr_assert_eq(ag_owner_self(&self, NULL), 0);
  char l_machine[96], l_boot[96], l_pidns[64], l_pid[64], l_start[64], l_gone[64];
  snprintf(l_machine, sizeof(l_machine), AG_LABEL_MACHINE "=%s", self.machine);
  snprintf(l_boot, sizeof(l_boot), AG_LABEL_BOOT_ID "=%s", self.boot_id);
  snprintf(l_pidns, sizeof(l_pidns), AG_LABEL_PIDNS "=%llu", (unsigned long long)self.pidns);
  snprintf(l_pid, sizeof(l_pid), AG_LABEL_OWNER_PID "=%d", (int)self.pid);
  snprintf(l_start, sizeof(l_start), AG_LABEL_OWNER_START "=%llu", (unsigned long long)self.start);
  snprintf(l_gone, sizeof(l_gone), AG_LABEL_OWNER_PID "=%d", (int)gone_pid());
  /* A live session of root's (this test process), which a user's gc on the shared engine cannot see in /proc. */
  _cleanup_free_ char *hidden = add((const char *[]){sc.test_label, AG_LABEL_SESSION "=" HIDDEN_OWNER_SESSION,
                                                     l_machine, l_boot, l_pidns, l_pid, l_start, NULL});
  _cleanup_free_ char *gone = add((const char *[]){sc.test_label, AG_LABEL_SESSION "=" GONE_OWNER_SESSION, l_machine,
                                                   l_boot, l_pidns, l_gone, AG_LABEL_OWNER_START "=1", NULL});
  sleep(1); /* created before the scan begins */

  int rc = scenario_wait(
      scenario_start_in(&sc, (const char *[]){"gc", "--dry-run", "--format", "json", NULL}, as_nobody_under_hidepid));
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert_str_eq(dry_run_rule(hidden), "", "a live session whose owner gc cannot see would be removed");
  cr_assert_str_eq(dry_run_rule(gone), "owner-gone");

  rc = scenario_wait(scenario_start_in(&sc, (const char *[]){"gc", NULL}, as_nobody_under_hidepid));
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert(exists(hidden), "gc removed a live session whose owner it could not see");
  cr_assert_not(exists(gone), "gc left a session whose owner is gone");
}
